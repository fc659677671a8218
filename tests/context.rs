//! Context semantics: batches, positions, truncate/reset, shared models,
//! threads, KV types, head layouts.
mod common;
use common::*;
use nanollama::host::ThreadPool;
use nanollama::{Context, ContextParams, Inline, KvType, Model, Parallel};

const TOKENS: [u32; 12] = [5, 17, 99, 0, 42, 42, 7, 63, 12, 88, 3, 50];

struct Fixture {
    bytes: Vec<u8>,
    mem: AlignedBuf,
}

impl Fixture {
    fn new(c: &TinyConfig, t: u32) -> Self {
        let bytes = tiny_model(c, t, 11);
        let mem = AlignedBuf::new(Model::size(&bytes).unwrap());
        Fixture { bytes, mem }
    }
    fn model(&mut self) -> Model<'_> {
        Model::init(&self.bytes, self.mem.as_mut_slice()).unwrap()
    }
}

fn params(kv: KvType, all: bool) -> ContextParams {
    ContextParams {
        n_ctx: 32,
        n_batch: 16,
        kv_type: kv,
        logits_all: all,
    }
}

/// Decodes `batches` in turn and returns the logits of the last decode.
fn run(model: &Model<'_>, p: ContextParams, batches: &[&[u32]], par: &dyn Parallel) -> Vec<f32> {
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    for b in batches {
        ctx.decode(b, par).unwrap();
    }
    ctx.logits().to_vec()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn all_logits_rows_match_last_token_logits() {
    let mut f = Fixture::new(&TinyConfig::default(), ty::F32);
    let m = f.model();
    let all = run(&m, params(KvType::F32, true), &[&TOKENS], &Inline);
    assert_eq!(all.len(), TOKENS.len() * 100);
    for i in 1..=TOKENS.len() {
        let last = run(&m, params(KvType::F32, false), &[&TOKENS[..i]], &Inline);
        assert_eq!(bits(&last), bits(&all[(i - 1) * 100..i * 100]), "row {i}");
    }
}

#[test]
fn batch_splits_give_identical_logits() {
    // Each output is computed by the same arithmetic whatever the batch, so
    // the logits are bit-identical, not merely close.
    for kv in [KvType::F32, KvType::F16] {
        for t in [ty::F32, ty::Q8_0] {
            let mut f = Fixture::new(&TinyConfig::default(), t);
            let m = f.model();
            let p = params(kv, false);
            let one = run(&m, p, &[&TOKENS], &Inline);
            let three = run(&m, p, &[&TOKENS[..5], &TOKENS[5..6], &TOKENS[6..]], &Inline);
            let singles: Vec<&[u32]> = TOKENS.chunks(1).collect();
            let each = run(&m, p, &singles, &Inline);
            assert_eq!(bits(&one), bits(&three));
            assert_eq!(bits(&one), bits(&each));
        }
    }
}

#[test]
fn truncate_and_reset() {
    let mut f = Fixture::new(&TinyConfig::default(), ty::F16);
    let m = f.model();
    let p = params(KvType::F16, false);
    let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
    let mut ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
    assert_eq!(ctx.pos(), 0);
    assert!(ctx.logits().is_empty());
    ctx.decode(&TOKENS[..8], &Inline).unwrap();
    let first = ctx.logits().to_vec();
    ctx.decode(&TOKENS[8..], &Inline).unwrap();
    assert_eq!(ctx.pos(), 12);
    ctx.truncate(5).unwrap();
    assert_eq!(ctx.pos(), 5);
    assert!(ctx.logits().is_empty());
    ctx.decode(&TOKENS[5..8], &Inline).unwrap();
    assert_eq!(bits(ctx.logits()), bits(&first));
    // A different continuation after truncation equals a fresh run of it.
    ctx.truncate(3).unwrap();
    ctx.decode(&[1, 2, 3], &Inline).unwrap();
    let fresh = run(
        &m,
        p,
        &[&[TOKENS[0], TOKENS[1], TOKENS[2], 1, 2, 3]],
        &Inline,
    );
    assert_eq!(bits(ctx.logits()), bits(&fresh));
    ctx.reset();
    assert_eq!(ctx.pos(), 0);
    ctx.decode(&TOKENS[..8], &Inline).unwrap();
    assert_eq!(bits(ctx.logits()), bits(&first));
    ctx.truncate(8).unwrap(); // truncating to the current position is allowed
    assert_eq!(ctx.pos(), 8);
}

#[test]
fn thread_count_changes_no_bit() {
    let c = TinyConfig {
        dim: 128,
        ffn: 256,
        vocab: 300,
        n_heads: 8,
        n_kv_heads: 2,
        ..TinyConfig::default()
    };
    let mut f = Fixture::new(&c, ty::Q8_0);
    let m = f.model();
    let p = params(KvType::F32, true);
    let want = run(&m, p, &[&TOKENS[..7], &TOKENS[7..]], &Inline);
    for threads in [1, 2, 3, 4] {
        let pool = ThreadPool::new(threads);
        let got = run(&m, p, &[&TOKENS[..7], &TOKENS[7..]], &pool);
        assert_eq!(bits(&got), bits(&want), "{threads} threads");
    }
}

#[test]
fn contexts_share_a_model_across_threads() {
    let mut f = Fixture::new(&TinyConfig::default(), ty::BF16);
    let m = f.model();
    let p = params(KvType::F16, false);
    let seqs: Vec<Vec<u32>> = (0..4u32)
        .map(|i| TOKENS.iter().map(|t| (t + i * 13) % 100).collect())
        .collect();
    let sequential: Vec<Vec<f32>> = seqs.iter().map(|s| run(&m, p, &[s], &Inline)).collect();
    let parallel: Vec<Vec<f32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = seqs
            .iter()
            .map(|s| sc.spawn(|| run(&m, p, &[s], &Inline)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in sequential.iter().zip(&parallel) {
        assert_eq!(bits(a), bits(b));
    }
    assert_ne!(bits(&sequential[0]), bits(&sequential[1]));
}

#[test]
fn f16_kv_is_close_to_f32_kv() {
    let mut f = Fixture::new(&TinyConfig::default(), ty::F32);
    let m = f.model();
    let a = run(&m, params(KvType::F32, true), &[&TOKENS], &Inline);
    let b = run(&m, params(KvType::F16, true), &[&TOKENS], &Inline);
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max > 0.0 && max < 1e-2, "max |f32 - f16| = {max}");
}

#[test]
fn head_layouts_and_tied_output() {
    for (heads, kv) in [(4, 4), (4, 2), (4, 1), (8, 2)] {
        let c = TinyConfig {
            n_heads: heads,
            n_kv_heads: kv,
            ..TinyConfig::default()
        };
        let mut f = Fixture::new(&c, ty::F32);
        let m = f.model();
        let l = run(&m, params(KvType::F32, false), &[&TOKENS], &Inline);
        assert!(l.iter().all(|v| v.is_finite()), "{heads}:{kv}");
    }
    // A tied model equals an untied one whose output is a copy of token_embd.
    let c = TinyConfig {
        tied: true,
        ..TinyConfig::default()
    };
    let tied = tiny_builder(&c, ty::F16, 3);
    let mut untied = tied.clone();
    let embd = tied
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .unwrap()
        .clone();
    untied.tensor("output.weight", &embd.dims, embd.ty, embd.data.clone());
    let mut outs = Vec::new();
    for b in [tied.build(), untied.build()] {
        let mut mem = AlignedBuf::new(Model::size(&b).unwrap());
        let m = Model::init(&b, mem.as_mut_slice()).unwrap();
        assert_eq!(m.info().tied_output, outs.is_empty());
        outs.push(run(&m, params(KvType::F32, false), &[&TOKENS], &Inline));
    }
    assert_eq!(bits(&outs[0]), bits(&outs[1]));
}

#[test]
fn context_sizes() {
    let mut f = Fixture::new(&TinyConfig::default(), ty::F32);
    let m = f.model();
    let size = |n_ctx, n_batch, kv_type| {
        let p = ContextParams {
            n_ctx,
            n_batch,
            kv_type,
            logits_all: false,
        };
        Context::size(&m, &p).unwrap()
    };
    assert!(size(64, 8, KvType::F32) > size(32, 8, KvType::F32));
    assert!(size(32, 16, KvType::F32) > size(32, 8, KvType::F32));
    assert!(size(32, 8, KvType::F16) < size(32, 8, KvType::F32));
    // 32 more positions: KV cache 2 (k, v) x 2 layers x 32 x kv_dim 32 x 4
    // bytes, and attention scores 4 heads x 32 x 4 bytes.
    assert_eq!(
        size(64, 8, KvType::F32) - size(32, 8, KvType::F32),
        2 * 2 * 32 * 32 * 4 + 4 * 32 * 4
    );
    // n_ctx 0 is the model's context length (64); n_batch 0 is min(512, n_ctx).
    assert_eq!(size(0, 0, KvType::F16), size(64, 64, KvType::F16));
    let p = ContextParams::default();
    let mut mem = AlignedBuf::new(Context::size(&m, &p).unwrap());
    let ctx = Context::init(&m, &p, mem.as_mut_slice()).unwrap();
    assert_eq!(
        (ctx.n_ctx(), ctx.n_batch(), ctx.kv_type()),
        (64, 64, KvType::F16)
    );
}
