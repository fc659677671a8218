//! The C ABI: the only `extern "C"` items of the crate.
//!
//! Every pointer, length, alignment and enum value that comes from C is
//! checked here before the core sees it; errors come back as
//! [`nanollama_status`] codes. This module knows nothing of the arithmetic.
//!
//! Objects live in caller memory: ask `*_size`, provide that many bytes
//! aligned to 64, call `*_init`. There is no `_free`: the memory may be
//! released once the object is no longer used (and, for a model, once no
//! context made from it is used).
#![allow(non_camel_case_types)]
#![allow(unsafe_code)]

use core::ffi::{c_char, c_void};
use core::mem::{align_of, offset_of, size_of};

use crate::chat::Message;
use crate::context::{Batch, BatchParams, Context, ContextParams, KvType};
use crate::error::Error;
use crate::model::{Model, ALIGN};
use crate::parallel::Parallel;
use crate::sampler::{LogitBias, Sampler, SamplerParams, Stage, MAX_STAGES};
use crate::tokenizer::{AddTokens, StreamDecoder, Vocab, VocabKind};

/// The ABI this library implements. It grows by one whenever a change
/// could break a program built against an older header; it is the major
/// number of the shared library's soname (`libnanollama.so.1`).
pub const NANOLLAMA_ABI_VERSION: u32 = 1;

/// Status of a call: a fixed-width integer, 0 for success. Values are only
/// ever appended (`nanollama_status_str` names them all).
pub type nanollama_status = u32;

/// Success.
pub const NANOLLAMA_STATUS_OK: nanollama_status = 0;

/// A required pointer argument was NULL.
pub const NANOLLAMA_STATUS_NULL_POINTER: nanollama_status = 1;

/// An argument is out of its documented range (an unknown enum value, a
/// position past the current one, an empty batch).
pub const NANOLLAMA_STATUS_INVALID_ARGUMENT: nanollama_status = 2;

/// A buffer is smaller than its size query asked for.
pub const NANOLLAMA_STATUS_BUFFER_TOO_SMALL: nanollama_status = 3;

/// A buffer does not start on a 64-byte boundary.
pub const NANOLLAMA_STATUS_MISALIGNED: nanollama_status = 4;

/// The GGUF bytes end inside a header, key, value or tensor record.
pub const NANOLLAMA_STATUS_GGUF_TRUNCATED: nanollama_status = 5;

/// The bytes do not start with the GGUF magic.
pub const NANOLLAMA_STATUS_GGUF_BAD_MAGIC: nanollama_status = 6;

/// The GGUF version is not 2 or 3.
pub const NANOLLAMA_STATUS_GGUF_UNSUPPORTED_VERSION: nanollama_status = 7;

/// A tensor, metadata or array count is larger than the file can hold.
pub const NANOLLAMA_STATUS_GGUF_COUNT_TOO_LARGE: nanollama_status = 8;

/// A string length runs past the end of the file.
pub const NANOLLAMA_STATUS_GGUF_STRING_PAST_END: nanollama_status = 9;

/// A tensor's data offset or size runs past the end of the file.
pub const NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END: nanollama_status = 10;

/// A tensor's dimensions are zero, too many, not whole blocks, or overflow.
pub const NANOLLAMA_STATUS_GGUF_BAD_DIMENSIONS: nanollama_status = 11;

/// `general.alignment` is invalid or a tensor offset is not a multiple of it.
pub const NANOLLAMA_STATUS_GGUF_DATA_MISALIGNED: nanollama_status = 12;

/// An unknown metadata value type or tensor type id.
pub const NANOLLAMA_STATUS_GGUF_UNKNOWN_TYPE: nanollama_status = 13;

/// A metadata value has the wrong type for its key, or arrays are nested.
pub const NANOLLAMA_STATUS_GGUF_BAD_METADATA: nanollama_status = 14;

/// `general.architecture` is missing or not `llama` or `qwen2`.
pub const NANOLLAMA_STATUS_UNSUPPORTED_ARCHITECTURE: nanollama_status = 15;

/// A tensor is stored in a type this build does not implement.
pub const NANOLLAMA_STATUS_UNSUPPORTED_TENSOR_TYPE: nanollama_status = 16;

/// A required hyper-parameter key is missing.
pub const NANOLLAMA_STATUS_MISSING_KEY: nanollama_status = 17;

/// Hyper-parameters are inconsistent or out of range.
pub const NANOLLAMA_STATUS_BAD_HYPERPARAMETERS: nanollama_status = 18;

/// A required tensor is missing.
pub const NANOLLAMA_STATUS_MISSING_TENSOR: nanollama_status = 19;

/// A tensor's shape does not match the hyper-parameters.
pub const NANOLLAMA_STATUS_TENSOR_SHAPE: nanollama_status = 20;

/// Two tensors have the same name.
pub const NANOLLAMA_STATUS_DUPLICATE_TENSOR: nanollama_status = 21;

/// A token id is negative or not below the vocabulary size.
pub const NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE: nanollama_status = 22;

/// The batch would pass the end of the context (`n_ctx`).
pub const NANOLLAMA_STATUS_CONTEXT_FULL: nanollama_status = 23;

/// The batch has more tokens than the context's `n_batch`.
pub const NANOLLAMA_STATUS_BATCH_TOO_LARGE: nanollama_status = 24;

/// No token has a finite logit (all NaN or -infinity): nothing to sample.
pub const NANOLLAMA_STATUS_NO_CANDIDATES: nanollama_status = 25;

/// The file has no vocabulary, or one of a kind this build cannot encode.
pub const NANOLLAMA_STATUS_UNSUPPORTED_TOKENIZER: nanollama_status = 26;

/// A saved state is for another model, or for settings this context or
/// sampler cannot hold (KV type, vocabulary, position past n_ctx, longer
/// penalty history).
pub const NANOLLAMA_STATUS_STATE_MISMATCH: nanollama_status = 27;

/// A saved state is truncated, corrupted, or not a state of this kind.
pub const NANOLLAMA_STATUS_STATE_CORRUPT: nanollama_status = 28;

/// A tensor's data starts before the end of the tensor listed before it
/// (data must lie in table order, without overlap).
pub const NANOLLAMA_STATUS_GGUF_TENSOR_OVERLAP: nanollama_status = 29;

/// The file asks for a RoPE scaling type or parameters not computed here
/// (computed: plain, `linear`, `yarn` with llama.cpp's parameters, and
/// `rope_freqs` factors; refused: `longrope` and other types, other
/// YaRN parameters, factors that are not finite and positive).
pub const NANOLLAMA_STATUS_UNSUPPORTED_ROPE_SCALING: nanollama_status = 30;

/// The file describes a mixture of experts (`expert_count` above zero,
/// router or expert tensors).
pub const NANOLLAMA_STATUS_UNSUPPORTED_EXPERTS: nanollama_status = 31;

/// The file asks for attention or final logit soft-capping.
pub const NANOLLAMA_STATUS_UNSUPPORTED_SOFTCAP: nanollama_status = 32;

/// The file has a tensor the engine would not use (a bias the
/// architecture does not have, an extra tensor in a block).
pub const NANOLLAMA_STATUS_UNEXPECTED_TENSOR: nanollama_status = 33;

/// The file asks for an attention, logit, embedding or residual scale, a
/// sliding window, non-causal attention or another block variant the
/// engine does not compute.
pub const NANOLLAMA_STATUS_UNSUPPORTED_HYPERPARAMETER: nanollama_status = 34;

/// A struct's `size` field is below the smallest this ABI accepts, above
/// 4096, or it covers fields this library does not know that are not zero.
pub const NANOLLAMA_STATUS_BAD_STRUCT_SIZE: nanollama_status = 35;

/// A chat template that is neither a built-in name
/// (`nanollama_chat_builtin_template`) nor a template string recognised
/// as one of them.
pub const NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE: nanollama_status = 36;

/// A context in one `nanollama_decode_many` call runs another model than
/// the batch.
pub const NANOLLAMA_STATUS_MODEL_MISMATCH: nanollama_status = 37;

/// The same context twice in one `nanollama_decode_many` call.
pub const NANOLLAMA_STATUS_DUPLICATE_CONTEXT: nanollama_status = 38;

/// A GBNF grammar that does not parse.
pub const NANOLLAMA_STATUS_GRAMMAR_SYNTAX: nanollama_status = 39;

/// A grammar that uses a rule it never defines, or has no `root`.
pub const NANOLLAMA_STATUS_GRAMMAR_UNDEFINED_RULE: nanollama_status = 40;

/// A grammar with a left-recursive rule.
pub const NANOLLAMA_STATUS_GRAMMAR_LEFT_RECURSION: nanollama_status = 41;

/// A grammar past a documented limit (repetitions, nesting, size).
pub const NANOLLAMA_STATUS_GRAMMAR_LIMIT: nanollama_status = 42;

impl From<Error> for nanollama_status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument => NANOLLAMA_STATUS_INVALID_ARGUMENT,
            Error::BufferTooSmall => NANOLLAMA_STATUS_BUFFER_TOO_SMALL,
            Error::Misaligned => NANOLLAMA_STATUS_MISALIGNED,
            Error::Truncated => NANOLLAMA_STATUS_GGUF_TRUNCATED,
            Error::BadMagic => NANOLLAMA_STATUS_GGUF_BAD_MAGIC,
            Error::UnsupportedVersion => NANOLLAMA_STATUS_GGUF_UNSUPPORTED_VERSION,
            Error::CountTooLarge => NANOLLAMA_STATUS_GGUF_COUNT_TOO_LARGE,
            Error::StringPastEnd => NANOLLAMA_STATUS_GGUF_STRING_PAST_END,
            Error::TensorPastEnd => NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END,
            Error::BadDimensions => NANOLLAMA_STATUS_GGUF_BAD_DIMENSIONS,
            Error::DataMisaligned => NANOLLAMA_STATUS_GGUF_DATA_MISALIGNED,
            Error::UnknownType => NANOLLAMA_STATUS_GGUF_UNKNOWN_TYPE,
            Error::BadMetadata => NANOLLAMA_STATUS_GGUF_BAD_METADATA,
            Error::UnsupportedArchitecture => NANOLLAMA_STATUS_UNSUPPORTED_ARCHITECTURE,
            Error::UnsupportedTensorType => NANOLLAMA_STATUS_UNSUPPORTED_TENSOR_TYPE,
            Error::MissingKey => NANOLLAMA_STATUS_MISSING_KEY,
            Error::BadHyperparameters => NANOLLAMA_STATUS_BAD_HYPERPARAMETERS,
            Error::MissingTensor => NANOLLAMA_STATUS_MISSING_TENSOR,
            Error::TensorShape => NANOLLAMA_STATUS_TENSOR_SHAPE,
            Error::DuplicateTensor => NANOLLAMA_STATUS_DUPLICATE_TENSOR,
            Error::TokenOutOfRange => NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE,
            Error::ContextFull => NANOLLAMA_STATUS_CONTEXT_FULL,
            Error::BatchTooLarge => NANOLLAMA_STATUS_BATCH_TOO_LARGE,
            Error::NoCandidates => NANOLLAMA_STATUS_NO_CANDIDATES,
            Error::UnsupportedTokenizer => NANOLLAMA_STATUS_UNSUPPORTED_TOKENIZER,
            Error::StateMismatch => NANOLLAMA_STATUS_STATE_MISMATCH,
            Error::StateCorrupt => NANOLLAMA_STATUS_STATE_CORRUPT,
            Error::TensorOverlap => NANOLLAMA_STATUS_GGUF_TENSOR_OVERLAP,
            Error::UnsupportedRopeScaling => NANOLLAMA_STATUS_UNSUPPORTED_ROPE_SCALING,
            Error::UnsupportedExperts => NANOLLAMA_STATUS_UNSUPPORTED_EXPERTS,
            Error::UnsupportedSoftcap => NANOLLAMA_STATUS_UNSUPPORTED_SOFTCAP,
            Error::UnexpectedTensor => NANOLLAMA_STATUS_UNEXPECTED_TENSOR,
            Error::UnsupportedHyperparameter => NANOLLAMA_STATUS_UNSUPPORTED_HYPERPARAMETER,
            Error::UnsupportedTemplate => NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE,
            Error::ModelMismatch => NANOLLAMA_STATUS_MODEL_MISMATCH,
            Error::DuplicateContext => NANOLLAMA_STATUS_DUPLICATE_CONTEXT,
            Error::GrammarSyntax => NANOLLAMA_STATUS_GRAMMAR_SYNTAX,
            Error::GrammarUndefinedRule => NANOLLAMA_STATUS_GRAMMAR_UNDEFINED_RULE,
            Error::GrammarLeftRecursion => NANOLLAMA_STATUS_GRAMMAR_LEFT_RECURSION,
            Error::GrammarLimit => NANOLLAMA_STATUS_GRAMMAR_LIMIT,
        }
    }
}

