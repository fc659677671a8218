//! nanollama on a bare Cortex-M4F (QEMU's mps2-an386): the shipped model
//! linked into the image, every buffer a static, no allocator, no OS. It
//! tokenizes a prompt fixed at build time, generates greedily and writes
//! what `nanollama generate --temp 0` writes for the same prompt and token
//! count (the prompt as read, then the text), over semihosting; figures go
//! to stderr. Run it with `tools/cortex-m.sh [PROMPT]`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod rt;

use core::fmt::Write;
use nanollama::tokenizer::{StreamDecoder, Vocab};
use nanollama::{Context, ContextParams, Inline, KvType, Model, Sampler, SamplerParams};
use rt::{Console, Static};

/// The prompt: `NANOLLAMA_PROMPT` at build time (tools/cortex-m.sh sets it).
const PROMPT: &str = match option_env!("NANOLLAMA_PROMPT") {
    Some(p) => p,
    None => "And it came to pass",
};

/// Tokens to generate: `NANOLLAMA_N_GEN` at build time.
const N_GEN: usize = match option_env!("NANOLLAMA_N_GEN") {
    Some(n) => parse_count(n),
    None => 32,
};

/// A decimal count, at build time (a bad one stops the build).
const fn parse_count(s: &str) -> usize {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "NANOLLAMA_N_GEN is empty");
    let mut i = 0;
    let mut n = 0usize;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "NANOLLAMA_N_GEN is not a number");
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

/// Longest prompt in bytes (the tokenizer's scratch is sized for it).
const MAX_PROMPT: usize = 256;
const _: () = assert!(
    PROMPT.len() <= MAX_PROMPT,
    "NANOLLAMA_PROMPT is over 256 bytes"
);

/// KV cache positions: the model's training context, as the host CLI uses.
const N_CTX: u32 = 256;
/// Most tokens of one decode: the prompt goes in batches of this many (the
/// host CLI decodes it in one; each row's arithmetic is the same). Each
/// batch row costs 10 KB of activations.
const N_BATCH: u32 = 8;

/// The shipped model's bytes, `&[u8; N]`.
macro_rules! model_file {
    () => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/kjv-llama.gguf"
        ))
    };
}

/// The GGUF file, 64-byte aligned, in its own section (`.model`: PSRAM,
/// read-only by the MPU; see link.x).
#[repr(C, align(64))]
struct Aligned<T>(T);
#[link_section = ".model"]
static MODEL: Aligned<[u8; model_file!().len()]> = Aligned(*model_file!());

// Every buffer the library is given, sized for the shipped model with
// N_CTX, N_BATCH and MAX_PROMPT (the program says so and stops if a size
// query asks for more; stderr shows what each needs).
const MODEL_MEM_BYTES: usize = 2 * 1024;
const VOCAB_MEM_BYTES: usize = 36 * 1024;
const SCRATCH_BYTES: usize = 56 * 1024;
const CONTEXT_BYTES: usize = 352 * 1024;
const SAMPLER_BYTES: usize = 36 * 1024;
static MODEL_MEM: Static<[u8; MODEL_MEM_BYTES]> = Static::new([0; MODEL_MEM_BYTES]);
static VOCAB_MEM: Static<[u8; VOCAB_MEM_BYTES]> = Static::new([0; VOCAB_MEM_BYTES]);
static SCRATCH: Static<[u8; SCRATCH_BYTES]> = Static::new([0; SCRATCH_BYTES]);
static CONTEXT_MEM: Static<[u8; CONTEXT_BYTES]> = Static::new([0; CONTEXT_BYTES]);
static SAMPLER_MEM: Static<[u8; SAMPLER_BYTES]> = Static::new([0; SAMPLER_BYTES]);
static TOKENS: Static<[u32; MAX_PROMPT + 2]> = Static::new([0; MAX_PROMPT + 2]);

