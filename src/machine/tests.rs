//! The decisions as tables (every phase × event of SPEC §5–7, §9.4–9.6), and
//! a deterministic simulation that drives the machine with seeded random
//! events and clock jumps and checks its invariants after every step.

use super::knocking::{about_the_relay, KNOCK_WAIT};
use super::*;
use crate::messages::Note;
use nix::errno::Errno;

const HUP: i32 = libc::SIGHUP;
const USR1: i32 = libc::SIGUSR1;
const USR2: i32 = libc::SIGUSR2;
const TERM: i32 = libc::SIGTERM;
const INT: i32 = libc::SIGINT;
const QUIT: i32 = libc::SIGQUIT;
const CHLD: i32 = libc::SIGCHLD;
const ALRM: i32 = libc::SIGALRM;

const PID: i32 = 4242;

fn s(n: u64) -> Time {
    Duration::from_secs(n)
}

/// ssh's last words: the relay holds port 2200, said `ago` seconds before.
fn held(ago: u64) -> Event {
    Event::PortHeld {
        port: 2200,
        ago: s(ago),
    }
}

fn ms(n: u64) -> Time {
    Duration::from_millis(n)
}

fn rules() -> Rules {
    Rules {
        gate_time: 0,
        poll: 600,
        first_poll: 600,
        monitored: false,
        max_start: None,
        max_lifetime: 0,
        watchdog: None,
        notify: false,
        publish: false,
        knock: false,
    }
}

fn monitored() -> Rules {
    Rules {
        monitored: true,
        poll: 60,
        first_poll: 30,
        ..rules()
    }
}

