//! Saved states of contexts and samplers: a restored conversation continues
//! bit for bit as the uninterrupted one, and a state from another model,
//! for other settings, truncated or damaged anywhere is refused with its
//! status and changes nothing. (A state crossing a process boundary is
//! tested through C in tests/ffi_c.rs.)
mod common;
use common::*;
use nanollama::{Context, ContextParams, Error, Inline, KvType, Model, Sampler, SamplerParams};

const TOKENS: [u32; 14] = [1, 17, 99, 0, 42, 42, 7, 63, 12, 88, 3, 50, 77, 5];

fn params(kv: KvType, all: bool, n_ctx: u32) -> ContextParams {
    ContextParams {
        n_ctx,
        n_batch: 8,
        kv_type: kv,
        logits_all: all,
        ..ContextParams::default()
    }
}

/// Feeds `TOKENS[..6]` as a batch, then `TOKENS[6..9]` one at a time.
fn prefix(ctx: &mut Context<'_>) {
    ctx.decode(&TOKENS[..6], &Inline).unwrap();
    for t in &TOKENS[6..9] {
        ctx.decode(&[*t], &Inline).unwrap();
    }
}

/// Logits of each remaining token fed one at a time.
fn rest(ctx: &mut Context<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    for t in &TOKENS[9..] {
        ctx.decode(&[*t], &Inline).unwrap();
        out.extend(ctx.logits().iter().map(|x| x.to_bits()));
    }
    out
}

#[test]
fn restored_context_continues_bit_identically() {
    for t in [ty::F32, ty::Q8_0] {
        let mut f = Fixture::tiny(&TinyConfig::default(), t, 3);
        let model = f.model();
        for kv in [KvType::F32, KvType::F16] {
            for all in [false, true] {
                let p = params(kv, all, 32);
                let mut ma = AlignedBuf::new(Context::size(&model, &p).unwrap());
                let mut a = Context::init(&model, &p, ma.as_mut_slice()).unwrap();
                prefix(&mut a);
                let mut saved = vec![0u8; a.state_size()];
                assert_eq!(
                    a.save_state(&mut saved[..a.state_size() - 1]),
                    Err(Error::BufferTooSmall)
                );
                let n = a.save_state(&mut saved).unwrap();
                assert_eq!(n, saved.len());
                let at_save = bits(a.logits());
                let want = rest(&mut a);

                // A fresh context in other memory, with a larger n_ctx, after
                // some unrelated tokens: the state replaces all of it.
                let q = params(kv, all, 48);
                let mut mb = AlignedBuf::new(Context::size(&model, &q).unwrap());
                let mut b = Context::init(&model, &q, mb.as_mut_slice()).unwrap();
                b.decode(&[9, 9, 9], &Inline).unwrap();
                b.load_state(&saved).unwrap();
                assert_eq!(b.pos(), 9);
                assert_eq!(bits(b.logits()), at_save);
                assert_eq!(rest(&mut b), want, "type {t} kv {kv:?} all {all}");
            }
        }
    }
}

#[test]
fn logits_of_a_whole_batch_load_into_a_last_only_context() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::F32, 3);
    let model = f.model();
    let p = params(KvType::F32, true, 32);
    let mut ma = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut a = Context::init(&model, &p, ma.as_mut_slice()).unwrap();
    a.decode(&TOKENS[..6], &Inline).unwrap();
    let mut saved = vec![0u8; a.state_size()];
    a.save_state(&mut saved).unwrap();
    let q = params(KvType::F32, false, 32);
    let mut mb = AlignedBuf::new(Context::size(&model, &q).unwrap());
    let mut b = Context::init(&model, &q, mb.as_mut_slice()).unwrap();
    b.load_state(&saved).unwrap();
    assert_eq!(bits(b.logits()), bits(a.last_logits()));
    // Empty and truncated conversations round-trip too.
    a.truncate(2).unwrap();
    let mut s2 = vec![0u8; a.state_size()];
    a.save_state(&mut s2).unwrap();
    b.load_state(&s2).unwrap();
    assert_eq!((b.pos(), b.logits().len()), (2, 0));
    a.reset();
    let mut s0 = vec![0u8; a.state_size()];
    a.save_state(&mut s0).unwrap();
    b.load_state(&s0).unwrap();
    assert_eq!(b.pos(), 0);
}