/// Turns a `Result` into a status.
fn status(r: crate::Result<()>) -> nanollama_status {
    match r {
        Ok(()) => NANOLLAMA_STATUS_OK,
        Err(e) => e.into(),
    }
}

/// A static, NUL-terminated description of `status` (a `nanollama_status`
/// value, passed as an integer so that any value is safe); "unknown status"
/// for values this library does not define. Never NULL; thread-safe.
#[no_mangle]
pub extern "C" fn nanollama_status_str(status: nanollama_status) -> *const c_char {
    let s = match status {
        0 => c"ok",
        1 => c"NULL pointer argument",
        NANOLLAMA_STATUS_BAD_STRUCT_SIZE => {
            c"struct size field out of range, or unknown fields set"
        }
        _ => match Error::from_code(status) {
            Some(e) => e.c_message(),
            None => c"unknown status",
        },
    };
    s.as_ptr()
}

/// A loaded model (opaque). Read-only after `nanollama_model_init`: any number
/// of contexts on any threads may use it at once.
pub struct nanollama_model {
    _private: [u8; 0],
}

/// One conversation (opaque). Use from one thread at a time.
pub struct nanollama_context {
    _private: [u8; 0],
}

/// A task the library hands to the host: run `fn(task_data, i)`.
pub type nanollama_task_fn = Option<unsafe extern "C" fn(task_data: *mut c_void, task_index: u32)>;

/// The host's parallel-for: call `fn(task_data, i)` once for every `i` in
/// `0..n_tasks`, on any threads and in any order, and return when all calls
/// have returned. `fn` is never NULL. Calling an index twice, or returning
/// early, is undefined behaviour (tasks write disjoint parts of shared
/// buffers); an index out of range is ignored.
pub type nanollama_parallel_for_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        fn_: nanollama_task_fn,
        task_data: *mut c_void,
        n_tasks: u32,
    ),
>;

/// Element type of the KV cache (`nanollama_context_params.kv_type`).
pub type nanollama_kv_type = u32;
/// 4 bytes per element.
pub const NANOLLAMA_KV_TYPE_F32: nanollama_kv_type = 0;
/// 2 bytes per element (the default).
pub const NANOLLAMA_KV_TYPE_F16: nanollama_kv_type = 1;

/// A token id: `0..n_vocab`; [`NANOLLAMA_TOKEN_NULL`] (-1) stands for none
/// where a call reports a token the file may not have.
pub type nanollama_token = i32;
/// No token.
pub const NANOLLAMA_TOKEN_NULL: nanollama_token = -1;

/// Settings of a context. Fill with `nanollama_context_params_default`
/// (which sets `size`), then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_context_params {
    /// Bytes of this struct as the caller's header declares it.
    pub size: u32,
    /// Positions the KV cache holds; 0 = the model's training context length.
    pub n_ctx: u32,
    /// Most tokens one decode call may take; 0 = min(512, n_ctx). Clamped to
    /// n_ctx (`nanollama_context_get_info` tells the value chosen).
    pub n_batch: u32,
    /// A `nanollama_kv_type` value.
    pub kv_type: nanollama_kv_type,
    /// Keep the logits of every token of a batch (else only of the last).
    pub logits_all: bool,
    /// Keep matrix-product inputs in f32 (slower, closer to exact). false (the
    /// default): convert them as llama.cpp does (Q8_0 blocks for Q8_0
    /// weights, f16 for F16, bf16 for BF16), so results match llama.cpp's.
    pub f32_activations: bool,
    /// Zero.
    pub _reserved: [u8; 2],
    /// Threads `parallel_for` spreads tasks over (a hint for how finely to
    /// split work); 0 is taken as 1.
    pub n_threads: u32,
    /// The host's parallel-for, or NULL to run every task on the calling thread.
    pub parallel_for: nanollama_parallel_for_fn,
    /// Passed to `parallel_for` as `user_data`.
    pub parallel_user_data: *mut c_void,
}

// SAFETY: all-zero bytes are a valid value (false, NULL, None, 0), and the
// listed offsets are its only bools.
unsafe impl AbiStruct for nanollama_context_params {
    const BOOLS: &'static [usize] = &[
        offset_of!(nanollama_context_params, logits_all),
        offset_of!(nanollama_context_params, f32_activations),
    ];
}

/// What a context chose from its params (`nanollama_context_get_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nanollama_context_info {
    /// Bytes of this struct the library filled.
    pub size: u32,
    /// Positions the KV cache holds.
    pub n_ctx: u32,
    /// Most tokens one decode call takes.
    pub n_batch: u32,
    /// A `nanollama_kv_type` value.
    pub kv_type: nanollama_kv_type,
    /// The thread hint (at least 1).
    pub n_threads: u32,
    pub logits_all: bool,
    pub f32_activations: bool,
    /// Zero.
    pub _reserved: [u8; 2],
}

// SAFETY: as for `nanollama_context_params`.
unsafe impl AbiStruct for nanollama_context_info {
    const BOOLS: &'static [usize] = &[
        offset_of!(nanollama_context_info, logits_all),
        offset_of!(nanollama_context_info, f32_activations),
    ];
}

/// Hyper-parameters and storage of a loaded model.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nanollama_model_info {
    /// Bytes of this struct the library filled.
    pub size: u32,
    pub n_vocab: u32,
    pub dim: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub ffn_dim: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Dimensions rotated by RoPE per head.
    pub rope_dim: u32,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// ggml type id of `token_embd` (0 F32, 1 F16, 8 Q8_0, 30 BF16, ...).
    pub embd_type: u32,
    /// ggml type id of the output matrix.
    pub output_type: u32,
    /// The output matrix is `token_embd` (no `output` tensor).
    pub tied_output: bool,
    /// Zero.
    pub _reserved: [u8; 7],
    /// Bit t set when some tensor the model uses has ggml type id t.
    pub weight_types: u64,
    /// Parameters in the tensors the model uses.
    pub n_params: u64,
    /// Bytes of those tensors.
    pub weight_bytes: u64,
    /// Identity of the model that saved states carry (see
    /// `nanollama_context_state_save`): a hash of the hyper-parameters and
    /// of samples of every tensor.
    pub fingerprint: u64,
}

// SAFETY: all-zero bytes are a valid value; one bool.
unsafe impl AbiStruct for nanollama_model_info {
    const BOOLS: &'static [usize] = &[offset_of!(nanollama_model_info, tied_output)];
}

/// The library's version and the ABI it implements (`nanollama_version`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_version_info {
    /// Bytes of this struct the library has: read a field only when `size`
    /// covers it.
    pub size: u32,
    /// The ABI implemented (`NANOLLAMA_ABI_VERSION` of its header).
    pub abi: u32,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// Zero.
    pub _reserved: u32,
    /// "major.minor.patch", NUL-terminated, static.
    pub text: *const c_char,
}

/// The library version (of the crate) as the header's constants.
pub const NANOLLAMA_VERSION_MAJOR: u32 = 0;
pub const NANOLLAMA_VERSION_MINOR: u32 = 1;
pub const NANOLLAMA_VERSION_PATCH: u32 = 0;

struct StaticVersion(nanollama_version_info);
// SAFETY: read-only, and `text` points at a static string.
unsafe impl Sync for StaticVersion {}

static VERSION: StaticVersion = StaticVersion(nanollama_version_info {
    size: size_of::<nanollama_version_info>() as u32,
    abi: NANOLLAMA_ABI_VERSION,
    major: NANOLLAMA_VERSION_MAJOR,
    minor: NANOLLAMA_VERSION_MINOR,
    patch: NANOLLAMA_VERSION_PATCH,
    _reserved: 0,
    text: c"0.1.0".as_ptr(),
});

/// The library's version and ABI version: a static struct, never NULL;
/// thread-safe. A program checks `abi` against the `NANOLLAMA_ABI_VERSION`
/// it was built with before anything else.
#[no_mangle]
pub extern "C" fn nanollama_version() -> *const nanollama_version_info {
    &VERSION.0
}

/// A struct of the ABI: it begins with `size: u32` (the bytes the caller's
/// header declares), grows only by appending fields whose zero means "the
/// default", and is read and written through [`read_in`] and [`write_out`].
///
/// # Safety
/// All-zero bytes must be a valid value, the struct must begin with its
/// `u32` size, and `BOOLS` must list the offset of every `bool` in it.
unsafe trait AbiStruct: Copy {
    const BOOLS: &'static [usize];
    /// The smallest `size` accepted: the struct of ABI 1, all of it.
    const MIN: usize = size_of::<Self>();
}

/// Largest `size` a struct may claim.
const MAX_STRUCT: usize = 4096;