/// The actions as one line: log lines by their text.
fn show(actions: &Actions) -> String {
    actions
        .as_slice()
        .iter()
        .map(|a| match a {
            Action::Log(note) => note.text("autossh", b"/usr/bin/ssh"),
            Action::Spawn => "spawn".into(),
            Action::Publish => "publish".into(),
            Action::Terminate => "terminate".into(),
            Action::Kill => "kill".into(),
            Action::StartTest => "start test".into(),
            Action::CancelTest => "cancel test".into(),
            Action::Ready => "ready".into(),
            Action::Watchdog => "watchdog".into(),
            Action::FindDoor => "find door".into(),
            Action::Knock(door) => format!("knock {door}"),
            Action::CancelKnock => "cancel knock".into(),
            Action::Exit(code) => format!("exit {code}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A machine and its clock.
struct Run {
    m: Machine,
    now: Time,
}

impl Run {
    fn new(rules: Rules) -> Run {
        Run {
            m: Machine::new(rules),
            now: Time::ZERO,
        }
    }

    fn at(&mut self, now: Time, event: Event) -> String {
        self.now = now;
        show(&self.m.step(event, now))
    }

    fn now(&mut self, event: Event) -> String {
        self.at(self.now, event)
    }

    fn after(&mut self, d: Duration, event: Event) -> String {
        self.at(self.now + d, event)
    }

    /// Started and running ssh `PID`.
    fn running(rules: Rules) -> Run {
        let mut r = Run::new(rules);
        assert!(r.now(Event::Start).ends_with("spawn"));
        r.now(Event::Spawned { pid: PID });
        assert!(matches!(r.m.phase(), Phase::Running { .. }));
        r
    }

    /// Running, with its first test under way.
    fn testing(rules: Rules) -> Run {
        let mut r = Run::running(rules);
        let first = s(rules.first_poll.into());
        assert_eq!(r.at(first, Event::Tick), "start test");
        r
    }

    /// ssh asked to stop by USR1, to be restarted.
    fn stopping(rules: Rules) -> Run {
        let mut r = Run::running(rules);
        r.after(s(1), Event::Signal(USR1));
        assert!(matches!(
            r.m.phase(),
            Phase::Stopping {
                then: Then::Restart,
                ..
            }
        ));
        r
    }

    /// In the backoff wait: seven quick starts have been made.
    fn waiting(rules: Rules) -> Run {
        let mut r = Run::running(rules);
        for pid in 1..=20 {
            r.after(ms(100), Event::SshEnded(Ended::Exited(255)));
            match r.m.phase() {
                Phase::Spawning => r.now(Event::Spawned { pid }),
                _ => break,
            };
        }
        assert!(
            matches!(r.m.phase(), Phase::Waiting { .. }),
            "{:?}",
            r.m.phase()
        );
        r
    }

    fn kind(&self) -> &'static str {
        match self.m.phase() {
            Phase::Begin => "begin",
            Phase::Waiting { .. } => "waiting",
            Phase::Spawning => "spawning",
            Phase::Running {
                test: Test::Running(_),
                ..
            } => "testing",
            Phase::Running { .. } => "running",
            Phase::Stopping {
                then: Then::Restart,
                ..
            } => "stopping to restart",
            Phase::Stopping {
                then: Then::Exit(_),
                ..
            } => "stopping to exit",
            Phase::Done(_) => "done",
        }
    }
}

#[test]
fn the_first_start() {
    let mut r = Run::new(rules());
    assert_eq!(r.m.deadline(), None);
    assert_eq!(
        r.now(Event::Start),
        "checking for grace period, tries = 0; starting ssh (count 1); spawn"
    );
    assert_eq!(r.now(Event::Spawned { pid: PID }), "ssh child pid is 4242");
    let mut r = Run::new(Rules {
        max_start: Some(3),
        ..rules()
    });
    assert!(r.now(Event::Start).contains("starting ssh (count 1 of 3)"));
    // Nothing runs until Start.
    let mut r = Run::new(rules());
    assert_eq!(r.now(Event::Signal(TERM)), "");
    assert_eq!(r.now(Event::Tick), "");
}

#[test]
fn a_failed_start_is_fatal() {
    let mut r = Run::new(rules());
    r.now(Event::Start);
    assert_eq!(
        r.now(Event::SpawnFailed(SpawnError::Exec(Errno::ENOENT))),
        "/usr/bin/ssh: No such file or directory; exit 1"
    );
    assert_eq!(r.m.exited(), Some(1));
    let mut r = Run::new(rules());
    r.now(Event::Start);
    assert_eq!(
        r.now(Event::SpawnFailed(SpawnError::Fork(Errno::EAGAIN))),
        "fork: Resource temporarily unavailable; exit 1"
    );
}

/// SPEC §5 and §9.6: each signal in each phase.
#[test]
fn signals_in_every_phase() {
    type Make = fn(Rules) -> Run;
    let phases: [(&str, Make); 4] = [
        ("waiting", Run::waiting),
        ("running", Run::running),
        ("testing", Run::testing),
        ("stopping", Run::stopping),
    ];
    let table: [(&str, i32, &str, &str); 28] = [
        ("waiting", HUP, "starting ssh (count 9); spawn", "spawning"),
        ("waiting", USR1, "starting ssh (count 9); spawn", "spawning"),
        (
            "waiting",
            TERM,
            "received signal to exit (15); exit 1",
            "done",
        ),
        (
            "waiting",
            INT,
            "received signal to exit (2); exit 1",
            "done",
        ),
        (
            "waiting",
            QUIT,
            "received signal to exit (3); exit 1",
            "done",
        ),
        ("waiting", USR2, "", "waiting"),
        ("waiting", CHLD, "", "waiting"),
        ("running", HUP, "", "running"),
        (
            "running",
            USR1,
            "signalled to kill and restart ssh; terminate",
            "stopping to restart",
        ),
        (
            "running",
            TERM,
            "received signal to exit (15); terminate",
            "stopping to exit",
        ),
        (
            "running",
            INT,
            "received signal to exit (2); terminate",
            "stopping to exit",
        ),
        (
            "running",
            QUIT,
            "received signal to exit (3); terminate",
            "stopping to exit",
        ),
        ("running", USR2, "", "running"),
        ("running", CHLD, "", "running"),
        ("testing", HUP, "", "testing"),
        (
            "testing",
            USR1,
            "signalled to kill and restart ssh; cancel test; terminate",
            "stopping to restart",
        ),
        (
            "testing",
            TERM,
            "received signal to exit (15); cancel test; terminate",
            "stopping to exit",
        ),
        (
            "testing",
            INT,
            "received signal to exit (2); cancel test; terminate",
            "stopping to exit",
        ),
        (
            "testing",
            QUIT,
            "received signal to exit (3); cancel test; terminate",
            "stopping to exit",
        ),
        ("testing", USR2, "", "testing"),
        ("testing", CHLD, "", "testing"),
        ("stopping", HUP, "", "stopping to restart"),
        ("stopping", USR1, "", "stopping to restart"),
        (
            "stopping",
            TERM,
            "received signal to exit (15)",
            "stopping to exit",
        ),
        (
            "stopping",
            INT,
            "received signal to exit (2)",
            "stopping to exit",
        ),
        (
            "stopping",
            QUIT,
            "received signal to exit (3)",
            "stopping to exit",
        ),
        ("stopping", USR2, "", "stopping to restart"),
        ("stopping", CHLD, "", "stopping to restart"),
    ];
    for (phase, signal, actions, after) in table {
        let make = phases.iter().find(|(p, _)| *p == phase).unwrap().1;
        let mut r = make(monitored());
        assert!(r.kind().starts_with(phase), "{} for {phase}", r.kind());
        assert_eq!(
            r.after(ms(10), Event::Signal(signal)),
            actions,
            "{phase} × {signal}"
        );
        assert_eq!(r.kind(), after, "{phase} × {signal}");
    }
    // ALRM is handled and does nothing anywhere.
    for (phase, make) in phases {
        let mut r = make(monitored());
        assert_eq!(r.after(ms(10), Event::Signal(ALRM)), "", "{phase}");
    }
}

#[test]
fn a_prod_keeps_the_count_of_quick_starts() {
    let mut r = Run::waiting(monitored());
    r.after(ms(10), Event::Signal(HUP));
    r.now(Event::Spawned { pid: 9 });
    // The next quick start waits longer than the one the prod cut short.
    r.after(ms(10), Event::SshEnded(Ended::Exited(255)));
    assert!(
        r.now(Event::Tick).is_empty() && matches!(r.m.phase(), Phase::Waiting { .. }),
        "{:?}",
        r.m.phase()
    );
    let Phase::Waiting { until } = r.m.phase() else {
        unreachable!()
    };
    assert_eq!(until - r.now, s(3));
}

#[test]
fn the_end_of_a_stop() {
    // To restart: through the backoff.
    let mut r = Run::stopping(monitored());
    assert_eq!(
        r.after(ms(50), Event::SshEnded(Ended::Signaled(15))),
        "checking for grace period, tries = 1; starting ssh (count 2); spawn"
    );
    // To exit: no line about how ssh ended.
    let mut r = Run::running(monitored());
    r.now(Event::Signal(TERM));
    assert_eq!(
        r.after(ms(50), Event::SshEnded(Ended::Exited(255))),
        "exit 1"
    );
    assert_eq!(r.m.exited(), Some(1));
    assert_eq!(r.m.deadline(), None);
    // Done is done.
    assert_eq!(r.now(Event::Start), "");
    assert_eq!(r.now(Event::Signal(USR1)), "");
}

#[test]
fn sigkill_five_seconds_after_sigterm() {
    let mut r = Run::stopping(rules());
    let asked = r.now;
    assert_eq!(r.m.deadline(), Some(asked + KILL_GRACE));
    assert_eq!(r.at(asked + ms(4999), Event::Tick), "");
    assert_eq!(
        r.at(asked + KILL_GRACE, Event::Tick),
        "ssh child pid 4242 did not exit on SIGTERM; sending SIGKILL; kill"
    );
    assert_eq!(r.m.deadline(), None);
    assert_eq!(r.after(s(100), Event::Tick), "");
    assert!(r
        .now(Event::SshEnded(Ended::Signaled(9)))
        .ends_with("spawn"));
}

/// SPEC §5: how ssh ended, while it runs and while it is tested.
#[test]
fn ssh_ending_while_running_and_mid_test() {
    let table: [(Ended, &str); 6] = [
        (
            Ended::Exited(255),
            "ssh exited with error status 255; restarting ssh; checking for grace period, tries = 0; starting ssh (count 2); spawn",
        ),
        (Ended::Exited(0), "ssh exited with status 0; autossh exiting; exit 0"),
        (
            Ended::Exited(1),
            "ssh exited with error status 1; restarting ssh; checking for grace period, tries = 0; starting ssh (count 2); spawn",
        ),
        (Ended::Exited(3), "ssh exited with status 3; autossh exiting; exit 1"),
        (
            Ended::Signaled(9),
            "ssh exited on signal 9, restarting ssh; checking for grace period, tries = 0; starting ssh (count 2); spawn",
        ),
        (
            Ended::Signaled(15),
            "ssh exited on signal 15, restarting ssh; checking for grace period, tries = 0; starting ssh (count 2); spawn",
        ),
    ];
    for (ended, expected) in table {
        let mut r = Run::running(monitored());
        assert_eq!(r.at(s(20), Event::SshEnded(ended)), expected, "{ended:?}");
        let mut r = Run::testing(monitored());
        assert_eq!(
            r.after(s(1), Event::SshEnded(ended)),
            format!("cancel test; {expected}"),
            "{ended:?} mid-test"
        );
        // A late answer of the dropped test changes nothing.
        assert_eq!(r.now(Event::TestFailed), "");
    }
}

#[test]
fn the_gate_time() {
    let gated = Rules {
        gate_time: 30,
        ..rules()
    };
    let mut r = Run::running(gated);
    assert_eq!(
        r.at(s(30), Event::SshEnded(Ended::Exited(255))),
        "ssh exited prematurely with status 255; autossh exiting; exit 1"
    );
    let mut r = Run::running(gated);
    assert!(r
        .at(s(31), Event::SshEnded(Ended::Exited(255)))
        .ends_with("spawn"));
    // 1 and 2 restart only after the first start, or without a gate.
    let mut r = Run::running(gated);
    assert_eq!(
        r.at(s(40), Event::SshEnded(Ended::Exited(2))),
        "ssh exited with status 2; autossh exiting; exit 1"
    );
    let mut r = Run::running(gated);
    r.at(s(40), Event::SshEnded(Ended::Exited(255)));
    r.now(Event::Spawned { pid: 2 });
    assert!(r
        .at(s(41), Event::SshEnded(Ended::Exited(2)))
        .starts_with("ssh exited with error status 2; restarting ssh"));
    // A signal is no premature exit.
    let mut r = Run::running(gated);
    assert!(r
        .at(s(1), Event::SshEnded(Ended::Signaled(9)))
        .starts_with("ssh exited on signal 9, restarting ssh"));
}

#[test]
fn max_start() {
    let mut r = Run::running(Rules {
        max_start: Some(2),
        ..rules()
    });
    assert!(r
        .at(s(100), Event::SshEnded(Ended::Exited(255)))
        .ends_with("starting ssh (count 2 of 2); spawn"));
    r.now(Event::Spawned { pid: 2 });
    assert_eq!(
        r.at(s(200), Event::SshEnded(Ended::Exited(255))),
        "ssh exited with error status 255; restarting ssh; max start count reached; exiting; exit 0"
    );
    // Also after a restart asked for.
    let mut r = Run::stopping(Rules {
        max_start: Some(1),
        ..rules()
    });
    assert_eq!(
        r.after(s(1), Event::SshEnded(Ended::Signaled(15))),
        "max start count reached; exiting; exit 0"
    );
}

/// SPEC §3 MAXLIFETIME, in each phase.
#[test]
fn lifetime_in_every_phase() {
    let lived = Rules {
        max_lifetime: 100,
        ..monitored()
    };
    let end = s(100);
    let reached = "exceeded maximum time to live, shutting down";

    let r = Run::waiting(lived);
    assert_eq!(r.m.deadline(), Some(r.now + s(1)));
    let mut r = Run::waiting(Rules {
        max_lifetime: 1,
        ..monitored()
    });
    assert_eq!(r.at(s(1), Event::Tick), format!("{reached}; exit 0"));

    let mut r = Run::running(Rules {
        first_poll: 600,
        poll: 600,
        ..lived
    });
    assert_eq!(r.m.deadline(), Some(end));
    assert_eq!(r.at(end, Event::Tick), format!("{reached}; terminate"));
    assert_eq!(
        r.after(s(1), Event::SshEnded(Ended::Signaled(15))),
        "exit 0"
    );

    let mut r = Run::testing(lived);
    assert_eq!(
        r.at(end, Event::Tick),
        format!("{reached}; cancel test; terminate")
    );
    assert_eq!(r.after(s(1), Event::SshEnded(Ended::Exited(255))), "exit 0");

    let mut r = Run::running(lived);
    r.at(s(98), Event::Signal(USR1));
    assert_eq!(r.at(end, Event::Tick), reached);
    assert_eq!(
        r.after(s(1), Event::SshEnded(Ended::Signaled(15))),
        "exit 0"
    );

    // An exit asked for by a signal keeps its status.
    let mut r = Run::running(Rules {
        first_poll: 600,
        poll: 600,
        ..lived
    });
    r.at(s(97), Event::Signal(TERM));
    assert_eq!(r.at(end, Event::Tick), reached);
    assert_eq!(
        r.after(s(1), Event::SshEnded(Ended::Signaled(15))),
        "exit 1"
    );

    // Lifetime and a due test at the same time: no test starts.
    let mut r = Run::running(Rules {
        first_poll: 100,
        ..lived
    });
    assert_eq!(r.at(end, Event::Tick), format!("{reached}; terminate"));
}

/// SPEC §6: the schedule, a pass, a failure.
#[test]
fn tests_follow_the_schedule() {
    let mut r = Run::running(monitored());
    assert_eq!(r.m.deadline(), Some(s(30)));
    assert_eq!(r.at(s(29), Event::Tick), "");
    assert_eq!(r.at(s(30), Event::Tick), "start test");
    assert_eq!(r.m.deadline(), None);
    assert_eq!(r.after(ms(300), Event::TestPassed), "");
    assert_eq!(r.m.deadline(), Some(r.now + s(60)));
    assert_eq!(r.at(r.now + s(60), Event::Tick), "start test");
    assert_eq!(
        r.after(s(15), Event::TestFailed),
        "port down, restarting ssh; terminate"
    );
    assert_eq!(r.kind(), "stopping to restart");
    // Without monitoring no test is ever due.
    let r = Run::running(rules());
    assert_eq!(r.m.deadline(), None);
}

/// SPEC §9 (network changes): one test after a quiet second.
#[test]
fn network_changes() {
    let mut r = Run::running(monitored());
    assert_eq!(r.at(s(5), Event::NetworkChanged(Connection::Untouched)), "");
    assert_eq!(
        r.at(ms(5500), Event::NetworkChanged(Connection::Untouched)),
        ""
    );
    assert_eq!(r.m.deadline(), Some(ms(6500)));
    assert_eq!(
        r.at(ms(6500), Event::Tick),
        "network changed, testing the connection; start test"
    );
    // A pass leaves the regular schedule alone.
    assert_eq!(r.after(ms(100), Event::TestPassed), "");
    assert_eq!(r.m.deadline(), Some(s(30)));
    // A change during a test starts no second one.
    assert_eq!(r.at(s(30), Event::Tick), "start test");
    r.at(ms(30100), Event::NetworkChanged(Connection::Untouched));
    assert_eq!(r.at(ms(31100), Event::Tick), "");
    assert_eq!(r.kind(), "testing");
    // A change whose test outlasts the regular time stands for it.
    let mut r = Run::running(monitored());
    r.at(s(28), Event::NetworkChanged(Connection::Untouched));
    assert_eq!(
        r.at(s(29), Event::Tick),
        "network changed, testing the connection; start test"
    );
    assert_eq!(r.at(s(31), Event::TestPassed), "");
    assert_eq!(r.m.deadline(), Some(s(91)));
    // A failure replaces ssh.
    let mut r = Run::running(monitored());
    r.at(s(6), Event::NetworkChanged(Connection::Untouched));
    r.at(s(7), Event::Tick);
    assert_eq!(
        r.at(s(8), Event::TestFailed),
        "port down, restarting ssh; terminate"
    );
    // A young ssh is given the time to open its forwards first: the test
    // waits, and nothing is due in the meantime.
    let mut r = Run::running(monitored());
    assert_eq!(
        r.at(ms(200), Event::NetworkChanged(Connection::Untouched)),
        ""
    );
    assert_eq!(r.m.deadline(), Some(YOUNG));
    assert_eq!(r.at(ms(1200), Event::Tick), "");
    assert_eq!(r.m.deadline(), Some(YOUNG));
    assert_eq!(
        r.at(YOUNG, Event::Tick),
        "network changed, testing the connection; start test"
    );
    // Without monitoring a change does nothing.
    let mut r = Run::running(rules());
    r.at(s(1), Event::NetworkChanged(Connection::Untouched));
    assert_eq!(r.m.deadline(), None);
    // A change while ssh is replaced is not tested on the new one.
    let mut r = Run::stopping(monitored());
    r.after(ms(100), Event::NetworkChanged(Connection::Untouched));
    r.after(ms(100), Event::SshEnded(Ended::Signaled(15)));
    r.now(Event::Spawned { pid: 5 });
    assert_eq!(r.m.deadline(), Some(r.now + s(30)));
}

/// The poll failed for good: ssh is stopped as for an exit signal (SIGKILL
/// at the kill grace), and autossh exits 1, whatever it was doing.
#[test]
fn a_poll_that_fails_for_good() {
    let failed = Event::PollFailed(Errno::EINVAL);
    let mut r = Run::testing(monitored());
    assert_eq!(
        r.after(ms(10), failed),
        "poll: Invalid argument; cancel test; terminate"
    );
    assert_eq!(
        r.after(KILL_GRACE, Event::Tick),
        "ssh child pid 4242 did not exit on SIGTERM; sending SIGKILL; kill"
    );
    assert_eq!(
        r.after(ms(10), Event::SshEnded(Ended::Signaled(9))),
        "exit 1"
    );
    // Stopping to restart: exits instead; stopping to exit 0 (the
    // lifetime): exits 1, an error.
    let mut r = Run::stopping(monitored());
    assert_eq!(r.after(ms(10), failed), "poll: Invalid argument");
    assert_eq!(
        r.after(ms(10), Event::SshEnded(Ended::Signaled(15))),
        "exit 1"
    );
    let mut r = Run::running(Rules {
        max_lifetime: 60,
        ..monitored()
    });
    assert!(r.at(s(60), Event::Tick).ends_with("terminate"));
    assert_eq!(r.after(ms(10), failed), "poll: Invalid argument");
    assert_eq!(
        r.after(ms(10), Event::SshEnded(Ended::Signaled(15))),
        "exit 1"
    );
    // Waiting: at once.
    let mut r = Run::waiting(rules());
    assert_eq!(r.after(ms(10), failed), "poll: Invalid argument; exit 1");
    assert_eq!(r.m.status().reason, Some(Note::PollFailed(Errno::EINVAL)));
}

/// The address of ssh's connection gone, or its link down: ssh is replaced
/// at once, without a test, monitored or not.
#[test]
fn a_lost_connection() {
    let lost = |link_down| {
        let from = std::net::IpAddr::from([10, 200, 0, 1]);
        Event::NetworkChanged(if link_down {
            Connection::LinkDown(from)
        } else {
            Connection::AddressGone(from)
        })
    };
    for rules in [rules(), monitored()] {
        let mut r = Run::running(rules);
        assert_eq!(
            r.at(s(5), lost(false)),
            "ssh's connection was from 10.200.0.1, an address this host no longer has; \
             restarting ssh; terminate"
        );
        assert_eq!(r.kind(), "stopping to restart");
        assert_eq!(
            r.after(ms(10), Event::SshEnded(Ended::Signaled(15))),
            "checking for grace period, tries = 0; starting ssh (count 2); spawn"
        );
        r.now(Event::Spawned { pid: 5 });
        assert_eq!(
            r.after(s(1), lost(true)),
            "the link of ssh's connection from 10.200.0.1 is down; restarting ssh; terminate"
        );
    }
    // Then the starts are paced, once a second, for ten seconds, not
    // counted as quick ones; then the backoff goes on as before.
    let mut r = Run::running(rules());
    r.at(s(5), lost(false));
    r.after(ms(10), Event::SshEnded(Ended::Signaled(15)));
    let mut waits = Vec::new();
    for pid in 10..30 {
        r.now(Event::Spawned { pid });
        let said = r.after(ms(100), Event::SshEnded(Ended::Exited(255)));
        waits.push(said.contains("sleeping for grace time 1 secs"));
        if let Phase::Waiting { until } = r.m.phase() {
            assert!(r.at(until, Event::Tick).ends_with("spawn"));
        }
    }
    let paced = waits.iter().take_while(|&&w| w).count();
    assert!((8..=10).contains(&paced), "{waits:?}");
    // Mid-test, the test is dropped first.
    let mut r = Run::testing(monitored());
    assert!(r
        .after(ms(10), lost(false))
        .ends_with("; cancel test; terminate"));
    // With no ssh running there is nothing to replace.
    for mut r in [Run::stopping(monitored()), Run::waiting(rules())] {
        let before = r.kind();
        assert_eq!(r.after(ms(10), lost(false)), "");
        assert_eq!(r.kind(), before);
    }
}

/// The service manager: READY=1 once, the watchdog at its interval.
fn knocking() -> Rules {
    Rules {
        knock: true,
        ..rules()
    }
}

const DOOR: ([u8; 4], u16) = ([10, 0, 0, 2], 22);

fn door() -> std::net::SocketAddr {
    std::net::SocketAddr::from(DOOR)
}

/// Running with `knock`: the door is looked for once, 5 s after the start,
/// and then nothing more while ssh runs.
fn knocking_run() -> Run {
    let mut r = Run::running(knocking());
    assert_eq!(r.m.deadline(), Some(YOUNG));
    assert_eq!(r.at(YOUNG, Event::Tick), "find door");
    assert_eq!(
        r.now(Event::DoorFound {
            door: Some(door()),
            connecting: false
        }),
        ""
    );
    assert_eq!(r.m.deadline(), None, "nothing more while it runs");
    r
}

/// ssh ends a second after each start until the backoff waits 10 s or
/// more; what the last step said.
fn fail_until_a_long_wait(r: &mut Run) -> String {
    for pid in PID + 1..PID + 40 {
        let said = r.after(s(1), Event::SshEnded(Ended::Exited(255)));
        let said = match r.m.phase() {
            Phase::Waiting { until } if until >= r.now + s(10) => return said,
            Phase::Waiting { until } => r.at(until, Event::Tick),
            _ => said,
        };
        assert!(said.ends_with("spawn"), "{said}");
        r.now(Event::Spawned { pid });
    }
    panic!("no long wait");
}

#[test]
fn a_closed_door_that_opens_ends_the_wait() {
    let mut r = knocking_run();
    // ssh dies (the relay went away) again and again: then a long wait.
    let said = fail_until_a_long_wait(&mut r);
    assert!(said.ends_with(" secs; knock 10.0.0.2:22"), "{said}");
    let starts = r.m.starts();
    // Refused: said once, as the reason; the next knock a second later.
    assert_eq!(
        r.after(ms(2), Event::Knocked(Some(Errno::ECONNREFUSED))),
        "relay unreachable: 10.0.0.2:22: Connection refused"
    );
    assert_eq!(
        r.m.status().reason,
        Some(Note::RelayUnreachable {
            door: door(),
            error: Errno::ECONNREFUSED
        })
    );
    let knocked_at = r.now - ms(2);
    assert_eq!(r.m.deadline(), Some(knocked_at + KNOCK_EVERY));
    assert_eq!(
        r.at(knocked_at + KNOCK_EVERY, Event::Tick),
        "knock 10.0.0.2:22"
    );
    // Unanswered (replies dropped): given up on after a second, and the
    // next one starts at once; nothing more is said.
    assert_eq!(
        r.after(KNOCK_WAIT, Event::Tick),
        "cancel knock; knock 10.0.0.2:22"
    );
    // A signal that changes nothing leaves the knock alone.
    assert_eq!(r.after(ms(10), Event::Signal(USR2)), "");
    // The door opens: the wait ends now, as with a HUP.
    let said = r.after(ms(300), Event::Knocked(None));
    assert_eq!(
        said,
        format!(
            "the relay 10.0.0.2:22 answers again; starting ssh now; starting ssh (count {}); spawn",
            starts + 1
        )
    );
}

/// The relay away through a wait and the ssh after it (its connect timed
/// out), back just as the next wait begins: the first knock of that wait
/// finds the door open, and that is the relay back, since the last knock
/// found it closed. Once a knock found it open, an open door at the first
/// knock changes nothing again (a relay that answers and refuses).
#[test]
fn a_door_closed_before_the_wait_that_opens_ends_it() {
    let mut r = knocking_run();
    let said = fail_until_a_long_wait(&mut r);
    assert!(said.ends_with("knock 10.0.0.2:22"), "{said}");
    assert_eq!(
        r.after(KNOCK_WAIT, Event::Tick),
        "cancel knock; relay unreachable: 10.0.0.2:22: Connection timed out; knock 10.0.0.2:22"
    );
    // The wait runs out; ssh's connect times out too.
    let Phase::Waiting { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase());
    };
    assert!(r.at(until, Event::Tick).ends_with("spawn"));
    r.now(Event::Spawned { pid: 77 });
    let said = r.after(s(2), Event::SshEnded(Ended::Exited(255)));
    assert!(said.ends_with("knock 10.0.0.2:22"), "{said}");
    // Back: the first knock of this wait gets through.
    let starts = r.m.starts();
    assert_eq!(
        r.after(ms(900), Event::Knocked(None)),
        format!(
            "the relay 10.0.0.2:22 answers again; starting ssh now; starting ssh (count {}); spawn",
            starts + 1
        )
    );
    // That ssh is refused (a key): the next wait's first knock finds the
    // door open, as the last one did: the wait is kept.
    r.now(Event::Spawned { pid: 78 });
    let said = r.after(ms(300), Event::SshEnded(Ended::Exited(255)));
    assert!(said.ends_with("knock 10.0.0.2:22"), "{said}");
    let Phase::Waiting { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase());
    };
    assert_eq!(r.after(ms(5), Event::Knocked(None)), "");
    assert_eq!(r.m.deadline(), Some(until));

    // The relay back while the ssh after the wait ran, refusing its key:
    // ssh's last words say it got that far, so the next wait's open door
    // at the first knock says nothing new: kept. A look that found no
    // door (ssh not yet connecting) says nothing of it.
    for reached in [true, false] {
        let mut r = knocking_run();
        fail_until_a_long_wait(&mut r);
        r.after(KNOCK_WAIT, Event::Tick);
        let Phase::Waiting { until } = r.m.phase() else {
            panic!("{:?}", r.m.phase());
        };
        assert!(r.at(until, Event::Tick).ends_with("spawn"));
        r.now(Event::Spawned { pid: 80 });
        if !reached {
            assert_eq!(r.after(YOUNG, Event::Tick), "find door");
            r.now(Event::DoorFound {
                door: None,
                connecting: false,
            });
        }
        r.after(
            s(1),
            if reached {
                Event::RelayReached
            } else {
                Event::Tick
            },
        );
        r.now(Event::SshEnded(Ended::Exited(255)));
        let said = r.after(ms(900), Event::Knocked(None));
        if reached {
            assert_eq!(said, "");
        } else {
            assert!(said.contains("answers again"), "{said}");
        }
    }
    // The door closed was another: the name now leads elsewhere.
    let mut r = knocking_run();
    fail_until_a_long_wait(&mut r);
    r.after(KNOCK_WAIT, Event::Tick);
    let Phase::Waiting { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase());
    };
    r.at(until, Event::Tick);
    r.now(Event::Spawned { pid: 81 });
    assert_eq!(r.after(YOUNG, Event::Tick), "find door");
    let elsewhere = std::net::SocketAddr::from(([10, 0, 0, 3], 22));
    let said = r.now(Event::DoorFound {
        door: Some(elsewhere),
        connecting: true,
    });
    assert_eq!(said, "knock 10.0.0.3:22");
    let said = r.after(s(1), Event::SshEnded(Ended::Exited(255)));
    assert!(said.ends_with("knock 10.0.0.3:22"), "{said}");
    assert_eq!(r.after(ms(900), Event::Knocked(None)), "");
}

