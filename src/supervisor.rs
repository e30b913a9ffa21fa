//! The one event loop (SPEC §5): it polls, turns what happened into events
//! for the decisions of `machine`, and carries out the actions they return.
//!
//! Everything waits in a single `poll` over the signal socket, the routing
//! notifications and the running test's socket, with a timeout equal to the
//! nearest deadline on the monotonic clock, so nothing wakes between
//! deadlines and a child's death is seen at once.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};

use crate::addresses;
use crate::child::{self, Ssh};
use crate::knock::{self, Knock};
use crate::machine::Status;
use crate::machine::{Action, Actions, Connection, Ended, Event, Machine, Rules, KILL_GRACE};
use crate::messages::OsError;
use crate::netwatch::{Change, NetWatch};
use crate::notify;
use crate::owner;
use crate::pollset::{PollSet, Source};
use crate::probe::{Monitor, Outcome, Probe};
use crate::signals::Signals;
use crate::statefile::{self, Facts, StateFile};
use crate::time::{Clock, Time};
use crate::words::{self, Budget, Sink, Words};

/// How long a test that failed while its ssh was on its way out waits for
/// ssh's end to be told (it takes microseconds; a busy machine, more).
const HOLD: Duration = Duration::from_secs(1);

pub struct Settings {
    pub name: String,
    pub argv: Vec<Vec<u8>>,
    /// How ssh is started besides its argv.
    pub setup: child::Setup,
    /// The machine's rules, from the start-up plan.
    pub rules: Rules,
    pub monitor: Option<Monitor>,
    /// The kernel's routing notifications, when watched (monitoring on).
    pub netwatch: Option<NetWatch>,
    /// Where ssh's stderr goes when autossh reads it (None: ssh has ours).
    pub words: Option<Sink>,
    /// Where the tunnel's state is kept (AUTOSSH_STATEFILE).
    pub state_file: Option<StateFile>,
    /// ssh is told where to connect from: knocks go from the address its
    /// connection went from.
    pub knock_from_ssh: bool,
}

fn without_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Milliseconds until `deadline`, rounded up so that a wake-up is never early.
fn poll_timeout(deadline: Option<Time>, now: Time) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let left = d.saturating_sub(now);
            let ms = left.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms)
                .ok()
                .and_then(|ms| PollTimeout::try_from(ms).ok())
                .unwrap_or(PollTimeout::MAX)
        }
    }
}

/// What the loop owns while it runs: the processes and sockets the actions
/// work on.
struct World {
    settings: Settings,
    ssh: Option<Ssh>,
    /// The running ssh's stderr, while it is read.
    words: Option<Words>,
    budget: Budget,
    probe: Option<Probe>,
    /// The knock in flight, while waiting.
    knock: Option<Knock>,
    /// Where knocks go from (see `Settings::knock_from_ssh`).
    knock_from: Option<IpAddr>,
    clock: Clock,
    /// A start, a test or a look at the sockets happened in this wake-up
    /// (each allocates and frees, the C library's folder buffers among it):
    /// the free memory goes back afterwards, and none stays while idle.
    trim: bool,
    /// A failed test held back until then, its ssh being on its way out:
    /// ssh's end, which follows at once, is the news (see [`HOLD`]).
    held: Option<Time>,
    /// What was last published, and what the file says besides.
    published: Option<Status>,
    /// Whether the last write of the state file failed: a failure is
    /// logged once, until a write succeeds again.
    unwritable: bool,
    facts: Facts,
    /// When ssh's last line (`facts.message`) was read.
    said_at: Time,
    /// The machine's actions, one step's at a time.
    actions: Actions,
}

impl World {
    fn now(&self) -> Time {
        self.clock.now()
    }

    fn publish_status(&mut self, status: Status, now: Time) {
        let Some(file) = &self.settings.state_file else {
            return;
        };
        let wall = self.clock.wall();
        if self.published.is_none_or(|p| p.state != status.state) {
            self.facts.since = wall;
        }
        self.published = Some(status);
        self.facts.next_start = status
            .next_start
            .map(|at| wall + i64::try_from(at.saturating_sub(now).as_secs()).unwrap_or(0));
        let text = statefile::render(
            &status,
            &self.facts,
            &self.settings.name,
            &self.settings.argv[0],
        );
        match file.write(&text) {
            // Supervision goes on; the next change tries again.
            Err(e) if !self.unwritable => {
                self.unwritable = true;
                log::warn!(
                    "{}: {}",
                    statefile::cannot_write(file.path()),
                    OsError::from(e)
                );
            }
            Err(_) => {}
            Ok(()) => self.unwritable = false,
        }
    }

