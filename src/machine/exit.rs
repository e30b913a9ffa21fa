//! The exit-status rules of SPEC §5: what ssh's end means.

use std::time::Duration;

use libc::{SIGINT, SIGQUIT, SIGTERM};

use super::Ended;
use crate::messages::Note;

/// What to do once ssh has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Restart,
    Exit(i32),
}

/// The exit-status rules of SPEC §5: what to do, and the line that says so.
pub fn judge(ended: Ended, first_start: bool, gate_time: u32, lived: Duration) -> (Then, Note) {
    let status = match ended {
        Ended::Signaled(signal) => return (Then::Restart, Note::EndedBySignal(signal)),
        Ended::Exited(status) => status,
    };
    if first_start && gate_time != 0 && lived.as_secs() <= u64::from(gate_time) {
        return (Then::Exit(1), Note::EndedPrematurely(status));
    }
    match status {
        255 => (Then::Restart, Note::EndedRestarting(status)),
        0 => (Then::Exit(0), Note::EndedExiting(status)),
        1 | 2 if !first_start || gate_time == 0 => (Then::Restart, Note::EndedRestarting(status)),
        _ => (Then::Exit(1), Note::EndedExiting(status)),
    }
}

pub(super) fn is_exit_signal(signal: i32) -> bool {
    matches!(signal, SIGTERM | SIGINT | SIGQUIT)
}
