//! Whose socket is it? A connection test counts only what ssh carried: the
//! monitor port's listener must be ssh's (or a process ssh started), and in
//! loop mode so must be the connection that comes back to the return port.
//! Read from `/proc/net/tcp` and `/proc/PID/fd` at test time only, so
//! nothing is added while idle; where they cannot be read, the test goes on
//! as before (said once, at debug level).

use std::fs;

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

/// The sockets of `/proc/net/tcp`'s text; lines that do not parse are left
/// out.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(Entry {
                local: address(f.get(1)?)?,
                remote: address(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
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

/// `(pid, parent)` of every process.
fn all_parents() -> Option<Vec<(i32, i32)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the name in parentheses: state, then the parent.
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(parent) = parent {
            out.push((pid, parent));
        }
    }
    Some(out)
}

/// The socket inodes that `pid` holds.
fn sockets_of(pid: i32, into: &mut Vec<u64>) {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for entry in dir.flatten() {
        if let Ok(target) = fs::read_link(entry.path()) {
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
            {
                into.push(inode);
            }
        }
    }
}

/// What is known of the sockets now: the table, and those of ssh's family.
pub struct Sockets {
    pub entries: Vec<Entry>,
    pub ssh: Vec<u64>,
}

impl Sockets {
    /// None where it cannot be read here.
    pub fn read(ssh: i32) -> Option<Sockets> {
        let entries = parse(&fs::read_to_string("/proc/net/tcp").ok()?);
        let mut sockets = Vec::new();
        for member in family(ssh, &all_parents()?) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Sockets::read(std::process::id() as i32).expect("/proc is there");
        assert!(s.listener_is_ssh(port));
    }
}