    /// Carries out one action; an answer it calls for is queued.
    fn perform(&mut self, action: Action, now: Time, answers: &mut VecDeque<Event>) {
        match action {
            Action::Log(note) => {
                let text = note.text(&self.settings.name, &self.settings.argv[0]);
                log::log!(note.level(), "{text}");
            }
            Action::Spawn => {
                self.trim = true;
                answers.push_back(
                    match child::spawn(&self.settings.argv, &self.settings.setup) {
                        Ok(started) => {
                            let pid = started.ssh.pid().as_raw();
                            self.ssh = Some(started.ssh);
                            self.budget.started();
                            self.facts.ssh_said_why = false;
                            self.words = started
                                .stderr
                                .zip(self.settings.words)
                                .map(|(pipe, sink)| Words::new(pipe, sink));
                            Event::Spawned { pid }
                        }
                        Err(e) => Event::SpawnFailed(e),
                    },
                );
            }
            Action::Terminate => {
                if let Some(ssh) = &self.ssh {
                    ssh.terminate();
                }
            }
            Action::Kill => {
                if let Some(ssh) = &self.ssh {
                    ssh.kill();
                }
            }
            Action::StartTest => {
                let Some(monitor) = self.settings.monitor.as_ref() else {
                    return answers.push_back(Event::TestFailed);
                };
                // Moved on at once: a refused connection fails it here.
                let ssh = self.ssh.as_ref().map_or(0, |s| s.pid().as_raw());
                let outcome = match monitor.start(now, ssh) {
                    Ok(mut probe) => {
                        let outcome = monitor.advance(&mut probe, now);
                        self.probe = Some(probe);
                        outcome
                    }
                    Err(failure) => Outcome::Failed(failure),
                };
                if let Some(event) = self.finished(outcome) {
                    answers.push_back(event);
                }
            }
            Action::CancelTest => {
                self.probe = None;
                self.held = None;
            }
            Action::FindDoor => {
                self.trim = true;
                let found = self
                    .ssh
                    .as_ref()
                    .and_then(|s| owner::door(s.pid().as_raw()));
                if let Some(door) = found.filter(|_| self.settings.knock_from_ssh) {
                    self.knock_from = Some(door.from);
                }
                answers.push_back(Event::DoorFound {
                    door: found.map(|door| door.to),
                    connecting: found.is_some_and(|door| door.connecting),
                });
            }
            Action::Knock(door) => match Knock::start(door, self.knock_from) {
                knock::Started::Answered(answer) => answers.push_back(Event::Knocked(answer)),
                knock::Started::Waiting(knock) => self.knock = Some(knock),
            },
            Action::CancelKnock => self.knock = None,
            Action::Ready => notify::ready(),
            Action::Watchdog => notify::watchdog(),
            // (Written by `feed`, which has the machine's status.)
            Action::Publish | Action::Exit(_) => {}
        }
    }

    /// ssh has ended: the rest of what it said comes first.
    fn ssh_ended(&mut self, now: Time) {
        self.ssh = None;
        self.held = None;
        self.words_finished(now);
    }

    /// ssh's stderr is done with (ssh ended, or the pipe closed): the rest is
    /// read, and its last line kept.
    fn words_finished(&mut self, now: Time) {
        if let Some(words) = self.words.take() {
            if let Some((line, at)) = words.finish(now, &mut self.budget) {
                self.facts.ssh_said_why = true;
                self.facts.message = Some(without_cr(line));
                self.said_at = at;
            }
        }
    }

    /// The event of a test's outcome, if it is over.
    fn finished(&mut self, outcome: Outcome) -> Option<Event> {
        let event = match outcome {
            Outcome::Pending => return None,
            Outcome::Passed => {
                self.facts.failure = None;
                Event::TestPassed
            }
            Outcome::Failed(failure) => {
                // What failed, for the state file's reason.
                self.facts.failure = Some(failure);
                Event::TestFailed
            }
        };
        self.probe = None;
        self.trim = true;
        Some(event)
    }

    /// Feeds `event` and whatever its actions answer to the machine; the exit
    /// status once it is done.
    fn feed(
        &mut self,
        machine: &mut Machine,
        event: Event,
        now: Time,
        answers: &mut VecDeque<Event>,
    ) -> Option<i32> {
        answers.push_back(event);
        while let Some(event) = answers.pop_front() {
            match event {
                Event::TestPassed => self.facts.last_test = Some((self.clock.wall(), true)),
                Event::TestFailed => self.facts.last_test = Some((self.clock.wall(), false)),
                _ => {}
            }
            // (The buffer is lent out while its actions are performed: a
            // Vec::new() stands in, which allocates nothing.)
            let mut actions = std::mem::take(&mut self.actions);
            machine.step_into(event, now, &mut actions);
            for &action in &actions {
                match action {
                    Action::Publish => self.publish_status(machine.status(), now),
                    action => self.perform(action, now, answers),
                }
            }
            self.actions = actions;
        }
        machine.exited()
    }

