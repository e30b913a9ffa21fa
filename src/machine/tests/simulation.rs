//! The simulation: random rules and random worlds, stepped for thousands
//! of events each, with every invariant checked after every step.

use super::*;

#[path = "../../../tests/common/rng.rs"]
#[allow(dead_code)]
mod rng;
use rng::Rng;

fn random_rules(rng: &mut Rng) -> Rules {
    let poll = if rng.chance(50) {
        rng.pick(&[1, 2, 10, 60, 600])
    } else {
        1 + rng.below(1000) as u32
    };
    Rules {
        gate_time: rng.pick(&[0, 0, 1, 30]),
        poll,
        first_poll: 1 + rng.below(u64::from(poll)) as u32,
        monitored: rng.chance(60),
        max_start: rng.chance(40).then(|| 1 + rng.below(6) as u32),
        max_lifetime: if rng.chance(40) {
            1 + rng.below(3000) as u32
        } else {
            0
        },
        watchdog: rng
            .chance(50)
            .then(|| Duration::from_millis(1 + rng.below(60_000))),
        notify: rng.chance(50),
        publish: rng.chance(50),
        knock: rng.chance(60),
    }
}

/// The simulated ssh.
struct Ssh {
    pid: i32,
    asked_at: Option<Time>,
    killed: bool,
    /// Ignores SIGTERM.
    stubborn: bool,
}

/// The world around the machine, and the invariants checked against it.
struct World {
    rules: Rules,
    ssh: Option<Ssh>,
    next_pid: i32,
    testing: bool,
    spawns: u32,
    ready: u32,
    /// The status the first reason to exit called for.
    reason: Option<i32>,
    exited: Option<i32>,
    /// A test of the running ssh has passed.
    passed: bool,
    /// When the knock in flight started.
    knocking: Option<Time>,
    /// When the last knock started.
    last_knock: Option<Time>,
    /// A knock was answered closed (or went unanswered) since the last
    /// one that was answered open.
    closed_seen: bool,
    /// The last open answer came after a closed one: it may end a wait.
    back: bool,
    /// The event being stepped is an open door.
    stepping_open: bool,
    /// What the machine last published.
    published: Option<Status>,
    /// A test's outcome not yet published.
    news: bool,
    /// The door the machine was told of.
    door: Option<std::net::SocketAddr>,
    /// The running ssh was last seen still connecting.
    connecting: bool,
}

/// The status that a line announcing the end calls for.
fn reason_of(note: Note) -> Option<i32> {
    match note {
        Note::MaxStartReached | Note::LifetimeReached | Note::EndedExiting(0) => Some(0),
        Note::EndedExiting(_)
        | Note::EndedPrematurely(_)
        | Note::ExitSignal(_)
        | Note::PollFailed(_)
        | Note::SpawnFailed(_) => Some(1),
        _ => None,
    }
}

impl World {
    fn new(rules: Rules) -> World {
        World {
            rules,
            ssh: None,
            next_pid: 100,
            testing: false,
            spawns: 0,
            ready: 0,
            reason: None,
            exited: None,
            passed: false,
            knocking: None,
            last_knock: None,
            closed_seen: false,
            back: false,
            stepping_open: false,
            published: None,
            news: false,
            door: None,
            connecting: false,
        }
    }

    /// One step of the machine, with what the world keeps of its event.
    fn step(&mut self, m: &mut Machine, event: Event, now: Time) -> Actions {
        self.stepping_open = matches!(event, Event::Knocked(None));
        if matches!(event, Event::TestPassed | Event::TestFailed) {
            self.news = true;
        }
        m.step(event, now)
    }

    /// Keeps what a knock's answer says of the door.
    fn answered(&mut self, answer: Option<Errno>) {
        match answer {
            None => self.back = std::mem::take(&mut self.closed_seen),
            Some(_) => self.closed_seen = true,
        }
    }

    fn lifetime_over(&self, now: Time) -> bool {
        self.rules.max_lifetime > 0 && now >= s(self.rules.max_lifetime.into())
    }