#[test]
fn an_open_door_changes_nothing() {
    let mut r = knocking_run();
    // A refused key: ssh ends at once, many times over; the relay answers.
    fail_until_a_long_wait(&mut r);
    let Phase::Waiting { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase());
    };
    assert_eq!(r.after(ms(5), Event::Knocked(None)), "");
    // No more knocks in this wait: the timer decides, as without knocking.
    assert_eq!(r.m.deadline(), Some(until));
    assert!(r.at(until, Event::Tick).ends_with("spawn"));
}

#[test]
fn an_ssh_stuck_connecting_is_replaced_once_the_relay_answers() {
    let mut r = Run::running(knocking());
    assert_eq!(r.at(YOUNG, Event::Tick), "find door");
    // Still in SYN-SENT 5 s after its start: its door is knocked on, and
    // the loop wakes to give the knock up.
    assert_eq!(
        r.now(Event::DoorFound {
            door: Some(door()),
            connecting: true
        }),
        "knock 10.0.0.2:22"
    );
    assert_eq!(r.m.deadline(), Some(r.now + KNOCK_WAIT));
    // No answer (the relay away): given up on, knocked again; nothing is
    // said while ssh runs.
    assert_eq!(
        r.after(KNOCK_WAIT, Event::Tick),
        "cancel knock; knock 10.0.0.2:22"
    );
    assert_eq!(
        r.after(ms(100), Event::Knocked(Some(Errno::EHOSTUNREACH))),
        ""
    );
    assert_eq!(r.m.deadline(), Some(r.now - ms(100) + KNOCK_EVERY));
    assert_eq!(r.after(KNOCK_EVERY, Event::Tick), "knock 10.0.0.2:22");
    // Through: ssh is looked at again, and replaced if still connecting.
    assert_eq!(r.after(ms(50), Event::Knocked(None)), "find door");
    assert_eq!(r.m.deadline(), None, "no knock while it is looked at");
    assert_eq!(
        r.now(Event::DoorFound {
            door: Some(door()),
            connecting: true
        }),
        "ssh is still connecting to 10.0.0.2:22, which answers; restarting ssh; terminate"
    );
    // Started again at once.
    let said = r.after(ms(10), Event::SshEnded(Ended::Signaled(15)));
    assert!(said.ends_with("starting ssh (count 2); spawn"), "{said}");

    // Connected by itself meanwhile: left alone, and no more knocks.
    let mut r = Run::running(knocking());
    r.at(YOUNG, Event::Tick);
    r.now(Event::DoorFound {
        door: Some(door()),
        connecting: true,
    });
    assert_eq!(r.after(ms(20), Event::Knocked(None)), "find door");
    assert_eq!(
        r.now(Event::DoorFound {
            door: Some(door()),
            connecting: false
        }),
        ""
    );
    assert_eq!(r.m.deadline(), None);
    assert!(matches!(r.m.phase(), Phase::Running { .. }));
    // A knock in flight when ssh ends is dropped.
    let mut r = Run::running(knocking());
    r.at(YOUNG, Event::Tick);
    r.now(Event::DoorFound {
        door: Some(door()),
        connecting: true,
    });
    let said = r.after(ms(20), Event::SshEnded(Ended::Exited(255)));
    assert!(said.contains("cancel knock"), "{said}");
    // Knocking off: a connecting ssh is left to itself.
    let mut r = Run::running(rules());
    r.now(Event::DoorFound {
        door: Some(door()),
        connecting: true,
    });
    assert_eq!(r.m.deadline(), None);
}