    /// The poll can no longer wait: the machine stops ssh as for an exit
    /// signal (SIGTERM, then SIGKILL at its deadline), and since no signal
    /// can be waited for, ssh's end is looked for every 20 ms meanwhile.
    fn without_poll(
        &mut self,
        machine: &mut Machine,
        error: Errno,
        answers: &mut VecDeque<Event>,
    ) -> i32 {
        let now = self.now();
        if let Some(code) = self.feed(machine, Event::PollFailed(error), now, answers) {
            return code;
        }
        let step = Duration::from_millis(20);
        // Bounded: SIGKILL comes at the kill grace, and the end after it.
        let rounds = 2 * KILL_GRACE.as_millis() / step.as_millis();
        for _ in 0..rounds {
            std::thread::sleep(step);
            let now = self.now();
            let ssh = self.ssh.as_ref().map(Ssh::pid);
            let event = match ssh.and_then(|pid| child::reap(Some(pid))) {
                Some(ended) => {
                    self.ssh_ended(now);
                    Event::SshEnded(ended)
                }
                None => Event::Tick,
            };
            if let Some(code) = self.feed(machine, event, now, answers) {
                return code;
            }
        }
        // SIGKILL was sent: ssh is reaped, however long that takes, as
        // always, and the machine says the last word.
        if let Some(ssh) = self.ssh.as_ref().map(Ssh::pid) {
            let ended = match waitpid(ssh, None) {
                Ok(WaitStatus::Signaled(_, signal, _)) => Ended::Signaled(signal as i32),
                Ok(WaitStatus::Exited(_, code)) => Ended::Exited(code),
                _ => Ended::Signaled(libc::SIGKILL),
            };
            let now = self.now();
            self.ssh_ended(now);
            if let Some(code) = self.feed(machine, Event::SshEnded(ended), now, answers) {
                return code;
            }
        }
        1
    }
}

