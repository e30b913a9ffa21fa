//! The one event loop (SPEC §5): start ssh, watch it, decide, repeat.
//!
//! Everything waits in a single `poll` over the signal pipe (and the probe's
//! sockets) with a timeout equal to the nearest deadline on the monotonic clock,
//! so nothing wakes between deadlines and a child's death is seen at once.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use log::{debug, error, info, Level};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use signal_hook::consts::signal::*;

use crate::backoff::Backoff;
use crate::child::{self, Ended, SpawnError, Ssh};
use crate::messages::{self, OsError};
use crate::netwatch::NetWatch;
use crate::notify;
use crate::probe::{Monitor, Outcome, Probe};
use crate::signals::Signals;

/// How long ssh has to exit after SIGTERM before it gets SIGKILL (SPEC §9.4).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The quiet after a network change before it is tested: a change is often a
/// burst of messages.
const SETTLE: Duration = Duration::from_secs(1);

/// What to do once ssh has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Restart,
    Exit(i32),
}

/// The exit-status rules of SPEC §5, as a pure function: the action, the log
/// level and the message.
pub fn judge(
    ended: Ended,
    first_start: bool,
    gate_time: u32,
    lived: Duration,
    name: &str,
) -> (Then, Level, String) {
    use Level::{Error as ERR, Info as INFO};
    let status = match ended {
        Ended::Signaled(signal) => {
            return (
                Then::Restart,
                INFO,
                format!("ssh exited on signal {signal}, restarting ssh"),
            )
        }
        Ended::Exited(status) => status,
    };
    if first_start && gate_time != 0 && lived.as_secs() <= u64::from(gate_time) {
        return (
            Then::Exit(1),
            ERR,
            format!("ssh exited prematurely with status {status}; {name} exiting"),
        );
    }
    let restart = (
        Then::Restart,
        INFO,
        format!("ssh exited with error status {status}; restarting ssh"),
    );
    let exit = |code| {
        (
            Then::Exit(code),
            INFO,
            format!("ssh exited with status {status}; {name} exiting"),
        )
    };
    match status {
        255 => restart,
        0 => exit(0),
        1 | 2 if !first_start || gate_time == 0 => restart,
        _ => exit(1),
    }
}

/// Where the loop is.
enum Phase {
    /// The backoff wait before the next start.
    Waiting { until: Instant },
    Running {
        ssh: Ssh,
        started: Instant,
        /// When the next connection test is due (None: no monitoring).
        next_probe: Option<Instant>,
        probe: Option<Probe>,
    },
    /// ssh was asked to stop; SIGKILL follows at `kill_at`.
    Stopping {
        ssh: Ssh,
        kill_at: Option<Instant>,
        then: Then,
    },
}

pub struct Settings {
    pub name: String,
    pub argv: Vec<Vec<u8>>,
    /// How ssh is started besides its argv.
    pub setup: child::Setup,
    pub gate_time: u32,
    pub poll: u32,
    pub first_poll: u32,
    pub monitor: Option<Monitor>,
    pub max_start: Option<u32>,
    pub max_lifetime: u32,
    /// How often to tell the service manager we are alive (WATCHDOG_USEC / 2).
    pub watchdog: Option<Duration>,
    /// The kernel's routing notifications, when watched (monitoring on).
    pub netwatch: Option<NetWatch>,
}

pub struct Supervisor {
    settings: Settings,
    signals: Signals,
    backoff: Backoff,
    starts: u32,
    lifetime_end: Option<Instant>,
    /// READY=1 has been sent (or there is no service manager to tell).
    ready: bool,
    next_watchdog: Option<Instant>,
    /// When a network change has settled and is to be tested.
    settle_until: Option<Instant>,
    /// The running test was started by a network change.
    extra_probe: bool,
}

fn is_exit_signal(signal: i32) -> bool {
    matches!(signal, SIGTERM | SIGINT | SIGQUIT)
}