#[test]
fn a_knock_that_fails_here_says_nothing_of_the_relay() {
    let mut r = knocking_run();
    fail_until_a_long_wait(&mut r);
    let reason = r.m.status().reason;
    let Phase::Waiting { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase());
    };
    assert_eq!(r.after(ms(1), Event::Knocked(Some(Errno::EMFILE))), "");
    assert_eq!(r.m.status().reason, reason);
    assert_eq!(r.m.deadline(), Some(until), "no more knocks in this wait");
    assert!(about_the_relay(Errno::ECONNREFUSED) && about_the_relay(Errno::ETIMEDOUT));
    assert!(!about_the_relay(Errno::EADDRNOTAVAIL) && !about_the_relay(Errno::EINVAL));
}

#[test]
fn knocks_end_with_the_wait_and_need_a_door() {
    // A signal ends the wait with a knock in flight: it is dropped.
    let mut r = knocking_run();
    let said = fail_until_a_long_wait(&mut r);
    assert!(said.ends_with("knock 10.0.0.2:22"), "{said}");
    let starts = r.m.starts();
    assert_eq!(
        r.after(ms(10), Event::Signal(HUP)),
        format!("cancel knock; starting ssh (count {}); spawn", starts + 1)
    );
    // An answer after that is not news.
    assert_eq!(r.now(Event::Knocked(None)), "");
    r.now(Event::Spawned { pid: 9 });
    // An exit during a knock drops it too.
    let mut r = knocking_run();
    fail_until_a_long_wait(&mut r);
    assert_eq!(
        r.after(ms(10), Event::Signal(TERM)),
        "received signal to exit (15); cancel knock; exit 1"
    );

    // No door (a ProxyCommand), or knocking off: no knock.
    for (rules, found) in [(knocking(), None), (rules(), Some(door()))] {
        let mut r = Run::running(rules);
        if rules.knock {
            assert_eq!(r.at(YOUNG, Event::Tick), "find door");
            r.now(Event::DoorFound {
                door: found,
                connecting: false,
            });
        }
        let said = fail_until_a_long_wait(&mut r);
        assert!(!said.contains("knock"), "{said}");
        assert!(matches!(r.m.phase(), Phase::Waiting { .. }));
    }

    // An ssh that ends before it is 5 s old is not looked at, and leaves
    // no deadline behind.
    let mut r = knocking_run();
    r.after(s(1), Event::SshEnded(Ended::Exited(255)));
    r.now(Event::Spawned { pid: 7 });
    assert_eq!(r.m.deadline(), Some(r.now + YOUNG));
    r.after(s(4), Event::SshEnded(Ended::Exited(255)));
    r.now(Event::Spawned { pid: 8 });
    assert_eq!(r.m.deadline(), Some(r.now + YOUNG));
}

