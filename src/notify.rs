//! The service manager's notification protocol (sd_notify): datagrams of
//! `KEY=value` lines to the socket named by NOTIFY_SOCKET, a path or, with a
//! leading `@`, an abstract name. Without NOTIFY_SOCKET nothing here runs.
//! (A few lines over std's Unix sockets; no crate needed.)

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::Lookup;

/// Variables meant for autossh alone: ssh never sees them.
pub const PRIVATE_VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// The address of a path, or with a leading `@` an abstract name.
fn address(name: &[u8]) -> Option<SocketAddr> {
    match name.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name).ok(),
        None => SocketAddr::from_pathname(OsStr::from_bytes(name)).ok(),
    }
}

/// A decimal number as systemd writes it.
fn parse_u64(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Opens a socket to the manager if NOTIFY_SOCKET names one; returns the
/// watchdog interval (half of WATCHDOG_USEC) when the watchdog is meant for us.
pub fn init(lookup: Lookup) -> Option<Duration> {
    let name = lookup("NOTIFY_SOCKET").filter(|n| !n.is_empty())?;
    let to = address(&name)?;
    let socket = UnixDatagram::unbound().ok()?;
    // A manager that stops reading must never stall the loop.
    socket.set_nonblocking(true).ok()?;
    let _ = NOTIFIER.set(Notifier { socket, to });

    let usec = parse_u64(&lookup("WATCHDOG_USEC")?).filter(|&u| u > 0)?;
    let for_us = lookup("WATCHDOG_PID")
        .map(|p| parse_u64(&p) == Some(u64::from(std::process::id())))
        .unwrap_or(true);
    for_us.then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

fn send(state: &str) {
    if let Some(n) = NOTIFIER.get() {
        let _ = n.socket.send_to_addr(&crate::messages::raw(state), &n.to);
    }
}

pub fn enabled() -> bool {
    NOTIFIER.get().is_some()
}

/// Mirrors an INFO or ERR log line.
pub fn status(message: &str) {
    if enabled() {
        send(&format!("STATUS={}", message.replace('\n', " ")));
    }
}

pub fn ready() {
    send("READY=1");
}

pub fn watchdog() {
    send("WATCHDOG=1");
}

pub fn stopping() {
    send("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers() {
        assert!(address(b"/run/systemd/notify").is_some());
        let a = address(b"@name").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"name"[..]));
        assert!(address(&[b'x'; 200]).is_none());
        assert_eq!(parse_u64(b"30000000"), Some(30_000_000));
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"x"), None);
    }
}
