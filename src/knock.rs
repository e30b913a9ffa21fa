//! A knock on the relay's door while autossh waits to start ssh again: a
//! non-blocking TCP connect to the address and port of ssh's last
//! connection, which sends nothing and is closed as soon as it is answered
//! (or given up on). Whether the door opens is all it asks; the decisions
//! about it are `machine`'s.

use std::net::SocketAddr;
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
    pub fn start(door: SocketAddr) -> Started {
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
        let answer = match Knock::start(open) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, None);
        drop(listener);
        // The port is free now: refused.
        let answer = match Knock::start(open) {
            Started::Answered(a) => a,
            Started::Waiting(k) => wait(&k),
        };
        assert_eq!(answer, Some(Errno::ECONNREFUSED));
    }
}
