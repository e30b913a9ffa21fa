//! Network changes: the kernel's routing notifications, read in the one
//! `poll`, so that a tunnel whose network changed under it (a new address, a
//! new default route, a link that went down) is tested within seconds instead
//! of at the next poll.
//!
//! What can affect the tunnel, and so counts: a global (not link-local)
//! address added or removed; a unicast route of the main table added or
//! removed, other than IPv6's link-local one; any change of a link that has a
//! global address. Everything else is ignored: links without such an address
//! (a veth coming up for a container), link-local addresses and routes,
//! routes of other tables (local, multicast, policy tables).
//!
//! A loss is told apart: a global address removed, or a link with one going
//! down or away (or messages lost). Only then is ssh's own connection looked
//! at (`owner::connection`), which a loss may have cut for certain.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use libc::{
    RTA_DST, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK, RTM_DELADDR, RTM_DELLINK, RTM_DELROUTE, RTM_GETADDR, RTM_NEWADDR, RTM_NEWLINK,
    RTM_NEWROUTE, RTN_UNICAST, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN,
};

/// The size of a netlink message header.
const HEADER: usize = std::mem::size_of::<libc::nlmsghdr>();
// libc exports these two for Android only.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

/// Below this many descriptors allowed, autossh does not watch: it keeps
/// them for ssh's forwards and its tests.
const MIN_DESCRIPTORS: libc::rlim_t = 16;

/// The socket that hears the routing notifications.
pub struct NetWatch {
    socket: OwnedFd,
    /// Our own address, to tell the answer to our question from notifications.
    port: u32,
    /// Links that have a global address.
    addressed: BTreeSet<u32>,
}

