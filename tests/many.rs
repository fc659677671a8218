//! `Batch::decode_many`: many contexts of one model stepped with one pass
//! over the weights. Each context must end exactly as decoding it alone
//! leaves it: the same logits to the bit, the same position, the same
//! cache (its saved state, byte for byte), whatever its company, the order,
//! the tokens per context or the threads. Refused calls change nothing.
mod common;
use common::*;
use nanollama::host::ThreadPool;
use nanollama::{
    Batch, BatchParams, Context, ContextParams, Error, Inline, KvType, Model, Parallel,
};
use std::path::Path;

/// Context memory that outlives the contexts built on it.
fn mems(model: &Model<'_>, ps: &[ContextParams]) -> Vec<AlignedBuf> {
    ps.iter()
        .map(|p| AlignedBuf::new(Context::size(model, p).unwrap()))
        .collect()
}

fn contexts<'m>(
    model: &'m Model<'m>,
    ps: &[ContextParams],
    mems: &'m mut [AlignedBuf],
) -> Vec<Context<'m>> {
    ps.iter()
        .zip(mems.iter_mut())
        .map(|(p, m)| Context::init(model, p, m.as_mut_slice()).unwrap())
        .collect()
}

fn state(c: &Context<'_>) -> Vec<u8> {
    let mut v = vec![0u8; c.state_size()];
    let n = c.save_state(&mut v).unwrap();
    v.truncate(n);
    v
}

fn batch_mem(model: &Model<'_>, max_tokens: u32) -> AlignedBuf {
    AlignedBuf::new(Batch::size(model, &BatchParams { max_tokens }).unwrap())
}

/// Five contexts that differ in everything a context can differ in.
fn varied() -> Vec<ContextParams> {
    let p = |n_ctx, n_batch, kv_type, logits_all| ContextParams {
        n_ctx,
        n_batch,
        kv_type,
        logits_all,
        ..ContextParams::default()
    };
    vec![
        p(64, 8, KvType::F16, false),
        p(40, 4, KvType::F32, true),
        p(96, 16, KvType::F16, true),
        p(32, 2, KvType::F32, false),
        p(64, 8, KvType::F16, false),
    ]
}

/// Steps `ps.len()` contexts through `steps` (per step, the tokens of each
/// context in order; an empty list leaves a context out of that step) once
/// with `decode_many` and once each alone, on `par`, and asserts after every
/// step that both sets agree bit for bit.
fn agree(model: &Model<'_>, ps: &[ContextParams], steps: &[Vec<Vec<u32>>], par: &dyn Parallel) {
    let mut ma = mems(model, ps);
    let mut mb = mems(model, ps);
    let mut many = contexts(model, ps, &mut ma);
    let mut alone = contexts(model, ps, &mut mb);
    let mut bm = batch_mem(model, 32);
    let mut batch = Batch::init(model, &BatchParams { max_tokens: 32 }, bm.as_mut_slice()).unwrap();
    for (s, step) in steps.iter().enumerate() {
        let mut chosen: Vec<&mut Context<'_>> = Vec::new();
        let (mut toks, mut n_each) = (Vec::new(), Vec::new());
        for (c, t) in many.iter_mut().zip(step) {
            if !t.is_empty() {
                chosen.push(c);
                toks.extend_from_slice(t);
                n_each.push(t.len() as u32);
            }
        }
        batch
            .decode_many(&mut chosen, &toks, Some(&n_each), par)
            .unwrap();
        for (i, t) in step.iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            alone[i].decode(t, par).unwrap();
            assert_eq!(many[i].pos(), alone[i].pos(), "step {s} context {i}");
            assert_eq!(
                bits(many[i].logits()),
                bits(alone[i].logits()),
                "step {s} context {i}: logits differ"
            );
        }
    }
    for (i, (a, b)) in many.iter().zip(&alone).enumerate() {
        assert_eq!(state(a), state(b), "context {i}: caches differ");
    }
}

/// Prompts of different lengths, then single tokens for all, then a step
/// with a few tokens for some and none for others, then single tokens
/// again. (Orders other than the contexts' own: the stress test.)
fn script(n_vocab: u32, seed: u64) -> Vec<Vec<Vec<u32>>> {
    let mut r = Rng::new(seed);
    let mut tok = || (r.next_u64() % n_vocab as u64) as u32;
    let mut steps = vec![
        vec![
            (0..7).map(|_| tok()).collect(),
            (0..3).map(|_| tok()).collect(),
            (0..13).map(|_| tok()).collect(),
            vec![tok()],
            (0..5).map(|_| tok()).collect(),
        ],
        vec![
            vec![tok()],
            vec![tok()],
            vec![tok()],
            vec![tok()],
            vec![tok()],
        ],
        vec![
            vec![tok(), tok()],
            vec![],
            vec![tok(), tok(), tok()],
            vec![tok()],
            vec![],
        ],
    ];
    for _ in 0..4 {
        steps.push((0..5).map(|_| vec![tok()]).collect());
    }
    steps
}

