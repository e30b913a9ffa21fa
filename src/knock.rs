//! A knock on the relay's door while autossh waits to start ssh again: a
//! non-blocking TCP connect to the address and port of ssh's last
//! connection, which sends nothing and is closed as soon as it is answered
//! (or given up on). Whether the door opens is all it asks; the decisions
//! about it are `machine`'s.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

/// A knock in flight.
pub struct Knock {
    socket: OwnedFd,
}

/// What a knock started with: an answer at once, or one to wait for.
pub enum Started {
    /// Answered at once: None, the door opened; else why not (a refusal
    /// from this host's own stack, no route).
    Answered(Option<Errno>),
    /// In flight: its socket turns writable when it is answered.
    Waiting(Knock),
}

impl Knock {
    /// Knocks on `door`, from this host's address `from` where given (ssh
    /// was told where to connect from); from where the kernel chooses if
    /// that address is gone (a new lease), as the address ssh is told to
    /// use may have moved too.
    pub fn start(door: SocketAddr, from: Option<IpAddr>) -> Started {
        let family = match door {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let socket = match socket::socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        ) {
            Ok(s) => s,
            Err(e) => return Started::Answered(Some(e)),
        };
        if let Some(from) = from {
            // The port is chosen at the connect, as without a bind.
            let _ = socket::setsockopt(&socket, sockopt::IpBindAddressNoPort, &true);
            let here = SockaddrStorage::from(SocketAddr::new(from, 0));
            match socket::bind(std::os::fd::AsRawFd::as_raw_fd(&socket), &here) {
                Ok(()) | Err(Errno::EADDRNOTAVAIL) => {}
                Err(e) => return Started::Answered(Some(e)),
            }
        }
        match socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            &SockaddrStorage::from(door),
        ) {
            Ok(()) => Started::Answered(None),
            Err(Errno::EINPROGRESS | Errno::EINTR) => Started::Waiting(Knock { socket }),
            Err(e) => Started::Answered(Some(e)),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The answer, once the socket is writable (or reports an error): None
    /// when the door opened. The socket is closed with the knock.
    pub fn answer(&self) -> Option<Errno> {
        match socket::getsockopt(&self.socket, sockopt::SocketError) {
            Ok(0) => None,
            Ok(n) => Some(Errno::from_raw(n)),
            Err(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn wait(knock: &Knock) -> Option<Errno> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(knock.fd(), PollFlags::POLLOUT)];
        poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
        knock.answer()
    }

    #[test]
    fn open_and_closed_doors() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let answer = match Knock::start(open, None) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, None);
        // From where ssh's connection went, when asked.
        let from: IpAddr = "127.0.0.3".parse().unwrap();
        let answer = match Knock::start(open, Some(from)) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, None);
        let (_, peer) = listener.accept().unwrap();
        let (_, peer2) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.1");
        assert_eq!(peer2.ip(), from);
        // An address this host does not have (any more): from where the
        // kernel chooses.
        let gone: IpAddr = "192.0.2.77".parse().unwrap();
        let answer = match Knock::start(open, Some(gone)) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, None);
        let (_, peer3) = listener.accept().unwrap();
        assert_eq!(peer3.ip().to_string(), "127.0.0.1");
        drop(listener);
        // The port is free now: refused.
        let answer = match Knock::start(open, None) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, Some(Errno::ECONNREFUSED));
    }
}
