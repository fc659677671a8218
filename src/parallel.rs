//! Splitting work into tasks that the host runs on its own threads.
//!
//! The library starts no threads. Each large step (a matrix product, the
//! attention heads) is cut into `n` independent tasks and handed to a
//! [`Parallel`] implementation, which runs `task(0..n)` in any order, on any
//! threads, and returns when all are done. Every output element is computed by
//! exactly one task with a fixed order of arithmetic, so results are
//! bit-identical whatever the number of threads or the schedule.

use core::marker::PhantomData;
use core::ops::Range;

/// Runs a batch of independent tasks; the host's thread pool or job system.
///
/// # Safety
/// The library hands each task mutable views of parts of one buffer
/// ([`DisjointMut`]), disjoint between task indices, and borrows that end
/// when `run` returns. An implementation must therefore run `task(i)` for
/// every `i` in `0..n_tasks` exactly once (never twice, never an index out
/// of range), and return from `run` only once every task has returned, on
/// every path, a panicking task's included (wait for the others, then
/// unwind or abort). A safe implementation that broke this could make safe
/// code race on memory or use it after it is freed, hence `unsafe`:
///
/// ```compile_fail,E0200
/// struct Careless;
/// impl nanollama::parallel::Parallel for Careless {
///     fn threads(&self) -> usize {
///         2
///     }
///     fn run(&self, _: usize, _: &(dyn Fn(usize) + Sync)) {}
/// }
/// ```
#[allow(unsafe_code)]
pub unsafe trait Parallel: Sync {
    /// How many threads the tasks will be spread over (a hint for how finely to
    /// split work; 1 for inline execution).
    fn threads(&self) -> usize;
    /// Runs `task(i)` for every `i` in `0..n_tasks`, each exactly once, and
    /// returns when all have finished.
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync));
}

/// Runs every task on the calling thread, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

// SAFETY: every task in order on the calling thread, before returning; a
// panic unwinds out of `run` with no task running anywhere else.
#[allow(unsafe_code)]
unsafe impl Parallel for Inline {
    fn threads(&self) -> usize {
        1
    }
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        for i in 0..n_tasks {
            task(i);
        }
    }
}

/// Splits `n` items into tasks of whole `quantum`s: about four tasks per
/// thread for balance, none smaller than `min_items`. Returns the number of
/// tasks and the items per task.
pub fn split(par: &dyn Parallel, n: usize, quantum: usize, min_items: usize) -> (usize, usize) {
    let threads = par.threads().max(1);
    if threads == 1 || n <= min_items {
        return (usize::from(n > 0), n);
    }
    // Saturating: a host may claim any number of threads.
    let want = threads.saturating_mul(4);
    let per = n.div_ceil(want).max(min_items).div_ceil(quantum) * quantum;
    (n.div_ceil(per), per)
}

/// Runs `f(first_row, rows)` over `out` taken as rows of `width` elements,
/// in tasks of whole rows split as [`split`] splits them (`quantum`,
/// `min_rows`): each task gets its own rows, mutably.
pub fn for_rows<T: Send>(
    par: &dyn Parallel,
    out: &mut [T],
    width: usize,
    quantum: usize,
    min_rows: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let n = out.len().checked_div(width).unwrap_or(0);
    let (n_tasks, per) = split(par, n, quantum, min_rows);
    let shared = DisjointMut::new(&mut out[..n * width]);
    par.run(n_tasks, &|t| {
        let (r0, r1) = (t * per, ((t + 1) * per).min(n));
        // SAFETY: task t alone owns rows r0..r1: the tasks' ranges are
        // disjoint, and the view is dropped when the task returns.
        #[allow(unsafe_code)]
        let rows = unsafe { shared.range(r0 * width..r1 * width) };
        f(r0, rows);
    });
}

/// Lets tasks running at the same time write disjoint parts of one slice.
///
/// This is the crate's one sharing primitive outside the C ABI: the tasks of a
/// step each own a set of indices no other task of that step touches (their
/// rows of a matrix product, their heads of the attention output), but those
/// sets interleave, so the slice cannot be split up front with `chunks_mut`.
pub struct DisjointMut<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a `DisjointMut` only hands out `&mut` to ranges that its users
// promise (see `range`) no other task accesses at the same time; with that
// promise, sending it between threads is as safe as sending `&mut [T]`.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for DisjointMut<'_, T> {}
// SAFETY: as above; it is a mutable borrow of a slice of `Send` values.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for DisjointMut<'_, T> {}

impl<'a, T> DisjointMut<'a, T> {
    /// Borrows `s` mutably for the lifetime of this value.
    pub fn new(s: &'a mut [T]) -> Self {
        Self {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// A mutable view of `r`. Panics (a bug, not an input error) when `r` is
    /// out of bounds.
    ///
    /// # Safety
    /// While the returned slice lives, no other slice obtained from this value
    /// may overlap `r`.
    #[allow(unsafe_code)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.len);
        let start = self.ptr.wrapping_add(r.start);
        // SAFETY: `r` lies inside the borrowed slice (asserted above), so
        // `start` is valid for `r.len()` elements, and the caller guarantees
        // no overlapping view is alive.
        unsafe { core::slice::from_raw_parts_mut(start, r.end - r.start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every task once, in reverse order, on the calling thread.
    use crate::testutil::Backwards;

    #[test]
    fn split_covers_everything_in_quanta() {
        for threads in [1, 2, 3, 8, 1 << 30, usize::MAX / 3, usize::MAX] {
            for n in [0usize, 1, 31, 32, 100, 4096, 32000] {
                let (tasks, per) = split(&Backwards(threads), n, 16, 32);
                assert!(tasks * per >= n);
                if tasks > 0 {
                    assert!((tasks - 1) * per < n);
                }
                if tasks > 1 {
                    assert_eq!(per % 16, 0);
                }
            }
        }
    }

    #[test]
    fn disjoint_writes() {
        let mut v = [0u32; 100];
        let d = DisjointMut::new(&mut v);
        Backwards(4).run(10, &|t| {
            // SAFETY: task t owns indices t*10..t*10+10 only.
            #[allow(unsafe_code)]
            let s = unsafe { d.range(t * 10..t * 10 + 10) };
            for (i, x) in s.iter_mut().enumerate() {
                *x = (t * 10 + i) as u32;
            }
        });
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x as usize, i);
        }
    }
}
