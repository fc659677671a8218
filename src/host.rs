//! Conveniences for hosted (`std`) programs: a thread pool that implements
//! [`Parallel`], 64-byte-aligned buffers, and a read-only file map. Built only
//! with the `std` feature (tests, examples, tools); the library proper never
//! uses them.
#![allow(unsafe_code)]

extern crate std;

use crate::parallel::Parallel;
use std::any::Any;
use std::boxed::Box;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::vec::Vec;

/// A zero-filled buffer whose usable part starts on a 64-byte boundary.
pub struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes, 64-byte aligned.
    pub fn new(len: usize) -> Self {
        let raw = std::vec![0u8; len + 64];
        let off = raw.as_ptr().align_offset(64);
        Self { raw, off, len }
    }
    /// The aligned bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }
    /// The aligned bytes for the rest of the process (for an object that
    /// lives as long as the program, such as a model in a `static`).
    pub fn leak(self) -> &'static mut [u8] {
        let (off, len) = (self.off, self.len);
        &mut self.raw.leak()[off..off + len]
    }
}

/// The bytes of a file, mapped read-only where the platform allows it (so a
/// large model costs no copy), else read into memory.
pub struct FileBytes {
    #[cfg(unix)]
    map: Option<(*mut core::ffi::c_void, usize, usize)>,
    buf: Vec<u8>,
}

#[cfg(unix)]
mod sys {
    use core::ffi::{c_int, c_long, c_void};
    extern "C" {
        pub fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: c_long,
        ) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
        pub fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    pub const PROT_READ: c_int = 1;
    pub const PROT_WRITE: c_int = 2;
    pub const MAP_PRIVATE: c_int = 2;
    pub const MAP_ANONYMOUS: c_int = 0x20;
    pub const MADV_HUGEPAGE: c_int = 14;
}

impl FileBytes {
    /// Maps (or reads) the file at `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let f = std::fs::File::open(path)?;
            let len = f.metadata()?.len() as usize;
            if len > 0 {
                // SAFETY: mapping a file we opened for reading, PROT_READ and
                // MAP_PRIVATE; the result is checked against MAP_FAILED (-1).
                let p = unsafe {
                    sys::mmap(
                        core::ptr::null_mut(),
                        len,
                        sys::PROT_READ,
                        sys::MAP_PRIVATE,
                        f.as_raw_fd(),
                        0,
                    )
                };
                if p as isize != -1 {
                    return Ok(Self {
                        map: Some((p, len, len)),
                        buf: Vec::new(),
                    });
                }
            }
        }
        Ok(Self {
            #[cfg(unix)]
            map: None,
            buf: std::fs::read(path)?,
        })
    }
    /// Reads the file into fresh anonymous memory that the kernel is asked
    /// to back with 2 MiB pages (Linux `MADV_HUGEPAGE`; elsewhere, or if
    /// that fails, an ordinary read). Costs a copy and the file's size in
    /// RAM, but a token's pass over the weights then misses the TLB 512
    /// times less often than over a 4 KiB-page file mapping.
    pub fn open_huge(path: &std::path::Path) -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path)?;
            let len = f.metadata()?.len() as usize;
            let big = len.div_ceil(1 << 21) << 21;
            if len > 0 {
                // SAFETY: an anonymous private mapping; the result is checked
                // against MAP_FAILED (-1).
                let p = unsafe {
                    sys::mmap(
                        core::ptr::null_mut(),
                        big,
                        sys::PROT_READ | sys::PROT_WRITE,
                        sys::MAP_PRIVATE | sys::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if p as isize != -1 {
                    // Only advice: without huge pages the memory still works.
                    // SAFETY: advice over our own mapping of `big` bytes.
                    let _ = unsafe { sys::madvise(p, big, sys::MADV_HUGEPAGE) };
                    let me = Self {
                        map: Some((p, big, len)),
                        buf: Vec::new(),
                    };
                    // SAFETY: the mapping has `big >= len` writable bytes and
                    // nothing else refers to it yet.
                    let dst = unsafe { core::slice::from_raw_parts_mut(p as *mut u8, len) };
                    f.read_exact(dst)?;
                    return Ok(me);
                }
            }
        }
        Self::open(path)
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        #[cfg(unix)]
        if let Some((p, _, len)) = self.map {
            // SAFETY: a live mapping of at least `len` bytes, unmapped only
            // in drop.
            return unsafe { core::slice::from_raw_parts(p as *const u8, len) };
        }
        &self.buf
    }
}

impl Drop for FileBytes {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some((p, len, _)) = self.map.take() {
            // SAFETY: unmapping the mapping made in `open`, no longer borrowed
            // (`bytes` borrows `self`).
            unsafe { sys::munmap(p, len) };
        }
    }
}

type Task = dyn Fn(usize) + Sync;

struct State {
    generation: u64,
    task: Option<*const Task>,
    n_tasks: usize,
    finished: usize,
    shutdown: bool,
    /// The first panic of a worker's task in this generation, for `run` to
    /// raise on the calling thread.
    panic: Option<Box<dyn Any + Send>>,
}

// SAFETY: the task pointer is only dereferenced while `run` keeps the task
// alive (it waits for every worker to finish the generation).
unsafe impl Send for State {}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    next: AtomicUsize,
    /// Mirrors of `State::generation` and `State::finished`, so that a
    /// worker or the caller can spin on them briefly before sleeping: a
    /// decode makes hundreds of short `run` calls, and a condition-variable
    /// wake-up costs more than many of them.
    generation: AtomicU64,
    finished: AtomicUsize,
}