/// Milliseconds until `deadline`, rounded up so that a wake-up is never early.
fn poll_timeout(deadline: Option<Instant>, now: Instant) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            let ms = left.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms)
                .ok()
                .and_then(|ms| PollTimeout::try_from(ms).ok())
                .unwrap_or(PollTimeout::MAX)
        }
    }
}

impl Supervisor {
    pub fn new(settings: Settings, signals: Signals, began: Instant) -> Supervisor {
        let lifetime_end = (settings.max_lifetime > 0)
            .then(|| began + Duration::from_secs(u64::from(settings.max_lifetime)));
        let next_watchdog = settings.watchdog.map(|every| began + every);
        Supervisor {
            settings,
            signals,
            backoff: Backoff::default(),
            starts: 0,
            lifetime_end,
            ready: !notify::enabled(),
            next_watchdog,
            settle_until: None,
            extra_probe: false,
        }
    }

    /// Runs until autossh should exit; returns the exit status. No child is left.
    pub fn run(mut self) -> i32 {
        let mut phase = match self.next_start(Instant::now()) {
            ControlFlow::Continue(phase) => phase,
            ControlFlow::Break(code) => return code,
        };
        loop {
            let now = Instant::now();
            let timeout = poll_timeout(self.deadline(&phase), now);
            let mut fds = vec![PollFd::new(self.signals.fd(), PollFlags::POLLIN)];
            let watch_at = self.settings.netwatch.as_ref().map(|w| {
                fds.push(PollFd::new(w.fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            if let (
                Phase::Running {
                    probe: Some(probe), ..
                },
                Some(monitor),
            ) = (&phase, &self.settings.monitor)
            {
                let (fd, events) = monitor.interest(probe);
                fds.push(PollFd::new(fd, events));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => error!("poll: {}", OsError(e)),
            }
            let network = watch_at.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()));
            drop(fds);
            if network && self.settings.netwatch.as_mut().is_some_and(NetWatch::drain) {
                // Each change pushes the test back: it runs after a quiet second.
                self.settle_until = Some(Instant::now() + SETTLE);
            }
            // Signals first: a child that died mid-test ends the test with it.
            let flow = match self.on_signals(phase) {
                ControlFlow::Continue(phase) => self.on_probe(phase, Instant::now()),
                stop => stop,
            };
            let flow = match flow {
                ControlFlow::Continue(phase) => self.on_deadlines(phase, Instant::now()),
                stop => stop,
            };
            phase = match flow {
                ControlFlow::Continue(phase) => phase,
                ControlFlow::Break(code) => return code,
            };
        }
    }

    fn deadline(&self, phase: &Phase) -> Option<Instant> {
        let own = match phase {
            Phase::Waiting { until } => Some(*until),
            Phase::Running {
                probe: Some(probe), ..
            } => Some(probe.deadline()),
            Phase::Running { next_probe, .. } => *next_probe,
            Phase::Stopping { kill_at, .. } => *kill_at,
        };
        let ready = match phase {
            Phase::Running { started, .. } => self.ready_at(*started),
            _ => None,
        };
        [
            own,
            self.lifetime_end,
            self.next_watchdog,
            ready,
            self.settle_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When a running ssh counts as up for the service manager: once it has
    /// outlived the gate time (a passed first test may come sooner).
    fn ready_at(&self, started: Instant) -> Option<Instant> {
        let gate = self.settings.gate_time;
        (!self.ready && gate > 0).then(|| started + Duration::from_secs(u64::from(gate)))
    }

    fn set_ready(&mut self) {
        if !self.ready {
            self.ready = true;
            notify::ready();
        }
    }

    /// MAXSTART, then the backoff, then the start (SPEC §5).
    fn next_start(&mut self, now: Instant) -> ControlFlow<i32, Phase> {
        if self
            .settings
            .max_start
            .is_some_and(|max| self.starts >= max)
        {
            info!("max start count reached; exiting");
            return ControlFlow::Break(0);
        }
        let (tries, wait) = self.backoff.before_start(now, self.settings.poll);
        debug!("checking for grace period, tries = {tries}");
        if wait.is_zero() {
            return self.launch(now);
        }
        debug!("sleeping for grace time {} secs", wait.as_secs());
        ControlFlow::Continue(Phase::Waiting { until: now + wait })
    }

    fn launch(&mut self, now: Instant) -> ControlFlow<i32, Phase> {
        self.starts += 1;
        match self.settings.max_start {
            Some(max) => info!("starting ssh (count {} of {})", self.starts, max),
            None => info!("starting ssh (count {})", self.starts),
        }
        self.backoff.started(now);
        match child::spawn(&self.settings.argv, &self.settings.setup) {
            Ok(ssh) => {
                info!("ssh child pid is {}", ssh.pid());
                crate::sys::release_free_memory();
                if self.settings.gate_time == 0 && self.settings.monitor.is_none() {
                    self.set_ready();
                }
                let first = Duration::from_secs(u64::from(self.settings.first_poll));
                ControlFlow::Continue(Phase::Running {
                    ssh,
                    started: now,
                    next_probe: self.settings.monitor.as_ref().map(|_| now + first),
                    probe: None,
                })
            }
            Err(e) => {
                match e {
                    SpawnError::Pipe(e) => error!("{}: {}", messages::PIPE, OsError(e)),
                    SpawnError::Fork(e) => error!("{}: {}", messages::FORK, OsError(e)),
                    SpawnError::Exec(e) => {
                        error!("{}: {}", messages::path(&self.settings.argv[0]), OsError(e))
                    }
                }
                ControlFlow::Break(1)
            }
        }
    }

    fn on_signals(&mut self, mut phase: Phase) -> ControlFlow<i32, Phase> {
        for signal in self.signals.drain() {
            phase = self.on_signal(phase, signal)?;
        }
        ControlFlow::Continue(phase)
    }

    fn on_signal(&mut self, phase: Phase, signal: i32) -> ControlFlow<i32, Phase> {
        let now = Instant::now();
        match phase {
            Phase::Waiting { until } => {
                if is_exit_signal(signal) {
                    info!("received signal to exit ({signal})");
                    return ControlFlow::Break(1);
                }
                if signal == SIGCHLD {
                    // Orphans we inherited as PID 1.
                    child::reap(None);
                }
                if matches!(signal, SIGHUP | SIGUSR1) {
                    // A prod: retry now, keeping the count of quick starts (SPEC §9.6).
                    return self.launch(now);
                }
                ControlFlow::Continue(Phase::Waiting { until })
            }
            Phase::Running {
                ssh,
                started,
                next_probe,
                probe,
            } => {
                let unchanged = |ssh| {
                    ControlFlow::Continue(Phase::Running {
                        ssh,
                        started,
                        next_probe,
                        probe,
                    })
                };
                if signal == SIGCHLD {
                    if let Some(ended) = child::reap(Some(ssh.pid())) {
                        return self.ended(ended, started, now);
                    }
                    return unchanged(ssh);
                }
                let then = if is_exit_signal(signal) {
                    info!("received signal to exit ({signal})");
                    Then::Exit(1)
                } else if signal == SIGUSR1 {
                    info!("signalled to kill and restart ssh");
                    Then::Restart
                } else {
                    return unchanged(ssh);
                };
                ControlFlow::Continue(self.stop(ssh, then, now))
            }
            Phase::Stopping {
                ssh,
                kill_at,
                mut then,
            } => {
                // Already on the way out: a repeated signal changes nothing.
                if is_exit_signal(signal) && then == Then::Restart {
                    info!("received signal to exit ({signal})");
                    then = Then::Exit(1);
                }
                if signal == SIGCHLD && child::reap(Some(ssh.pid())).is_some() {
                    return self.after_stop(then, now);
                }
                ControlFlow::Continue(Phase::Stopping { ssh, kill_at, then })
            }
        }
    }

    fn stop(&mut self, ssh: Ssh, then: Then, now: Instant) -> Phase {
        ssh.terminate();
        Phase::Stopping {
            ssh,
            kill_at: Some(now + KILL_GRACE),
            then,
        }
    }

    fn after_stop(&mut self, then: Then, now: Instant) -> ControlFlow<i32, Phase> {
        match then {
            Then::Restart => self.next_start(now),
            Then::Exit(code) => ControlFlow::Break(code),
        }
    }

    fn ended(&mut self, ended: Ended, started: Instant, now: Instant) -> ControlFlow<i32, Phase> {
        let (then, level, message) = judge(
            ended,
            self.starts == 1,
            self.settings.gate_time,
            now.duration_since(started),
            &self.settings.name,
        );
        log::log!(level, "{message}");
        self.after_stop(then, now)
    }

    /// Starts a due connection test, or moves the running one on (SPEC §6).
    fn on_probe(&mut self, phase: Phase, now: Instant) -> ControlFlow<i32, Phase> {
        let Some(monitor) = self.settings.monitor.as_ref() else {
            return ControlFlow::Continue(phase);
        };
        let Phase::Running {
            ssh,
            started,
            next_probe,
            mut probe,
        } = phase
        else {
            return ControlFlow::Continue(phase);
        };
        let due = next_probe.is_some_and(|due| now >= due);
        let settled = self.settle_until.is_some_and(|at| now >= at);
        if settled {
            // One test for the change, unless one is running already.
            self.settle_until = None;
        }
        if probe.is_none() && (due || settled) {
            self.extra_probe = !due;
            if self.extra_probe {
                info!("network changed, testing the connection");
            }
            probe = monitor.start(now);
            if probe.is_none() {
                info!("port down, restarting ssh");
                return ControlFlow::Continue(self.stop(ssh, Then::Restart, now));
            }
        }
        let outcome = match probe.as_mut() {
            Some(p) => monitor.advance(p, now),
            None => Outcome::Pending,
        };
        let poll = Duration::from_secs(u64::from(self.settings.poll));
        match outcome {
            Outcome::Pending => ControlFlow::Continue(Phase::Running {
                ssh,
                started,
                next_probe,
                probe,
            }),
            Outcome::Passed => {
                self.set_ready();
                // A test for a network change leaves the regular schedule alone.
                let next_probe = if self.extra_probe {
                    next_probe
                } else {
                    Some(now + poll)
                };
                self.extra_probe = false;
                ControlFlow::Continue(Phase::Running {
                    ssh,
                    started,
                    next_probe,
                    probe: None,
                })
            }
            Outcome::Failed => {
                info!("port down, restarting ssh");
                ControlFlow::Continue(self.stop(ssh, Then::Restart, now))
            }
        }
    }

    fn on_deadlines(&mut self, phase: Phase, now: Instant) -> ControlFlow<i32, Phase> {
        if !matches!(phase, Phase::Running { .. }) && self.settle_until.is_some_and(|at| now >= at)
        {
            // ssh is being replaced: the new one is tested anyway.
            self.settle_until = None;
        }
        if let (Some(every), Some(next)) = (self.settings.watchdog, self.next_watchdog) {
            if now >= next {
                notify::watchdog();
                self.next_watchdog = Some(now + every);
            }
        }
        if let Phase::Running { started, .. } = &phase {
            if self.ready_at(*started).is_some_and(|at| now >= at) {
                self.set_ready();
            }
        }
        if self.lifetime_end.is_some_and(|end| now >= end) {
            self.lifetime_end = None;
            info!("exceeded maximum time to live, shutting down");
            return match phase {
                Phase::Waiting { .. } => ControlFlow::Break(0),
                Phase::Running { ssh, .. } => {
                    ControlFlow::Continue(self.stop(ssh, Then::Exit(0), now))
                }
                Phase::Stopping { ssh, kill_at, then } => {
                    let then = if then == Then::Restart {
                        Then::Exit(0)
                    } else {
                        then
                    };
                    ControlFlow::Continue(Phase::Stopping { ssh, kill_at, then })
                }
            };
        }
        match phase {
            Phase::Waiting { until } if now >= until => self.launch(now),
            Phase::Stopping {
                ssh,
                kill_at: Some(at),
                then,
            } if now >= at => {
                info!(
                    "ssh child pid {} did not exit on SIGTERM; sending SIGKILL",
                    ssh.pid()
                );
                ssh.kill();
                ControlFlow::Continue(Phase::Stopping {
                    ssh,
                    kill_at: None,
                    then,
                })
            }
            phase => ControlFlow::Continue(phase),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(ended: Ended, first: bool, gate: u32, lived: u64) -> (Then, Level, String) {
        judge(ended, first, gate, Duration::from_secs(lived), "autossh")
    }

    #[test]
    fn premature_exit_on_first_start_within_gate() {
        for status in [0, 1, 2, 3, 255] {
            assert_eq!(
                verdict(Ended::Exited(status), true, 30, 30),
                (
                    Then::Exit(1),
                    Level::Error,
                    format!("ssh exited prematurely with status {status}; autossh exiting")
                )
            );
        }
    }

    #[test]
    fn status_rules() {
        let r = |s: i32| format!("ssh exited with error status {s}; restarting ssh");
        let e = |s: i32| format!("ssh exited with status {s}; autossh exiting");
        assert_eq!(
            verdict(Ended::Exited(255), true, 30, 31),
            (Then::Restart, Level::Info, r(255))
        );
        assert_eq!(
            verdict(Ended::Exited(255), true, 0, 0),
            (Then::Restart, Level::Info, r(255))
        );
        assert_eq!(
            verdict(Ended::Exited(0), false, 30, 0),
            (Then::Exit(0), Level::Info, e(0))
        );
        assert_eq!(
            verdict(Ended::Exited(0), true, 0, 0),
            (Then::Exit(0), Level::Info, e(0))
        );
        assert_eq!(
            verdict(Ended::Exited(1), true, 30, 31),
            (Then::Exit(1), Level::Info, e(1))
        );
        assert_eq!(
            verdict(Ended::Exited(2), true, 30, 31),
            (Then::Exit(1), Level::Info, e(2))
        );
        assert_eq!(
            verdict(Ended::Exited(1), true, 0, 0),
            (Then::Restart, Level::Info, r(1))
        );
        assert_eq!(
            verdict(Ended::Exited(2), false, 30, 0),
            (Then::Restart, Level::Info, r(2))
        );
        assert_eq!(
            verdict(Ended::Exited(3), false, 0, 100),
            (Then::Exit(1), Level::Info, e(3))
        );
        assert_eq!(
            verdict(Ended::Exited(254), true, 0, 100),
            (Then::Exit(1), Level::Info, e(254))
        );
    }

    #[test]
    fn signals_restart() {
        assert_eq!(
            verdict(Ended::Signaled(9), true, 30, 0),
            (
                Then::Restart,
                Level::Info,
                "ssh exited on signal 9, restarting ssh".to_string()
            )
        );
    }

    #[test]
    fn timeouts_round_up() {
        let now = Instant::now();
        let ms = |d: Option<Instant>| i32::from(poll_timeout(d, now));
        assert_eq!(ms(None), -1);
        assert_eq!(ms(Some(now)), 0);
        assert_eq!(ms(Some(now + Duration::from_micros(1))), 1);
        assert_eq!(ms(Some(now + Duration::from_millis(1500))), 1500);
        assert_eq!(ms(Some(now + Duration::from_secs(1 << 40))), i32::MAX);
        assert_eq!(ms(Some(now - Duration::from_secs(1))), 0);
    }
}
