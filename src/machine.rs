//! The supervisor's decisions (SPEC §5, §6, §7, §9.4–9.6) as a pure state
//! machine: [`Machine::step`] takes one event and the time, and returns what
//! to do. It reads no clock, makes no system call and allocates nothing;
//! `supervisor` polls, turns what happened into events, carries out the
//! actions, and sleeps until [`Machine::deadline`].
//!
//! Time is [`Time`], the time since autossh began on the monotonic clock.
//! After every step no deadline lies at or before `now`: whatever was due has
//! been done, so the loop never wakes for nothing (SPEC §8).

use std::net::SocketAddr;
use std::time::Duration;

use libc::{SIGHUP, SIGUSR1};

use crate::backoff::Backoff;
use crate::messages::Note;
pub use crate::time::Time;

mod event;
mod exit;
mod knocking;
mod timers;
pub use event::{Connection, Ended, Event, SpawnError};
use exit::is_exit_signal;
pub use exit::{judge, Then};
use knocking::Knocking;
pub use knocking::KNOCK_EVERY;
pub use timers::{held_wait, HELD_FRESH, PACE, PACED, YOUNG};
use timers::{Readiness, Settle, Watchdog};

/// How long ssh has to exit after SIGTERM before it gets SIGKILL (SPEC §9.4).
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// The rules of one run, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub gate_time: u32,
    pub poll: u32,
    pub first_poll: u32,
    /// Whether ssh's tunnel is tested (SPEC §6).
    pub monitored: bool,
    pub max_start: Option<u32>,
    /// 0: forever.
    pub max_lifetime: u32,
    /// How often to tell the service manager we are alive.
    pub watchdog: Option<Duration>,
    /// Whether there is a service manager to tell READY=1.
    pub notify: bool,
    /// Whether the state is published (AUTOSSH_STATEFILE): then the moment
    /// an unmonitored ssh outlives the gate time is a deadline too.
    pub publish: bool,
    /// Whether the relay is knocked on while waiting (AUTOSSH_KNOCK).
    pub knock: bool,
}

/// The tunnel's state, as published (AUTOSSH_STATEFILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The first ssh is being started, or runs and has not earned `Up` yet.
    Starting,
    /// With monitoring: a test of this ssh passed. Without: this ssh has
    /// outlived the gate time (at once with a gate time of 0).
    Up,
    /// Something went wrong (ssh ended, a test failed, a restart was
    /// asked for): ssh is being replaced, or the new one has not earned `Up`.
    Down,
    /// The wait before the next start.
    Waiting,
    /// ssh is being stopped, to exit.
    Stopping,
    Exited,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Down => "down",
            State::Waiting => "waiting",
            State::Stopping => "stopping",
            State::Exited => "exited",
        }
    }
}

/// What is published: the state, why it is not up, and what else the
/// decisions know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// Why it is not up (the line that said so); None when up, and before
    /// anything went wrong.
    pub reason: Option<Note>,
    pub ssh_pid: Option<i32>,
    pub starts: u32,
    /// While waiting: when the next start is due.
    pub next_start: Option<Time>,
    /// The exit status, once exited.
    pub exit_code: Option<i32>,
}

/// What to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Log(Note),
    /// Start ssh; answered by `Spawned` or `SpawnFailed` before anything
    /// else. Always the last action of its step.
    Spawn,
    /// Write the state file with [`Machine::status`] (it changed, or a
    /// test's outcome is news); only where the state is published.
    Publish,
    /// SIGTERM (and SIGCONT) to ssh.
    Terminate,
    /// SIGKILL to ssh.
    Kill,
    /// Start a connection test; a test that fails at once is answered by
    /// `TestFailed`.
    StartTest,
    /// Drop the running test.
    CancelTest,
    /// READY=1 to the service manager.
    Ready,
    /// WATCHDOG=1 to the service manager.
    Watchdog,
    /// Look for the door of ssh's connection; answered by `DoorFound`.
    FindDoor,
    /// Knock on the door (a non-blocking connect); answered by `Knocked`.
    Knock(SocketAddr),
    /// Drop the knock in flight.
    CancelKnock,
    /// Exit with this status; no ssh is left.
    Exit(i32),
}

