//! Whose socket is it? A connection test counts only what ssh carried: the
//! monitor port's listener must be ssh's (or a process ssh started), and in
//! loop mode so must be the connection that comes back to the return port.
//! Read from `/proc/net/tcp` and `/proc/PID/fd` at test time only, so
//! nothing is added while idle; where they cannot be read, the test goes on
//! as before (said once, at debug level).
//!
//! And after a network change that may have cut it: ssh's own connection
//! and where it goes from (whether this host still has that address is
//! `addresses`').

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A socket of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub local: ([u8; 4], u16),
    pub remote: ([u8; 4], u16),
    pub state: u8,
    pub inode: u64,
}

const LISTEN: u8 = 0x0a;
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
const ANY: [u8; 4] = [0, 0, 0, 0];

/// `0100007F:4E20`: the kernel prints the address's four bytes as a native
/// number, and the port as a number.
fn address(text: &str) -> Option<([u8; 4], u16)> {
    let (addr, port) = text.split_once(':')?;
    let addr = u32::from_str_radix(addr, 16).ok()?.to_ne_bytes();
    Some((addr, u16::from_str_radix(port, 16).ok()?))
}

/// One socket of `/proc/net/tcp`; None for a line that does not parse.
fn entry(line: &str) -> Option<Entry> {
    let mut f = line.split_whitespace();
    let local = address(f.nth(1)?)?;
    let remote = address(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let inode = f.nth(5)?.parse().ok()?;
    Some(Entry {
        local,
        remote,
        state,
        inode,
    })
}

/// The sockets of `/proc/net/tcp`'s text; lines that do not parse are left
/// out.
#[cfg(test)]
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().skip(1).filter_map(entry).collect()
}

/// Calls `f` with each line of a table after its header, read a block at a
/// time: however many sockets the host has, only a block is held in
/// memory, and it is one allocation, large enough to be given back whole
/// after the test. A line longer than the block (none is) is skipped.
/// False where the table cannot be read.
fn each_line(path: &str, mut f: impl FnMut(&str)) -> bool {
    use std::io::Read;
    const BLOCK: usize = 4096;
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; BLOCK];
    // Bytes of a line not yet ended at the start of `buf`; `skip` while a
    // line too long to hold is passed over.
    let (mut held, mut skip, mut header) = (0, false, true);
    // Bounded by the table: a read of nothing (or an error) is its end.
    loop {
        let n = match file.read(&mut buf[held..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let filled = held + n;
        let mut start = 0;
        while let Some(end) = buf[start..filled].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + end];
            // Both taken first: a header passed over as too long is still
            // the header.
            let (skipped, was_header) = (std::mem::take(&mut skip), std::mem::take(&mut header));
            if !skipped && !was_header {
                if let Ok(line) = std::str::from_utf8(line) {
                    f(line.trim_end());
                }
            }
            start += end + 1;
        }
        held = filled - start;
        if held == BLOCK {
            (held, skip) = (0, true);
        } else {
            buf.copy_within(start..filled, 0);
        }
    }
    // A last line without its newline.
    if held > 0 && !skip && !header {
        if let Ok(line) = std::str::from_utf8(&buf[..held]) {
            f(line.trim_end());
        }
    }
    true
}

/// The listeners that take connections to 127.0.0.1:`port`.
pub fn listeners(entries: &[Entry], port: u16) -> Vec<u64> {
    entries
        .iter()
        .filter(|e| e.state == LISTEN && e.local.1 == port)
        .filter(|e| e.local.0 == LOOPBACK || e.local.0 == ANY)
        .map(|e| e.inode)
        .collect()
}

/// The socket at the other end of a connection accepted on 127.0.0.1:`ours`
/// from 127.0.0.1:`peer` (0: closed already, so no longer anyone's).
pub fn peer(entries: &[Entry], peer: u16, ours: u16) -> Option<u64> {
    entries
        .iter()
        .find(|e| e.local == (LOOPBACK, peer) && e.remote == (LOOPBACK, ours))
        .map(|e| e.inode)
}

