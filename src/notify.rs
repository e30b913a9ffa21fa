//! The service manager's notification protocol (sd_notify): datagrams of
//! `KEY=value` lines to the socket named by NOTIFY_SOCKET, a path or, with a
//! leading `@`, an abstract name. Without NOTIFY_SOCKET nothing here runs.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// Variables meant for autossh alone: ssh never sees them.
pub const PRIVATE_VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// Connects to the manager's socket if NOTIFY_SOCKET names one; returns the
/// watchdog interval (half of WATCHDOG_USEC) when the watchdog is meant for us.
pub fn init(lookup: &dyn Fn(&str) -> Option<OsString>) -> Option<Duration> {
    let name = lookup("NOTIFY_SOCKET").filter(|n| !n.is_empty())?;
    let bytes = name.as_bytes();
    let to = match bytes.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(std::path::Path::new(&name)),
    }
    .ok()?;
    let socket = UnixDatagram::unbound().ok()?;
    // A manager that stops reading must never stall the loop.
    socket.set_nonblocking(true).ok()?;
    let _ = NOTIFIER.set(Notifier { socket, to });

    let usec = lookup("WATCHDOG_USEC")?
        .to_str()?
        .parse::<u64>()
        .ok()
        .filter(|&u| u > 0)?;
    let for_us = lookup("WATCHDOG_PID")
        .map(|p| p.to_str().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id()))
        .unwrap_or(true);
    for_us.then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

fn send(state: &str) {
    if let Some(n) = NOTIFIER.get() {
        let _ = n.socket.send_to_addr(state.as_bytes(), &n.to);
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