#[test]
fn bad_context_states_are_refused_and_change_nothing() {
    let mut f = Fixture::tiny(&TinyConfig::default(), ty::Q8_0, 3);
    let mut other = Fixture::tiny(&TinyConfig::default(), ty::Q8_0, 4);
    let mut other_type = Fixture::tiny(&TinyConfig::default(), ty::F32, 3);
    let model = f.model();
    let p = params(KvType::F16, false, 32);
    let state_of = |model: &Model<'_>, p: &ContextParams| {
        let mut m = AlignedBuf::new(Context::size(model, p).unwrap());
        let mut c = Context::init(model, p, m.as_mut_slice()).unwrap();
        prefix(&mut c);
        let mut s = vec![0u8; c.state_size()];
        c.save_state(&mut s).unwrap();
        s
    };
    let good = state_of(&model, &p);
    let from_other = state_of(&other.model(), &p);
    let from_other_type = state_of(&other_type.model(), &p);
    let f32_kv = state_of(&model, &params(KvType::F32, false, 32));
    assert_ne!(model.fingerprint(), other.model().fingerprint());
    assert_ne!(model.fingerprint(), other_type.model().fingerprint());

    // The victim: a context with a conversation of its own.
    let mut mv = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut v = Context::init(&model, &p, mv.as_mut_slice()).unwrap();
    v.decode(&[4, 5, 6, 7], &Inline).unwrap();
    let before = (v.pos(), bits(v.logits()));
    let mut control_mem = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut control = Context::init(&model, &p, control_mem.as_mut_slice()).unwrap();
    control.decode(&[4, 5, 6, 7], &Inline).unwrap();
    control.decode(&[8], &Inline).unwrap();

    let mut refusals: Vec<(String, Vec<u8>, Error)> = vec![
        ("another model".into(), from_other, Error::StateMismatch),
        (
            "another weight type".into(),
            from_other_type,
            Error::StateMismatch,
        ),
        ("another KV type".into(), f32_kv, Error::StateMismatch),
        ("empty".into(), Vec::new(), Error::StateCorrupt),
    ];
    let mut sampler_state = vec![0u8; 64];
    let sp = SamplerParams::default();
    let mut sm = AlignedBuf::new(Sampler::size(100, &sp, 0).unwrap());
    let s = Sampler::init(100, &sp, &[], sm.as_mut_slice()).unwrap();
    let n = s.save_state(&mut sampler_state).unwrap();
    refusals.push((
        "a sampler state".into(),
        sampler_state[..n].to_vec(),
        Error::StateCorrupt,
    ));
    for cut in 0..good.len() {
        refusals.push((
            format!("cut at {cut}"),
            good[..cut].to_vec(),
            Error::StateCorrupt,
        ));
    }
    let mut longer = good.clone();
    longer.push(0);
    refusals.push(("one byte more".into(), longer, Error::StateCorrupt));
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 1 << (i % 8);
        refusals.push((format!("bit flipped in byte {i}"), bad, Error::StateCorrupt));
    }
    for (what, state, want) in &refusals {
        assert_eq!(v.load_state(state), Err(*want), "{what}");
        assert_eq!((v.pos(), bits(v.logits())), before, "{what}");
    }
    // A state that does not fit n_ctx: position 9 into a context of 8.
    let small = params(KvType::F16, false, 8);
    let mut ms = AlignedBuf::new(Context::size(&model, &small).unwrap());
    let mut s8 = Context::init(&model, &small, ms.as_mut_slice()).unwrap();
    assert_eq!(s8.load_state(&good), Err(Error::StateMismatch));
    assert_eq!(s8.pos(), 0);
    // The cache is untouched: the victim continues like the control.
    v.decode(&[8], &Inline).unwrap();
    assert_eq!(bits(v.logits()), bits(control.logits()));
    println!("{} refusals checked", refusals.len() + 1);
}

/// Draws `n` tokens from the sampler over a fixed sequence of logit rows,
/// accepting each.
fn draws(s: &mut Sampler<'_>, rows: &mut common::Rng, n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut logits = vec![0f32; 100];
    for _ in 0..n {
        for l in logits.iter_mut() {
            *l = rows.uniform() * 4.0;
        }
        let t = s.sample(&logits).unwrap();
        s.accept(t).unwrap();
        out.push(t);
    }
    out
}