    /// Carries out one step's actions; returns how many steps were made.
    fn apply(&mut self, m: &mut Machine, actions: &Actions, now: Time, rng: &mut Rng) -> usize {
        let mut steps = 1;
        let list = actions.as_slice();
        let mut deferred = Vec::new();
        for (i, action) in list.iter().enumerate() {
            assert!(self.exited.is_none(), "{action:?} after the exit");
            match *action {
                Action::Log(note) => {
                    if let Note::Sleeping(secs) = note {
                        assert!(secs <= u64::from(self.rules.poll), "waits {secs} s");
                    }
                    if let Note::RelayBack(_) = note {
                        // Only at an open door after a closed one.
                        assert!(
                            self.stepping_open && std::mem::take(&mut self.back),
                            "the relay back without a closed door before"
                        );
                        // A wait ended by a knock is followed by a start.
                        assert!(
                            list[i + 1..]
                                .iter()
                                .any(|a| matches!(a, Action::Spawn | Action::Exit(_))),
                            "the relay is back, and nothing starts: {list:?}"
                        );
                    }
                    if let Note::PollFailed(_) = note {
                        // An error overrides an exit on its way.
                        self.reason = Some(1);
                    } else if self.reason.is_none() {
                        self.reason = reason_of(note);
                    }
                }
                Action::Spawn => {
                    assert_eq!(i + 1, list.len(), "Spawn is not the last action");
                    assert!(self.ssh.is_none(), "a second ssh is started");
                    assert!(self.reason.is_none(), "a start after a reason to exit");
                    assert!(!self.lifetime_over(now), "a start after the lifetime");
                    self.spawns += 1;
                    self.passed = false;
                    self.connecting = false;
                    if let Some(max) = self.rules.max_start {
                        assert!(self.spawns <= max, "MAXSTART {max} exceeded");
                    }
                    let answer = if rng.below(1000) < 5 {
                        Event::SpawnFailed(SpawnError::Fork(Errno::EAGAIN))
                    } else {
                        self.next_pid += 1;
                        self.ssh = Some(Ssh {
                            pid: self.next_pid,
                            asked_at: None,
                            killed: false,
                            stubborn: rng.chance(20),
                        });
                        Event::Spawned { pid: self.next_pid }
                    };
                    let follow = self.step(m, answer, now);
                    steps += self.apply(m, &follow, now, rng);
                }
                Action::Terminate => {
                    let ssh = self.ssh.as_mut().expect("Terminate without an ssh");
                    assert!(ssh.asked_at.is_none(), "Terminate twice");
                    ssh.asked_at = Some(now);
                    assert!(!self.testing, "ssh stopped with its test running");
                }
                Action::Kill => {
                    let ssh = self.ssh.as_mut().expect("Kill without an ssh");
                    let asked = ssh.asked_at.expect("Kill without Terminate");
                    assert!(now >= asked + KILL_GRACE, "Kill before the grace");
                    assert!(!ssh.killed, "Kill twice");
                    ssh.killed = true;
                }
                Action::StartTest => {
                    let ssh = self.ssh.as_ref().expect("a test without an ssh");
                    assert!(ssh.asked_at.is_none(), "a test of a stopping ssh");
                    assert!(!self.testing, "two tests at once");
                    assert!(self.rules.monitored, "a test without monitoring");
                    self.testing = true;
                    if rng.chance(5) {
                        // Refused at once (told after the step's actions,
                        // as the supervisor's queue does).
                        self.testing = false;
                        deferred.push(Event::TestFailed);
                    }
                }
                Action::CancelTest => {
                    assert!(
                        self.testing,
                        "CancelTest without a test: {list:?} {:?}",
                        m.phase()
                    );
                    self.testing = false;
                }
                Action::Ready => {
                    assert!(self.rules.notify, "READY=1 without a manager");
                    self.ready += 1;
                    assert_eq!(self.ready, 1, "READY=1 twice");
                }
                Action::Watchdog => assert!(self.rules.watchdog.is_some()),
                Action::FindDoor => {
                    assert!(self.rules.knock, "a look for the door without knocking");
                    let ssh = self.ssh.as_ref().expect("a look without an ssh");
                    assert!(ssh.asked_at.is_none(), "a look at a stopping ssh");
                    // Now and then another door (the name resolves to
                    // another address).
                    let last = if rng.chance(95) { 2 } else { 3 };
                    let found = rng
                        .chance(80)
                        .then(|| std::net::SocketAddr::from(([10, 0, 0, last], 22)));
                    self.connecting = found.is_some() && rng.chance(30);
                    if found.is_some() && (!self.connecting || found != self.door) {
                        // Open, or another door: a closed one is forgotten.
                        self.closed_seen = false;
                    }
                    // None keeps the door known before.
                    self.door = found.or(self.door);
                    // Answered after the step's other actions, as the
                    // supervisor's queue does.
                    deferred.push(Event::DoorFound {
                        door: found,
                        connecting: self.connecting,
                    });
                }
                Action::Knock(door) => {
                    assert!(self.rules.knock, "a knock without knocking");
                    assert_eq!(Some(door), self.door, "a knock on another door");
                    assert!(
                        self.ssh.is_none() || self.connecting,
                        "a knock while ssh runs connected"
                    );
                    assert!(self.knocking.is_none(), "two knocks at once");
                    assert!(
                        matches!(m.phase(), Phase::Waiting { .. })
                            || (matches!(m.phase(), Phase::Running { .. }) && self.connecting),
                        "a knock while {:?}",
                        m.phase()
                    );
                    if let Some(last) = self.last_knock {
                        assert!(now >= last + KNOCK_EVERY, "knocks too often");
                    }
                    self.last_knock = Some(now);
                    self.knocking = Some(now);
                    if rng.chance(10) {
                        // Answered at once (told after the step's actions).
                        let answer = rng.pick(&[None, Some(Errno::ECONNREFUSED)]);
                        deferred.push(Event::Knocked(answer));
                    }
                }
                Action::Publish => {
                    assert!(self.rules.publish, "published where nobody reads it");
                    assert_ne!(
                        (self.published, self.news),
                        (Some(m.status()), false),
                        "published with nothing new"
                    );
                    self.published = Some(m.status());
                    self.news = false;
                }
                Action::CancelKnock => {
                    let Some(since) = self.knocking.take() else {
                        panic!("CancelKnock without a knock");
                    };
                    if now >= since + KNOCK_WAIT {
                        // Given up on: unanswered.
                        self.closed_seen = true;
                    }
                }
                Action::Exit(code) => {
                    assert!(self.ssh.is_none(), "exit with ssh left");
                    assert_eq!(self.reason, Some(code), "exit status");
                    assert!(!self.testing);
                    self.exited = Some(code);
                }
            }
        }
        for event in deferred {
            if let Event::Knocked(answer) = event {
                // (Cancelled meanwhile, the answer is stale: the machine
                // must pass it over.)
                if self.knocking.take().is_some() {
                    self.answered(answer);
                }
            }
            let follow = self.step(m, event, now);
            steps += self.apply(m, &follow, now, rng);
        }
        steps
    }

