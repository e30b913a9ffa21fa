//! A free monitor port pair when none is given (SPEC §1, §9.11).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

const LOWEST: u16 = 32768;
/// The pair is P and P+1, both at most 65534.
const HIGHEST: u16 = 65533;
/// How many random ports are tried before giving up.
const TRIES: usize = 64;

fn free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// A port P in 32768–65533 with P and P+1 both free on 127.0.0.1 now.
pub fn free_pair() -> Option<u16> {
    pick(crate::random::u64, free)
}

/// The first of [`TRIES`] random ports, drawn from `draw`, whose pair is
/// `free`.
fn pick(mut draw: impl FnMut() -> u64, free: impl Fn(u16) -> bool) -> Option<u16> {
    let span = u64::from(HIGHEST - LOWEST) + 1;
    (0..TRIES).find_map(|_| {
        let offset = u16::try_from(draw() % span).ok()?;
        let port = LOWEST + offset;
        (free(port) && free(port + 1)).then_some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_random_in_range_and_free() {
        let drawn: std::collections::BTreeSet<u16> =
            (0..50).map(|_| free_pair().expect("a free pair")).collect();
        assert!(drawn.iter().all(|p| (32768..=65533).contains(p)));
        // Fifty draws from 32,766 ports: a few coincidences at most.
        assert!(drawn.len() >= 45, "{drawn:?}");
        // A port held by someone else is never given.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = held.local_addr().unwrap().port();
        let mut draws = [busy, busy.saturating_sub(1), 40000]
            .into_iter()
            .map(|p| u64::from(p.saturating_sub(LOWEST)));
        let got = pick(|| draws.next().unwrap_or(0), free);
        assert!(
            got != Some(busy) && got != Some(busy.saturating_sub(1)),
            "{got:?}"
        );
    }

    #[test]
    fn busy_pairs_are_passed_over() {
        let mut draws = [0u64, 1, 2, 70_000].into_iter();
        // 32768 and 32769 busy, so neither pair starting there is free.
        let busy = |p: u16| p == 32768 || p == 32770;
        let free = |p: u16| !busy(p);
        let got = pick(|| draws.next().unwrap_or(0), free);
        // 32768 (busy), 32769 (its pair 32770 busy), 32770 (busy), then
        // 70000 % 32766 = 4468.
        assert_eq!(got, Some(32768 + 4468));
        assert_eq!(pick(|| 0, |_| false), None);
    }
}
