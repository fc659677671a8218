//! Work counters for the cost tests of issue 16: the steps of each loop
//! whose length a hostile input could choose (heap levels, hash probes,
//! places scanned), counted per thread. Compiled only into the unit tests;
//! elsewhere [`tick`] is nothing.

#[cfg(test)]
std::thread_local! {
    static STEPS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Counts `n` steps of work (unit tests only).
#[inline(always)]
pub(crate) fn tick(n: u64) {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + n));
    #[cfg(not(test))]
    let _ = n;
}

/// The steps counted on this thread since the last call.
#[cfg(test)]
pub(crate) fn take() -> u64 {
    STEPS.with(|s| s.replace(0))
}

/// Asserts that `steps[i]`, counted for inputs of sizes growing tenfold,
/// grows at most as `n log n` does (with a slack of 10 %): a quadratic
/// path multiplies by 100 per step.
#[cfg(test)]
pub(crate) fn assert_n_log_n(what: &str, sizes: &[usize], steps: &[u64]) {
    for i in 1..sizes.len() {
        let (n0, n1) = (sizes[i - 1] as f64, sizes[i] as f64);
        let bound = n1 * libm::log2(n1) / (n0 * libm::log2(n0)) * 1.1;
        let growth = steps[i] as f64 / steps[i - 1].max(1) as f64;
        std::println!(
            "{what}: {} -> {}: {} steps, x{growth:.2} (bound x{bound:.2})",
            sizes[i - 1],
            sizes[i],
            steps[i]
        );
        assert!(
            growth <= bound,
            "{what}: x{growth:.2} from {n0} to {n1} (bound x{bound:.2})"
        );
    }
}

/// A buffer of `n` bytes at the library's alignment (unit tests only).
#[cfg(test)]
pub(crate) struct Aligned(std::vec::Vec<u8>, usize);

#[cfg(test)]
impl Aligned {
    pub(crate) fn new(n: usize) -> Self {
        let v = std::vec![0u8; n + crate::model::ALIGN];
        let off = v.as_ptr().align_offset(crate::model::ALIGN);
        Aligned(v, off)
    }
    pub(crate) fn get(&mut self, n: usize) -> &mut [u8] {
        &mut self.0[self.1..self.1 + n]
    }
}