#[test]
fn a_held_port_is_retried_at_a_steady_pace() {
    let mut r = Run::running(rules());
    r.after(s(1), held(0));
    assert_eq!(
        r.now(Event::SshEnded(Ended::Exited(255))),
        "ssh exited with error status 255; restarting ssh; \
         the relay still holds port 2200 for an earlier session; starting ssh again in 2 s; \
         checking for grace period, tries = 0; sleeping for grace time 2 secs"
    );
    assert_eq!(
        r.m.status().reason,
        Some(Note::PortHeld {
            port: 2200,
            retry: 2,
            first: true
        })
    );
    // Held on and on: every 2 s for five minutes (the backoff would have
    // grown to a minute), then every 10 s, then every 30 s.
    let began = r.now;
    let mut waits = Vec::new();
    for pid in 1..400 {
        let Phase::Waiting { until } = r.m.phase() else {
            panic!("{:?}", r.m.phase());
        };
        assert!(r.at(until, Event::Tick).ends_with("spawn"));
        r.now(Event::Spawned { pid });
        r.after(ms(500), held(0));
        r.now(Event::SshEnded(Ended::Exited(255)));
        let Phase::Waiting { until } = r.m.phase() else {
            panic!("{:?}", r.m.phase());
        };
        waits.push(((r.now - began).as_secs(), (until - r.now).as_secs()));
        if r.now - began > s(1000) {
            break;
        }
    }
    for (at, wait) in &waits {
        let expected = match at {
            0..300 => 2,
            300..900 => 10,
            _ => 30,
        };
        assert_eq!(*wait, expected, "at {at} s: {waits:?}");
    }
    // Logged once at info, then at debug.
    assert_eq!(
        Note::PortHeld {
            port: 1,
            retry: 2,
            first: false
        }
        .level(),
        log::Level::Debug
    );
    // An ssh that ends otherwise: the backoff again.
    let Phase::Waiting { until } = r.m.phase() else {
        panic!();
    };
    r.at(until, Event::Tick);
    r.now(Event::Spawned { pid: 999 });
    let said = r.after(ms(500), Event::SshEnded(Ended::Exited(255)));
    assert!(!said.contains("holds port"), "{said}");
    // A port held where the poll is short: never a wait over the poll.
    let mut r = Run::running(Rules { poll: 1, ..rules() });
    r.after(s(1), held(0));
    let said = r.now(Event::SshEnded(Ended::Exited(255)));
    assert!(said.ends_with("sleeping for grace time 1 secs"), "{said}");
    // Words of an ssh that is not running any more count for nothing.
    let mut r = Run::running(rules());
    r.after(s(1), Event::Signal(USR1));
    r.now(held(0));
    let said = r.after(ms(10), Event::SshEnded(Ended::Signaled(15)));
    assert!(!said.contains("holds port"), "{said}");
}

