//! A free monitor port pair when none is given (SPEC §1, §9.11).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

const LOWEST: u16 = 32768;
/// The pair is P and P+1, both at most 65534.
const HIGHEST: u16 = 65533;

fn free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// A port P in 32768–65533 with P and P+1 both free on 127.0.0.1 now.
pub fn free_pair() -> Option<u16> {
    let span = u64::from(HIGHEST - LOWEST) + 1;
    (0..64).find_map(|_| {
        let offset = u16::try_from(crate::random::u64() % span).ok()?;
        let port = LOWEST + offset;
        (free(port) && free(port + 1)).then_some(port)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pair_is_in_range_and_free() {
        let port = super::free_pair().expect("a free pair");
        assert!((32768..=65533).contains(&port));
    }
}
