//! Context init and decode with arbitrary sizes, positions and token ids on
//! tiny models: tests/data/hostile/valid.gguf (F32, dim 8, 2 blocks, 32
//! tokens, training context 64) and quantized ones from tests/data/parity/
//! (so that the SIMD kernels of each weight type run under AddressSanitizer).
//! The first byte picks the model, the next ones the context's settings; then
//! a program of decodes (ids may be out of range, batches may be too long
//! or pass the context), truncates, resets and state saves and loads.
//! A refused call leaves the context exactly as it was.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::host::AlignedBuf;
use nanollama::{Context, ContextParams, Error, Inline, KvType, Model};
use std::sync::OnceLock;

macro_rules! parity {
    ($f:literal) => {
        include_bytes!(concat!("../../tests/data/parity/", $f))
    };
}

static FILES: [&[u8]; 10] = [
    include_bytes!("../../tests/data/hostile/valid.gguf"),
    parity!("gqa4-q4_0.gguf"),
    parity!("gqa4-q4_k_m.gguf"),
    parity!("gqa4-hd64-kl-f16.gguf"),
    parity!("mha-hd64-tied-q8_0.gguf"),
    parity!("gqa2-q6_k.gguf"),
    parity!("mqa-q3_k_m.gguf"),
    parity!("mha-q5_1.gguf"),
    parity!("gqa2-q5_0.gguf"),
    parity!("gqa4-hd32-tied-bf16.gguf"),
];

fn models() -> &'static [Model<'static>] {
    static M: OnceLock<Vec<Model<'static>>> = OnceLock::new();
    M.get_or_init(|| {
        FILES
            .iter()
            .map(|f| Model::init(f, AlignedBuf::new(Model::size(f).unwrap()).leak()).unwrap())
            .collect()
    })
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
}

fn params(b: &mut Bytes) -> ContextParams {
    let x = b.u8().unwrap_or(0);
    ContextParams {
        n_ctx: b.u8().unwrap_or(0) as u32 % 100,
        n_batch: b.u8().unwrap_or(0) as u32 % 24,
        kv_type: if x & 1 == 0 { KvType::F16 } else { KvType::F32 },
        logits_all: x & 2 != 0,
        f32_activations: x & 4 != 0,
    }
}

/// Everything a refused call must leave as it was.
fn snapshot(c: &Context) -> (usize, Vec<u32>) {
    (c.pos(), c.logits().iter().map(|v| v.to_bits()).collect())
}

/// Memory for a context of these settings, or None when they are refused
/// (only ever as an invalid argument).
fn memory(model: &Model, p: &ContextParams) -> Option<AlignedBuf> {
    match Context::size(model, p) {
        Ok(n) => Some(AlignedBuf::new(n)),
        Err(e) => {
            assert_eq!(e, Error::InvalidArgument);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let model = &models()[b.u8().unwrap_or(0) as usize % FILES.len()];
    let p = params(&mut b);
    let Some(mut mem) = memory(model, &p) else {
        return;
    };
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    let n_vocab = model.config().n_vocab as u32;
    let (n_ctx, n_batch) = (ctx.n_ctx(), ctx.n_batch());
    while let Some(op) = b.u8() {
        let before = snapshot(&ctx);
        match op % 5 {
            0 | 1 => {
                let n = b.u8().unwrap_or(0) as usize % 40;
                let toks: Vec<u32> = (0..n)
                    .map(|_| {
                        // Spread over the vocabulary, its last id, the
                        // first id past it, and ids near u32::MAX.
                        match b.u8().unwrap_or(0) as u32 {
                            t @ 250.. => u32::MAX - (t - 250),
                            249 => n_vocab,
                            248 => n_vocab - 1,
                            t => t * n_vocab / 248,
                        }
                    })
                    .collect();
                let r = ctx.decode(&toks, &Inline);
                let bad_id = toks.iter().any(|&t| t >= n_vocab);
                match r {
                    Ok(()) => {
                        assert!(!toks.is_empty() && !bad_id);
                        assert!(toks.len() <= n_batch && before.0 + toks.len() <= n_ctx);
                        assert_eq!(ctx.pos(), before.0 + toks.len());
                        assert_eq!(ctx.last_logits().len(), n_vocab as usize);
                        assert!(ctx.last_logits().iter().all(|v| v.is_finite()));
                    }
                    Err(e) => {
                        assert!(
                            toks.is_empty()
                                || bad_id
                                || toks.len() > n_batch
                                || before.0 + toks.len() > n_ctx,
                            "{e:?}"
                        );
                        assert_eq!(snapshot(&ctx), before, "refused decode changed the context");
                    }
                }
            }
            2 => {
                let to = b.u8().unwrap_or(0) as usize % (n_ctx + 4);
                match ctx.truncate(to) {
                    Ok(()) => assert_eq!(ctx.pos(), to),
                    Err(_) => {
                        assert!(to > before.0);
                        assert_eq!(snapshot(&ctx), before);
                    }
                }
            }
            3 => {
                // Save, then load into a context of other settings.
                let mut state = vec![0u8; ctx.state_size()];
                let n = state.len();
                assert_eq!(ctx.save_state(&mut state), Ok(n));
                assert!(ctx.save_state(&mut state[..n - 1]).is_err());
                let q = params(&mut b);
                if let Some(mut mem2) = memory(model, &q) {
                    let mut other = Context::init(model, &q, mem2.as_mut_slice()).unwrap();
                    let other_before = snapshot(&other);
                    match other.load_state(&state) {
                        Ok(()) => {
                            assert_eq!(other.pos(), ctx.pos());
                            if !ctx.logits().is_empty() && q.kv_type == p.kv_type {
                                assert_eq!(other.last_logits(), ctx.last_logits());
                            }
                        }
                        Err(e) => {
                            assert!(matches!(e, Error::StateMismatch), "{e:?}");
                            assert_eq!(snapshot(&other), other_before);
                        }
                    }
                }
                // A damaged copy is refused and changes nothing, or loads.
                let at = b.u8().unwrap_or(0) as usize * 7 % state.len();
                state[at] ^= 1 << (at % 8);
                if ctx.load_state(&state).is_err() {
                    assert_eq!(snapshot(&ctx), before);
                }
            }
            _ => {
                ctx.reset();
                assert_eq!(ctx.pos(), 0);
            }
        }
    }
});
