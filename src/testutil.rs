//! Helpers shared by the library's unit tests.

use crate::parallel::Parallel;

/// Seeded xorshift64 bits and uniform floats in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Claims `.0` threads to the split (so that rows go to several tasks) and
/// runs the tasks one by one, last first: a result that depended on the
/// order or the split of tasks would show.
pub struct Backwards(pub usize);

// SAFETY: runs every task exactly once before returning.
#[allow(unsafe_code)]
unsafe impl Parallel for Backwards {
    fn threads(&self) -> usize {
        self.0
    }
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        for i in (0..n_tasks).rev() {
            task(i);
        }
    }
}
