//! Whether this host still has an address, on a link that is up: after a
//! network change, what became of the address ssh's connection goes from.

use std::net::IpAddr;

use crate::machine::Connection;

/// What became of `from`, the address ssh's connection goes from, among
/// this host's addresses now (Untouched where they cannot be read).
pub fn connection_from(from: IpAddr) -> Connection {
    use nix::net::if_::InterfaceFlags;
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Connection::Untouched;
    };
    let here = addresses.filter_map(|a| {
        let address = a.address?;
        let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => return None,
        };
        let up = a
            .flags
            .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
        Some((ip, up))
    });
    judge_address(from, here)
}

/// [`connection_from`] among `here`, this host's addresses and whether
/// their links are up: an address may be on several links, and one that is
/// up is enough.
pub fn judge_address(from: IpAddr, here: impl IntoIterator<Item = (IpAddr, bool)>) -> Connection {
    let mut found = false;
    for (ip, up) in here {
        if ip == from {
            if up {
                return Connection::Untouched;
            }
            found = true;
        }
    }
    if found {
        Connection::LinkDown(from)
    } else {
        Connection::AddressGone(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_this_host() {
        // Loopback is always here and up; TEST-NET-3 is nobody's.
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(connection_from(loopback), Connection::Untouched);
        let nobodys: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(connection_from(nobodys), Connection::AddressGone(nobodys));
        // The rule itself.
        let a: IpAddr = "10.200.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            judge_address(a, [(b, true), (a, false)]),
            Connection::LinkDown(a)
        );
        assert_eq!(
            judge_address(a, [(a, false), (a, true)]),
            Connection::Untouched
        );
        assert_eq!(judge_address(a, [(b, true)]), Connection::AddressGone(a));
        assert_eq!(judge_address(a, []), Connection::AddressGone(a));
    }
}