impl NetWatch {
    /// Joins the link, address and route groups, and asks which links have
    /// addresses now; None where that cannot be done (no netlink, too few
    /// descriptors).
    pub fn open() -> Option<NetWatch> {
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
        if soft < MIN_DESCRIPTORS {
            return None;
        }
        let socket = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )
        .ok()?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        let groups = u32::try_from(groups).ok()?;
        socket::bind(socket.as_raw_fd(), &NetlinkAddr::new(0, groups)).ok()?;
        let own: NetlinkAddr = socket::getsockname(socket.as_raw_fd()).ok()?;
        socket::send(
            socket.as_raw_fd(),
            &address_dump_request(),
            MsgFlags::empty(),
        )
        .ok()?;
        Some(NetWatch {
            socket,
            port: own.pid(),
            addressed: BTreeSet::new(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Reads every waiting message; what they can do to the tunnel.
    pub fn drain(&mut self) -> Change {
        let mut changed = Change::None;
        let fd = self.socket.as_raw_fd();
        // Bounded: a busy host cannot keep us here.
        for _ in 0..256 {
            // Each datagram is read into a buffer of its own size, learnt
            // first: a fixed large one would stay resident in every instance.
            let peek = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
            let size = match socket::recv(fd, &mut [], peek) {
                Ok(size) => size.clamp(1, 1 << 16),
                Err(Errno::ENOBUFS) => {
                    changed = Change::Loss;
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            let mut buf = vec![0u8; size];
            match socket::recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(n) => {
                    for (kind, port, body) in messages(&buf[..n]) {
                        // Our own question's answers teach, they are no change.
                        let ours = port == self.port && port != 0;
                        let change = affects_tunnel(kind, body, &mut self.addressed);
                        if !ours {
                            changed = changed.max(change);
                        }
                    }
                }
                // Messages were lost: anything may have changed.
                Err(Errno::ENOBUFS) => changed = Change::Loss,
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        changed
    }
}

/// What messages can do to the tunnel, in rising order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    None,
    /// Something that can affect it (an address or route added, say).
    Some,
    /// Something that may have cut ssh's connection: a global address
    /// removed, a link that had one down or gone.
    Loss,
}

/// RTM_GETADDR for every family, as a dump.
fn address_dump_request() -> Vec<u8> {
    let len: u32 = (HEADER + 8) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    m.extend_from_slice(&[0u8; 8]); // ifaddrmsg: any family
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of one datagram: type, sender's port, body.
fn messages(mut data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind), Some(port)) =
        (u32_at(data, 0), u16_at(data, 4), u32_at(data, 12))
    {
        let len = len as usize;
        if len < HEADER || len > data.len() {
            break;
        }
        out.push((kind, port, &data[HEADER..len]));
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or_default();
    }
    out
}

/// The route attributes after a body's fixed part: type and data.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind)) = (u16_at(data, 0), u16_at(data, 2)) {
        let len = len as usize;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or_default();
    }
    out
}

/// What one message can do to the tunnel; learns which links have a global
/// address.
pub fn affects_tunnel(kind: u16, body: &[u8], addressed: &mut BTreeSet<u32>) -> Change {
    let some = |yes: bool| if yes { Change::Some } else { Change::None };
    match kind {
        RTM_NEWADDR | RTM_DELADDR => {
            // ifaddrmsg: family, prefix length, flags, scope, link index.
            let (Some(&scope), Some(index)) = (body.get(3), u32_at(body, 4)) else {
                return Change::None;
            };
            let global = scope == RT_SCOPE_UNIVERSE;
            match (global, kind) {
                (false, _) => Change::None,
                (true, RTM_NEWADDR) => {
                    addressed.insert(index);
                    Change::Some
                }
                (true, _) => Change::Loss,
            }
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            // rtmsg: family, dst len, src len, tos, table, protocol, scope, type, flags.
            let (Some(&family), Some(&table), Some(&route_type)) =
                (body.first(), body.get(4), body.get(7))
            else {
                return Change::None;
            };
            if table != RT_TABLE_MAIN || route_type != RTN_UNICAST {
                return Change::None;
            }
            let link_local = i32::from(family) == libc::AF_INET6
                && attributes(body.get(12..).unwrap_or_default())
                    .iter()
                    .any(|&(t, d)| {
                        t == RTA_DST
                            && d.first() == Some(&0xfe)
                            && d.get(1).is_some_and(|b| b & 0xc0 == 0x80)
                    });
            some(!link_local)
        }
        RTM_NEWLINK | RTM_DELLINK => {
            // ifinfomsg: family, pad, type, link index, flags, change.
            let (Some(index), Some(flags)) = (u32_at(body, 4), u32_at(body, 8)) else {
                return Change::None;
            };
            if kind == RTM_DELLINK {
                return if addressed.remove(&index) {
                    Change::Loss
                } else {
                    Change::None
                };
            }
            if !addressed.contains(&index) {
                return Change::None;
            }
            let up = libc::IFF_UP as u32 | libc::IFF_LOWER_UP as u32;
            if flags & up == up {
                Change::Some
            } else {
                Change::Loss
            }
        }
        _ => Change::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(scope: u8, index: u32) -> Vec<u8> {
        let mut b = vec![2, 24, 0, scope];
        b.extend_from_slice(&index.to_ne_bytes());
        b
    }

    fn route(family: u8, table: u8, kind: u8, dst: &[u8]) -> Vec<u8> {
        let mut b = vec![
            family,
            (dst.len() * 8) as u8,
            0,
            0,
            table,
            2,
            0,
            kind,
            0,
            0,
            0,
            0,
        ];
        b.extend_from_slice(&((4 + dst.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&RTA_DST.to_ne_bytes());
        b.extend_from_slice(dst);
        b
    }

    fn link(index: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 1, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b
    }

    const UP: u32 = (libc::IFF_UP | libc::IFF_LOWER_UP | libc::IFF_RUNNING) as u32;

    #[test]
    fn what_counts() {
        use Change::{Loss, None, Some};
        let mut set = BTreeSet::new();
        // A veth coming up: its link, its link-local address and route.
        assert_eq!(affects_tunnel(RTM_NEWLINK, &link(7, UP), &mut set), None);
        assert_eq!(
            affects_tunnel(RTM_NEWADDR, &address(253, 7), &mut set),
            None
        );
        let fe80 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            affects_tunnel(RTM_NEWROUTE, &route(10, 254, 1, &fe80), &mut set),
            None
        );
        assert_eq!(
            affects_tunnel(RTM_NEWROUTE, &route(2, 255, 2, &[10, 0, 0, 1]), &mut set),
            None
        );
        // A global address, a default route, a change of an addressed link.
        assert_eq!(affects_tunnel(RTM_NEWADDR, &address(0, 3), &mut set), Some);
        assert_eq!(
            affects_tunnel(RTM_NEWROUTE, &route(2, 254, 1, &[]), &mut set),
            Some
        );
        assert_eq!(
            affects_tunnel(
                RTM_NEWROUTE,
                &route(10, 254, 1, &[0x20, 1, 0xd, 0xb8]),
                &mut set
            ),
            Some
        );
        assert_eq!(affects_tunnel(RTM_NEWLINK, &link(3, UP), &mut set), Some);
        // Losses: the link down (or without carrier), the address removed,
        // the link gone; the link of the veth going down is none.
        assert_eq!(affects_tunnel(RTM_NEWLINK, &link(3, 0), &mut set), Loss);
        let no_carrier = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        assert_eq!(
            affects_tunnel(RTM_NEWLINK, &link(3, no_carrier), &mut set),
            Loss
        );
        assert_eq!(affects_tunnel(RTM_NEWLINK, &link(7, 0), &mut set), None);
        assert_eq!(affects_tunnel(RTM_DELADDR, &address(0, 3), &mut set), Loss);
        assert_eq!(
            affects_tunnel(RTM_DELADDR, &address(253, 7), &mut set),
            None
        );
        assert_eq!(affects_tunnel(RTM_DELLINK, &link(3, 0), &mut set), Loss);
        assert_eq!(affects_tunnel(RTM_NEWLINK, &link(3, UP), &mut set), None);
        assert_eq!(affects_tunnel(RTM_DELLINK, &link(7, 0), &mut set), None);
        // Short or strange bodies are no change, and no panic.
        for kind in [RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWLINK, 99] {
            assert_eq!(affects_tunnel(kind, &[1, 2], &mut set), None);
        }
    }

    #[test]
    fn messages_split_and_truncated() {
        let mut one = Vec::new();
        let body = address(0, 5);
        one.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
        one.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
        one.extend_from_slice(&[0; 6]);
        one.extend_from_slice(&42u32.to_ne_bytes());
        one.extend_from_slice(&body);
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let m = messages(&two);
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].0, m[1].1, m[1].2), (RTM_NEWADDR, 42, &body[..]));
        assert_eq!(messages(&two[..two.len() - 1]).len(), 1);
        assert!(messages(&[0xff; 7]).is_empty());
        let request = address_dump_request();
        assert_eq!(messages(&request)[0].0, RTM_GETADDR);
    }
}