/// Reads a struct the caller filled: `size` between `T::MIN` and 4096, the
/// bytes past what this library knows zero (unknown fields at their
/// default), bools taken as false when zero and true otherwise (C cannot
/// hand Rust a bool that is neither).
///
/// # Safety
/// `p` NULL or readable for its `size` bytes.
unsafe fn read_in<T: AbiStruct>(p: *const T) -> Result<T, nanollama_status> {
    if p.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: non-NULL, readable, and it begins with its u32 size (contract).
    let size = unsafe { (p as *const u32).read() } as usize;
    if !(T::MIN..=MAX_STRUCT).contains(&size) {
        return Err(NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    }
    let known = size_of::<T>();
    let src = p as *const u8;
    for i in known..size {
        // SAFETY: i < size, readable (contract).
        if unsafe { src.wrapping_add(i).read() } != 0 {
            return Err(NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
        }
    }
    let mut v = core::mem::MaybeUninit::<T>::zeroed();
    let dst = v.as_mut_ptr() as *mut u8;
    // SAFETY: `min(size, known)` bytes are readable at `src` and writable at
    // `dst` (a T); the two do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, size.min(known)) };
    for &off in T::BOOLS {
        let b = dst.wrapping_add(off);
        // SAFETY: `off` is inside T (trait contract), written just above.
        let v = unsafe { b.read() };
        // SAFETY: as above.
        unsafe { b.write((v != 0) as u8) };
    }
    // SAFETY: every byte is initialized (zeroed, then copied), and each bool
    // holds 0 or 1; every other field is valid for any bits (trait contract).
    Ok(unsafe { v.assume_init() })
}

/// Writes defaults `v` to a struct the caller will fill and pass back
/// (params): BAD_STRUCT_SIZE below this ABI's struct; else as
/// [`write_out`], but `size` is set to the caller's `size` (the bytes past
/// what this library knows are zeroed, so a later reader accepts them).
///
/// # Safety
/// `out` NULL or writable for `size` bytes.
unsafe fn write_defaults<T: AbiStruct>(out: *mut T, size: usize, v: T) -> nanollama_status {
    if size < T::MIN {
        return NANOLLAMA_STATUS_BAD_STRUCT_SIZE;
    }
    // SAFETY: caller's contract.
    let st = unsafe { write_out(out, size, v) };
    if st == NANOLLAMA_STATUS_OK {
        // SAFETY: non-NULL (write_out checked), writable (contract); `size`
        // is at most 4096 (write_out checked).
        unsafe { (out as *mut u32).write(size as u32) };
    }
    st
}

/// Writes `v` to a struct of `size` bytes the caller holds: the first
/// `min(size, sizeof T)` bytes, the rest zeroed, and `size` set to the bytes
/// filled. BAD_STRUCT_SIZE for a size below 4 or above 4096.
///
/// # Safety
/// `out` NULL or writable for `size` bytes.
unsafe fn write_out<T: AbiStruct>(out: *mut T, size: usize, v: T) -> nanollama_status {
    if out.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if !(4..=MAX_STRUCT).contains(&size) {
        return NANOLLAMA_STATUS_BAD_STRUCT_SIZE;
    }
    let n = size.min(size_of::<T>());
    let dst = out as *mut u8;
    // SAFETY: `dst` is writable for `size >= n` bytes (contract), `v` is a
    // T of `size_of::<T>() >= n` bytes (copied as bytes: padding included).
    unsafe { core::ptr::copy_nonoverlapping(&v as *const T as *const u8, dst, n) };
    // SAFETY: bytes n..size of the caller's struct (contract).
    unsafe { core::ptr::write_bytes(dst.wrapping_add(n), 0, size - n) };
    // SAFETY: the struct begins with its u32 size (aligned: `out` is a T).
    unsafe { (dst as *mut u32).write(n as u32) };
    NANOLLAMA_STATUS_OK
}

/// The context handle as laid out at the start of the caller's memory
/// (`repr(C)`: the context first, so that an array of handles is an array
/// of context pointers for `nanollama_decode_many`).
#[repr(C)]
struct ContextHandle {
    ctx: Context<'static>,
    par: HostParallel,
}

/// The host's parallel-for as a [`Parallel`].
#[derive(Clone, Copy)]
struct HostParallel {
    f: nanollama_parallel_for_fn,
    user_data: *mut c_void,
    n_threads: u32,
}

// SAFETY: the host promises (documented on `nanollama_context_params`) that
// its parallel-for may be called from the thread that calls decode, and
// `user_data` is only passed back to it.
unsafe impl Sync for HostParallel {}

/// What `HostParallel::run` hands the host: the tasks and their number.
struct Job<'a> {
    task: &'a (dyn Fn(usize) + Sync),
    n_tasks: u32,
}

unsafe extern "C" fn trampoline(task_data: *mut c_void, i: u32) {
    if task_data.is_null() {
        return;
    }
    // SAFETY: `task_data` is the `&Job` that `HostParallel::run` passed,
    // alive until `run` returns, which is after every task has returned.
    let job = unsafe { &*(task_data as *const Job<'_>) };
    // A broken host's index out of range is ignored (the task would index
    // past its buffers, and a panic cannot cross the C boundary).
    if i < job.n_tasks {
        (job.task)(i as usize);
    }
}

// SAFETY: the host's parallel-for promises (documented on
// `nanollama_parallel_for_fn`) to call every index below `n_tasks` once and
// to return after all have returned; indices out of range are ignored above.
unsafe impl Parallel for HostParallel {
    fn threads(&self) -> usize {
        self.n_threads.max(1) as usize
    }
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        match self.f {
            Some(f) if n_tasks > 1 && n_tasks <= u32::MAX as usize => {
                let job = Job {
                    task,
                    n_tasks: n_tasks as u32,
                };
                let data = &job as *const Job<'_> as *mut c_void;
                // SAFETY: `f` is the host's parallel-for; it calls
                // `trampoline(data, i)` for i < n_tasks and returns when done,
                // so `data` outlives every use.
                unsafe { f(self.user_data, Some(trampoline), data, n_tasks as u32) };
            }
            _ => {
                for i in 0..n_tasks {
                    task(i);
                }
            }
        }
    }
}

/// Bytes reserved at the start of an object's memory for its handle.
const fn head<T>() -> usize {
    size_of::<T>().div_ceil(ALIGN) * ALIGN
}
const _: () = assert!(align_of::<Model<'static>>() <= ALIGN);
const _: () = assert!(align_of::<ContextHandle>() <= ALIGN);

/// A byte slice from C; NULL is refused even for length 0.
///
/// # Safety
/// When not NULL, `p` must be valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> Result<&'a [u8], nanollama_status> {
    if p.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    if len > isize::MAX as usize {
        return Err(NANOLLAMA_STATUS_INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL (checked), valid for `len` bytes (caller's contract).
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// Checks a caller memory block and splits off the handle area.
///
/// # Safety
/// When not NULL, `mem` must be valid for writes of `len` bytes for `'a`.
unsafe fn memory<'a, T>(
    mem: *mut c_void,
    len: usize,
) -> Result<(*mut T, &'a mut [u8]), nanollama_status> {
    if mem.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    if !(mem as usize).is_multiple_of(ALIGN) {
        return Err(NANOLLAMA_STATUS_MISALIGNED);
    }
    if len < head::<T>() {
        return Err(NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    }
    if len > isize::MAX as usize {
        return Err(NANOLLAMA_STATUS_INVALID_ARGUMENT);
    }
    let p = mem as *mut u8;
    let tail = p.wrapping_add(head::<T>());
    // SAFETY: `mem` is non-NULL and valid for `len` bytes (caller's
    // contract), and `head::<T>() <= len` (checked above), so `tail` is
    // valid for the remaining `len - head` bytes.
    let rest = unsafe { core::slice::from_raw_parts_mut(tail, len - head::<T>()) };
    Ok((p as *mut T, rest))
}

macro_rules! try_status {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return s.into(),
        }
    };
}

/// Writes to `*out_size` the bytes of caller memory an object needs: its
/// own (`need`, or its error's status) plus the handle's head.
///
/// # Safety
/// `out_size` non-NULL and writable.
unsafe fn write_mem_size<H>(out_size: *mut usize, need: crate::Result<usize>) -> nanollama_status {
    let n = try_status!(need);
    let Some(total) = n.checked_add(head::<H>()) else {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    };
    // SAFETY: non-NULL and writable (contract).
    unsafe { out_size.write(total) };
    NANOLLAMA_STATUS_OK
}

/// Bytes of memory `nanollama_model_init` needs for the GGUF file in
/// `gguf[0..gguf_len]`, written to `*out_size`. Makes every check of the file
/// that `nanollama_model_init` makes (header, hyper-parameters, each
/// tensor's name, type and shape, missing tensors, RoPE factors), with the
/// same status: a bad file, or one asking for arithmetic this build does not
/// do, is reported here already, and a file accepted here is accepted by
/// `nanollama_model_init` given the memory.
///
/// # Safety
/// `gguf` must be readable for `gguf_len` bytes; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_model_size(
    gguf: *const u8,
    gguf_len: usize,
    out_size: *mut usize,
) -> nanollama_status {
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `gguf`.
    let g = try_status!(unsafe { bytes(gguf, gguf_len) });
    let n = try_status!(Model::size(g));
    let Some(total) = n.checked_add(head::<Model<'static>>()) else {
        return NANOLLAMA_STATUS_BAD_HYPERPARAMETERS;
    };
    // SAFETY: non-NULL (checked), writable (caller's contract).
    unsafe { out_size.write(total) };
    NANOLLAMA_STATUS_OK
}

/// Loads the model in `gguf[0..gguf_len]` (a whole GGUF file, for example an
/// mmap) into `mem` (`mem_len >= nanollama_model_size`, 64-byte aligned) and
/// writes the handle to `*out_model`. Weights are read in place: `gguf` and
/// `mem` must stay valid and unchanged while the model or any context made
/// from it is used. On error `*out_model` is left as it was.
///
/// # Safety
/// `gguf` readable for `gguf_len` bytes, `mem` writable for `mem_len` bytes,
/// `out_model` writable; all for as long as documented above.
#[no_mangle]
pub unsafe extern "C" fn nanollama_model_init(
    gguf: *const u8,
    gguf_len: usize,
    mem: *mut c_void,
    mem_len: usize,
    out_model: *mut *const nanollama_model,
) -> nanollama_status {
    if out_model.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `gguf` (it outlives the model).
    let g: &'static [u8] = try_status!(unsafe { bytes(gguf, gguf_len) });
    // SAFETY: caller's contract on `mem` (it outlives the model).
    let (handle, rest) = try_status!(unsafe { memory::<Model<'static>>(mem, mem_len) });
    let model = try_status!(Model::init(g, rest));
    // SAFETY: `handle` is 64-byte aligned and the head area has room for a
    // `Model` (`memory` checked both); nothing else refers to it.
    unsafe { handle.write(model) };
    // SAFETY: `out_model` is non-NULL (checked) and writable (contract).
    unsafe { out_model.write(handle as *const nanollama_model) };
    NANOLLAMA_STATUS_OK
}

/// # Safety
/// `m` must be NULL or a handle from `nanollama_model_init` whose memory is
/// still valid.
unsafe fn model_ref<'a>(m: *const nanollama_model) -> Result<&'a Model<'static>, nanollama_status> {
    if m.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: a model handle points at an initialized `Model` (contract).
    Ok(unsafe { &*(m as *const Model<'static>) })
}

/// Writes the model's hyper-parameters and storage summary to `*out`, a
/// struct of `out_size` bytes (`sizeof *out`): see "ABI" at the top.
///
/// # Safety
/// `model` is a handle from `nanollama_model_init`; `out` writable for
/// `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_model_get_info(
    model: *const nanollama_model,
    out: *mut nanollama_model_info,
    out_size: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let m = try_status!(unsafe { model_ref(model) });
    let i = m.info();
    let c = i.config;
    let info = nanollama_model_info {
        size: 0,
        _reserved: [0; 7],
        n_vocab: c.n_vocab as u32,
        dim: c.dim as u32,
        n_layers: c.n_layers as u32,
        n_heads: c.n_heads as u32,
        n_kv_heads: c.n_kv_heads as u32,
        head_dim: c.head_dim as u32,
        ffn_dim: c.ffn_dim as u32,
        n_ctx_train: c.n_ctx_train as u32,
        rope_dim: c.rope_dim as u32,
        rope_base: c.rope_base,
        rms_eps: c.rms_eps,
        embd_type: i.embd_type as u32,
        output_type: i.output_type as u32,
        tied_output: i.tied_output,
        weight_types: i.weight_types,
        n_params: i.n_params,
        weight_bytes: i.weight_bytes,
        fingerprint: m.fingerprint(),
    };
    // SAFETY: caller's contract.
    unsafe { write_out(out, out_size, info) }
}

/// Fills `*out`, a struct of `out_size` bytes (`sizeof *out`), with the
/// defaults and sets `out->size`: n_ctx 0 (the model's), n_batch 0
/// (min(512, n_ctx)), F16 KV cache, last-token logits only, no parallel_for
/// (inline), 1 thread; bytes past the fields this library knows are
/// zeroed. BAD_STRUCT_SIZE when `out_size` is below this ABI's struct or
/// above 4096.
///
/// # Safety
/// `out` is NULL or writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_params_default(
    out: *mut nanollama_context_params,
    out_size: usize,
) -> nanollama_status {
    let d = ContextParams::default();
    let p = nanollama_context_params {
        size: 0,
        n_ctx: d.n_ctx,
        n_batch: d.n_batch,
        kv_type: d.kv_type as u32,
        logits_all: d.logits_all,
        f32_activations: d.f32_activations,
        _reserved: [0; 2],
        n_threads: 1,
        parallel_for: None,
        parallel_user_data: core::ptr::null_mut(),
    };
    // SAFETY: caller's contract.
    unsafe { write_defaults(out, out_size, p) }
}

/// Validates the C params and converts them.
///
/// # Safety
/// `p` is NULL or readable for its `size` bytes.
unsafe fn params(
    p: *const nanollama_context_params,
) -> Result<(ContextParams, HostParallel), nanollama_status> {
    // SAFETY: caller's contract.
    let p = unsafe { read_in(p) }?;
    let kv_type = match p.kv_type {
        NANOLLAMA_KV_TYPE_F32 => KvType::F32,
        NANOLLAMA_KV_TYPE_F16 => KvType::F16,
        _ => return Err(NANOLLAMA_STATUS_INVALID_ARGUMENT),
    };
    Ok((
        ContextParams {
            n_ctx: p.n_ctx,
            n_batch: p.n_batch,
            kv_type,
            logits_all: p.logits_all,
            f32_activations: p.f32_activations,
        },
        HostParallel {
            f: p.parallel_for,
            user_data: p.parallel_user_data,
            n_threads: p.n_threads,
        },
    ))
}

/// Bytes of memory `nanollama_context_init` needs, written to `*out_size`.
///
/// # Safety
/// `model` a valid handle; `params` readable; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_size(
    model: *const nanollama_model,
    params: *const nanollama_context_params,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let m = try_status!(unsafe { model_ref(model) });
    // SAFETY: caller's contract.
    let (p, _) = try_status!(unsafe { self::params(params) });
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { write_mem_size::<ContextHandle>(out_size, Context::size(m, &p)) }
}

/// Builds a context for `model` in `mem` (`mem_len >=
/// nanollama_context_size`, 64-byte aligned) and writes the handle to
/// `*out_ctx`. `mem` must stay valid while the context is used, and the model
/// must outlive it. Several contexts may share one model. On error `*out_ctx`
/// is left as it was.
///
/// # Safety
/// `model` a valid handle; `params` readable; `mem` writable for `mem_len`
/// bytes; `out_ctx` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_init(
    model: *const nanollama_model,
    params: *const nanollama_context_params,
    mem: *mut c_void,
    mem_len: usize,
    out_ctx: *mut *mut nanollama_context,
) -> nanollama_status {
    // SAFETY: caller's contract (the model outlives the context).
    let m: &'static Model<'static> = try_status!(unsafe { model_ref(model) });
    // SAFETY: caller's contract.
    let (p, par) = try_status!(unsafe { self::params(params) });
    if out_ctx.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `mem` (it outlives the context).
    let (handle, rest) = try_status!(unsafe { memory::<ContextHandle>(mem, mem_len) });
    let ctx = try_status!(Context::init(m, &p, rest));
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(ContextHandle { ctx, par }) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_ctx.write(handle as *mut nanollama_context) };
    NANOLLAMA_STATUS_OK
}

/// # Safety
/// `c` NULL or a handle from `nanollama_context_init`, not used elsewhere now.
unsafe fn ctx_mut<'a>(
    c: *mut nanollama_context,
) -> Result<&'a mut ContextHandle, nanollama_status> {
    if c.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: a context handle points at an initialized `ContextHandle`, used
    // by one thread at a time (contract).
    Ok(unsafe { &mut *(c as *mut ContextHandle) })
}