    /// What must hold between steps.
    fn check(&self, m: &Machine, now: Time) {
        if self.rules.publish {
            // Every change of the state is published in its step, and so is
            // every test's outcome.
            assert_eq!(self.published, Some(m.status()), "a change not published");
            assert!(!self.news, "a test's outcome not published");
        }
        if let Some(d) = m.deadline() {
            assert!(d > now, "deadline {d:?} not after now {now:?}: a busy loop");
        }
        match m.phase() {
            Phase::Begin | Phase::Spawning => panic!("left in {:?}", m.phase()),
            Phase::Waiting { until } => {
                assert!(self.ssh.is_none());
                assert!(
                    until <= now + s(self.rules.poll.into()),
                    "backoff over poll"
                );
            }
            Phase::Running { pid, test, .. } => {
                let ssh = self.ssh.as_ref().expect("running without an ssh");
                assert_eq!(ssh.pid, pid);
                assert!(ssh.asked_at.is_none());
                assert_eq!(self.testing, matches!(test, Test::Running(_)));
                assert_eq!(self.rules.monitored, test != Test::None || self.testing);
            }
            Phase::Stopping { pid, .. } => {
                let ssh = self.ssh.as_ref().expect("stopping without an ssh");
                assert_eq!(ssh.pid, pid);
                assert!(ssh.asked_at.is_some());
                assert!(!self.testing);
            }
            Phase::Done(code) => {
                assert_eq!(self.exited, Some(code));
                assert!(self.ssh.is_none());
            }
        }
        if let Some(since) = self.knocking {
            // The loop wakes to give a knock up.
            assert!(
                m.deadline()
                    .is_some_and(|d| d <= since.max(now) + KNOCK_WAIT),
                "a knock in flight, and no wake-up to give it up"
            );
            assert!(
                matches!(m.phase(), Phase::Waiting { .. })
                    || (matches!(m.phase(), Phase::Running { .. }) && self.connecting),
                "a knock left in flight while {:?}",
                m.phase()
            );
        }
        if let Some(ssh) = &self.ssh {
            if let Some(asked) = ssh.asked_at {
                assert!(
                    ssh.killed || now < asked + KILL_GRACE,
                    "no SIGKILL 5 s after SIGTERM"
                );
            }
        }
        if self.lifetime_over(now) {
            assert!(
                matches!(m.phase(), Phase::Stopping { .. } | Phase::Done(_)),
                "still {:?} after the lifetime",
                m.phase()
            );
        }
        assert_eq!(m.starts(), self.spawns);
        // `up` is earned: a passed test of this ssh, where there are tests.
        let status = m.status();
        if status.state == State::Up && self.rules.monitored {
            assert!(self.passed, "up without a passed test");
        }
        assert_eq!(
            status.reason.is_none(),
            matches!(status.state, State::Up | State::Starting),
            "{status:?}"
        );
    }

