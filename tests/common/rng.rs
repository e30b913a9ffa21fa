//! The tests' random numbers: splitmix64, small, fast, the same on every
//! machine, so that a seed names a run. Shared by the machine's simulation
//! (`src/machine/tests/simulation.rs`) and the fuzz test (`tests/fuzz.rs`).

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 for 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Up to 11 bytes, none of them 0.
    pub fn bytes(&mut self) -> Vec<u8> {
        let len = self.below(12);
        (0..len)
            .map(|_| (self.next() & 0xff) as u8)
            .filter(|&b| b != 0)
            .collect()
    }
}