/// Why the program stopped.
enum Fail {
    /// A library call refused.
    Lib(&'static str, nanollama::Error),
    /// A static is smaller than the size query asks.
    Memory(&'static str, usize, usize),
    /// Something else, said in words.
    Other(&'static str),
}

impl core::fmt::Display for Fail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fail::Lib(what, e) => write!(f, "{what}: {e}"),
            Fail::Memory(what, need, have) => write!(
                f,
                "{what} needs {need} bytes, its static holds {have} (raise it in src/main.rs)"
            ),
            Fail::Other(s) => f.write_str(s),
        }
    }
}

fn lib(what: &'static str) -> impl Fn(nanollama::Error) -> Fail {
    move |e| Fail::Lib(what, e)
}

/// The static `s`, checked to hold `need` bytes.
fn memory<const N: usize>(
    what: &'static str,
    s: &'static Static<[u8; N]>,
    need: usize,
    sizes: &mut Sizes,
) -> Result<&'static mut [u8], Fail> {
    if need > N {
        return Err(Fail::Memory(what, need, N));
    }
    sizes.push(what, need, N);
    s.take()
        .map(|b| &mut b[..])
        .ok_or(Fail::Other("a static taken twice"))
}

/// What each buffer needs and holds, for the report on stderr.
struct Sizes {
    rows: [(&'static str, usize, usize); 5],
    n: usize,
}

impl Sizes {
    fn push(&mut self, what: &'static str, need: usize, have: usize) {
        if let Some(r) = self.rows.get_mut(self.n) {
            *r = (what, need, have);
            self.n += 1;
        }
    }
}

#[no_mangle]
extern "C" fn main_entry() -> ! {
    rt::protect_flash_and_model();
    rt::timer_start();
    let mut err = Console::stderr();
    match run(&mut err) {
        Ok(()) => rt::exit(0),
        Err(e) => {
            let _ = writeln!(err, "nanollama-cortex-m: {e}");
            rt::exit(1)
        }
    }
}

fn run(err: &mut Console) -> Result<(), Fail> {
    let calibration = rt::calibrate();
    let mut out = Console::stdout();
    let mut sizes = Sizes {
        rows: [("", 0, 0); 5],
        n: 0,
    };
    let bytes: &'static [u8] = &MODEL.0;

    let t0 = rt::ticks();
    let need = Model::size(bytes).map_err(lib("model"))?;
    let mem = memory("model", &MODEL_MEM, need, &mut sizes)?;
    let model = Model::init(bytes, mem).map_err(lib("model"))?;
    let need = Vocab::size(bytes).map_err(lib("vocabulary"))?;
    let mem = memory("vocabulary", &VOCAB_MEM, need, &mut sizes)?;
    let vocab = Vocab::init(bytes, mem).map_err(lib("vocabulary"))?;

    // BOS and EOS where the file asks for them, as the host CLI does.
    let text = PROMPT.as_bytes();
    let need = Vocab::scratch_size(MAX_PROMPT).ok_or(Fail::Other("tokenizer scratch size"))?;
    let scratch = memory("tokenizer scratch", &SCRATCH, need, &mut sizes)?;
    let toks = TOKENS.take().ok_or(Fail::Other("a static taken twice"))?;
    let mut needed = 0;
    let mut n = vocab
        .tokenize_with(text, vocab.add_special(), false, scratch, toks, &mut needed)
        .map_err(lib("tokenize"))?;
    if n == 0 {
        if vocab.bos() == nanollama::tokenizer::NONE {
            return Err(Fail::Other(
                "an empty prompt, and no BOS token to start from",
            ));
        }
        toks[0] = vocab.bos();
        n = 1;
    }
    let toks = &toks[..n];
    if n >= N_CTX as usize {
        return Err(Fail::Other("the prompt does not fit the context"));
    }
    let params = ContextParams {
        n_ctx: N_CTX,
        n_batch: N_BATCH,
        kv_type: KvType::F16,
        logits_all: false,
        f32_activations: false,
    };
    let need = Context::size(&model, &params).map_err(lib("context"))?;
    let mem = memory("context", &CONTEXT_MEM, need, &mut sizes)?;
    let mut ctx = Context::init(&model, &params, mem).map_err(lib("context"))?;
    let n_vocab = model.config().n_vocab;
    let sp = SamplerParams {
        temp: 0.0,
        ..SamplerParams::default()
    };
    let need = Sampler::size(n_vocab, &sp, 0).map_err(lib("sampler"))?;
    let mem = memory("sampler", &SAMPLER_MEM, need, &mut sizes)?;
    let mut sampler = Sampler::init(n_vocab, &sp, &[], mem).map_err(lib("sampler"))?;
    let setup = rt::ticks().wrapping_sub(t0);

    let mut dec = StreamDecoder::new();
    let mut buf = [0u8; 300];
    // The prompt as the model reads it, as the host CLI echoes it.
    for &t in toks {
        let k = dec
            .push(&vocab, t, false, &mut buf, &mut needed)
            .map_err(lib("detokenize"))?;
        out.write(&buf[..k]);
    }
    let t1 = rt::ticks();
    for batch in toks.chunks(N_BATCH as usize) {
        ctx.decode(batch, &Inline).map_err(lib("decode"))?;
    }
    let prompt_ticks = rt::ticks().wrapping_sub(t1);
    for &t in toks {
        sampler.accept(t).map_err(lib("sampler"))?;
    }
    let t2 = rt::ticks();
    let mut generated = 0usize;
    while generated < N_GEN && ctx.pos() < ctx.n_ctx() {
        let t = sampler.sample(ctx.last_logits()).map_err(lib("sample"))?;
        sampler.accept(t).map_err(lib("sampler"))?;
        generated += 1;
        if vocab.is_eog(t) {
            break;
        }
        // A new verse starts with BOS in the training text: a line break.
        let k = if t == vocab.bos() {
            buf[0] = b'\n';
            1
        } else {
            dec.push(&vocab, t, false, &mut buf, &mut needed)
                .map_err(lib("detokenize"))?
        };
        out.write(&buf[..k]);
        if ctx.pos() == ctx.n_ctx() {
            break;
        }
        ctx.decode(&[t], &Inline).map_err(lib("decode"))?;
    }
    let k = dec
        .flush(&mut buf, &mut needed)
        .map_err(lib("detokenize"))?;
    out.write(&buf[..k]);
    out.write(b"\n");
    let gen_ticks = rt::ticks().wrapping_sub(t2);

    // Instructions from timer ticks, by the calibration loop's ratio.
    let insns = |ticks: u32| {
        ticks as u64 * rt::CALIBRATION_INSTRUCTIONS as u64 / (calibration as u64).max(1)
    };
    let _ = writeln!(
        err,
        "nanollama-cortex-m: timer: {calibration} ticks for {} instructions \
         ({} per tick; 40 expected under -icount shift=0)",
        rt::CALIBRATION_INSTRUCTIONS,
        rt::CALIBRATION_INSTRUCTIONS as f32 / calibration.max(1) as f32
    );
    let _ = writeln!(
        err,
        "nanollama-cortex-m: set-up {} instructions; prompt {} tokens, {} instructions \
         ({} per token); generation {generated} tokens, {} instructions ({} per token)",
        insns(setup),
        toks.len(),
        insns(prompt_ticks),
        insns(prompt_ticks) / toks.len() as u64,
        insns(gen_ticks),
        insns(gen_ticks) / generated.max(1) as u64
    );
    for (what, need, have) in &sizes.rows[..sizes.n] {
        let _ = writeln!(err, "nanollama-cortex-m: {what}: {need} of {have} bytes");
    }
    let _ = writeln!(
        err,
        "nanollama-cortex-m: stack: {} of {} bytes used",
        rt::stack_used(),
        rt::stack_size()
    );
    if rt::stack_used() >= rt::stack_size() {
        return Err(Fail::Other("the stack overflowed"));
    }
    Ok(())
}
