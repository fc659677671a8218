//! The sampler on arbitrary logits and settings: the settings, the chain,
//! the logit biases, the history and the logits all come from the input.
//! A sampler that accepts its settings returns a token in the vocabulary
//! (or NoCandidates), candidates that are a probability distribution, and a
//! saved state that restores to the same next draw.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::host::AlignedBuf;
use nanollama::sampler::{LogitBias, MAX_STAGES};
use nanollama::{Error, Sampler, SamplerParams, Stage};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Mostly ordinary values, sometimes any bit pattern (NaN, inf, huge).
    fn f32(&mut self) -> f32 {
        match self.u8() % 4 {
            0 => f32::from_bits(self.u32()),
            _ => (self.u8() as i8) as f32 / 16.0,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let n_vocab = 1 + (b.u8() as usize | (b.u8() as usize & 3) << 8);
    let mut p = SamplerParams {
        seed: b.u32() as u64,
        temp: b.f32(),
        top_k: b.u32() as i32 % 600,
        top_p: b.f32(),
        min_p: b.f32(),
        typical_p: b.f32(),
        penalty_last_n: b.u8() as u32 * (b.u8() as u32 % 3),
        penalty_repeat: b.f32(),
        penalty_freq: b.f32(),
        penalty_present: b.f32(),
        xtc_probability: b.f32(),
        xtc_threshold: b.f32(),
        mirostat: [0, 2, 1][b.u8() as usize % 3],
        mirostat_tau: b.f32(),
        mirostat_eta: b.f32(),
        min_keep: b.u8() as u32 % 8,
        n_stages: (b.u8() % (MAX_STAGES as u8 + 2)) as u32,
        ..SamplerParams::default()
    };
    for s in p.order.iter_mut() {
        *s = Stage::from_u8(b.u8() % 8).unwrap();
    }
    let bias: Vec<LogitBias> = (0..b.u8() % 4)
        .map(|_| LogitBias {
            token: b.u32() % (n_vocab as u32 + 1),
            bias: b.f32(),
        })
        .collect();
    let history: Vec<u32> = (0..b.u8() % 16)
        .map(|_| b.u32() % (n_vocab as u32 + 2))
        .collect();
    let mut logits: Vec<f32> = (0..n_vocab).map(|_| b.f32()).collect();

    let Ok(need) = Sampler::size(n_vocab, &p, bias.len()) else {
        return;
    };
    let mut mem = AlignedBuf::new(need);
    let mut s = match Sampler::init(n_vocab, &p, &bias, mem.as_mut_slice()) {
        Ok(s) => s,
        Err(e) => {
            assert!(matches!(e, Error::InvalidArgument), "{e:?}");
            return;
        }
    };
    for &t in &history {
        let r = s.accept(t);
        assert_eq!(r.is_err(), t as usize >= n_vocab);
    }
    // Too few logits are refused, not read past.
    assert!(s.sample(&logits[..n_vocab - 1]).is_err());

    let mut saved = vec![0u8; s.state_size()];
    let n = saved.len();
    assert_eq!(s.save_state(&mut saved), Ok(n));
    match s.candidates(&logits) {
        Ok(c) => {
            let total: f64 = c.iter().map(|c| c.p as f64).sum();
            let bad = c
                .iter()
                .find(|c| !((c.id as usize) < n_vocab && c.p > 0.0 && c.p <= 1.0));
            assert!(bad.is_none(), "{bad:?} in {} candidates, {p:?}", c.len());
            assert!(c.windows(2).all(|w| w[0].p >= w[1].p));
            assert!(
                c.is_empty() || (total - 1.0).abs() < 1e-3,
                "sum {total}: {c:?} {p:?} logits {logits:?} bias {bias:?} history {history:?}"
            );
        }
        Err(e) => assert_eq!(e, Error::NoCandidates),
    }
    let first = s.sample(&logits);
    if let Ok(t) = first {
        assert!((t as usize) < n_vocab);
    } else {
        assert_eq!(first, Err(Error::NoCandidates));
    }
    // The saved state draws the same token again.
    let mut mem2 = AlignedBuf::new(need);
    let mut s2 = Sampler::init(n_vocab, &p, &bias, mem2.as_mut_slice()).unwrap();
    s2.load_state(&saved).unwrap();
    let _ = s2.candidates(&logits);
    assert_eq!(s2.sample(&logits), first);
    // A damaged state is refused or loads; it never panics.
    if let Some(x) = saved.get_mut(data.len() % n.max(1)) {
        *x ^= 0x5a;
        let _ = s2.load_state(&saved);
    }
    logits.reverse();
    let _ = s2.sample(&logits);
});