#[test]
fn decode_many_equals_decoding_alone_for_every_weight_type() {
    kernels_from_env();
    let pool = ThreadPool::new(2);
    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".gguf"))
            .collect();
    names.sort();
    assert!(names.len() >= 19, "the parity files are missing");
    for name in &names {
        let mut f = Fixture::parity(name);
        let model = f.model();
        let n_vocab = model.config().n_vocab as u32;
        let steps = script(n_vocab, name.len() as u64);
        agree(&model, &varied(), &steps, &Inline);
        agree(&model, &varied(), &steps, &pool);
    }
}

/// An FFN width that is not a multiple of the vector width: the last
/// elements of a row met the scalar `expf` or the vector exp depending on
/// where the batch ended (found by this file's Miri test), so a row's bits
/// depended on its place in the batch.
#[test]
fn odd_widths_give_the_same_bits() {
    kernels_from_env();
    for (t, ffn) in [(ty::F32, 200), (ty::F16, 72), (ty::BF16, 40)] {
        let c = TinyConfig {
            dim: 48,
            n_heads: 4,
            n_kv_heads: 2,
            ffn,
            ctx: 128,
            ..TinyConfig::default()
        };
        let mut f = Fixture::tiny(&c, t, 5);
        let model = f.model();
        let steps = script(c.vocab as u32, ffn as u64);
        agree(&model, &varied(), &steps, &Inline);
        agree(&model, &varied(), &steps, &ThreadPool::new(2));
    }
}

#[test]
fn decode_many_equals_decoding_alone_with_f32_activations_and_threads() {
    kernels_from_env();
    for t in [ty::F32, ty::F16, ty::BF16, ty::Q8_0] {
        let c = TinyConfig {
            dim: 128,
            ffn: 192,
            ctx: 128,
            ..TinyConfig::default()
        };
        let mut f = Fixture::tiny(&c, t, 3);
        let model = f.model();
        let steps = script(c.vocab as u32, t as u64);
        for f32_act in [false, true] {
            let ps: Vec<_> = varied()
                .into_iter()
                .map(|p| ContextParams {
                    f32_activations: f32_act,
                    ..p
                })
                .collect();
            for threads in [1, 3] {
                agree(&model, &ps, &steps, &ThreadPool::new(threads));
            }
        }
    }
}