/// # Safety
/// `c` NULL or a handle from `nanollama_context_init`.
unsafe fn ctx_ref<'a>(c: *const nanollama_context) -> Result<&'a ContextHandle, nanollama_status> {
    if c.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: as in `ctx_mut`.
    Ok(unsafe { &*(c as *const ContextHandle) })
}

/// Writes what the context chose (n_ctx, n_batch after clamping, KV type,
/// ...) to `*out`, a struct of `out_size` bytes (`sizeof *out`).
///
/// # Safety
/// `ctx` a valid handle; `out` writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_get_info(
    ctx: *const nanollama_context,
    out: *mut nanollama_context_info,
    out_size: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_ref(ctx) });
    let c = &h.ctx;
    let info = nanollama_context_info {
        size: 0,
        n_ctx: c.n_ctx() as u32,
        n_batch: c.n_batch() as u32,
        kv_type: match c.kv_type() {
            KvType::F32 => NANOLLAMA_KV_TYPE_F32,
            KvType::F16 => NANOLLAMA_KV_TYPE_F16,
        },
        n_threads: h.par.n_threads.max(1),
        logits_all: c.logits_all(),
        f32_activations: c.f32_activations(),
        _reserved: [0; 2],
    };
    // SAFETY: caller's contract.
    unsafe { write_out(out, out_size, info) }
}

/// Appends `tokens[0..n_tokens]` at the current position and computes logits
/// (see `nanollama_context_logits`). Everything is checked first (a token id
/// negative or not below n_vocab, more than n_batch tokens, a batch that would
/// pass n_ctx, n_tokens 0): on error nothing changes. Large steps are run
/// through the context's parallel_for.
///
/// # Safety
/// `ctx` a valid handle used by no other thread now; `tokens` readable for
/// `n_tokens` values.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_decode(
    ctx: *mut nanollama_context,
    tokens: *const nanollama_token,
    n_tokens: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_mut(ctx) });
    if tokens.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if n_tokens > isize::MAX as usize / 4 {
        return NANOLLAMA_STATUS_BATCH_TOO_LARGE;
    }
    // SAFETY: non-NULL (checked), readable for n_tokens values (contract);
    // `i32` and `u32` have the same layout, and a negative id becomes a value
    // >= 2^31, which decode refuses as out of range.
    let toks = unsafe { core::slice::from_raw_parts(tokens as *const u32, n_tokens) };
    let par = h.par;
    status(h.ctx.decode(toks, &par))
}

/// Points `*out_logits` at the logits of the last decode: `*out_rows` rows of
/// n_vocab floats, one per token of the batch when the context keeps all
/// logits, else one (the last token's). Zero rows before the first decode and
/// after reset or truncate. The pointer stays valid until the next decode,
/// truncate or reset of this context.
///
/// # Safety
/// `ctx` a valid handle; `out_logits` and `out_rows` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_logits(
    ctx: *const nanollama_context,
    out_logits: *mut *const f32,
    out_rows: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_ref(ctx) });
    if out_logits.is_null() || out_rows.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    let l = h.ctx.logits();
    let n_vocab = h.ctx.model().config().n_vocab;
    // SAFETY: both non-NULL (checked), writable (contract).
    unsafe { out_logits.write(l.as_ptr()) };
    // SAFETY: as above.
    unsafe { out_rows.write(l.len() / n_vocab) };
    NANOLLAMA_STATUS_OK
}

/// Writes the number of positions filled to `*out_pos`.
///
/// # Safety
/// `ctx` a valid handle; `out_pos` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_pos(
    ctx: *const nanollama_context,
    out_pos: *mut u32,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_ref(ctx) });
    if out_pos.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract). pos <= n_ctx < 2^24.
    unsafe { out_pos.write(h.ctx.pos() as u32) };
    NANOLLAMA_STATUS_OK
}

/// Rolls the context back to position `pos` (at most the current one;
/// INVALID_ARGUMENT otherwise): later tokens are forgotten, logits cleared.
///
/// # Safety
/// `ctx` a valid handle used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_truncate(
    ctx: *mut nanollama_context,
    pos: u32,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_mut(ctx) });
    status(h.ctx.truncate(pos as usize))
}

/// Forgets every token of the context.
///
/// # Safety
/// `ctx` a valid handle used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_reset(ctx: *mut nanollama_context) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_mut(ctx) });
    h.ctx.reset();
    NANOLLAMA_STATUS_OK
}

/// Row buffers for stepping many contexts of one model with one pass over
/// the weights (`nanollama_decode_many`); opaque. One call at a time.
pub struct nanollama_batch {
    _private: [u8; 0],
}

/// Settings of a batch. Fill with `nanollama_batch_params_default` (which
/// sets `size`), then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_batch_params {
    /// Bytes of this struct as the caller's header declares it.
    pub size: u32,
    /// Most tokens one `nanollama_decode_many` call takes over all its
    /// contexts; 0 = 64. Memory grows with it.
    pub max_tokens: u32,
}

// SAFETY: all-zero bytes are a valid value; no bools.
unsafe impl AbiStruct for nanollama_batch_params {
    const BOOLS: &'static [usize] = &[];
}

const _: () = assert!(align_of::<Batch<'static>>() <= ALIGN);

/// Writes the default batch settings to `*out`, a struct of `out_size`
/// bytes (`sizeof *out`).
///
/// # Safety
/// `out` writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_batch_params_default(
    out: *mut nanollama_batch_params,
    out_size: usize,
) -> nanollama_status {
    let p = nanollama_batch_params {
        size: 0,
        max_tokens: BatchParams::default().max_tokens,
    };
    // SAFETY: caller's contract.
    unsafe { write_defaults(out, out_size, p) }
}

/// # Safety
/// `p` is NULL or readable for its `size` bytes.
unsafe fn batch_params(p: *const nanollama_batch_params) -> Result<BatchParams, nanollama_status> {
    // SAFETY: caller's contract.
    let p = unsafe { read_in(p) }?;
    Ok(BatchParams {
        max_tokens: p.max_tokens,
    })
}

/// Bytes of memory `nanollama_batch_init` needs, written to `*out_size`.
///
/// # Safety
/// `model` a valid handle; `params` readable; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_batch_size(
    model: *const nanollama_model,
    params: *const nanollama_batch_params,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let m = try_status!(unsafe { model_ref(model) });
    // SAFETY: caller's contract.
    let p = try_status!(unsafe { batch_params(params) });
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { write_mem_size::<Batch<'static>>(out_size, Batch::size(m, &p)) }
}

