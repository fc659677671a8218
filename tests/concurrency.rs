//! Many conversations over one model: four threads, each with its own
//! context and sampler over one shared model and vocabulary (the shipped
//! model), started together and decoding at the same time, produce exactly
//! the tokens that one thread produces doing the four conversations in turn.
mod common;
use common::AlignedBuf;
use nanollama::host::ThreadPool;
use nanollama::tokenizer::Vocab;
use nanollama::{Context, ContextParams, Inline, Model, Parallel, Sampler, SamplerParams};
use std::sync::Barrier;

const PROMPTS: [&str; 4] = [
    "In the beginning",
    "And the LORD said unto Moses,",
    "Blessed are the meek:",
    "The LORD is my shepherd;",
];
const N: usize = 48;

/// Tokenizes `prompt`, decodes it and samples `N` tokens (seeded), one
/// decode per token; waits at `start` (if any) before its first decode and
/// after every token, so that concurrent runs really interleave.
fn conversation(
    model: &Model<'_>,
    vocab: &Vocab<'_>,
    i: usize,
    par: &dyn Parallel,
    start: Option<&Barrier>,
) -> Vec<u32> {
    let ids = common::tokenize(vocab, PROMPTS[i]);
    let p = ContextParams::default();
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    let sp = SamplerParams {
        seed: 1000 + i as u64,
        ..SamplerParams::default()
    };
    let n_vocab = model.config().n_vocab;
    let mut smem = AlignedBuf::new(Sampler::size(n_vocab, &sp, 0).unwrap());
    let mut s = Sampler::init(n_vocab, &sp, &[], smem.as_mut_slice()).unwrap();
    if let Some(b) = start {
        b.wait();
    }
    ctx.decode(&ids, par).unwrap();
    let mut out = Vec::new();
    for _ in 0..N {
        let t = s.sample(ctx.last_logits()).unwrap();
        s.accept(t).unwrap();
        out.push(t);
        ctx.decode(&[t], par).unwrap();
        if let Some(b) = start {
            b.wait();
        }
    }
    out
}

#[test]
fn four_threads_on_one_model_give_the_tokens_of_one_thread() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/kjv-llama.gguf"
    ))
    .unwrap();
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let mut vm = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let vocab = Vocab::init(&bytes, vm.as_mut_slice()).unwrap();

    let one_thread: Vec<Vec<u32>> = (0..4)
        .map(|i| conversation(&model, &vocab, i, &Inline, None))
        .collect();
    // The conversations differ, so a mix-up between them would show.
    for i in 0..4 {
        for j in 0..i {
            assert_ne!(one_thread[i], one_thread[j]);
        }
    }
    let barrier = Barrier::new(4);
    // Each thread alone, then each thread also spreading its decodes over
    // one thread pool that all four share.
    let pool = ThreadPool::new(2);
    for shared_pool in [false, true] {
        let four: Vec<Vec<u32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let (model, vocab, barrier, pool) = (&model, &vocab, &barrier, &pool);
                    sc.spawn(move || {
                        let par: &dyn Parallel = if shared_pool { pool } else { &Inline };
                        conversation(model, vocab, i, par, Some(barrier))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(four, one_thread, "shared pool: {shared_pool}");
    }
}