    /// The next event, and when: mostly before the next deadline, sometimes
    /// far after it (a late wake-up, a suspended machine).
    fn next_event(&mut self, m: &Machine, now: Time, rng: &mut Rng) -> (Event, Time) {
        let until_deadline = m.deadline().map(|d| d - now);
        let later = match until_deadline {
            _ if rng.chance(3) => ms(rng.below(4_000_000)),
            Some(left) if rng.chance(40) => left,
            Some(left) => ms(rng.below(left.as_millis().min(30_000) as u64 + 1)),
            None => ms(rng.below(30_000)),
        };
        let at = now + later;
        let r = rng.below(100);
        let event = if r < 30 {
            Event::Tick
        } else if r < 45 {
            let signal = if rng.chance(2) {
                rng.pick(&[TERM, INT, QUIT])
            } else {
                rng.pick(&[HUP, USR1, USR2, CHLD, ALRM])
            };
            Event::Signal(signal)
        } else if r < 70 {
            match self.ssh.as_ref() {
                Some(ssh) if ssh.killed => Event::SshEnded(Ended::Signaled(9)),
                Some(ssh) if ssh.asked_at.is_some() && !ssh.stubborn => {
                    Event::SshEnded(rng.pick(&[Ended::Signaled(15), Ended::Exited(255)]))
                }
                Some(ssh) if ssh.asked_at.is_some() => Event::Tick,
                // Mostly what restarts; now and then what ends the run.
                Some(_) if rng.chance(3) => {
                    Event::SshEnded(rng.pick(&[Ended::Exited(0), Ended::Exited(3)]))
                }
                Some(_) => Event::SshEnded(rng.pick(&[
                    Ended::Exited(255),
                    Ended::Exited(255),
                    Ended::Exited(1),
                    Ended::Exited(2),
                    Ended::Signaled(9),
                ])),
                None => Event::Tick,
            }
        } else if r < 73 && self.ssh.is_some() {
            if rng.chance(50) {
                held(0)
            } else {
                // Its words: it got through to the relay.
                self.closed_seen = false;
                self.back = false;
                Event::RelayReached
            }
        } else if r < 80 && self.knocking.is_some() {
            self.knocking = None;
            let answer = rng.pick(&[None, Some(Errno::ECONNREFUSED), Some(Errno::EHOSTUNREACH)]);
            self.answered(answer);
            Event::Knocked(answer)
        } else if r < 88 {
            if self.testing {
                if rng.chance(80) {
                    Event::TestPassed
                } else {
                    Event::TestFailed
                }
            } else {
                Event::Tick
            }
        } else if rng.chance(1) {
            Event::PollFailed(Errno::EINVAL)
        } else if rng.chance(20) {
            let from = std::net::IpAddr::from([10, 0, 0, 1]);
            Event::NetworkChanged(if rng.chance(2) {
                Connection::LinkDown(from)
            } else {
                Connection::AddressGone(from)
            })
        } else {
            Event::NetworkChanged(Connection::Untouched)
        };
        match event {
            Event::SshEnded(_) => self.ssh = None,
            Event::TestPassed => {
                self.testing = false;
                self.passed = true;
            }
            Event::TestFailed => self.testing = false,
            _ => {}
        }
        (event, at)
    }
}

/// Runs machines from `seed` for `steps` steps; returns how many runs ended.
fn simulate(seed: u64, steps: usize) -> usize {
    let mut rng = Rng(seed);
    let mut done = 0;
    let mut made = 0;
    while made < steps {
        let rules = random_rules(&mut rng);
        let mut m = Machine::new(rules);
        let mut world = World::new(rules);
        let mut now = ms(rng.below(1000));
        let first = world.step(&mut m, Event::Start, now);
        made += world.apply(&mut m, &first, now, &mut rng);
        world.check(&m, now);
        while world.exited.is_none() && made < steps {
            let (event, at) = world.next_event(&m, now, &mut rng);
            now = at;
            let actions = world.step(&mut m, event, now);
            made += world.apply(&mut m, &actions, now, &mut rng);
            world.check(&m, now);
        }
        done += usize::from(world.exited.is_some());
    }
    done
}

/// 100 seeds × 2,500 steps (250,000 in all). A failure names its seed:
/// `AUTOSSH_SIM_SEED=N cargo test --lib simulation` runs that one alone.
#[test]
fn simulation() {
    const STEPS: usize = 2_500;
    let seeds: Vec<u64> = match std::env::var("AUTOSSH_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("AUTOSSH_SIM_SEED is a number")],
        Err(_) => (0..100).collect(),
    };
    let began = std::time::Instant::now();
    let mut runs = 0;
    for seed in &seeds {
        let outcome = std::panic::catch_unwind(|| simulate(*seed, STEPS));
        match outcome {
            Ok(n) => runs += n,
            Err(panic) => {
                eprintln!(
                    "simulation failed with seed {seed}: replay with AUTOSSH_SIM_SEED={seed} cargo test --lib simulation"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    eprintln!(
        "simulation: {} seeds, {} steps, {runs} runs ended, {:?}",
        seeds.len(),
        seeds.len() * STEPS,
        began.elapsed()
    );
    assert!(runs > seeds.len(), "the runs should end now and then");
}