/// Builds a batch for contexts of `model` in `mem` (`mem_len >=
/// nanollama_batch_size`, 64-byte aligned) and writes the handle to
/// `*out_batch`. `mem` must stay valid while the batch is used, and the
/// model must outlive it. On error `*out_batch` is left as it was.
///
/// # Safety
/// `model` a valid handle; `params` readable; `mem` writable for `mem_len`
/// bytes; `out_batch` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_batch_init(
    model: *const nanollama_model,
    params: *const nanollama_batch_params,
    mem: *mut c_void,
    mem_len: usize,
    out_batch: *mut *mut nanollama_batch,
) -> nanollama_status {
    // SAFETY: caller's contract (the model outlives the batch).
    let m: &'static Model<'static> = try_status!(unsafe { model_ref(model) });
    // SAFETY: caller's contract.
    let p = try_status!(unsafe { batch_params(params) });
    if out_batch.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `mem` (it outlives the batch).
    let (handle, rest) = try_status!(unsafe { memory::<Batch<'static>>(mem, mem_len) });
    let b = try_status!(Batch::init(m, &p, rest));
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(b) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_batch.write(handle as *mut nanollama_batch) };
    NANOLLAMA_STATUS_OK
}

/// Appends tokens to each of `ctxs[0..n_ctxs]` and computes their logits
/// with one pass over the weights (many conversations cost little more
/// than one). Context `i` takes the next `n_tokens_each[i]` tokens of
/// `tokens[0..n_tokens]`, or one each when `n_tokens_each` is NULL; each
/// attends over its own cache at its own position. Each context's logits
/// (`nanollama_context_logits`), position and cache end bit for bit as its
/// own `nanollama_context_decode` of the same tokens leaves them. The
/// tasks run through the first context's parallel_for.
///
/// Everything is checked first; on error no context changes: NULL
/// pointers (NULL_POINTER); no contexts, a count of 0, or `n_tokens` not
/// the sum of the counts (INVALID_ARGUMENT); more than the batch's
/// `max_tokens` in all, or more than a context's `n_batch` for it
/// (BATCH_TOO_LARGE); a context of another model (MODEL_MISMATCH); the
/// same context twice (DUPLICATE_CONTEXT); contexts that differ in
/// `f32_activations` (INVALID_ARGUMENT); a bad token id
/// (TOKEN_OUT_OF_RANGE); a context that would pass its n_ctx
/// (CONTEXT_FULL).
///
/// # Safety
/// `batch` a valid handle; `ctxs` readable for `n_ctxs` handles, used by no
/// other thread now; `tokens` readable for `n_tokens` values;
/// `n_tokens_each` NULL or readable for `n_ctxs` values.
#[no_mangle]
pub unsafe extern "C" fn nanollama_decode_many(
    batch: *mut nanollama_batch,
    ctxs: *const *mut nanollama_context,
    n_ctxs: usize,
    tokens: *const nanollama_token,
    n_tokens: usize,
    n_tokens_each: *const u32,
) -> nanollama_status {
    if batch.is_null() || ctxs.is_null() || tokens.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if n_ctxs == 0 || n_ctxs > isize::MAX as usize / 8 {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    if n_tokens > isize::MAX as usize / 4 {
        return NANOLLAMA_STATUS_BATCH_TOO_LARGE;
    }
    for i in 0..n_ctxs {
        // SAFETY: `ctxs` is readable for `n_ctxs` pointers (contract).
        if unsafe { ctxs.wrapping_add(i).read() }.is_null() {
            return NANOLLAMA_STATUS_NULL_POINTER;
        }
    }
    // SAFETY: readable for `n_ctxs` pointers (contract), none NULL (checked);
    // a handle points at a `ContextHandle`, whose first field is its
    // context (`repr(C)`), so each is a `NonNull<Context>`.
    let ptrs = unsafe {
        core::slice::from_raw_parts(ctxs as *const core::ptr::NonNull<Context<'static>>, n_ctxs)
    };
    let n_each = if n_tokens_each.is_null() {
        None
    } else {
        // SAFETY: readable for `n_ctxs` values (contract).
        Some(unsafe { core::slice::from_raw_parts(n_tokens_each, n_ctxs) })
    };
    // SAFETY: readable for `n_tokens` values (contract); `i32` and `u32`
    // have one layout, and a negative id becomes a value >= 2^31, which is
    // refused as out of range.
    let toks = unsafe { core::slice::from_raw_parts(tokens as *const u32, n_tokens) };
    let first = ptrs[0].as_ptr() as *const ContextHandle;
    // SAFETY: a valid handle (contract); the field is copied, no reference
    // into the context is made.
    let par = unsafe { (*first).par };
    // SAFETY: a valid batch handle, used by this thread alone (contract).
    let b = unsafe { &mut *(batch as *mut Batch<'static>) };
    // SAFETY: every pointer is a valid context used by nothing else during
    // the call (contract); repeats are refused by `decode_raw`.
    status(unsafe { b.decode_raw(ptrs, toks, n_each, &par) })
}

/// Sampler stages, for `nanollama_sampler_params.order`.
/// A stage of the sampler chain (`nanollama_sampler_params.order`).
pub type nanollama_stage = u32;
pub const NANOLLAMA_STAGE_LOGIT_BIAS: nanollama_stage = 0;
pub const NANOLLAMA_STAGE_PENALTIES: nanollama_stage = 1;
pub const NANOLLAMA_STAGE_TOP_K: nanollama_stage = 2;
pub const NANOLLAMA_STAGE_TYPICAL: nanollama_stage = 3;
pub const NANOLLAMA_STAGE_TOP_P: nanollama_stage = 4;
pub const NANOLLAMA_STAGE_MIN_P: nanollama_stage = 5;
pub const NANOLLAMA_STAGE_XTC: nanollama_stage = 6;
pub const NANOLLAMA_STAGE_TEMPERATURE: nanollama_stage = 7;
/// The grammar set with `nanollama_sampler_set_grammar` (first when the
/// chain does not name it; nothing without a grammar).
pub const NANOLLAMA_STAGE_GRAMMAR: nanollama_stage = 8;

/// One logit-bias entry: `bias` is added to token `token`'s logit. An
/// element of an array, so its layout is fixed for good (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_logit_bias {
    pub token: nanollama_token,
    pub bias: f32,
}
const _: () = assert!(size_of::<nanollama_logit_bias>() == size_of::<LogitBias>());
const _: () = assert!(align_of::<nanollama_logit_bias>() == align_of::<LogitBias>());

/// Settings of a sampler: fill with `nanollama_sampler_params_default`
/// (llama.cpp's defaults), then change what you need. The chain is
/// `order[0..n_stages]` (`nanollama_stage` values); each stage is off at its
/// neutral value (top_k 0, top_p 1, min_p 0, typical_p 1, penalties 1/0/0,
/// xtc_probability 0). Temperature 0 or below is greedy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_sampler_params {
    /// Bytes of this struct as the caller's header declares it.
    pub size: u32,
    pub temp: f32,
    pub seed: u64,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    pub penalty_last_n: u32,
    pub penalty_repeat: f32,
    pub penalty_freq: f32,
    pub penalty_present: f32,
    pub xtc_probability: f32,
    pub xtc_threshold: f32,
    /// 0: draw from the survivors; 2: mirostat v2.
    pub mirostat: u32,
    pub mirostat_tau: f32,
    pub mirostat_eta: f32,
    pub min_keep: u32,
    /// `nanollama_stage` values, `n_stages` of them.
    pub order: [u8; 16],
    pub n_stages: u32,
    /// Zero.
    pub _reserved: u32,
    /// `n_logit_bias` entries, copied by `nanollama_sampler_init` (may be
    /// NULL when `n_logit_bias` is 0).
    pub logit_bias: *const nanollama_logit_bias,
    pub n_logit_bias: usize,
}

// SAFETY: all-zero bytes are a valid value (NULL pointer, zeros); no bool.
unsafe impl AbiStruct for nanollama_sampler_params {
    const BOOLS: &'static [usize] = &[];
}

/// A sampler (opaque). Use from one thread at a time.
pub struct nanollama_sampler {
    _private: [u8; 0],
}

const _: () = assert!(MAX_STAGES == 16);
const _: () = assert!(align_of::<Sampler<'static>>() <= ALIGN);

/// Fills `*out` with llama.cpp's defaults (seed 0, temp 0.8, top_k 40,
/// top_p 0.95, min_p 0.05, penalty_last_n 64, penalties off, no logit bias;
/// order: logit bias, penalties, top-k, typical, top-p, min-p, XTC,
/// temperature), in a struct of `out_size` bytes (`sizeof *out`), and sets
/// `out->size`, as `nanollama_context_params_default` does.
///
/// # Safety
/// `out` is NULL or writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_params_default(
    out: *mut nanollama_sampler_params,
    out_size: usize,
) -> nanollama_status {
    let d = SamplerParams::default();
    let mut order = [0u8; 16];
    for (o, s) in order.iter_mut().zip(d.order) {
        *o = s as u8;
    }
    let p = nanollama_sampler_params {
        size: 0,
        _reserved: 0,
        seed: d.seed,
        temp: d.temp,
        top_k: d.top_k,
        top_p: d.top_p,
        min_p: d.min_p,
        typical_p: d.typical_p,
        penalty_last_n: d.penalty_last_n,
        penalty_repeat: d.penalty_repeat,
        penalty_freq: d.penalty_freq,
        penalty_present: d.penalty_present,
        xtc_probability: d.xtc_probability,
        xtc_threshold: d.xtc_threshold,
        mirostat: d.mirostat,
        mirostat_tau: d.mirostat_tau,
        mirostat_eta: d.mirostat_eta,
        min_keep: d.min_keep,
        order,
        n_stages: d.n_stages,
        logit_bias: core::ptr::null(),
        n_logit_bias: 0,
    };
    // SAFETY: caller's contract.
    unsafe { write_defaults(out, out_size, p) }
}

/// Validates and converts C sampler params; returns them and the bias list.
///
/// # Safety
/// `p` NULL or readable for its `size` bytes; its `logit_bias` readable for
/// `n_logit_bias` entries.
unsafe fn sampler_params<'a>(
    p: *const nanollama_sampler_params,
) -> Result<(SamplerParams, &'a [LogitBias]), nanollama_status> {
    // SAFETY: caller's contract.
    let c = unsafe { read_in(p) }?;
    if c.n_stages as usize > MAX_STAGES || c.n_logit_bias > crate::sampler::MAX_BIAS {
        return Err(NANOLLAMA_STATUS_INVALID_ARGUMENT);
    }
    let mut order = [Stage::Temperature; MAX_STAGES];
    for (o, &v) in order.iter_mut().zip(&c.order).take(c.n_stages as usize) {
        *o = Stage::from_u8(v).ok_or(NANOLLAMA_STATUS_INVALID_ARGUMENT)?;
    }
    let bias: &[LogitBias] = if c.n_logit_bias == 0 {
        &[]
    } else if c.logit_bias.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    } else {
        // SAFETY: non-NULL, readable for n_logit_bias entries (contract);
        // `nanollama_logit_bias` and `LogitBias` share their layout
        // (asserted above) and every bit pattern is valid for both.
        unsafe { core::slice::from_raw_parts(c.logit_bias as *const LogitBias, c.n_logit_bias) }
    };
    let params = SamplerParams {
        seed: c.seed,
        temp: c.temp,
        top_k: c.top_k,
        top_p: c.top_p,
        min_p: c.min_p,
        typical_p: c.typical_p,
        penalty_last_n: c.penalty_last_n,
        penalty_repeat: c.penalty_repeat,
        penalty_freq: c.penalty_freq,
        penalty_present: c.penalty_present,
        xtc_probability: c.xtc_probability,
        xtc_threshold: c.xtc_threshold,
        mirostat: c.mirostat,
        mirostat_tau: c.mirostat_tau,
        mirostat_eta: c.mirostat_eta,
        min_keep: c.min_keep,
        order,
        n_stages: c.n_stages,
    };
    Ok((params, bias))
}

/// Bytes of memory `nanollama_sampler_init` needs for a vocabulary of
/// `n_vocab` tokens and these params, written to `*out_size`.
///
/// # Safety
/// `params` readable (and its logit_bias array); `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_size(
    n_vocab: u32,
    params: *const nanollama_sampler_params,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let (p, bias) = try_status!(unsafe { sampler_params(params) });
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe {
        write_mem_size::<Sampler<'static>>(
            out_size,
            Sampler::size(n_vocab as usize, &p, bias.len()),
        )
    }
}

/// Builds a sampler in `mem` (`mem_len >= nanollama_sampler_size`, 64-byte
/// aligned) and writes the handle to `*out_sampler`. The logit-bias list is
/// copied; `mem` must stay valid while the sampler is used. On error
/// `*out_sampler` is left as it was.
///
/// # Safety
/// `params` readable; `mem` writable for `mem_len` bytes; `out_sampler` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_init(
    n_vocab: u32,
    params: *const nanollama_sampler_params,
    mem: *mut c_void,
    mem_len: usize,
    out_sampler: *mut *mut nanollama_sampler,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let (p, bias) = try_status!(unsafe { sampler_params(params) });
    if out_sampler.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `mem`.
    let (handle, rest) = try_status!(unsafe { memory::<Sampler<'static>>(mem, mem_len) });
    let s = try_status!(Sampler::init(n_vocab as usize, &p, bias, rest));
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(s) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_sampler.write(handle as *mut nanollama_sampler) };
    NANOLLAMA_STATUS_OK
}

/// # Safety
/// `s` NULL or a handle from `nanollama_sampler_init`, not used elsewhere now.
unsafe fn sampler_mut<'a>(
    s: *mut nanollama_sampler,
) -> Result<&'a mut Sampler<'static>, nanollama_status> {
    if s.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: a sampler handle points at an initialized `Sampler` (contract).
    Ok(unsafe { &mut *(s as *mut Sampler<'static>) })
}

/// # Safety
/// `s` NULL or a handle from `nanollama_sampler_init`.
unsafe fn sampler_ref<'a>(
    s: *const nanollama_sampler,
) -> Result<&'a Sampler<'static>, nanollama_status> {
    if s.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: as in `sampler_mut`.
    Ok(unsafe { &*(s as *const Sampler<'static>) })
}

/// Applies the chain to `logits[0..n_logits]` (n_logits must equal the
/// sampler's n_vocab) and writes the drawn token to `*out_token`. Does not
/// accept it: call `nanollama_sampler_accept` with the token you keep.
/// NO_CANDIDATES when every logit is NaN or -infinity.
///
/// # Safety
/// `sampler` a valid handle; `logits` readable for `n_logits` floats;
/// `out_token` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_sample(
    sampler: *mut nanollama_sampler,
    logits: *const f32,
    n_logits: usize,
    out_token: *mut nanollama_token,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_mut(sampler) });
    if logits.is_null() || out_token.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if n_logits > isize::MAX as usize / 4 {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    // SAFETY: non-NULL (checked), readable for n_logits floats (contract).
    let l = unsafe { core::slice::from_raw_parts(logits, n_logits) };
    let t = try_status!(s.sample(l));
    // SAFETY: non-NULL (checked), writable (contract); t < n_vocab < 2^31.
    unsafe { out_token.write(t as i32) };
    NANOLLAMA_STATUS_OK
}

/// Records `token` as generated, for the penalties. TOKEN_OUT_OF_RANGE when
/// it is negative or not below n_vocab.
///
/// # Safety
/// `sampler` a valid handle used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_accept(
    sampler: *mut nanollama_sampler,
    token: nanollama_token,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_mut(sampler) });
    let Ok(t) = u32::try_from(token) else {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    };
    status(s.accept(t))
}

/// Forgets the history, reseeds the generator, resets mirostat.
///
/// # Safety
/// `sampler` a valid handle used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_reset(
    sampler: *mut nanollama_sampler,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_mut(sampler) });
    s.reset();
    NANOLLAMA_STATUS_OK
}

/// Writes a state through `save` into the caller's `buf[0..len]` and its
/// length to `*out_written`.
///
/// # Safety
/// `buf` NULL or writable for `len` bytes; `out_written` NULL or writable.
unsafe fn save_state(
    buf: *mut c_void,
    len: usize,
    out_written: *mut usize,
    save: impl FnOnce(&mut [u8]) -> crate::Result<usize>,
) -> nanollama_status {
    if buf.is_null() || out_written.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if len > isize::MAX as usize {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    // SAFETY: non-NULL (checked), writable for `len` bytes (contract).
    let out = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, len) };
    let n = try_status!(save(out));
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_written.write(n) };
    NANOLLAMA_STATUS_OK
}

/// Writes `n` to `*out` (NULL_POINTER when `out` is NULL).
///
/// # Safety
/// `out` NULL or writable.
unsafe fn write_size(out: *mut usize, n: usize) -> nanollama_status {
    if out.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out.write(n) };
    NANOLLAMA_STATUS_OK
}

/// Bytes `nanollama_context_state_save` needs now (it grows with the
/// position), written to `*out_size`.
///
/// # Safety
/// `ctx` a valid handle; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_state_size(
    ctx: *const nanollama_context,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_ref(ctx) });
    // SAFETY: caller's contract.
    unsafe { write_size(out_size, h.ctx.state_size()) }
}

/// Saves the conversation (the keys and values of every filled position and
/// the last logits, with the model's fingerprint and a checksum) into
/// `buf[0..len]` (any alignment) and writes the bytes used to
/// `*out_written`. BUFFER_TOO_SMALL when `len` is below
/// `nanollama_context_state_size`.
///
/// # Safety
/// `ctx` a valid handle; `buf` writable for `len` bytes; `out_written`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_state_save(
    ctx: *const nanollama_context,
    buf: *mut c_void,
    len: usize,
    out_written: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_ref(ctx) });
    // SAFETY: caller's contract.
    unsafe { save_state(buf, len, out_written, |out| h.ctx.save_state(out)) }
}