#[test]
fn restored_sampler_draws_the_same_tokens() {
    let chains = [
        SamplerParams {
            seed: 7,
            temp: 0.9,
            top_k: 40,
            top_p: 0.95,
            penalty_last_n: 16,
            penalty_repeat: 1.3,
            penalty_freq: 0.2,
            penalty_present: 0.1,
            ..SamplerParams::default()
        },
        SamplerParams {
            seed: 8,
            temp: 1.0,
            mirostat: 2,
            ..SamplerParams::default()
        },
    ];
    for p in chains {
        let mut ma = AlignedBuf::new(Sampler::size(100, &p, 0).unwrap());
        let mut a = Sampler::init(100, &p, &[], ma.as_mut_slice()).unwrap();
        let mut rows = common::Rng::new(1);
        draws(&mut a, &mut rows, 25);
        let mut saved = vec![0u8; a.state_size()];
        assert_eq!(a.save_state(&mut saved).unwrap(), saved.len());
        let mut rows_b = common::Rng::new(2);
        let want = draws(&mut a, &mut rows_b, 40);

        let mut mb = AlignedBuf::new(Sampler::size(100, &p, 0).unwrap());
        let mut b = Sampler::init(100, &p, &[], mb.as_mut_slice()).unwrap();
        b.load_state(&saved).unwrap();
        let mut rows_b = common::Rng::new(2);
        assert_eq!(draws(&mut b, &mut rows_b, 40), want, "{p:?}");
        // Without the state the draws differ (the test can fail).
        b.reset();
        let mut rows_b = common::Rng::new(2);
        assert_ne!(draws(&mut b, &mut rows_b, 40), want);
    }
}

#[test]
fn bad_sampler_states_are_refused_and_change_nothing() {
    let p = SamplerParams {
        seed: 3,
        temp: 0.8,
        penalty_last_n: 8,
        penalty_repeat: 1.5,
        ..SamplerParams::default()
    };
    let make = |n_vocab: usize, p: &SamplerParams| {
        let mut m = AlignedBuf::new(Sampler::size(n_vocab, p, 0).unwrap());
        let mut s = Sampler::init(n_vocab, p, &[], m.as_mut_slice()).unwrap();
        let mut logits = vec![0f32; n_vocab];
        for i in 0..12 {
            logits[i % n_vocab] = 3.0;
            let t = s.sample(&logits).unwrap();
            s.accept(t).unwrap();
        }
        let mut st = vec![0u8; s.state_size()];
        s.save_state(&mut st).unwrap();
        st
    };
    let good = make(100, &p);
    let wide = make(101, &p);
    let long_history = make(
        100,
        &SamplerParams {
            penalty_last_n: 9,
            ..p
        },
    );
    let mut mv = AlignedBuf::new(Sampler::size(100, &p, 0).unwrap());
    let mut v = Sampler::init(100, &p, &[], mv.as_mut_slice()).unwrap();
    let mut mc = AlignedBuf::new(Sampler::size(100, &p, 0).unwrap());
    let mut control = Sampler::init(100, &p, &[], mc.as_mut_slice()).unwrap();
    let mut rows = common::Rng::new(5);
    let mut rows_c = common::Rng::new(5);
    assert_eq!(
        draws(&mut v, &mut rows, 5),
        draws(&mut control, &mut rows_c, 5)
    );

    let mut refusals = vec![
        (wide, Error::StateMismatch),
        (long_history, Error::StateMismatch),
    ];
    for cut in 0..good.len() {
        refusals.push((good[..cut].to_vec(), Error::StateCorrupt));
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        refusals.push((bad, Error::StateCorrupt));
    }
    for (i, (state, want)) in refusals.iter().enumerate() {
        assert_eq!(v.load_state(state), Err(*want), "case {i}");
    }
    let history: Vec<u32> = v.history().collect();
    assert_eq!(history, control.history().collect::<Vec<_>>());
    assert_eq!(
        draws(&mut v, &mut rows, 20),
        draws(&mut control, &mut rows_c, 20)
    );
    // A shorter history loads into a longer window.
    let short = make(
        100,
        &SamplerParams {
            penalty_last_n: 4,
            ..p
        },
    );
    assert_eq!(v.load_state(&short), Ok(()));
    assert_eq!(v.history().count(), 4);
}