/// The actions of one step, in a buffer made once by its owner and used
/// again for every step: it has room for more than any step makes (at most
/// eight, as the table tests show), and would grow rather than drop one.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    items: Vec<Action>,
}

impl Actions {
    /// Room for the largest step.
    pub const CAPACITY: usize = 12;

    pub fn new() -> Actions {
        Actions {
            items: Vec::with_capacity(Actions::CAPACITY),
        }
    }

    fn push(&mut self, action: Action) {
        self.items.push(action);
    }

    fn log(&mut self, note: Note) {
        self.push(Action::Log(note));
    }

    pub fn as_slice(&self) -> &[Action] {
        &self.items
    }
}

impl<'a> IntoIterator for &'a Actions {
    type Item = &'a Action;
    type IntoIter = std::slice::Iter<'a, Action>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// Why a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The regular schedule (SPEC §6).
    Poll,
    /// A network change; the regular test stays due at `due`.
    Change { due: Time },
}

/// The connection test of a running ssh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// No monitoring.
    None,
    Due(Time),
    Running(Cause),
}

/// Where the loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before [`Event::Start`].
    Begin,
    /// The backoff wait before the next start.
    Waiting {
        until: Time,
    },
    /// [`Action::Spawn`] was given and is being answered.
    Spawning,
    Running {
        pid: i32,
        started: Time,
        test: Test,
    },
    /// ssh was asked to stop; SIGKILL follows at `kill_at`.
    Stopping {
        pid: i32,
        kill_at: Option<Time>,
        then: Then,
    },
    /// Exited with this status.
    Done(i32),
}

/// The decisions and what they remember.
#[derive(Debug, Clone)]
pub struct Machine {
    rules: Rules,
    phase: Phase,
    backoff: Backoff,
    starts: u32,
    /// When AUTOSSH_MAXLIFETIME ends the run (None: never, or already did).
    lifetime_end: Option<Time>,
    readiness: Readiness,
    watchdog: Option<Watchdog>,
    settle: Settle,
    /// The running ssh has earned [`State::Up`].
    up: bool,
    /// The last line that said why it is not up.
    reason: Option<Note>,
    /// Until when starts are paced (see [`PACED`]), and whether the next
    /// one is the first since the loss.
    paced: Option<(Time, bool)>,
    /// When to look for the door of the running ssh's connection.
    look_at: Option<Time>,
    /// The door of the last connection ssh made.
    door: Option<SocketAddr>,
    /// The knocks of the wait, while waiting.
    knocking: Knocking,
    /// When the last knock started, in this wait or an earlier one.
    last_knock: Option<Time>,
    /// The last knock found the door closed, and nothing found it open
    /// since (a knock, ssh connected or its last words), nor another door.
    door_closed: bool,
    /// What was last published (AUTOSSH_STATEFILE).
    published: Option<Status>,
    /// The port the ending ssh said the relay holds.
    held_port: Option<u16>,
    /// Since when ssh after ssh found a port held.
    held_since: Option<Time>,
    /// A knock got through while the running ssh was still connecting: it
    /// is looked at again.
    rechecking: bool,
}

