//! What the machine is told: the events, and what they carry of ssh's
//! start and end.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nix::errno::Errno;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// Why ssh could not be started, by the step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The close-on-exec pipe that carries an exec failure back.
    Pipe(Errno),
    Fork(Errno),
    /// ssh itself could not be executed.
    Exec(Errno),
}

/// What a network change did to ssh's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing this host can see: its address is still here, on a link
    /// that is up (or no ssh runs, or the change took nothing away).
    Untouched,
    /// It went from this address, which this host no longer has: it is
    /// dead for certain.
    AddressGone(IpAddr),
    /// It went from this address, whose link is down.
    LinkDown(IpAddr),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// autossh is ready to start: the first event.
    Start,
    /// A handled signal (SIGCHLD here only for a child that was not ssh).
    Signal(i32),
    /// The answer to [`Action::Spawn`]: ssh runs with this pid...
    Spawned {
        pid: i32,
    },
    /// ...or could not be started.
    SpawnFailed(SpawnError),
    /// ssh ended and was reaped.
    SshEnded(Ended),
    /// The running connection test passed, or failed.
    TestPassed,
    TestFailed,
    /// The kernel reported a change that can affect the tunnel, and what
    /// it did to ssh's own connection, as far as this host can tell.
    NetworkChanged(Connection),
    /// The answer to [`Action::FindDoor`]: the address and port ssh's own
    /// connection goes to, where it has one (none through a ProxyCommand),
    /// and whether it is still connecting (SYN-SENT).
    DoorFound {
        door: Option<SocketAddr>,
        connecting: bool,
    },
    /// The answer to [`Action::Knock`]: the door opened (None), or the
    /// connect failed with this error.
    Knocked(Option<Errno>),
    /// ssh's last words say it got as far as the relay (a TCP connection;
    /// fed just before its `SshEnded`).
    RelayReached,
    /// ssh's last words say the relay would not forward this remote port
    /// (fed just before its `SshEnded`); it said them `ago` before.
    PortHeld {
        port: u16,
        ago: Duration,
    },
    /// The one poll failed for good (retrying would only spin).
    PollFailed(Errno),
    /// Only time passed (a deadline was reached).
    Tick,
}