/// Replaces the conversation with a saved one (`buf[0..len]` exactly as
/// saved, possibly by another process). STATE_MISMATCH when it was saved from
/// another model, with another KV type, or does not fit n_ctx; STATE_CORRUPT
/// when it is damaged or truncated. On error the context is unchanged.
///
/// # Safety
/// `ctx` a valid handle used by no other thread now; `buf` readable for
/// `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_context_state_load(
    ctx: *mut nanollama_context,
    buf: *const c_void,
    len: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let h = try_status!(unsafe { ctx_mut(ctx) });
    // SAFETY: caller's contract.
    let b = try_status!(unsafe { bytes(buf as *const u8, len) });
    status(h.ctx.load_state(b))
}

/// Bytes `nanollama_sampler_state_save` needs now, written to `*out_size`.
///
/// # Safety
/// `sampler` a valid handle; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_state_size(
    sampler: *const nanollama_sampler,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_ref(sampler) });
    // SAFETY: caller's contract.
    unsafe { write_size(out_size, s.state_size()) }
}

/// Saves the sampler's state (random generator, mirostat mu, penalty
/// history; not its settings) into `buf[0..len]` and writes the bytes used to
/// `*out_written`.
///
/// # Safety
/// `sampler` a valid handle; `buf` writable for `len` bytes; `out_written`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_state_save(
    sampler: *const nanollama_sampler,
    buf: *mut c_void,
    len: usize,
    out_written: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_ref(sampler) });
    // SAFETY: caller's contract.
    unsafe { save_state(buf, len, out_written, |out| s.save_state(out)) }
}

/// Restores a saved sampler state into a sampler created with the same
/// settings. STATE_MISMATCH for another vocabulary size or a history longer
/// than this sampler's penalty window; STATE_CORRUPT when damaged. On error
/// the sampler is unchanged.
///
/// # Safety
/// `sampler` a valid handle used by no other thread now; `buf` readable for
/// `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_state_load(
    sampler: *mut nanollama_sampler,
    buf: *const c_void,
    len: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_mut(sampler) });
    // SAFETY: caller's contract.
    let b = try_status!(unsafe { bytes(buf as *const u8, len) });
    status(s.load_state(b))
}

/// A vocabulary (opaque): the tokenizer of a GGUF file. Read-only after
/// init: any number of threads may use it at once.
pub struct nanollama_vocab {
    _private: [u8; 0],
}

const _: () = assert!(align_of::<Vocab<'static>>() <= ALIGN);

/// What a vocabulary is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nanollama_vocab_info {
    /// Bytes of this struct the library filled.
    pub size: u32,
    pub n_vocab: u32,
    /// BOS, EOS, end-of-turn, end-of-message, unknown and padding tokens, as
    /// llama.cpp finds them (EOT and EOM also by their text, `<|eot_id|>`,
    /// `<|im_end|>`, ...); NANOLLAMA_TOKEN_NULL for none.
    pub bos: nanollama_token,
    pub eos: nanollama_token,
    pub eot: nanollama_token,
    pub eom: nanollama_token,
    pub unk: nanollama_token,
    pub pad: nanollama_token,
    /// 0: SentencePiece (`llama`); 1: byte-level BPE (`gpt2`).
    pub kind: u32,
    /// Number of end-of-generation tokens (`nanollama_vocab_is_eog`).
    pub n_eog: u32,
    /// The file asks for BOS at the start of a text.
    pub add_bos: bool,
    /// The file asks for EOS at the end of a text.
    pub add_eos: bool,
    /// Zero.
    pub _reserved: [u8; 2],
}

// SAFETY: all-zero bytes are a valid value; two bools.
unsafe impl AbiStruct for nanollama_vocab_info {
    const BOOLS: &'static [usize] = &[
        offset_of!(nanollama_vocab_info, add_bos),
        offset_of!(nanollama_vocab_info, add_eos),
    ];
}

/// Flags of `nanollama_tokenize`, OR-ed into its `flags` argument.
pub type nanollama_tokenize_flags = u32;
/// Start with the BOS token.
pub const NANOLLAMA_TOKENIZE_FLAGS_ADD_BOS: nanollama_tokenize_flags = 1;
/// Recognize control and unknown tokens written in the text (user-defined
/// ones always are, as in llama.cpp).
pub const NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL: nanollama_tokenize_flags = 2;
/// BOS and EOS as the file asks for them (llama.cpp's `add_special`); with
/// ADD_BOS / ADD_EOS, those are added whatever the file says.
pub const NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL: nanollama_tokenize_flags = 4;
/// End with the EOS token.
pub const NANOLLAMA_TOKENIZE_FLAGS_ADD_EOS: nanollama_tokenize_flags = 8;
const ADD_BOS: u32 = NANOLLAMA_TOKENIZE_FLAGS_ADD_BOS;
const PARSE_SPECIAL: u32 = NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL;
const ADD_SPECIAL: u32 = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL;
const ADD_EOS: u32 = NANOLLAMA_TOKENIZE_FLAGS_ADD_EOS;

/// The state of a streaming detokenizer: plain data the caller owns (on
/// the stack, in a struct). Start it with `nanollama_detokenizer_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nanollama_detokenizer {
    pub pending: [u8; 4],
    pub n_pending: u32,
    /// Zero: room for later versions (the struct's size is fixed: the
    /// caller allocates it).
    pub _reserved: [u32; 2],
}

/// Bytes of memory `nanollama_vocab_init` needs for this file.
///
/// # Safety
/// `gguf` readable for `gguf_len` bytes; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_vocab_size(
    gguf: *const u8,
    gguf_len: usize,
    out_size: *mut usize,
) -> nanollama_status {
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let g = try_status!(unsafe { bytes(gguf, gguf_len) });
    let n = try_status!(Vocab::size(g));
    let Some(total) = n.checked_add(head::<Vocab<'static>>()) else {
        return NANOLLAMA_STATUS_GGUF_BAD_METADATA;
    };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_size.write(total) };
    NANOLLAMA_STATUS_OK
}

/// Reads the vocabulary of the GGUF file and builds its lookup tables in
/// `mem` (64-byte aligned, `nanollama_vocab_size` bytes). `gguf` and `mem`
/// must outlive the vocabulary. On error `*out_vocab` is left as it was.
///
/// # Safety
/// `gguf` readable, `mem` writable for their lengths; `out_vocab` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_vocab_init(
    gguf: *const u8,
    gguf_len: usize,
    mem: *mut c_void,
    mem_len: usize,
    out_vocab: *mut *const nanollama_vocab,
) -> nanollama_status {
    if out_vocab.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract (the bytes outlive the vocabulary).
    let g: &'static [u8] = try_status!(unsafe { bytes(gguf, gguf_len) });
    // SAFETY: caller's contract on `mem`.
    let (handle, rest) = try_status!(unsafe { memory::<Vocab<'static>>(mem, mem_len) });
    let v = try_status!(Vocab::init(g, rest));
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(v) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_vocab.write(handle as *const nanollama_vocab) };
    NANOLLAMA_STATUS_OK
}

/// # Safety
/// `v` NULL or a handle from `nanollama_vocab_init`.
unsafe fn vocab_ref<'a>(v: *const nanollama_vocab) -> Result<&'a Vocab<'static>, nanollama_status> {
    if v.is_null() {
        return Err(NANOLLAMA_STATUS_NULL_POINTER);
    }
    // SAFETY: a vocabulary handle points at an initialized `Vocab` (contract).
    Ok(unsafe { &*(v as *const Vocab<'static>) })
}

/// Writes the vocabulary's size, special token ids, BOS/EOS choices and
/// kind to `*out`, a struct of `out_size` bytes (`sizeof *out`).
///
/// # Safety
/// `vocab` a valid handle; `out` writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_vocab_get_info(
    vocab: *const nanollama_vocab,
    out: *mut nanollama_vocab_info,
    out_size: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    // NONE (u32::MAX) is NANOLLAMA_TOKEN_NULL (-1); ids are below 2^31.
    let t = |id: u32| id as nanollama_token;
    let info = nanollama_vocab_info {
        size: 0,
        n_vocab: v.n_vocab() as u32,
        bos: t(v.bos()),
        eos: t(v.eos()),
        eot: t(v.eot()),
        eom: t(v.eom()),
        unk: t(v.unk()),
        pad: t(v.pad()),
        kind: match v.kind() {
            VocabKind::Spm => 0,
            VocabKind::Bpe => 1,
        },
        n_eog: v.eog_tokens().len() as u32,
        add_bos: v.add_bos(),
        add_eos: v.add_eos(),
        _reserved: [0; 2],
    };
    // SAFETY: caller's contract.
    unsafe { write_out(out, out_size, info) }
}

/// Writes true to `*out_is_eog` when generation ends at `token` (EOS, EOT, EOM
/// and the tokens llama.cpp also counts by their text: `<|im_end|>`,
/// `<end_of_turn>`, `<|endoftext|>`, ...), else false. TOKEN_OUT_OF_RANGE for a
/// token outside the vocabulary.
///
/// # Safety
/// `vocab` a valid handle; `out_is_eog` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_vocab_is_eog(
    vocab: *const nanollama_vocab,
    token: nanollama_token,
    out_is_eog: *mut bool,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if out_is_eog.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    let Ok(id) = u32::try_from(token) else {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    };
    if id as usize >= v.n_vocab() {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_is_eog.write(v.is_eog(id)) };
    NANOLLAMA_STATUS_OK
}

/// Bytes of scratch `nanollama_tokenize` needs for texts of up to
/// `max_text_len` bytes (about 200 per byte); 0 when that overflows.
#[no_mangle]
pub extern "C" fn nanollama_tokenize_scratch_size(max_text_len: usize) -> usize {
    Vocab::scratch_size(max_text_len).unwrap_or(0)
}

/// Encodes `text[0..text_len]` (any bytes) into `tokens` (room for
/// `capacity` ids). `flags`: `nanollama_tokenize_flags` values OR-ed. `scratch` (64-byte aligned,
/// `nanollama_tokenize_scratch_size(text_len)` bytes) is working memory.
/// `*out_n_tokens` receives the count; when `capacity` is too small the call
/// returns BUFFER_TOO_SMALL with `*out_n_tokens` set to the count needed.
///
/// # Safety
/// `vocab` valid; `text` readable (may be NULL when `text_len` is 0);
/// `scratch` writable for `scratch_len`; `tokens` writable for `capacity`
/// ids (may be NULL when `capacity` is 0); `out_n_tokens` writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nanollama_tokenize(
    vocab: *const nanollama_vocab,
    text: *const u8,
    text_len: usize,
    flags: u32,
    scratch: *mut c_void,
    scratch_len: usize,
    tokens: *mut nanollama_token,
    capacity: usize,
    out_n_tokens: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if out_n_tokens.is_null() || scratch.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if flags & !(ADD_BOS | PARSE_SPECIAL | ADD_SPECIAL | ADD_EOS) != 0
        || capacity > isize::MAX as usize / 4
        || scratch_len > isize::MAX as usize
    {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    let t: &[u8] = if text_len == 0 {
        &[]
    } else {
        // SAFETY: caller's contract.
        try_status!(unsafe { bytes(text, text_len) })
    };
    let out: &mut [u32] = if capacity == 0 {
        &mut []
    } else if tokens.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    } else {
        // SAFETY: non-NULL, writable for `capacity` ids (contract); i32 and
        // u32 share their layout, and ids are below 2^31.
        unsafe { core::slice::from_raw_parts_mut(tokens as *mut u32, capacity) }
    };
    // SAFETY: non-NULL (checked), writable for scratch_len bytes (contract).
    let sc = unsafe { core::slice::from_raw_parts_mut(scratch as *mut u8, scratch_len) };
    let mut needed = 0;
    let file = v.add_special();
    let add = AddTokens {
        bos: flags & ADD_BOS != 0 || (flags & ADD_SPECIAL != 0 && file.bos),
        eos: flags & ADD_EOS != 0 || (flags & ADD_SPECIAL != 0 && file.eos),
    };
    let r = v.tokenize_with(t, add, flags & PARSE_SPECIAL != 0, sc, out, &mut needed);
    if matches!(r, Ok(_) | Err(Error::BufferTooSmall)) {
        // SAFETY: non-NULL (checked), writable (contract).
        unsafe { out_n_tokens.write(needed) };
    }
    status(r.map(|_| ()))
}

