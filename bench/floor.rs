//! The runtime's floor for the memory figures of `bench/compare`: a Rust
//! program that only waits, built as autossh's release build is. What an
//! idle autossh costs beyond this is autossh's own.

extern "C" {
    fn pause() -> i32;
}

fn main() {
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe {
            pause();
        }
    }
}