/// 16 contexts at random positions, random tokens, a random subset of
/// random size per call in a random order, one to three tokens each, 2,000
/// calls; each compared after every call with a twin decoded alone. A
/// context that would overflow is reset (both twins).
#[test]
fn stress_two_thousand_random_calls() {
    kernels_from_env();
    let pool = ThreadPool::new(2);
    let mut f = Fixture::parity("gqa4-q4_0.gguf");
    let model = f.model();
    let n_vocab = model.config().n_vocab as u64;
    let mut r = Rng::new(2026);
    let ps: Vec<ContextParams> = (0..16)
        .map(|i| ContextParams {
            n_ctx: 24 + (r.next_u64() % 48) as u32,
            n_batch: 3,
            kv_type: if i % 3 == 0 { KvType::F32 } else { KvType::F16 },
            logits_all: i % 4 == 1,
            ..ContextParams::default()
        })
        .collect();
    let mut ma = mems(&model, &ps);
    let mut mb = mems(&model, &ps);
    let mut many = contexts(&model, &ps, &mut ma);
    let mut alone = contexts(&model, &ps, &mut mb);
    let mut bm = batch_mem(&model, 48);
    let mut batch =
        Batch::init(&model, &BatchParams { max_tokens: 48 }, bm.as_mut_slice()).unwrap();
    // Random starting positions.
    for (i, (a, b)) in many.iter_mut().zip(alone.iter_mut()).enumerate() {
        let n = (r.next_u64() % 3) as usize;
        for _ in 0..n {
            let t = [(r.next_u64() % n_vocab) as u32, i as u32];
            a.decode(&t, &pool).unwrap();
            b.decode(&t, &pool).unwrap();
        }
    }
    let mut calls_with = [0usize; 17];
    for call in 0..2000 {
        // A random order of a random subset.
        let mut order: Vec<usize> = (0..16).collect();
        for i in (1..16).rev() {
            order.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
        }
        let n = 1 + (r.next_u64() % 16) as usize;
        order.truncate(n);
        calls_with[n] += 1;
        let mut toks = Vec::new();
        let mut n_each = Vec::new();
        for &i in &order {
            let k = 1 + (r.next_u64() % 3) as usize;
            if many[i].pos() + k > many[i].n_ctx() {
                many[i].reset();
                alone[i].reset();
            }
            for _ in 0..k {
                toks.push((r.next_u64() % n_vocab) as u32);
            }
            n_each.push(k as u32);
        }
        {
            let mut slots: Vec<Option<&mut Context<'_>>> = many.iter_mut().map(Some).collect();
            let mut chosen: Vec<&mut Context<'_>> =
                order.iter().map(|&i| slots[i].take().unwrap()).collect();
            let par: &dyn Parallel = if call % 2 == 0 { &pool } else { &Inline };
            batch
                .decode_many(&mut chosen, &toks, Some(&n_each), par)
                .unwrap();
        }
        let mut t0 = 0;
        for (&i, &k) in order.iter().zip(&n_each) {
            alone[i].decode(&toks[t0..t0 + k as usize], &pool).unwrap();
            t0 += k as usize;
            assert_eq!(many[i].pos(), alone[i].pos(), "call {call} context {i}");
            assert_eq!(
                bits(many[i].logits()),
                bits(alone[i].logits()),
                "call {call} context {i}: logits differ"
            );
        }
    }
    // Every size of call was drawn.
    assert!(calls_with[1..].iter().all(|&c| c > 50), "{calls_with:?}");
    for (a, b) in many.iter().zip(&alone) {
        assert_eq!(state(a), state(b));
    }
}

#[test]
fn one_token_each_without_counts() {
    let mut f = Fixture::parity("mqa-q4_1.gguf");
    let model = f.model();
    let ps = varied();
    let mut ma = mems(&model, &ps);
    let mut mb = mems(&model, &ps);
    let mut many = contexts(&model, &ps, &mut ma);
    let mut alone = contexts(&model, &ps, &mut mb);
    let mut bm = batch_mem(&model, 0);
    let mut batch = Batch::init(&model, &BatchParams::default(), bm.as_mut_slice()).unwrap();
    assert_eq!(batch.max_tokens(), 64);
    for step in 0..3u32 {
        let toks: Vec<u32> = (0..5).map(|i| i * 7 + step).collect();
        let mut all: Vec<&mut Context<'_>> = many.iter_mut().collect();
        batch.decode_many(&mut all, &toks, None, &Inline).unwrap();
        for (i, c) in alone.iter_mut().enumerate() {
            c.decode(&[toks[i]], &Inline).unwrap();
            assert_eq!(bits(many[i].logits()), bits(c.logits()));
        }
    }
}