/// Writes the text of `token` to `buf` (room for `capacity` bytes) and its
/// length to `*out_len`; control tokens are empty unless `special` is 1.
/// BUFFER_TOO_SMALL with `*out_len` set when `capacity` is too small.
///
/// # Safety
/// `vocab` valid; `buf` writable for `capacity` bytes; `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_token_to_piece(
    vocab: *const nanollama_vocab,
    token: nanollama_token,
    special: u32,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if out_len.is_null() || (buf.is_null() && capacity > 0) {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    if special > 1 {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    let Ok(id) = u32::try_from(token) else {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    };
    if id as usize >= v.n_vocab() {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    }
    let out: &mut [u8] = if capacity == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL (checked above when capacity > 0), writable for
        // `capacity` bytes (contract); at most isize::MAX as an allocation.
        unsafe { core::slice::from_raw_parts_mut(buf, capacity.min(isize::MAX as usize)) }
    };
    let mut needed = 0;
    let r = v.piece(id, special == 1, out, &mut needed);
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_len.write(needed) };
    status(r.map(|_| ()))
}

/// Starts (or restarts) a streaming detokenizer. Does nothing on NULL.
///
/// # Safety
/// `d` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_detokenizer_init(d: *mut nanollama_detokenizer) {
    if !d.is_null() {
        // SAFETY: non-NULL, writable (contract).
        unsafe { d.write(nanollama_detokenizer::default()) };
    }
}

fn decoder_of(d: &nanollama_detokenizer) -> Result<StreamDecoder, nanollama_status> {
    if d.n_pending > 3 {
        return Err(NANOLLAMA_STATUS_INVALID_ARGUMENT);
    }
    let mut s = StreamDecoder::new();
    s.set_pending(&d.pending[..d.n_pending as usize]);
    Ok(s)
}

/// Feeds `token` to the detokenizer and writes the text that is now
/// complete UTF-8 to `buf`, its length to `*out_len` (0 when the token only
/// began a character). BUFFER_TOO_SMALL (state unchanged) with `*out_len`
/// set when `capacity` is too small; 260 bytes always suffice.
///
/// # Safety
/// `d` readable and writable; `vocab` valid; `buf` writable for `capacity`
/// bytes; `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_detokenizer_push(
    d: *mut nanollama_detokenizer,
    vocab: *const nanollama_vocab,
    token: nanollama_token,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if d.is_null() || out_len.is_null() || (buf.is_null() && capacity > 0) {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), readable (contract); plain data.
    let mut dec = try_status!(decoder_of(unsafe { &*d }));
    let Ok(id) = u32::try_from(token) else {
        return NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE;
    };
    let out: &mut [u8] = if capacity == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL (checked), writable for capacity bytes (contract).
        unsafe { core::slice::from_raw_parts_mut(buf, capacity) }
    };
    let mut needed = 0;
    let r = dec.push(v, id, false, out, &mut needed);
    if matches!(r, Ok(_) | Err(Error::BufferTooSmall)) {
        // SAFETY: non-NULL (checked), writable (contract).
        unsafe { out_len.write(needed) };
    }
    if r.is_ok() {
        let p = dec.pending();
        let mut st = nanollama_detokenizer::default();
        st.pending[..p.len()].copy_from_slice(p);
        st.n_pending = p.len() as u32;
        // SAFETY: non-NULL (checked), writable (contract).
        unsafe { d.write(st) };
    }
    status(r.map(|_| ()))
}

/// Writes out the bytes the detokenizer still holds (an incomplete
/// character at the end of the stream; at most 3) and empties it.
///
/// # Safety
/// `d` readable and writable; `buf` writable for `capacity`; `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_detokenizer_flush(
    d: *mut nanollama_detokenizer,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> nanollama_status {
    if d.is_null() || out_len.is_null() || (buf.is_null() && capacity > 0) {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), readable (contract).
    let st = unsafe { d.read() };
    if st.n_pending > 3 {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    let n = st.n_pending as usize;
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_len.write(n) };
    if n > capacity {
        return NANOLLAMA_STATUS_BUFFER_TOO_SMALL;
    }
    if n > 0 {
        // SAFETY: `buf` non-NULL (capacity >= n > 0), writable for n bytes.
        unsafe { core::ptr::copy_nonoverlapping(st.pending.as_ptr(), buf, n) };
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { d.write(nanollama_detokenizer::default()) };
    NANOLLAMA_STATUS_OK
}

/// One message of a conversation for `nanollama_chat_apply_template`: a
/// role (`"system"`, `"user"`, `"assistant"`, ...) and its text, both
/// NUL-terminated (as llama.cpp's `llama_chat_message`). An array element:
/// its layout never changes within an ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

const _: () = assert!(size_of::<nanollama_chat_message>() == 2 * size_of::<*const c_char>());

/// The C array, read in place: each string's length is measured when the
/// renderer asks for the message.
struct CMessages<'a>(&'a [nanollama_chat_message]);

impl crate::chat::Messages for CMessages<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn at(&self, i: usize) -> Message<'_> {
        let m = &self.0[i];
        // SAFETY: both pointers were checked non-NULL before rendering and
        // point at NUL-terminated strings that stay valid during the call
        // (caller's contract).
        let role = unsafe { core::ffi::CStr::from_ptr(m.role) }.to_bytes();
        // SAFETY: as above.
        let content = unsafe { core::ffi::CStr::from_ptr(m.content) }.to_bytes();
        Message { role, content }
    }
}

/// Renders the conversation `messages[0..n_messages]` into `buf` (room for
/// `capacity` bytes; no NUL is written) as the chat template `tmpl` asks,
/// byte for byte as llama.cpp's `llama_chat_apply_template`, ending with
/// the assistant's header when `add_assistant` (for the templates that have
/// one). `tmpl[0..tmpl_len]` is a built-in name (`"chatml"`, `"llama3"`,
/// ...: `nanollama_chat_builtin_template`) or a model's own Jinja template
/// (`nanollama_vocab_chat_template`), recognised by the substrings
/// llama.cpp looks for, never interpreted: UNSUPPORTED_TEMPLATE when it is
/// not recognised. `*out_len` receives the length; when `capacity` is too
/// small the call returns BUFFER_TOO_SMALL with `*out_len` set to the
/// length needed (what `buf` then holds is meaningless). Message text that
/// looks like special tokens is copied verbatim. Reads its arguments during
/// the call only.
///
/// # Safety
/// `tmpl` readable for `tmpl_len` bytes; `messages` readable for
/// `n_messages` elements (may be NULL when 0), each with non-NULL,
/// NUL-terminated `role` and `content`; `buf` writable for `capacity`
/// bytes (may be NULL when 0); `out_len` writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nanollama_chat_apply_template(
    tmpl: *const c_char,
    tmpl_len: usize,
    messages: *const nanollama_chat_message,
    n_messages: usize,
    add_assistant: bool,
    buf: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> nanollama_status {
    if out_len.is_null() || (buf.is_null() && capacity > 0) {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let t = try_status!(unsafe { bytes(tmpl.cast::<u8>(), tmpl_len) });
    let msgs: &[nanollama_chat_message] = if n_messages == 0 {
        &[]
    } else if messages.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    } else if n_messages > isize::MAX as usize / size_of::<nanollama_chat_message>() {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    } else {
        // SAFETY: non-NULL, readable for `n_messages` elements (contract).
        unsafe { core::slice::from_raw_parts(messages, n_messages) }
    };
    if msgs.iter().any(|m| m.role.is_null() || m.content.is_null()) {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    let Some(kind) = crate::chat::detect(t) else {
        return NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE;
    };
    let out: &mut [u8] = if capacity == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL (checked), writable for `capacity` bytes
        // (contract); at most isize::MAX as an allocation.
        unsafe {
            core::slice::from_raw_parts_mut(buf.cast::<u8>(), capacity.min(isize::MAX as usize))
        }
    };
    let mut needed = 0;
    let r = crate::chat::render_with(kind, &CMessages(msgs), add_assistant, out, &mut needed);
    if matches!(r, Ok(_) | Err(Error::BufferTooSmall)) {
        // SAFETY: non-NULL (checked), writable (contract).
        unsafe { out_len.write(needed) };
    }
    status(r.map(|_| ()))
}

/// The `i`-th built-in chat template name (llama.cpp's, in its order: see
/// `nanollama_chat_apply_template`), a static NUL-terminated string; NULL
/// when `i` is past the last. Pure; thread-safe.
#[no_mangle]
pub extern "C" fn nanollama_chat_builtin_template(i: usize) -> *const c_char {
    match crate::chat::BUILTIN.get(i) {
        Some((n, _)) => n.as_ptr(),
        None => core::ptr::null(),
    }
}

/// Writes the built-in name of the template `tmpl[0..tmpl_len]` is
/// recognised as (a static NUL-terminated string) to `*out_name`;
/// UNSUPPORTED_TEMPLATE when it is not recognised, or is recognised as a
/// kind llama.cpp has no name for.
///
/// # Safety
/// `tmpl` readable for `tmpl_len` bytes; `out_name` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_chat_template_name(
    tmpl: *const c_char,
    tmpl_len: usize,
    out_name: *mut *const c_char,
) -> nanollama_status {
    if out_name.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let t = try_status!(unsafe { bytes(tmpl.cast::<u8>(), tmpl_len) });
    let Some(name) = crate::chat::detect(t).and_then(|k| k.c_name()) else {
        return NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE;
    };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_name.write(name.as_ptr()) };
    NANOLLAMA_STATUS_OK
}

/// Writes a pointer to the file's own chat template (the GGUF string
/// `tokenizer.chat_template`, inside the GGUF bytes: valid as long as they
/// are, and *not* NUL-terminated) to `*out_tmpl` and its length to
/// `*out_len`, for `nanollama_chat_apply_template`. MISSING_KEY when the
/// file has none, GGUF_BAD_METADATA when it is not a string.
///
/// # Safety
/// `vocab` a valid handle; `out_tmpl` and `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_vocab_chat_template(
    vocab: *const nanollama_vocab,
    out_tmpl: *mut *const c_char,
    out_len: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    // SAFETY: caller's contract.
    unsafe { write_template(v.chat_template(), out_tmpl, out_len) }
}

/// `nanollama_vocab_chat_template` for the file a model was loaded from.
///
/// # Safety
/// `model` a valid handle; `out_tmpl` and `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_model_chat_template(
    model: *const nanollama_model,
    out_tmpl: *mut *const c_char,
    out_len: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let m = try_status!(unsafe { model_ref(model) });
    // SAFETY: caller's contract.
    unsafe { write_template(m.chat_template(), out_tmpl, out_len) }
}