/// `pid` and every process below it, from `(pid, parent)` pairs.
pub fn family(pid: i32, parents: &[(i32, i32)]) -> Vec<i32> {
    let mut found = vec![pid];
    let mut i = 0;
    // Bounded: each round looks at one member, and a pid is added once.
    while i < found.len() && found.len() <= parents.len() + 1 {
        let p = found[i];
        for &(child, parent) in parents {
            if parent == p && !found.contains(&child) {
                found.push(child);
            }
        }
        i += 1;
    }
    found
}

/// Whether process `pid` is on its way out: a zombie, or exiting (the
/// kernel's PF_EXITING in its flags) though its parent has not yet heard.
/// Its sockets are closed first, its parent told after: in between, a test
/// on its connection fails for its end.
pub fn dying(pid: i32) -> bool {
    match crate::procfs::stat(pid) {
        Some(stat) => stat.dying(),
        // Gone from /proc: reaped, by us, or soon. (A line that cannot be
        // read is no sign of an end.)
        None => crate::procfs::path(&mut [0; 64], pid, "stat")
            .is_some_and(|path| nix::sys::stat::stat(path).is_err()),
    }
}

/// Calls `f` with each descriptor of `pid` that is a socket, and its inode.
fn each_socket(pid: i32, mut f: impl FnMut(i32, u64)) {
    let mut name = [0u8; 64];
    let Some(dir) = crate::procfs::path(&mut name, pid, "fd") else {
        return;
    };
    crate::procfs::each_entry(dir, |entry| {
        let Some(fd) = crate::procfs::number(entry) else {
            return;
        };
        let mut full = [0u8; 64];
        let Some(full) = crate::procfs::path(&mut full, pid, format_args!("fd/{fd}")) else {
            return;
        };
        // Into the stack: nix's readlink reads into a new buffer of
        // PATH_MAX bytes, which would leave a page of heap behind a test.
        let mut target = [0u8; 32];
        // SAFETY: readlink writes at most `target.len()` bytes into it, and
        // `full` is a C string.
        let n = unsafe { libc::readlink(full.as_ptr(), target.as_mut_ptr().cast(), target.len()) };
        // A socket's target is `socket:[INODE]`, far shorter than the buffer.
        let Some(target) = usize::try_from(n).ok().and_then(|n| target.get(..n)) else {
            return;
        };
        if let Some(inode) = target
            .strip_prefix(b"socket:[")
            .and_then(|t| t.strip_suffix(b"]"))
            .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
        {
            f(fd, inode);
        }
    });
}

/// The socket inodes that `pid` holds.
fn sockets_of(pid: i32, into: &mut Vec<u64>) {
    each_socket(pid, |_, inode| into.push(inode));
}

/// What is known of the sockets now: the table, and those of ssh's family.
pub struct Sockets {
    pub entries: Vec<Entry>,
    pub ssh: Vec<u64>,
}

impl Sockets {
    /// The sockets with `port` at either end, and ssh's; None where they
    /// cannot be read here.
    pub fn read(ssh: i32, port: u16) -> Option<Sockets> {
        let mut entries = Vec::new();
        let read = each_line("/proc/net/tcp", |line| {
            if let Some(e) = entry(line).filter(|e| e.local.1 == port || e.remote.1 == port) {
                entries.push(e);
            }
        });
        if !read {
            return None;
        }
        let mut sockets = Vec::new();
        for member in family(ssh, &crate::procfs::parents()?) {
            sockets_of(member, &mut sockets);
        }
        Some(Sockets {
            entries,
            ssh: sockets,
        })
    }

    /// Whether every listener of 127.0.0.1:`port` is ssh's (and there is one).
    pub fn listener_is_ssh(&self, port: u16) -> bool {
        let found = listeners(&self.entries, port);
        !found.is_empty() && found.iter().all(|i| self.ssh.contains(i))
    }