impl Machine {
    /// A machine for `rules`, at time 0.
    pub fn new(rules: Rules) -> Machine {
        let lifetime_end =
            (rules.max_lifetime > 0).then(|| Duration::from_secs(u64::from(rules.max_lifetime)));
        Machine {
            rules,
            phase: Phase::Begin,
            backoff: Backoff::default(),
            starts: 0,
            lifetime_end,
            readiness: Readiness {
                sent: !rules.notify,
            },
            watchdog: rules.watchdog.map(|every| Watchdog { every, next: every }),
            settle: Settle { until: None },
            up: false,
            reason: None,
            paced: None,
            look_at: None,
            door: None,
            knocking: Knocking::default(),
            last_knock: None,
            door_closed: false,
            published: None,
            held_port: None,
            held_since: None,
            rechecking: false,
        }
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How many times ssh was started.
    #[cfg(test)]
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The exit status, once the machine is done.
    pub fn exited(&self) -> Option<i32> {
        match self.phase {
            Phase::Done(code) => Some(code),
            _ => None,
        }
    }

    /// What is published now.
    pub fn status(&self) -> Status {
        // Not up yet: starting the first time, down after anything went
        // wrong (until a new ssh earns up).
        let not_up = if self.reason.is_some() {
            State::Down
        } else {
            State::Starting
        };
        let (state, ssh_pid, next_start) = match self.phase {
            Phase::Begin | Phase::Spawning => (not_up, None, None),
            Phase::Running { pid, .. } if self.up => (State::Up, Some(pid), None),
            Phase::Running { pid, .. } => (not_up, Some(pid), None),
            Phase::Stopping {
                pid,
                then: Then::Restart,
                ..
            } => (State::Down, Some(pid), None),
            Phase::Stopping { pid, .. } => (State::Stopping, Some(pid), None),
            Phase::Waiting { until } => (State::Waiting, None, Some(until)),
            Phase::Done(_) => (State::Exited, None, None),
        };
        Status {
            state,
            reason: self.reason,
            ssh_pid,
            starts: self.starts,
            next_start,
            exit_code: self.exited(),
        }
    }

    /// When an unmonitored ssh started at `started` earns `Up`, if that is
    /// published and still to come.
    fn up_at(&self, started: Time) -> Option<Time> {
        (self.rules.publish && !self.rules.monitored && !self.up)
            .then(|| started + secs(self.rules.gate_time))
    }

    /// The running ssh is up: what went wrong before is over.
    fn earned_up(&mut self) {
        self.up = true;
        self.reason = None;
    }

    /// Remembers the line that says why the tunnel is not up.
    fn why(&mut self, note: Note, out: &mut Actions) {
        self.reason = Some(note);
        out.log(note);
    }

    /// The next time something is due; None: only an event can move it.
    pub fn deadline(&self) -> Option<Time> {
        let own = match self.phase {
            Phase::Begin | Phase::Spawning | Phase::Done(_) => return None,
            Phase::Waiting { until } => [Some(until), self.knocking.deadline()]
                .into_iter()
                .flatten()
                .min(),
            Phase::Running { started, test, .. } => {
                let due = match test {
                    Test::Due(at) => Some(at),
                    Test::None | Test::Running(_) => None,
                };
                [
                    due,
                    self.readiness.deadline(&self.rules, started),
                    self.up_at(started),
                    self.look_at,
                    // Knocks for an ssh still connecting.
                    self.knocking.deadline(),
                ]
                .into_iter()
                .flatten()
                .min()
            }
            Phase::Stopping { kill_at, .. } => kill_at,
        };
        [
            own,
            self.lifetime_end,
            self.watchdog.map(|w| w.next),
            self.settle.due(match self.phase {
                Phase::Running { started, .. } => Some(started),
                _ => None,
            }),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// [`Machine::step_into`] a buffer of its own.
    #[cfg(test)]
    pub fn step(&mut self, event: Event, now: Time) -> Actions {
        let mut out = Actions::new();
        self.step_into(event, now, &mut out);
        out
    }

    /// Takes one event at `now` (never earlier than the last step's); what
    /// to do replaces what `out` held.
    pub fn step_into(&mut self, event: Event, now: Time, out: &mut Actions) {
        out.items.clear();
        self.step_with(event, now, out);
        // A test's outcome is news even where the state stays (the file
        // says when the last one was, and how it went).
        let news = matches!(event, Event::TestPassed | Event::TestFailed);
        self.publish(news, out);
    }

    /// Publishes the state if it changed (and only then), or if there is
    /// news: before a start or the exit, which end their step.
    fn publish(&mut self, news: bool, out: &mut Actions) {
        if !self.rules.publish {
            return;
        }
        let status = self.status();
        if !news && self.published == Some(status) {
            return;
        }
        self.published = Some(status);
        let at = match out.items.last() {
            Some(Action::Spawn | Action::Exit(_)) => out.items.len() - 1,
            _ => out.items.len(),
        };
        out.items.insert(at, Action::Publish);
    }

    fn step_with(&mut self, event: Event, now: Time, out: &mut Actions) {
        if let Phase::Done(_) = self.phase {
            return;
        }
        match event {
            Event::Start => {
                if self.phase == Phase::Begin {
                    self.next_start(now, out);
                }
            }
            Event::Signal(signal) => self.on_signal(signal, now, out),
            Event::Spawned { pid } => {
                if self.phase == Phase::Spawning {
                    self.held_port = None;
                    out.log(Note::ChildPid(pid));
                    let test = if self.rules.monitored {
                        Test::Due(now + secs(self.rules.first_poll))
                    } else {
                        Test::None
                    };
                    self.phase = Phase::Running {
                        pid,
                        started: now,
                        test,
                    };
                    // Once it had time to connect (or not).
                    self.look_at = self.rules.knock.then_some(now + YOUNG);
                    if self.rules.gate_time == 0 && !self.rules.monitored {
                        self.readiness.set(out);
                        self.earned_up();
                    }
                }
            }
            Event::SpawnFailed(error) => {
                if self.phase == Phase::Spawning {
                    self.why(Note::SpawnFailed(error), out);
                    self.exit(1, out);
                }
            }
            Event::SshEnded(ended) => self.on_ended(ended, now, out),
            Event::TestPassed => {
                if let Phase::Running {
                    test: ref mut test @ Test::Running(cause),
                    ..
                } = self.phase
                {
                    let regular = now + secs(self.rules.poll);
                    *test = Test::Due(match cause {
                        Cause::Poll => regular,
                        // A test for a change leaves the schedule alone, unless
                        // the regular one fell due meanwhile: this one stands
                        // for it.
                        Cause::Change { due } if due > now => due,
                        Cause::Change { .. } => regular,
                    });
                    self.readiness.set(out);
                    self.earned_up();
                    // The forwards work: no port is held any more.
                    self.held_since = None;
                }
            }
            Event::TestFailed => {
                if let Phase::Running {
                    test: ref mut test @ Test::Running(_),
                    ..
                } = self.phase
                {
                    *test = Test::None;
                    self.why(Note::PortDown, out);
                    self.stop(Then::Restart, now, out);
                }
            }
            Event::NetworkChanged(Connection::Untouched) => {
                if self.rules.monitored {
                    self.settle.changed(now);
                }
            }
            Event::NetworkChanged(Connection::AddressGone(from) | Connection::LinkDown(from)) => {
                let link_down = matches!(event, Event::NetworkChanged(Connection::LinkDown(_)));
                if let Phase::Running { .. } = self.phase {
                    // No test is needed, in any monitoring mode.
                    self.why(Note::ConnectionGone { from, link_down }, out);
                    self.paced = Some((now + PACED, true));
                    self.stop(Then::Restart, now, out);
                }
            }
            // A look that found none (ssh still resolving, say) keeps the
            // door of an earlier ssh.
            Event::DoorFound { door, connecting } => {
                // Connected, or another door: what was known of the door
                // is over.
                if door.is_some() && (!connecting || door != self.door) {
                    self.door_closed = false;
                }
                self.door = door.or(self.door);
                self.found(door.is_some() && connecting, now, out);
            }
            Event::Knocked(error) => self.knocked(error, now, out),
            Event::PortHeld { port, ago } => {
                if matches!(self.phase, Phase::Running { .. }) && ago <= HELD_FRESH {
                    self.held_port = Some(port);
                }
            }
            Event::RelayReached => self.door_closed = false,
            Event::PollFailed(error) => self.cannot_wait(error, now, out),
            Event::Tick => {}
        }
        self.run_due(now, out);
    }

    /// Does everything that is due at `now`.
    fn run_due(&mut self, now: Time, out: &mut Actions) {
        if matches!(self.phase, Phase::Begin | Phase::Spawning | Phase::Done(_)) {
            return;
        }
        if let Some(watchdog) = self.watchdog.as_mut() {
            watchdog.run(now, out);
        }
        self.lifetime(now, out);
        if let Phase::Done(_) = self.phase {
            return;
        }
        if !matches!(self.phase, Phase::Running { .. }) {
            // ssh is being replaced: the new one is tested anyway.
            self.settle.take(now, None);
        }
        match self.phase {
            Phase::Waiting { until } if now >= until => self.launch(now, out),
            Phase::Waiting { .. } => self.knock_due(now, out),
            Phase::Stopping {
                pid,
                kill_at: Some(at),
                then,
            } if now >= at => {
                out.log(Note::KillingStubborn(pid));
                out.push(Action::Kill);
                self.phase = Phase::Stopping {
                    pid,
                    kill_at: None,
                    then,
                };
            }
            Phase::Running {
                pid,
                started,
                mut test,
            } => {
                if self
                    .readiness
                    .deadline(&self.rules, started)
                    .is_some_and(|at| now >= at)
                {
                    self.readiness.set(out);
                }
                if self.up_at(started).is_some_and(|at| now >= at) {
                    self.earned_up();
                }
                if self.look_at.is_some_and(|at| now >= at) {
                    self.look_at = None;
                    out.push(Action::FindDoor);
                }
                // ssh still connecting: its door is knocked on too.
                self.knock_due(now, out);
                // One test for the change, unless one is running already.
                let settled = self.settle.take(now, Some(started));
                if let Test::Due(due) = test {
                    if now >= due {
                        test = Test::Running(Cause::Poll);
                    } else if settled {
                        out.log(Note::NetworkChanged);
                        test = Test::Running(Cause::Change { due });
                    }
                    if let Test::Running(_) = test {
                        out.push(Action::StartTest);
                    }
                }
                self.phase = Phase::Running { pid, started, test };
            }
            _ => {}
        }
    }

    /// AUTOSSH_MAXLIFETIME: once reached, ssh is stopped and autossh exits 0.
    fn lifetime(&mut self, now: Time, out: &mut Actions) {
        if matches!(self.phase, Phase::Begin | Phase::Spawning | Phase::Done(_))
            || self.lifetime_end.is_none_or(|end| now < end)
        {
            return;
        }
        self.lifetime_end = None;
        self.why(Note::LifetimeReached, out);
        match &mut self.phase {
            Phase::Waiting { .. } => self.exit(0, out),
            Phase::Running { .. } => self.stop(Then::Exit(0), now, out),
            Phase::Stopping { then, .. } => {
                if *then == Then::Restart {
                    *then = Then::Exit(0);
                }
            }
            Phase::Begin | Phase::Spawning | Phase::Done(_) => {}
        }
    }

    fn on_signal(&mut self, signal: i32, now: Time, out: &mut Actions) {
        match &mut self.phase {
            Phase::Waiting { .. } => {
                if is_exit_signal(signal) {
                    self.why(Note::ExitSignal(signal), out);
                    self.exit(1, out);
                } else if matches!(signal, SIGHUP | SIGUSR1) {
                    // A prod: retry now, keeping the count of quick starts (SPEC §9.6).
                    self.launch(now, out);
                }
            }
            Phase::Running { .. } => {
                if is_exit_signal(signal) {
                    self.why(Note::ExitSignal(signal), out);
                    self.stop(Then::Exit(1), now, out);
                } else if signal == SIGUSR1 {
                    self.why(Note::RestartSignal, out);
                    self.stop(Then::Restart, now, out);
                }
                // HUP, USR2 and the rest: no effect, also during a test (SPEC §5, §9.15).
            }
            Phase::Stopping { then, .. } => {
                // Already on the way out: only an exit signal changes where to.
                if is_exit_signal(signal) && *then == Then::Restart {
                    *then = Then::Exit(1);
                    self.why(Note::ExitSignal(signal), out);
                }
            }
            Phase::Begin | Phase::Spawning | Phase::Done(_) => {}
        }
    }

    /// The poll can no longer wait: ssh is stopped as for an exit signal
    /// (SIGTERM, SIGKILL at the kill grace), and autossh exits 1.
    fn cannot_wait(&mut self, error: nix::errno::Errno, now: Time, out: &mut Actions) {
        match &mut self.phase {
            Phase::Running { .. } => {
                self.why(Note::PollFailed(error), out);
                self.stop(Then::Exit(1), now, out);
            }
            // An error: exit 1, whatever exit was on its way (SPEC §7).
            Phase::Stopping { then, .. } => {
                *then = Then::Exit(1);
                self.why(Note::PollFailed(error), out);
            }
            Phase::Waiting { .. } | Phase::Begin => {
                self.why(Note::PollFailed(error), out);
                self.exit(1, out);
            }
            Phase::Spawning | Phase::Done(_) => {}
        }
    }

    fn on_ended(&mut self, ended: Ended, now: Time, out: &mut Actions) {
        self.look_at = None;
        self.stop_knocking(out);
        match self.phase {
            Phase::Running { started, test, .. } => {
                if let Test::Running(_) = test {
                    out.push(Action::CancelTest);
                }
                let (then, note) = judge(
                    ended,
                    self.starts == 1,
                    self.rules.gate_time,
                    now.saturating_sub(started),
                );
                self.why(note, out);
                self.after_stop(then, now, out);
            }
            Phase::Stopping { then, .. } => self.after_stop(then, now, out),
            _ => {}
        }
    }

    /// Asks ssh to stop; what follows its end is `then`.
    fn stop(&mut self, then: Then, now: Time, out: &mut Actions) {
        let Phase::Running { pid, test, .. } = self.phase else {
            return;
        };
        if let Test::Running(_) = test {
            out.push(Action::CancelTest);
        }
        out.push(Action::Terminate);
        self.look_at = None;
        self.stop_knocking(out);
        self.phase = Phase::Stopping {
            pid,
            kill_at: Some(now + KILL_GRACE),
            then,
        };
    }

    fn after_stop(&mut self, then: Then, now: Time, out: &mut Actions) {
        match then {
            Then::Restart => self.next_start(now, out),
            Then::Exit(code) => self.exit(code, out),
        }
    }

    /// MAXSTART, then the backoff, then the start (SPEC §5).
    fn next_start(&mut self, now: Time, out: &mut Actions) {
        if self.rules.max_start.is_some_and(|max| self.starts >= max) {
            self.why(Note::MaxStartReached, out);
            return self.exit(0, out);
        }
        let held = self.held_port.take();
        if held.is_none() {
            self.held_since = None;
        }
        let (tries, wait) = match (self.paced, held) {
            (Some((until, first)), _) if now < until => {
                self.paced = Some((until, false));
                let pace = PACE.min(secs(self.rules.poll));
                (0, if first { Duration::ZERO } else { pace })
            }
            (_, Some(port)) => {
                // A steady pace instead of the growing backoff: the relay
                // lets go of the port when it drops the old session.
                self.paced = None;
                let first = self.held_since.is_none();
                let since = *self.held_since.get_or_insert(now);
                let wait = held_wait(now.saturating_sub(since)).min(secs(self.rules.poll));
                self.why(
                    Note::PortHeld {
                        port,
                        retry: wait.as_secs(),
                        first,
                    },
                    out,
                );
                (0, wait)
            }
            _ => {
                self.paced = None;
                self.backoff.before_start(now, self.rules.poll)
            }
        };
        out.log(Note::Tries(tries));
        if wait.is_zero() {
            return self.launch(now, out);
        }
        out.log(Note::Sleeping(wait.as_secs()));
        self.phase = Phase::Waiting { until: now + wait };
        // The first knock at once: whether the door is open says whether
        // knocking can tell anything in this wait.
        let first = self
            .last_knock
            .map_or(now, |last| (last + KNOCK_EVERY).max(now));
        // (Not while a port is held: the relay answers, a knock tells
        // nothing.)
        self.knocking = Knocking {
            next: (self.rules.knock && self.door.is_some() && self.held_since.is_none())
                .then_some(first),
            was_closed: self.door_closed,
            ..Knocking::default()
        };
    }

    fn launch(&mut self, now: Time, out: &mut Actions) {
        // Nothing starts once the lifetime is over, however late we are.
        if self.lifetime_end.is_some_and(|end| now >= end) {
            self.lifetime_end = None;
            self.why(Note::LifetimeReached, out);
            return self.exit(0, out);
        }
        self.stop_knocking(out);
        self.rechecking = false;
        self.starts = self.starts.saturating_add(1);
        out.log(Note::Starting {
            count: self.starts,
            max: self.rules.max_start,
        });
        self.backoff.started(now);
        self.settle.forget();
        self.up = false;
        out.push(Action::Spawn);
        self.phase = Phase::Spawning;
    }

    fn exit(&mut self, code: i32, out: &mut Actions) {
        self.stop_knocking(out);
        out.push(Action::Exit(code));
        self.phase = Phase::Done(code);
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

#[cfg(test)]
mod tests;