/// # Safety
/// `out_tmpl` and `out_len` NULL or writable.
unsafe fn write_template(
    t: crate::Result<&[u8]>,
    out_tmpl: *mut *const c_char,
    out_len: *mut usize,
) -> nanollama_status {
    if out_tmpl.is_null() || out_len.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    let t = try_status!(t);
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_tmpl.write(t.as_ptr() as *const c_char) };
    // SAFETY: as above.
    unsafe { out_len.write(t.len()) };
    NANOLLAMA_STATUS_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_match_errors_and_strings() {
        for e in Error::ALL {
            let s: nanollama_status = e.into();
            assert_eq!(s as u32, e as u32, "{e:?}");
            // SAFETY: status_str returns a static NUL-terminated string.
            let msg = unsafe { core::ffi::CStr::from_ptr(nanollama_status_str(s as u32)) };
            assert_eq!(msg.to_str().unwrap(), e.message());
        }
        // SAFETY: as above.
        let unknown = unsafe { core::ffi::CStr::from_ptr(nanollama_status_str(999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown status");
    }

    #[test]
    fn version_is_the_crate_version() {
        let v = nanollama_version();
        // SAFETY: a static struct...
        let v = unsafe { &*v };
        // SAFETY: ...with a static NUL-terminated text.
        let text = unsafe { core::ffi::CStr::from_ptr(v.text) };
        assert_eq!(text.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let n = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(v.major, n(env!("CARGO_PKG_VERSION_MAJOR")));
        assert_eq!(v.minor, n(env!("CARGO_PKG_VERSION_MINOR")));
        assert_eq!(v.patch, n(env!("CARGO_PKG_VERSION_PATCH")));
        assert_eq!(v.abi, NANOLLAMA_ABI_VERSION);
    }

    /// Bytes as C may leave them (a bool byte of 7, a later field set or
    /// not): `read_in` never makes an invalid bool, and checks sizes.
    #[test]
    fn structs_are_read_by_their_size() {
        #[repr(C, align(8))]
        struct Later([u8; size_of::<nanollama_context_params>() + 16]);
        let mut buf = Later([0; size_of::<nanollama_context_params>() + 16]);
        // A fresh pointer for each call, after the writes through `buf`.
        let at = |b: &mut Later| b.0.as_mut_ptr() as *mut nanollama_context_params;
        let n = buf.0.len();
        // SAFETY: `buf` is large and aligned enough for the struct.
        let st = unsafe { nanollama_context_params_default(at(&mut buf), n) };
        assert_eq!(st, NANOLLAMA_STATUS_OK);
        assert_eq!(
            u32::from_ne_bytes(buf.0[..4].try_into().unwrap()) as usize,
            buf.0.len()
        );
        buf.0[offset_of!(nanollama_context_params, logits_all)] = 7;
        // SAFETY: the pointer is `buf`'s, readable for its size.
        let r = unsafe { read_in(at(&mut buf) as *const nanollama_context_params) }.unwrap();
        assert!(r.logits_all && !r.f32_activations && r.n_threads == 1);
        let last = buf.0.len() - 1;
        buf.0[last] = 1;
        // SAFETY: as above.
        let r = unsafe { read_in(at(&mut buf) as *const nanollama_context_params) };
        assert_eq!(r.err(), Some(NANOLLAMA_STATUS_BAD_STRUCT_SIZE));
        buf.0[last] = 0;
        buf.0[..4]
            .copy_from_slice(&(size_of::<nanollama_context_params>() as u32 - 4).to_ne_bytes());
        // SAFETY: as above.
        let r = unsafe { read_in(at(&mut buf) as *const nanollama_context_params) };
        assert_eq!(r.err(), Some(NANOLLAMA_STATUS_BAD_STRUCT_SIZE));
    }
}

// ---------------------------------------------------------------------------
// Grammars (GBNF) and the sampler's grammar stage.

/// A parsed GBNF grammar (opaque). Read-only after init: any number of
/// samplers and threads may use it at once.
pub struct nanollama_grammar {
    _private: [u8; 0],
}

/// A vocabulary's token texts as a trie, for grammar stages (opaque).
/// Read-only after init: shared by every sampler of that vocabulary.
pub struct nanollama_token_trie {
    _private: [u8; 0],
}

const _: () = assert!(align_of::<crate::grammar::Grammar<'static>>() <= ALIGN);
const _: () = assert!(align_of::<crate::grammar::TokenTrie<'static>>() <= ALIGN);

/// Settings of a grammar stage: fill with `nanollama_grammar_params_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanollama_grammar_params {
    /// Bytes of this struct as the caller's header declares it.
    pub size: u32,
    /// Most parser stacks in the grammar's state (default 1024).
    pub max_stacks: u32,
    /// Most stack positions over the state (default 65536).
    pub max_positions: u32,
    /// Allowed-token sets kept for recurring states, n_vocab/8 bytes each
    /// (default 32).
    pub cache_entries: u32,
    /// Longest stack whose set is kept (default 64).
    pub max_key: u32,
    /// Frames and stack positions of one walk over the vocabulary (default
    /// 8192 and 65536); a walk needing more checks tokens one by one.
    pub walk_frames: u32,
    pub walk_positions: u32,
    /// Draw first without the grammar and constrain only when the token is
    /// refused (llama.cpp's common sampler); false by default.
    pub check_first: bool,
    pub _reserved: [u8; 3],
}

// SAFETY: all-zero bytes are a valid value; `check_first` is listed.
unsafe impl AbiStruct for nanollama_grammar_params {
    const BOOLS: &'static [usize] = &[offset_of!(nanollama_grammar_params, check_first)];
}

/// Fills `*out` (`out_size` bytes, the struct as the caller's header
/// declares it) with the defaults.
///
/// # Safety
/// `out` is NULL or writable for `out_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn nanollama_grammar_params_default(
    out: *mut nanollama_grammar_params,
    out_size: usize,
) -> nanollama_status {
    let d = crate::grammar::GrammarParams::default();
    let p = nanollama_grammar_params {
        size: 0,
        max_stacks: d.matcher.max_stacks as u32,
        max_positions: d.matcher.max_positions as u32,
        cache_entries: d.cache_entries,
        max_key: d.max_key,
        walk_frames: d.walk_frames,
        walk_positions: d.walk_positions,
        check_first: d.check_first,
        _reserved: [0; 3],
    };
    // SAFETY: caller's contract.
    unsafe { write_defaults(out, out_size, p) }
}

/// # Safety
/// `p` NULL or readable for its `size` bytes.
unsafe fn grammar_params(
    p: *const nanollama_grammar_params,
) -> Result<crate::grammar::GrammarParams, nanollama_status> {
    // SAFETY: caller's contract.
    let c = unsafe { read_in(p) }?;
    Ok(crate::grammar::GrammarParams {
        matcher: crate::grammar::MatcherParams {
            max_stacks: c.max_stacks as usize,
            max_positions: c.max_positions as usize,
        },
        cache_entries: c.cache_entries,
        max_key: c.max_key,
        walk_frames: c.walk_frames,
        walk_positions: c.walk_positions,
        check_first: c.check_first,
    })
}

/// Writes a grammar error's offset where the caller asked for it.
///
/// # Safety
/// `out` NULL or writable.
unsafe fn grammar_error(e: crate::grammar::GrammarError, out: *mut usize) -> nanollama_status {
    if !out.is_null() {
        // SAFETY: non-NULL, writable (contract).
        unsafe { out.write(e.offset) };
    }
    e.error.into()
}

/// Bytes `nanollama_grammar_init` needs for the GBNF text `text[0..len]`,
/// written to `*out_size`; or why the text is refused (GRAMMAR_SYNTAX,
/// GRAMMAR_UNDEFINED_RULE, GRAMMAR_LEFT_RECURSION, GRAMMAR_LIMIT) with the
/// byte offset in `*out_error_offset` (may be NULL).
///
/// # Safety
/// `text` readable for `len` bytes; `out_size` writable; `out_error_offset`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_grammar_size(
    text: *const c_char,
    len: usize,
    out_size: *mut usize,
    out_error_offset: *mut usize,
) -> nanollama_status {
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let t = try_status!(unsafe { bytes(text.cast::<u8>(), len) });
    match crate::grammar::Grammar::size(t) {
        // SAFETY: non-NULL (checked), writable (contract).
        Ok(n) => unsafe { write_mem_size::<crate::grammar::Grammar<'static>>(out_size, Ok(n)) },
        // SAFETY: caller's contract.
        Err(e) => unsafe { grammar_error(e, out_error_offset) },
    }
}

/// Parses `text[0..len]` into `mem` (`mem_len >= nanollama_grammar_size`,
/// 64-byte aligned; the text is not kept) and writes the handle to
/// `*out_grammar`. Errors as `nanollama_grammar_size`; `*out_grammar` is
/// left as it was on error.
///
/// # Safety
/// `text` readable for `len` bytes; `mem` writable for `mem_len` bytes and
/// valid while the grammar is used; `out_grammar` writable;
/// `out_error_offset` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_grammar_init(
    text: *const c_char,
    len: usize,
    mem: *mut c_void,
    mem_len: usize,
    out_grammar: *mut *const nanollama_grammar,
    out_error_offset: *mut usize,
) -> nanollama_status {
    if out_grammar.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let t = try_status!(unsafe { bytes(text.cast::<u8>(), len) });
    // SAFETY: caller's contract on `mem`.
    let (handle, rest) =
        try_status!(unsafe { memory::<crate::grammar::Grammar<'static>>(mem, mem_len) });
    let g = match crate::grammar::Grammar::init(t, rest) {
        Ok(g) => g,
        // SAFETY: caller's contract.
        Err(e) => return unsafe { grammar_error(e, out_error_offset) },
    };
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(g) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_grammar.write(handle as *const nanollama_grammar) };
    NANOLLAMA_STATUS_OK
}

/// Bytes `nanollama_token_trie_init` needs for `vocab`, to `*out_size`.
///
/// # Safety
/// `vocab` a valid handle; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_token_trie_size(
    vocab: *const nanollama_vocab,
    out_size: *mut usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe {
        write_mem_size::<crate::grammar::TokenTrie<'static>>(
            out_size,
            crate::grammar::TokenTrie::size(v),
        )
    }
}

/// Builds the token trie of `vocab` in `mem` (64-byte aligned,
/// `mem_len >= nanollama_token_trie_size`): the token texts are copied, the
/// vocabulary is not kept.
///
/// # Safety
/// `vocab` a valid handle; `mem` writable for `mem_len` bytes and valid
/// while the trie is used; `out_trie` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_token_trie_init(
    vocab: *const nanollama_vocab,
    mem: *mut c_void,
    mem_len: usize,
    out_trie: *mut *const nanollama_token_trie,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let v = try_status!(unsafe { vocab_ref(vocab) });
    if out_trie.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract on `mem`.
    let (handle, rest) =
        try_status!(unsafe { memory::<crate::grammar::TokenTrie<'static>>(mem, mem_len) });
    let t = try_status!(crate::grammar::TokenTrie::init(v, rest));
    // SAFETY: aligned and large enough for the handle (checked by `memory`).
    unsafe { handle.write(t) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_trie.write(handle as *const nanollama_token_trie) };
    NANOLLAMA_STATUS_OK
}

/// Bytes of memory `nanollama_sampler_set_grammar` needs for a stage over
/// `trie` with `params`, to `*out_size`.
///
/// # Safety
/// `trie` a valid handle; `params` readable; `out_size` writable.
#[no_mangle]
pub unsafe extern "C" fn nanollama_grammar_stage_size(
    trie: *const nanollama_token_trie,
    params: *const nanollama_grammar_params,
    out_size: *mut usize,
) -> nanollama_status {
    if trie.is_null() || out_size.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let p = try_status!(unsafe { grammar_params(params) });
    // SAFETY: a trie handle points at an initialized TokenTrie (contract).
    let t = unsafe { &*(trie as *const crate::grammar::TokenTrie<'static>) };
    // SAFETY: non-NULL (checked), writable (contract).
    unsafe { out_size.write(try_status!(crate::grammar::GrammarStage::size(t, &p))) };
    NANOLLAMA_STATUS_OK
}

/// Attaches `grammar` to `sampler` as a stage, its state in `mem` (64-byte
/// aligned, `mem_len >= nanollama_grammar_stage_size`), at its start. From
/// then on sampling sets every token the grammar refuses to -infinity
/// (at NANOLLAMA_STAGE_GRAMMAR in the order, or first), accept advances it
/// (INVALID_ARGUMENT for a token it refuses, nothing changed), reset takes
/// it back to its start, and the sampler's saved state holds it. `grammar`
/// NULL detaches the stage (then `trie`, `params` and `mem` are not read).
/// The trie must be of a vocabulary of the sampler's size.
///
/// # Safety
/// `sampler` a valid handle used by no other thread now; `grammar` and
/// `trie` valid handles (or `grammar` NULL), `params` readable, `mem`
/// writable for `mem_len` bytes; all valid while the sampler uses them.
#[no_mangle]
pub unsafe extern "C" fn nanollama_sampler_set_grammar(
    sampler: *mut nanollama_sampler,
    grammar: *const nanollama_grammar,
    trie: *const nanollama_token_trie,
    params: *const nanollama_grammar_params,
    mem: *mut c_void,
    mem_len: usize,
) -> nanollama_status {
    // SAFETY: caller's contract.
    let s = try_status!(unsafe { sampler_mut(sampler) });
    if grammar.is_null() {
        let _ = s.set_grammar(None);
        return NANOLLAMA_STATUS_OK;
    }
    if trie.is_null() || mem.is_null() {
        return NANOLLAMA_STATUS_NULL_POINTER;
    }
    // SAFETY: caller's contract.
    let p = try_status!(unsafe { grammar_params(params) });
    if !(mem as usize).is_multiple_of(ALIGN) {
        return NANOLLAMA_STATUS_MISALIGNED;
    }
    if mem_len > isize::MAX as usize {
        return NANOLLAMA_STATUS_INVALID_ARGUMENT;
    }
    // SAFETY: a grammar handle points at an initialized Grammar that
    // outlives the sampler's use of it (contract).
    let g = unsafe { &*(grammar as *const crate::grammar::Grammar<'static>) };
    // SAFETY: as for the grammar.
    let t = unsafe { &*(trie as *const crate::grammar::TokenTrie<'static>) };
    // SAFETY: non-NULL (checked), writable for `mem_len` bytes and valid
    // while the sampler uses it (contract).
    let m = unsafe { core::slice::from_raw_parts_mut(mem as *mut u8, mem_len) };
    let st = try_status!(crate::grammar::GrammarStage::init(g, t, &p, m));
    match s.set_grammar(Some(st)) {
        Ok(_) => NANOLLAMA_STATUS_OK,
        Err(e) => e.into(),
    }
}