    /// Whether the connection from 127.0.0.1:`peer` to our `ours` is ssh's.
    pub fn peer_is_ssh(&self, peer: u16, ours: u16) -> bool {
        match self::peer(&self.entries, peer, ours) {
            Some(0) | None => false,
            Some(inode) => self.ssh.contains(&inode),
        }
    }
}

/// A TCP socket of `/proc/net/tcp` or `tcp6`: its local address, state
/// and inode (IPv4 in IPv6 given as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub local: IpAddr,
    /// The address and port it is connected (or connecting) to.
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

const ESTABLISHED: u8 = 0x01;
const SYN_SENT: u8 = 0x02;

/// An address of either table: 8 hex digits, or 32 (four native words).
fn ip(text: &str) -> Option<IpAddr> {
    match text.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(text, 16).ok()?.to_ne_bytes(),
        ))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(text.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// One socket of `/proc/net/tcp` or `tcp6`; None for a line that does not
/// parse.
fn socket(line: &str) -> Option<Socket> {
    let mut f = line.split_whitespace();
    let local = ip(f.nth(1)?.split_once(':')?.0)?;
    let (remote, port) = f.next()?.split_once(':')?;
    let remote = SocketAddr::new(ip(remote)?, u16::from_str_radix(port, 16).ok()?);
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let inode = f.nth(5)?.parse().ok()?;
    Some(Socket {
        local,
        remote,
        state,
        inode,
    })
}

/// The sockets of a `/proc/net/tcp` or `tcp6` text.
#[cfg(test)]
pub fn parse_sockets(text: &str) -> Vec<Socket> {
    text.lines().skip(1).filter_map(socket).collect()
}

/// The sockets of both tables among `inodes`.
fn sockets_among(inodes: &[u64]) -> Vec<Socket> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        each_line(table, |line| {
            if let Some(s) = socket(line).filter(|s| inodes.contains(&s.inode)) {
                found.push(s);
            }
        });
    }
    found
}

/// `pid`'s socket inodes by descriptor, lowest first.
fn sockets_by_fd(pid: i32) -> Vec<u64> {
    let mut found: Vec<(i32, u64)> = Vec::new();
    each_socket(pid, |fd, inode| found.push((fd, inode)));
    found.sort_unstable();
    found.into_iter().map(|(_, inode)| inode).collect()
}

/// The local address of the connection among `inodes` (lowest descriptor
/// first): the first established TCP socket not on loopback.
pub fn first_connection(sockets: &[Socket], inodes: &[u64]) -> Option<IpAddr> {
    inodes.iter().find_map(|inode| {
        sockets
            .iter()
            .find(|s| s.inode == *inode && s.state == ESTABLISHED && !s.local.is_loopback())
            .map(|s| s.local)
    })
}

/// The local address of ssh's connection to its server: the TCP socket on
/// ssh's lowest descriptor (opened before any forward), or where ssh holds
/// none (a ProxyCommand), on its children's. None where it cannot be told.
pub fn connection(ssh: i32) -> Option<IpAddr> {
    let own = sockets_by_fd(ssh);
    if let Some(found) = first_connection(&sockets_among(&own), &own) {
        return Some(found);
    }
    let mut children: Vec<i32> = crate::procfs::parents()?
        .into_iter()
        .filter(|&(_, parent)| parent == ssh)
        .map(|(pid, _)| pid)
        .collect();
    children.sort_unstable();
    let theirs: Vec<Vec<u64>> = children.into_iter().map(sockets_by_fd).collect();
    let sockets = sockets_among(&theirs.concat());
    theirs
        .iter()
        .find_map(|inodes| first_connection(&sockets, inodes))
}

/// The door of ssh's own connection to its server: the address and port of
/// the TCP socket on ssh's lowest descriptor (opened before any forward),
/// where it is connected or connecting, not on loopback, and not to a
/// link-local address (whose interface /proc does not say). None through a
/// ProxyCommand (ssh holds no TCP socket of its own then; what its command
/// connects to is not ssh's server) or where it cannot be told.
pub fn door(ssh: i32) -> Option<Door> {
    let own = sockets_by_fd(ssh);
    first_door(&sockets_among(&own), &own)
}