/// Spins before sleeping: about 50 µs.
const SPINS: usize = 1 << 14;

/// A fixed set of worker threads; `run` also works on the calling thread.
/// Several threads may share one pool: their `run` calls take turns.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held for the whole of a `run`: one job at a time, because the
    /// workers and the job slot serve one job (and the job's lifetime is
    /// erased on the promise that `run` outlives it).
    turn: Mutex<()>,
}

impl ThreadPool {
    /// A pool that runs tasks on `threads` threads in all (the caller's and
    /// `threads - 1` workers).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                task: None,
                n_tasks: 0,
                finished: 0,
                shutdown: false,
                panic: None,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
        });
        let workers = (1..threads.max(1))
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || worker(&s))
            })
            .collect();
        Self {
            shared,
            workers,
            turn: Mutex::new(()),
        }
    }
}

fn drain(s: &Shared, task: &(dyn Fn(usize) + Sync), n: usize) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        task(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        for _ in 0..SPINS {
            if s.generation.load(Ordering::Acquire) != seen {
                break;
            }
            core::hint::spin_loop();
        }
        let (task, n) = {
            let mut st = s.state.lock().unwrap();
            while st.generation == seen && !st.shutdown {
                st = s.work.wait(st).unwrap();
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            (st.task, st.n_tasks)
        };
        let mut panic = None;
        if let Some(t) = task {
            // SAFETY: `run` keeps the task alive until every worker has
            // reported this generation finished, which happens below (after
            // a panic too: it is caught here).
            let t = unsafe { &*t };
            panic = catch_unwind(AssertUnwindSafe(|| drain(s, t, n))).err();
        }
        let mut st = s.state.lock().unwrap();
        if st.panic.is_none() {
            st.panic = panic;
        }
        st.finished += 1;
        s.finished.fetch_add(1, Ordering::Release);
        s.done.notify_all();
    }
}

// SAFETY: tasks are handed out by one counter, so each index below `n_tasks`
// runs once; `run` returns or unwinds only after every worker has reported
// the generation finished (a task's panic, on any thread, is caught first
// and raised again after that wait).
unsafe impl Parallel for ThreadPool {
    fn threads(&self) -> usize {
        self.workers.len() + 1
    }
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || n_tasks <= 1 {
            for i in 0..n_tasks {
                task(i);
            }
            return;
        }
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let ptr: *const Task =
            // SAFETY: lifetime erasure only; workers use the pointer until they
            // report the generation finished, and we wait for that below.
            unsafe { core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Task>(task) };
        {
            let mut st = s.state.lock().unwrap();
            s.next.store(0, Ordering::Relaxed);
            st.task = Some(ptr);
            st.n_tasks = n_tasks;
            st.finished = 0;
            s.finished.store(0, Ordering::Relaxed);
            st.generation += 1;
            s.generation.store(st.generation, Ordering::Release);
            s.work.notify_all();
        }
        // A panic here must not leave before the workers are done with the
        // task (they hold its address): caught, and raised after the wait.
        let mine = catch_unwind(AssertUnwindSafe(|| drain(s, task, n_tasks))).err();
        for _ in 0..SPINS {
            if s.finished.load(Ordering::Acquire) >= self.workers.len() {
                break;
            }
            core::hint::spin_loop();
        }
        let mut st = s.state.lock().unwrap();
        while st.finished < self.workers.len() {
            st = s.done.wait(st).unwrap();
        }
        st.task = None;
        let theirs = st.panic.take();
        drop(st);
        if let Some(p) = mine.or(theirs) {
            resume_unwind(p);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().shutdown = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Boxed so that a pool can be chosen at run time.
pub fn pool_or_inline(threads: usize) -> Box<dyn Parallel> {
    if threads <= 1 {
        Box::new(crate::parallel::Inline)
    } else {
        Box::new(ThreadPool::new(threads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A task's panic, on the calling thread or a worker's, reaches the
    /// caller of `run`, and only once no task runs any more (the workers
    /// hold the task's address); the pool works on afterwards. (Before,
    /// the caller unwound while the workers went on calling the dead
    /// closure, and a worker's panic made `run` wait forever.)
    #[test]
    fn a_task_panic_is_raised_once_every_task_has_stopped() {
        let pool = ThreadPool::new(2);
        for which in 0..3 {
            let done = AtomicUsize::new(0);
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(12, &|i| {
                    std::thread::sleep(Duration::from_millis(1));
                    if i % 4 == which {
                        panic!("task {i} fails on purpose");
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            }));
            assert!(r.is_err());
            let seen = done.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(
                done.load(Ordering::SeqCst),
                seen,
                "a task ran after run returned"
            );
        }
        let sum = AtomicUsize::new(0);
        pool.run(100, &|i| {
            sum.fetch_add(i, Ordering::SeqCst);
        });
        assert_eq!(sum.load(Ordering::SeqCst), 4950);
    }

    #[test]
    fn any_thread_count_hint_is_split_safely() {
        struct Huge;
        // SAFETY: every task once, in order, on the calling thread.
        unsafe impl Parallel for Huge {
            fn threads(&self) -> usize {
                usize::MAX
            }
            fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
                (0..n).for_each(task);
            }
        }
        let (n, per) = crate::parallel::split(&Huge, 1000, 16, 32);
        assert!(n * per >= 1000 && per >= 32);
    }
}
