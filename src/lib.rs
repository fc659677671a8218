//! nanollama: a `no_std` LLaMA inference library over caller-provided memory.
//!
//! Data flows one way: GGUF bytes ([`gguf`]) → model view ([`model`]) →
//! block forward ([`block`]) inside a conversation ([`context`]) → logits.
//! Nothing here allocates: every object has a size query and an `init` over
//! bytes the caller owns, and weights are read in place from the GGUF bytes.
//! No thread is started: large steps are split into tasks that the host runs
//! through a [`parallel::Parallel`] implementation (in C, a `parallel_for`
//! callback).
//!
//! The C ABI lives in [`ffi`] only; the rest of the crate knows nothing of C.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::missing_safety_doc
)]

pub mod block;
pub mod blocks;
pub mod chat;
pub mod context;
pub mod conversation;
mod cost;
pub mod error;
pub mod ffi;
pub mod gguf;
pub mod grammar;
#[cfg(feature = "std")]
pub mod host;
pub mod kernels;
pub mod model;
pub mod parallel;
pub mod pretokenize;
pub mod quant;
pub mod sampler;
pub mod simd;
pub mod state;
pub mod tokenizer;
#[rustfmt::skip]
mod unicode_tables;
#[cfg(test)]
mod testutil;

pub use context::{Batch, BatchParams, Context, ContextParams, KvType};
pub use error::{Error, Result};
pub use gguf::Gguf;
pub use model::{Arch, Config, Model, RopeScaling, RopeScalingType};
pub use parallel::{Inline, Parallel};
pub use quant::WeightType;
pub use sampler::{Sampler, SamplerParams, Stage};

/// `core` is precompiled with unwinding tables that name this symbol; with
/// `panic = "abort"` nothing ever calls it, but a C linker still wants it
/// defined when the static library is linked without LTO. (With `std`,
/// std defines it.)
#[cfg(not(any(feature = "std", test)))]
#[allow(unsafe_code)] // `no_mangle` counts as unsafe: the name is unique here.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// Panics are unreachable by design (every index from a file or a caller is
/// checked first); should one happen anyway in a `no_std` build, stop the
/// process rather than unwind across the C boundary.
#[cfg(not(any(feature = "std", test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    #[cfg(not(target_os = "none"))]
    {
        extern "C" {
            fn abort() -> !;
        }
        // SAFETY: libc's abort takes no arguments and never returns; every
        // hosted target this crate builds for links a C library.
        #[allow(unsafe_code)]
        unsafe {
            abort()
        }
    }
    #[cfg(target_os = "none")]
    loop {
        core::hint::spin_loop();
    }
}