/// Runs until autossh should exit; returns the exit status. No child is left.
#[inline(never)]
pub fn run(settings: Settings, mut signals: Signals, clock: Clock) -> i32 {
    let mut machine = Machine::new(settings.rules);
    let mut world = World {
        settings,
        ssh: None,
        words: None,
        budget: Budget::new(),
        probe: None,
        knock: None,
        knock_from: None,
        held: None,
        clock,
        trim: false,
        published: None,
        unwritable: false,
        facts: Facts {
            pid: std::process::id(),
            ..Facts::default()
        },
        said_at: Time::ZERO,
        actions: Actions::new(),
    };
    // Made once: a wake-up allocates nothing for its bookkeeping.
    let mut answers = VecDeque::with_capacity(4);
    let now = world.now();
    if let Some(code) = world.feed(&mut machine, Event::Start, now, &mut answers) {
        return code;
    }
    loop {
        if std::mem::take(&mut world.trim) {
            crate::sys::release_free_memory();
        }
        let now = world.now();
        let deadline = [
            machine.deadline(),
            world.probe.as_ref().map(Probe::deadline),
            world.held,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = poll_timeout(deadline, now);

        // The poll set, on the stack: the signals, and each other source
        // that is there.
        let mut set = PollSet::new(signals.fd());
        if let Some(words) = &world.words {
            set.add(Source::Words, words.fd(), PollFlags::POLLIN);
        }
        if let Some(watch) = &world.settings.netwatch {
            set.add(Source::Network, watch.fd(), PollFlags::POLLIN);
        }
        if let (Some(probe), Some(monitor)) = (&world.probe, &world.settings.monitor) {
            let (fd, events) = monitor.interest(probe);
            set.add(Source::Test, fd, events);
        }
        if let Some(knock) = &world.knock {
            set.add(Source::Knock, knock.fd(), PollFlags::POLLOUT);
        }
        let polled = set.poll(timeout);
        let network = set.ready(Source::Network);
        let test_moved = set.ready(Source::Test);
        let said = set.ready(Source::Words);
        let knocked = set.ready(Source::Knock);
        match polled {
            Ok(_) | Err(Errno::EINTR) => {}
            // Retrying would only spin: nothing can wait any more.
            Err(e) => return world.without_poll(&mut machine, e, &mut answers),
        }

        let now = world.now();
        // A knock's answer is read first, from the socket that was polled:
        // a step below may give it up and start another.
        if knocked {
            if let Some(knock) = world.knock.take() {
                let answer = knock.answer();
                if let Some(code) =
                    world.feed(&mut machine, Event::Knocked(answer), now, &mut answers)
                {
                    return code;
                }
            }
        }
        // What ssh said comes before what happened to it.
        if said {
            if let Some(words) = world.words.as_mut() {
                let open = words.read(now, &mut world.budget);
                if let Some((line, at)) = words.last() {
                    world.facts.message = Some(without_cr(line.to_vec()));
                    world.said_at = at;
                }
                if !open {
                    // Closed: ssh is ending, and has said all.
                    world.words_finished(now);
                }
            }
        }
        // Signals first: a child that died mid-test ends the test with it.
        for signal in signals.pending() {
            let event = if signal == libc::SIGCHLD {
                // Every child that ended is reaped (as PID 1, orphans too).
                let ssh = world.ssh.as_ref().map(Ssh::pid);
                match child::reap(ssh) {
                    Some(ended) => {
                        world.ssh_ended(now);
                        // Its last words first: whether it got as far as
                        // the relay, and a port the relay still holds.
                        let last = world.facts.message.as_deref();
                        let (reached, held) = match last.filter(|_| world.facts.ssh_said_why) {
                            Some(line) => (words::reached_relay(line), words::held_port(line)),
                            None => (false, None),
                        };
                        let ago = now.saturating_sub(world.said_at);
                        let said = [
                            reached.then_some(Event::RelayReached),
                            held.map(|port| Event::PortHeld { port, ago }),
                        ];
                        for event in said.into_iter().flatten() {
                            if let Some(code) = world.feed(&mut machine, event, now, &mut answers) {
                                return code;
                            }
                        }
                        Event::SshEnded(ended)
                    }
                    None => Event::Signal(signal),
                }
            } else {
                Event::Signal(signal)
            };
            if let Some(code) = world.feed(&mut machine, event, now, &mut answers) {
                return code;
            }
        }
        let change = match world.settings.netwatch.as_mut() {
            Some(watch) if network => watch.drain(),
            _ => Change::None,
        };
        // A loss may have cut ssh's connection: what became of the address
        // it goes from (the machine replaces ssh at once if it is gone).
        let event = match (change, world.ssh.as_ref()) {
            (Change::None, _) => None,
            (Change::Loss, Some(ssh)) => {
                world.trim = true;
                let from = owner::connection(ssh.pid().as_raw());
                Some(Event::NetworkChanged(
                    from.map_or(Connection::Untouched, addresses::connection_from),
                ))
            }
            (Change::Some | Change::Loss, _) => Some(Event::NetworkChanged(Connection::Untouched)),
        };
        if let Some(event) = event {
            if let Some(code) = world.feed(&mut machine, event, now, &mut answers) {
                return code;
            }
        }
        // A failure held for a death that did not come is a failure after all.
        if world.held.is_some_and(|at| now >= at) {
            world.held = None;
            if let Some(code) = world.feed(&mut machine, Event::TestFailed, now, &mut answers) {
                return code;
            }
        }
        // A test moves on when its socket is ready or its time is up.
        if test_moved || world.probe.as_ref().is_some_and(|p| now >= p.deadline()) {
            let outcome = match (world.probe.as_mut(), world.settings.monitor.as_ref()) {
                (Some(probe), Some(monitor)) => monitor.advance(probe, now),
                _ => Outcome::Pending,
            };
            if let Some(event) = world.finished(outcome) {
                // ssh's end closes its sockets before its parent is told: a
                // test failed by that (a reset connection) waits for the
                // end, which is the news, not a port down.
                let dying = world
                    .ssh
                    .as_ref()
                    .is_some_and(|ssh| owner::dying(ssh.pid().as_raw()));
                if matches!(event, Event::TestFailed) && dying {
                    world.held = Some(now + HOLD);
                } else if let Some(code) = world.feed(&mut machine, event, now, &mut answers) {
                    return code;
                }
            }
        }
        if let Some(code) = world.feed(&mut machine, Event::Tick, now, &mut answers) {
            return code;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up() {
        let now = Duration::from_secs(100);
        let ms = |d: Option<Time>| i32::from(poll_timeout(d, now));
        assert_eq!(ms(None), -1);
        assert_eq!(ms(Some(now)), 0);
        assert_eq!(ms(Some(now + Duration::from_micros(1))), 1);
        assert_eq!(ms(Some(now + Duration::from_millis(1500))), 1500);
        assert_eq!(ms(Some(now + Duration::from_secs(1 << 40))), i32::MAX);
        assert_eq!(ms(Some(now - Duration::from_secs(1))), 0);
    }
}