/// An ssh without `ExitOnForwardFailure` warns at its login that a forward
/// was refused and runs on; when it ends much later of something else,
/// those words say nothing of the port now: the backoff as always.
#[test]
fn old_words_of_a_held_port_count_for_nothing() {
    let mut r = Run::running(rules());
    r.after(s(3600), held(3600));
    let said = r.now(Event::SshEnded(Ended::Exited(255)));
    assert!(!said.contains("holds port"), "{said}");
    assert_eq!(
        r.m.status()
            .reason
            .map(|n| matches!(n, Note::PortHeld { .. })),
        Some(false)
    );
    // Said just before the end (5 s at most): held.
    let mut r = Run::running(rules());
    r.after(s(3600), held(5));
    let said = r.now(Event::SshEnded(Ended::Exited(255)));
    assert!(said.contains("holds port 2200"), "{said}");
    let mut r = Run::running(rules());
    r.after(s(3600), held(6));
    let said = r.now(Event::SshEnded(Ended::Exited(255)));
    assert!(!said.contains("holds port"), "{said}");
}

#[test]
fn readiness_and_watchdog() {
    let told = Rules {
        notify: true,
        ..rules()
    };
    // No gate, no test: ready once ssh runs.
    let mut r = Run::new(told);
    r.now(Event::Start);
    assert_eq!(
        r.now(Event::Spawned { pid: 1 }),
        "ssh child pid is 1; ready"
    );
    // A gate: when ssh outlives it.
    let mut r = Run::running(Rules {
        gate_time: 30,
        ..told
    });
    assert_eq!(r.m.deadline(), Some(s(30)));
    assert_eq!(r.at(s(30), Event::Tick), "ready");
    assert_eq!(r.m.deadline(), None);
    // Monitored: at the first pass, which may come before the gate.
    let mut r = Run::testing(Rules {
        gate_time: 60,
        notify: true,
        ..monitored()
    });
    assert_eq!(r.after(s(1), Event::TestPassed), "ready");
    assert_eq!(r.after(s(100), Event::Tick), "start test");
    assert_eq!(r.after(s(1), Event::TestPassed), "");
    // Without a manager, never.
    let mut r = Run::testing(monitored());
    assert_eq!(r.after(s(1), Event::TestPassed), "");
    // The watchdog.
    let mut r = Run::running(Rules {
        watchdog: Some(s(10)),
        ..rules()
    });
    assert_eq!(r.m.deadline(), Some(s(10)));
    assert_eq!(r.at(s(10), Event::Tick), "watchdog");
    assert_eq!(r.m.deadline(), Some(s(20)));
    // Late (a suspended machine): once, and the next a full interval on.
    assert_eq!(r.at(s(95), Event::Tick), "watchdog");
    assert_eq!(r.m.deadline(), Some(s(105)));
}