/// ssh's own connection to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Door {
    /// Where it goes.
    pub to: SocketAddr,
    /// This host's address it goes from.
    pub from: IpAddr,
    /// Still connecting (SYN-SENT).
    pub connecting: bool,
}

/// [`door`] among `inodes`, lowest descriptor first.
pub fn first_door(sockets: &[Socket], inodes: &[u64]) -> Option<Door> {
    let lowest = inodes
        .iter()
        .find_map(|inode| sockets.iter().find(|s| s.inode == *inode))?;
    let link_local = match lowest.remote.ip() {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(v4) => v4.is_link_local(),
    };
    (matches!(lowest.state, ESTABLISHED | SYN_SENT) && !lowest.local.is_loopback() && !link_local)
        .then_some(Door {
            to: lowest.remote,
            from: lowest.local,
            connecting: lowest.state == SYN_SENT,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ourselves_alive() {
        assert!(!dying(std::process::id() as i32));
    }

    fn hex(addr: [u8; 4], port: u16) -> String {
        format!("{:08X}:{port:04X}", u32::from_ne_bytes(addr))
    }

    type Addr = ([u8; 4], u16);

    fn table(rows: &[(Addr, Addr, u8, u64)]) -> String {
        let mut t = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for (i, (l, r, st, inode)) in rows.iter().enumerate() {
            t.push_str(&format!(
                "{i:4}: {} {} {st:02X} 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0000000000000000 100 0 0 10 0\n",
                hex(l.0, l.1),
                hex(r.0, r.1)
            ));
        }
        t
    }

    #[test]
    fn the_table_and_its_questions() {
        let any = ([0, 0, 0, 0], 0);
        let text = table(&[
            ((LOOPBACK, 20000), any, LISTEN, 111),
            ((LOOPBACK, 20001), any, LISTEN, 222),
            ((LOOPBACK, 40000), (LOOPBACK, 20001), 1, 333),
            ((LOOPBACK, 40002), (LOOPBACK, 20001), 8, 0),
            (([10, 0, 0, 1], 22), ([10, 0, 0, 2], 5555), 1, 444),
        ]);
        let entries = parse(&text);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[4].local, ([10, 0, 0, 1], 22));
        assert_eq!(listeners(&entries, 20000), vec![111]);
        assert_eq!(listeners(&entries, 22), Vec::<u64>::new());
        assert_eq!(peer(&entries, 40000, 20001), Some(333));
        let s = Sockets {
            entries,
            ssh: vec![111, 333],
        };
        assert!(s.listener_is_ssh(20000));
        assert!(!s.listener_is_ssh(20001), "ours, not ssh's");
        assert!(!s.listener_is_ssh(30000), "nobody's");
        assert!(s.peer_is_ssh(40000, 20001));
        assert!(!s.peer_is_ssh(40002, 20001), "closed: no one's to trust");
        assert!(!s.peer_is_ssh(40004, 20001));
        assert!(parse("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn connections_of_both_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 100 1\n\
                  1: 0100C80A:D431 0200C80A:0016 01 00000000:00000000 00:00000000 00000000 0 0 200 1\n\
                  2: 0100007F:9C40 0100007F:4E21 01 00000000:00000000 00:00000000 00000000 0 0 300 1\n";
        let v6 = "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode\n\
                  0: B80D0120000000000000000001000000:D432 B80D0120000000000000000002000000:0016 01 00000000:00000000 00:00000000 00000000 0 0 400 1\n\
                  1: 0000000000000000FFFF00000300C80A:D433 0000000000000000FFFF00000200C80A:0016 01 00000000:00000000 00:00000000 00000000 0 0 500 1\n";
        let mut s = parse_sockets(v4);
        s.extend(parse_sockets(v6));
        assert_eq!(s.len(), 5);
        let here: IpAddr = "10.200.0.1".parse().unwrap();
        assert_eq!(s[1].local, here);
        assert_eq!(s[3].local, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(s[4].local, "10.200.0.3".parse::<IpAddr>().unwrap());
        // Lowest descriptor first, loopback and listeners passed over.
        assert_eq!(first_connection(&s, &[100, 300, 200, 400]), Some(here));
        assert_eq!(
            first_connection(&s, &[400, 200]),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(first_connection(&s, &[100, 300, 999]), None);
        assert!(parse_sockets("h\n0: 12:34 56:78 01 x x x x x 9\n").is_empty());
        // The door: where ssh's own connection goes, also while it connects.
        let door = Door {
            to: "10.200.0.2:22".parse().unwrap(),
            from: here,
            connecting: false,
        };
        assert_eq!(first_door(&s, &[200, 100, 300]), Some(door));
        // (An IPv4 address mapped into IPv6 is taken as the IPv4 one.)
        let mapped = Door {
            from: "10.200.0.3".parse().unwrap(),
            ..door
        };
        assert_eq!(first_door(&s, &[500]), Some(mapped));
        let connecting = parse_sockets(&v4.replace(" 0200C80A:0016 01 ", " 0200C80A:0016 02 "));
        let door_connecting = Door {
            connecting: true,
            ..door
        };
        assert_eq!(first_door(&connecting, &[200]), Some(door_connecting));
        // Only the lowest TCP socket: a listener there means none (a later
        // socket is a forward's).
        assert_eq!(first_door(&s, &[100, 300]), None);
        assert_eq!(first_door(&s, &[100, 200]), None);
        assert_eq!(first_door(&s, &[999, 200]), Some(door));
    }

    #[test]
    fn a_family() {
        let parents = [(2, 1), (3, 2), (4, 3), (5, 1), (6, 4)];
        let mut f = family(2, &parents);
        f.sort_unstable();
        assert_eq!(f, vec![2, 3, 4, 6]);
        // A loop in the table cannot keep us.
        assert_eq!(family(7, &[(7, 8), (8, 7)]).len(), 2);
    }

    #[test]
    fn our_own_sockets_are_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = Sockets::read(std::process::id() as i32, port).expect("/proc is there");
        assert!(s.listener_is_ssh(port));
        // Only what has the port at one end is kept.
        assert!(s
            .entries
            .iter()
            .all(|e| e.local.1 == port || e.remote.1 == port));
        assert_eq!(s.entries.len(), 1);
    }

    #[test]
    fn a_table_is_read_a_line_at_a_time() {
        let dir = std::env::temp_dir().join(format!("owner-lines-{}", std::process::id()));
        std::fs::write(&dir, "header\none\n\ntwo").unwrap();
        let mut lines = Vec::new();
        assert!(each_line(dir.to_str().unwrap(), |l| lines.push(l.to_string())));
        assert_eq!(lines, ["one", "", "two"]);
        // Lines across the reads' blocks, and one longer than a block,
        // which is passed over.
        let many: Vec<String> = (0..400)
            .map(|i| format!("line {i} {}", "x".repeat(i % 97 + 1)))
            .collect();
        let long = "y".repeat(10_000);
        let text = format!("header\n{}\n{long}\nlast\n", many.join("\n"));
        std::fs::write(&dir, text).unwrap();
        lines.clear();
        assert!(each_line(dir.to_str().unwrap(), |l| lines.push(l.to_string())));
        let mut want = many.clone();
        want.push("last".into());
        assert_eq!(lines, want);
        // A header longer than a block is still the header.
        std::fs::write(&dir, format!("{long}\nfirst\nsecond\n")).unwrap();
        lines.clear();
        assert!(each_line(dir.to_str().unwrap(), |l| lines.push(l.to_string())));
        assert_eq!(lines, ["first", "second"]);
        std::fs::remove_file(&dir).unwrap();
        assert!(!each_line("/nonexistent/table", |_| panic!()));
    }
}
