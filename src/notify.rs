//! The service manager's notification protocol (sd_notify): datagrams of
//! `KEY=value` lines to the socket named by NOTIFY_SOCKET, a path or, with a
//! leading `@`, an abstract name. Without NOTIFY_SOCKET nothing here runs.

use core::time::Duration;

use crate::config::Lookup;
use crate::prelude::*;
use crate::sys::{self, Fd, Once};

/// Variables meant for autossh alone: ssh never sees them.
pub const PRIVATE_VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

struct Notifier {
    socket: Fd,
    to: libc::sockaddr_un,
    to_len: libc::socklen_t,
}

// SAFETY: the address is plain data, written once before it is shared.
unsafe impl Sync for Notifier {}

static NOTIFIER: Once<Notifier> = Once::new();

/// The address of a path, or with a leading `@` an abstract name; None when
/// it does not fit.
fn address(name: &[u8]) -> Option<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let offset = core::mem::size_of::<libc::sa_family_t>();
    let (start, bytes, used) = match name.strip_prefix(b"@") {
        // An abstract name: a NUL first, and no terminating NUL counted.
        Some(rest) => (1, rest, 1 + rest.len()),
        None if name.contains(&0) => return None,
        // A path: the terminating NUL counted.
        None => (0, name, name.len() + 1),
    };
    if used > addr.sun_path.len() {
        return None;
    }
    for (slot, &b) in addr.sun_path[start..].iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    Some((addr, (offset + used) as libc::socklen_t))
}

/// A decimal number as Rust's `u64` parsing reads it.
fn parse_u64(text: &[u8]) -> Option<u64> {
    let text = text.strip_prefix(b"+").unwrap_or(text);
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Connects to the manager's socket if NOTIFY_SOCKET names one; returns the
/// watchdog interval (half of WATCHDOG_USEC) when the watchdog is meant for us.
pub fn init(lookup: Lookup) -> Option<Duration> {
    let name = lookup("NOTIFY_SOCKET").filter(|n| !n.is_empty())?;
    let (to, to_len) = address(&name)?;
    // A manager that stops reading must never stall the loop.
    // SAFETY: socket returns a new descriptor, owned by the Fd at once.
    let socket = Fd::new(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })
    .ok()?;
    NOTIFIER.set(Notifier { socket, to, to_len });

    let usec = parse_u64(&lookup("WATCHDOG_USEC")?).filter(|&u| u > 0)?;
    let for_us = lookup("WATCHDOG_PID")
        .map(|p| parse_u64(&p) == Some(sys::getpid() as u64))
        .unwrap_or(true);
    for_us.then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

fn send(state: &str) {
    if let Some(n) = NOTIFIER.get() {
        // SAFETY: sends state.len() bytes from state to a valid address.
        unsafe {
            libc::sendto(
                n.socket.raw(),
                state.as_ptr().cast(),
                state.len(),
                libc::MSG_NOSIGNAL,
                (&n.to as *const libc::sockaddr_un).cast(),
                n.to_len,
            )
        };
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