/// SPEC §5 exit-status rules as a pure function.
#[test]
fn judge_rules() {
    let v = |ended, first, gate, lived| judge(ended, first, gate, s(lived));
    for status in [0, 1, 2, 3, 255] {
        assert_eq!(
            v(Ended::Exited(status), true, 30, 30),
            (Then::Exit(1), Note::EndedPrematurely(status))
        );
    }
    let restart = |st| (Then::Restart, Note::EndedRestarting(st));
    let exit = |code, st| (Then::Exit(code), Note::EndedExiting(st));
    assert_eq!(v(Ended::Exited(255), true, 30, 31), restart(255));
    assert_eq!(v(Ended::Exited(255), true, 0, 0), restart(255));
    assert_eq!(v(Ended::Exited(0), false, 30, 0), exit(0, 0));
    assert_eq!(v(Ended::Exited(0), true, 0, 0), exit(0, 0));
    assert_eq!(v(Ended::Exited(1), true, 30, 31), exit(1, 1));
    assert_eq!(v(Ended::Exited(2), true, 30, 31), exit(1, 2));
    assert_eq!(v(Ended::Exited(1), true, 0, 0), restart(1));
    assert_eq!(v(Ended::Exited(2), false, 30, 0), restart(2));
    assert_eq!(v(Ended::Exited(3), false, 0, 100), exit(1, 3));
    assert_eq!(v(Ended::Exited(254), true, 0, 100), exit(1, 254));
    assert_eq!(
        v(Ended::Signaled(9), true, 30, 0),
        (Then::Restart, Note::EndedBySignal(9))
    );
}

