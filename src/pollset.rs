//! The descriptors of the one `poll`, each registered with the source it
//! stands for. There is a slot for every kind of source and at most one
//! descriptor of each kind, so the set can never outgrow its room: a new
//! kind of source is a new variant, and the room grows with it.

use std::os::fd::BorrowedFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// What a descriptor in the poll stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The self-pipe of the signals: always there.
    Signals,
    /// ssh's stderr, while it is read.
    Words,
    /// The kernel's routing messages, while watched.
    Network,
    /// The connection test's socket, while a test runs.
    Test,
    /// The knock in flight.
    Knock,
}

impl Source {
    /// How many kinds there are: the set's room.
    const COUNT: usize = 5;

    fn index(self) -> usize {
        match self {
            Source::Signals => 0,
            Source::Words => 1,
            Source::Network => 2,
            Source::Test => 3,
            Source::Knock => 4,
        }
    }
}

/// One wake-up's poll set, on the stack.
pub struct PollSet<'fd> {
    fds: [PollFd<'fd>; Source::COUNT],
    /// Where each kind of source sits in `fds`, if registered.
    slots: [Option<usize>; Source::COUNT],
    used: usize,
}

impl<'fd> PollSet<'fd> {
    /// A set with the signals' descriptor, read for input.
    pub fn new(signals: BorrowedFd<'fd>) -> PollSet<'fd> {
        let fd = PollFd::new(signals, PollFlags::POLLIN);
        let mut set = PollSet {
            fds: std::array::from_fn(|_| fd.clone()),
            slots: [None; Source::COUNT],
            used: 0,
        };
        set.add(Source::Signals, signals, PollFlags::POLLIN);
        set
    }

    /// Registers `fd` for `source`, waiting for `events`; a second
    /// registration of the same source replaces the first.
    pub fn add(&mut self, source: Source, fd: BorrowedFd<'fd>, events: PollFlags) {
        // (Every kind has its slot, and each takes one place at most, so
        // neither lookup can fail; were one to, the source would go
        // unwatched rather than bring autossh down.)
        let Some(slot) = self.slots.get_mut(source.index()) else {
            return;
        };
        let at = *slot.get_or_insert(self.used);
        if let Some(place) = self.fds.get_mut(at) {
            *place = PollFd::new(fd, events);
            self.used = self.used.max(at + 1);
        }
    }

    /// Waits up to `timeout` for any registered source.
    pub fn poll(&mut self, timeout: PollTimeout) -> nix::Result<i32> {
        let used = self.used.min(self.fds.len());
        poll(&mut self.fds[..used], timeout)
    }

    /// Whether `source` is registered and something happened on it.
    pub fn ready(&self, source: Source) -> bool {
        self.slots
            .get(source.index())
            .copied()
            .flatten()
            .and_then(|at| self.fds.get(at))
            .is_some_and(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Every kind, named in a match that breaks the build when a kind is
    /// added and not named here.
    fn every_kind() -> Vec<Source> {
        use Source::*;
        let all = vec![Signals, Words, Network, Test, Knock];
        for source in &all {
            match source {
                Signals | Words | Network | Test | Knock => {}
            }
        }
        all
    }

    #[test]
    fn every_kind_has_a_slot_of_its_own() {
        let mut taken: Vec<usize> = every_kind().into_iter().map(Source::index).collect();
        assert!(taken.iter().all(|&i| i < Source::COUNT));
        taken.sort_unstable();
        taken.dedup();
        assert_eq!(taken.len(), Source::COUNT);
    }

    #[test]
    fn each_source_has_its_slot() {
        let (quiet, _quiet_w) = nix::unistd::pipe().unwrap();
        let (busy, busy_w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&busy_w, b"x").unwrap();
        let mut set = PollSet::new(quiet.as_fd());
        // Every kind, each twice: no more room is needed than there are kinds.
        for source in [
            Source::Words,
            Source::Network,
            Source::Test,
            Source::Knock,
            Source::Signals,
        ] {
            set.add(source, quiet.as_fd(), PollFlags::POLLIN);
            set.add(source, quiet.as_fd(), PollFlags::POLLIN);
        }
        assert_eq!(set.used, Source::COUNT);
        set.add(Source::Test, busy.as_fd(), PollFlags::POLLIN);
        assert_eq!(set.poll(PollTimeout::ZERO), Ok(1));
        assert!(set.ready(Source::Test));
        assert!(!set.ready(Source::Words) && !set.ready(Source::Signals));
        // A source that is not registered is never ready.
        let mut set = PollSet::new(busy.as_fd());
        assert_eq!(set.poll(PollTimeout::ZERO), Ok(1));
        assert!(set.ready(Source::Signals));
        assert!(!set.ready(Source::Knock));
    }
}
