//! The one event loop (SPEC §5): it polls, turns what happened into events
//! for the decisions of `machine`, and carries out the actions they return.
//!
//! Everything waits in a single `poll` over the signal socket, the routing
//! notifications and the running test's socket, with a timeout equal to the
//! nearest deadline on the monotonic clock, so nothing wakes between
//! deadlines and a child's death is seen at once.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::error;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag};

use crate::child::{self, Ssh};
use crate::knock::{self, Knock};
use crate::machine::{Action, Event, Machine, Rules, Time, KILL_GRACE};
use crate::machine::{State, Status};
use crate::messages::OsError;
use crate::netwatch::{Change, NetWatch};
use crate::notify;
use crate::owner;
use crate::probe::{Monitor, Outcome, Probe};
use crate::signals::Signals;
use crate::statefile::{self, Facts, StateFile};
use crate::words::{self, Budget, Sink, Words};

/// How long a test that failed while its ssh was on its way out waits for
/// ssh's end to be told (it takes microseconds; a busy machine, more).
const HOLD: Duration = Duration::from_secs(1);

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
    /// Where ssh's stderr goes when autossh reads it (None: ssh has ours).
    pub words: Option<Sink>,
    /// Where the tunnel's state is kept (AUTOSSH_STATEFILE).
    pub state_file: Option<StateFile>,
    /// Whether the relay is knocked on while waiting (AUTOSSH_KNOCK).
    pub knock: bool,
    /// ssh is told where to connect from: knocks go from the address its
    /// connection went from.
    pub knock_from_ssh: bool,
}

/// Seconds since the Unix epoch, for the state file.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
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
    began: Instant,
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
}

impl World {
    fn now(&self) -> Time {
        self.began.elapsed()
    }

    /// Writes the state file if the state changed (and only then).
    fn publish(&mut self, machine: &Machine, now: Time) {
        self.publish_status(machine.status(), now);
    }

    /// The state file's last word when autossh must end outside the
    /// machine's decisions (the poll failed): exited with `code`, no ssh.
    fn publish_end(&mut self, machine: &Machine, code: i32, now: Time) {
        let status = Status {
            state: State::Exited,
            ssh_pid: None,
            next_start: None,
            exit_code: Some(code),
            ..machine.status()
        };
        self.publish_status(status, now);
    }

    fn publish_status(&mut self, status: Status, now: Time) {
        let Some(file) = &self.settings.state_file else {
            return;
        };
        if self.published == Some(status) {
            return;
        }
        let wall = unix_now();
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
                    Some(mut probe) => {
                        let outcome = monitor.advance(&mut probe, now);
                        self.probe = Some(probe);
                        outcome
                    }
                    None => Outcome::Failed,
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
            Action::Exit(_) => {}
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
            Outcome::Passed => Event::TestPassed,
            Outcome::Failed => Event::TestFailed,
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
            // A test's outcome is news even where the state stays.
            match event {
                Event::TestPassed => self.facts.last_test = Some((unix_now(), true)),
                Event::TestFailed => self.facts.last_test = Some((unix_now(), false)),
                _ => {}
            }
            if matches!(event, Event::TestPassed | Event::TestFailed) {
                self.published = None;
            }
            let actions = machine.step(event, now);
            for &action in &actions {
                self.perform(action, now, answers);
            }
            self.publish(machine, now);
        }
        machine.exited()
    }

    /// The poll can no longer wait: stop ssh without it, within the kill
    /// grace, and reap it.
    fn abandon(&mut self) {
        let Some(ssh) = self.ssh.take() else {
            return;
        };
        ssh.terminate();
        let step = Duration::from_millis(20);
        let rounds = KILL_GRACE.as_millis() / step.as_millis();
        for _ in 0..rounds {
            if child::reap(Some(ssh.pid())).is_some() {
                return;
            }
            std::thread::sleep(step);
        }
        ssh.kill();
        let _ = waitpid(ssh.pid(), None::<WaitPidFlag>);
    }
}

/// Runs until autossh should exit; returns the exit status. No child is left.
pub fn run(settings: Settings, mut signals: Signals, began: Instant) -> i32 {
    let rules = Rules {
        gate_time: settings.gate_time,
        poll: settings.poll,
        first_poll: settings.first_poll,
        monitored: settings.monitor.is_some(),
        max_start: settings.max_start,
        max_lifetime: settings.max_lifetime,
        watchdog: settings.watchdog,
        notify: notify::enabled(),
        publish: settings.state_file.is_some(),
        knock: settings.knock,
    };
    let mut machine = Machine::new(rules);
    let mut world = World {
        settings,
        ssh: None,
        words: None,
        budget: Budget::new(),
        probe: None,
        knock: None,
        knock_from: None,
        held: None,
        began,
        trim: false,
        published: None,
        unwritable: false,
        facts: Facts {
            pid: std::process::id(),
            ..Facts::default()
        },
        said_at: Time::ZERO,
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

        // The poll set, on the stack: signals, then the routing socket and the
        // test's descriptor when there are.
        let signal_fd = PollFd::new(signals.fd(), PollFlags::POLLIN);
        let mut fds = [
            signal_fd.clone(),
            signal_fd.clone(),
            signal_fd.clone(),
            signal_fd.clone(),
            signal_fd,
        ];
        let mut used = 1;
        let words_at = world.words.as_ref().map(|words| {
            fds[used] = PollFd::new(words.fd(), PollFlags::POLLIN);
            used += 1;
            used - 1
        });
        let watch_at = world.settings.netwatch.as_ref().map(|watch| {
            fds[used] = PollFd::new(watch.fd(), PollFlags::POLLIN);
            used += 1;
            used - 1
        });
        let test_at = match (&world.probe, &world.settings.monitor) {
            (Some(probe), Some(monitor)) => {
                let (fd, events) = monitor.interest(probe);
                fds[used] = PollFd::new(fd, events);
                used += 1;
                Some(used - 1)
            }
            _ => None,
        };
        let knock_at = world.knock.as_ref().map(|knock| {
            fds[used] = PollFd::new(knock.fd(), PollFlags::POLLOUT);
            used += 1;
            used - 1
        });
        let ready = |at: Option<usize>, fds: &[PollFd]| {
            at.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()))
        };
        match poll(&mut fds[..used], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                // Retrying would only spin: nothing can wait any more.
                error!("poll: {}", OsError(e));
                world.abandon();
                world.publish_end(&machine, 1, world.now());
                return 1;
            }
        }
        let network = ready(watch_at, &fds);
        let test_moved = ready(test_at, &fds);
        let said = ready(words_at, &fds);
        let knocked = ready(knock_at, &fds);

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
        // A loss may have cut ssh's connection: if its address is gone (or
        // its link down), ssh is replaced at once, without a test.
        let lost = match (change, world.ssh.as_ref()) {
            (Change::Loss, Some(ssh)) => {
                world.trim = true;
                owner::connection(ssh.pid().as_raw())
                    .and_then(|from| Some((from, owner::lost(from)?)))
                    .map(|(from, link_down)| Event::ConnectionLost { from, link_down })
            }
            _ => None,
        };
        let event = match (lost, change) {
            (Some(event), _) => Some(event),
            (None, Change::Some | Change::Loss) => Some(Event::NetworkChanged),
            (None, Change::None) => None,
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