/// The published state (AUTOSSH_STATEFILE) through a run.
#[test]
fn the_published_state() {
    let word = |r: &Run| r.m.status().state.word();
    let mut r = Run::new(Rules {
        publish: true,
        ..monitored()
    });
    assert_eq!(word(&r), "starting");
    r.now(Event::Start);
    r.now(Event::Spawned { pid: PID });
    assert_eq!((word(&r), r.m.status().ssh_pid), ("starting", Some(PID)));
    r.at(s(30), Event::Tick);
    assert_eq!(word(&r), "starting", "a test under way earns nothing yet");
    r.after(ms(10), Event::TestPassed);
    assert_eq!((word(&r), r.m.status().reason), ("up", None));
    assert_eq!(r.at(s(91), Event::Tick), "start test");
    r.after(s(1), Event::TestFailed);
    let status = r.m.status();
    assert_eq!(
        (status.state.word(), status.reason),
        ("down", Some(Note::PortDown))
    );
    r.after(ms(10), Event::SshEnded(Ended::Signaled(15)));
    r.now(Event::Spawned { pid: 7 });
    // A new ssh: down until it earns up, with the reason kept.
    let status = r.m.status();
    assert_eq!(
        (status.state.word(), status.reason),
        ("down", Some(Note::PortDown))
    );
    assert_eq!(status.starts, 2);
    r.after(s(1), Event::Signal(TERM));
    assert_eq!(word(&r), "stopping");
    r.after(ms(10), Event::SshEnded(Ended::Signaled(15)));
    let status = r.m.status();
    assert_eq!(status.state.word(), "exited");
    assert_eq!(status.reason, Some(Note::ExitSignal(15)));
    assert_eq!(status.exit_code, Some(1));

    // Without monitoring: up once ssh outlives the gate time, which is a
    // deadline of its own only when the state is published.
    let gated = Rules {
        gate_time: 10,
        publish: true,
        ..rules()
    };
    let mut r = Run::running(gated);
    assert_eq!(word(&r), "starting");
    assert_eq!(r.m.deadline(), Some(s(10)));
    r.at(s(10), Event::Tick);
    assert_eq!(word(&r), "up");
    assert_eq!(r.m.deadline(), None);
    let r = Run::running(Rules {
        publish: false,
        ..gated
    });
    assert_eq!(r.m.deadline(), None, "no wake-up for a state nobody reads");
    // With a gate time of 0: up at once.
    let r = Run::running(Rules {
        publish: true,
        ..rules()
    });
    assert_eq!(word(&r), "up");
    // Waiting, with the next start.
    let mut r = Run::waiting(Rules {
        publish: true,
        ..monitored()
    });
    let status = r.m.status();
    assert_eq!(status.state.word(), "waiting");
    assert_eq!(status.reason, Some(Note::EndedRestarting(255)));
    assert_eq!(status.next_start, r.m.deadline());
    r.after(ms(1), Event::Tick);
}

mod simulation;