/// Each refusal, with everything checked before anything changes: the
/// contexts' states (caches, positions, logits) are byte-identical after.
#[test]
fn refusals_leave_every_context_unchanged() {
    let mut f = Fixture::parity("mha-q5_1.gguf");
    let mut g = Fixture::parity("mha-q5_1.gguf");
    let model = f.model();
    let other = g.model();
    let n_vocab = model.config().n_vocab as u32;
    let p = ContextParams {
        n_ctx: 8,
        n_batch: 4,
        ..ContextParams::default()
    };
    let ps = [p, p, p];
    let mut ma = mems(&model, &ps);
    let mut ctxs = contexts(&model, &ps, &mut ma);
    ctxs[0].decode(&[1, 2, 3], &Inline).unwrap();
    ctxs[1].decode(&[4], &Inline).unwrap();
    ctxs[2].decode(&[5, 6, 7], &Inline).unwrap();
    ctxs[2].decode(&[8, 9, 10], &Inline).unwrap(); // 2 positions left
    let f32p = ContextParams {
        f32_activations: true,
        ..p
    };
    let mut mf = AlignedBuf::new(Context::size(&model, &f32p).unwrap());
    let mut f32ctx = Context::init(&model, &f32p, mf.as_mut_slice()).unwrap();
    let mut mo = AlignedBuf::new(Context::size(&other, &p).unwrap());
    let mut foreign = Context::init(&other, &p, mo.as_mut_slice()).unwrap();
    let before: Vec<Vec<u8>> = ctxs.iter().map(state).collect();
    let mut bm = batch_mem(&model, 8);
    let mut batch = Batch::init(&model, &BatchParams { max_tokens: 8 }, bm.as_mut_slice()).unwrap();

    let [a, b, c] = &mut ctxs[..] else {
        unreachable!()
    };
    type Case<'a> = (&'a str, Vec<u32>, Option<Vec<u32>>, Error);
    let cases: Vec<Case<'_>> = vec![
        (
            "n_each too short",
            vec![1, 2, 3],
            Some(vec![1, 2]),
            Error::InvalidArgument,
        ),
        (
            "a count of 0",
            vec![1, 2],
            Some(vec![1, 0, 1]),
            Error::InvalidArgument,
        ),
        (
            "too few tokens",
            vec![1, 2],
            Some(vec![1, 1, 1]),
            Error::InvalidArgument,
        ),
        (
            "too many tokens",
            vec![1, 2, 3, 4],
            None,
            Error::InvalidArgument,
        ),
        (
            "past max_tokens",
            vec![1; 9],
            Some(vec![4, 4, 1]),
            Error::BatchTooLarge,
        ),
        (
            "past a context's n_batch",
            vec![1; 7],
            Some(vec![1, 5, 1]),
            Error::BatchTooLarge,
        ),
        (
            "token out of range",
            vec![1, 2, n_vocab],
            None,
            Error::TokenOutOfRange,
        ),
        (
            "context full",
            vec![1, 1, 1, 1, 1],
            Some(vec![1, 1, 3]),
            Error::ContextFull,
        ),
    ];
    for (what, toks, n_each, want) in &cases {
        let mut all: Vec<&mut Context<'_>> = vec![&mut *a, &mut *b, &mut *c];
        let got = batch.decode_many(&mut all, toks, n_each.as_deref(), &Inline);
        assert_eq!(got, Err(*want), "{what}");
    }
    let mut none: Vec<&mut Context<'_>> = vec![];
    assert_eq!(
        batch.decode_many(&mut none, &[], None, &Inline),
        Err(Error::InvalidArgument),
        "no contexts"
    );
    {
        let mut all: Vec<&mut Context<'_>> = vec![&mut *a, &mut *b, &mut foreign];
        assert_eq!(
            batch.decode_many(&mut all, &[1, 2, 3], None, &Inline),
            Err(Error::ModelMismatch),
            "another model"
        );
    }
    {
        let mut all: Vec<&mut Context<'_>> = vec![&mut *a, &mut f32ctx, &mut *b];
        assert_eq!(
            batch.decode_many(&mut all, &[1, 2, 3], None, &Inline),
            Err(Error::InvalidArgument),
            "f32_activations mixed"
        );
    }
    let after: Vec<Vec<u8>> = ctxs.iter().map(state).collect();
    assert_eq!(before, after);
    assert_eq!(f32ctx.pos(), 0);
    assert_eq!(foreign.pos(), 0);

    // And a call that passes every check goes through afterwards, with
    // what each alone would give.
    let mut mb = mems(&model, &ps);
    let mut twins = contexts(&model, &ps, &mut mb);
    for (t, st) in twins.iter_mut().zip(&before) {
        t.load_state(st).unwrap();
    }
    let mut all: Vec<&mut Context<'_>> = ctxs.iter_mut().collect();
    batch
        .decode_many(&mut all, &[11, 12, 13], None, &Inline)
        .unwrap();
    for (i, t) in twins.iter_mut().enumerate() {
        t.decode(&[11 + i as u32], &Inline).unwrap();
        assert_eq!(bits(t.logits()), bits(ctxs[i].logits()));
    }
}

#[test]
fn batch_memory_is_checked() {
    let mut f = Fixture::parity("mha-q5_1.gguf");
    let model = f.model();
    let p = BatchParams { max_tokens: 4 };
    let n = Batch::size(&model, &p).unwrap();
    let mut mem = AlignedBuf::new(n + 64);
    assert!(matches!(
        Batch::init(&model, &p, &mut mem.as_mut_slice()[..n - 1]),
        Err(Error::BufferTooSmall)
    ));
    assert!(matches!(
        Batch::init(&model, &p, &mut mem.as_mut_slice()[1..]),
        Err(Error::Misaligned)
    ));
    assert!(Batch::size(
        &model,
        &BatchParams {
            max_tokens: u32::MAX
        }
    )
    .is_err());
    // Memory grows with max_tokens.
    let n8 = Batch::size(&model, &BatchParams { max_tokens: 8 }).unwrap();
    assert!(n8 > n);
    assert!(Batch::init(&model, &p, &mut mem.as_mut_slice()[..n]).is_ok());
}
