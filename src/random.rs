//! The one source of random numbers: the probe's test id (SPEC §6) and the
//! monitor port drawn when none is given (SPEC §9.11). Neither needs
//! cryptography, only numbers no other process can guess or repeat.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A random number: each call hashes with new keys, which std draws from the
/// kernel (getrandom, or /dev/urandom on kernels without it).
pub fn u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_differ() {
        let a: Vec<u64> = (0..8).map(|_| super::u64()).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
