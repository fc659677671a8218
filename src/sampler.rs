//! Turning logits into a token: llama.cpp's sampler chain over caller memory.
//!
//! Stages, with llama.cpp's semantics, in this default order: logit bias →
//! penalties (repeat, frequency, presence over the last `penalty_last_n`
//! accepted tokens) → top-k → typical-p → top-p → min-p → XTC → temperature,
//! then a draw from the survivors (or mirostat v2, or greedy when the
//! temperature is 0). Each stage is off at its neutral setting (top_k 0,
//! top_p 1, min_p 0, typical_p 1, penalties 1/0/0, xtc_probability 0, temp 1)
//! and the order can be changed. Top-k selects with a size-k heap, so the
//! default chain is linear in the vocabulary.
//!
//! Defined results for odd input: a NaN logit counts as -infinity; when some
//! logits are +infinity, those tokens share all the probability equally; when
//! every logit is NaN or -infinity, `sample` returns [`Error::NoCandidates`].
//! The same rules hold for values the chain itself makes (a tiny temperature
//! or a huge bias overflowing to +infinity, penalties making NaN or taking
//! every token away); penalties leave a -infinity logit alone.
//! `top_k` larger than the vocabulary keeps everything; `top_p` 0 keeps the
//! single most likely token; temperature 0 or below is greedy.
//!
//! Random numbers come from SplitMix64 (Steele, Lea and Flood, 2014) seeded
//! with `seed`; a uniform draw is `(next() >> 11) * 2^-53`. The same seed,
//! logits and settings give the same tokens on every platform.

use crate::error::{Error, Result};
use crate::grammar::GrammarStage;
use crate::model::{padded_total, round_up, ALIGN};

/// One stage of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    LogitBias = 0,
    Penalties = 1,
    TopK = 2,
    Typical = 3,
    TopP = 4,
    MinP = 5,
    Xtc = 6,
    Temperature = 7,
    /// The grammar, when one is attached ([`Sampler::set_grammar`]); a
    /// chain without this stage runs the grammar first.
    Grammar = 8,
}

impl Stage {
    /// The stage with this number.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::LogitBias,
            1 => Self::Penalties,
            2 => Self::TopK,
            3 => Self::Typical,
            4 => Self::TopP,
            5 => Self::MinP,
            6 => Self::Xtc,
            7 => Self::Temperature,
            8 => Self::Grammar,
            _ => return None,
        })
    }
}

/// Most stages in a chain.
pub const MAX_STAGES: usize = 16;
/// Most logit-bias entries.
pub const MAX_BIAS: usize = 1 << 16;
/// Longest penalty history.
pub const MAX_PENALTY_LAST_N: usize = 1 << 16;

/// Settings of a sampler; `Default` gives llama.cpp's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerParams {
    pub seed: u64,
    /// Temperature; 0 or below means greedy.
    pub temp: f32,
    /// Keep the k most likely; 0 or below keeps all.
    pub top_k: i32,
    /// Nucleus: keep the smallest set whose probability reaches p; 1 is off.
    pub top_p: f32,
    /// Keep tokens at least `min_p` times as likely as the best; 0 is off.
    pub min_p: f32,
    /// Locally typical sampling; 1 is off.
    pub typical_p: f32,
    /// History length for the penalties; 0 is off.
    pub penalty_last_n: u32,
    /// Repetition penalty (divide positive logits, multiply negative); 1 is off.
    pub penalty_repeat: f32,
    /// Subtracted once per occurrence in the history.
    pub penalty_freq: f32,
    /// Subtracted once if the token occurs in the history.
    pub penalty_present: f32,
    /// XTC: chance of removing the most likely tokens; 0 is off.
    pub xtc_probability: f32,
    /// XTC: tokens at or above this probability are "top choices".
    pub xtc_threshold: f32,
    /// 0: draw from the survivors; 2: mirostat v2 instead.
    pub mirostat: u32,
    pub mirostat_tau: f32,
    pub mirostat_eta: f32,
    /// Stages that filter keep at least this many tokens.
    pub min_keep: u32,
    /// The chain, `order[..n_stages]`.
    pub order: [Stage; MAX_STAGES],
    pub n_stages: u32,
}

/// The default chain.
pub const DEFAULT_ORDER: [Stage; 8] = [
    Stage::LogitBias,
    Stage::Penalties,
    Stage::TopK,
    Stage::Typical,
    Stage::TopP,
    Stage::MinP,
    Stage::Xtc,
    Stage::Temperature,
];

impl Default for SamplerParams {
    fn default() -> Self {
        let mut order = [Stage::Temperature; MAX_STAGES];
        order[..DEFAULT_ORDER.len()].copy_from_slice(&DEFAULT_ORDER);
        Self {
            seed: 0,
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            penalty_last_n: 64,
            penalty_repeat: 1.0,
            penalty_freq: 0.0,
            penalty_present: 0.0,
            xtc_probability: 0.0,
            xtc_threshold: 0.1,
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            min_keep: 0,
            order,
            n_stages: DEFAULT_ORDER.len() as u32,
        }
    }
}

impl SamplerParams {
    /// The chain as a slice.
    pub fn stages(&self) -> &[Stage] {
        &self.order[..(self.n_stages as usize).min(MAX_STAGES)]
    }

    fn validate(&self) -> Result<()> {
        let finite = [
            self.temp,
            self.top_p,
            self.min_p,
            self.typical_p,
            self.penalty_repeat,
            self.penalty_freq,
            self.penalty_present,
            self.xtc_probability,
            self.xtc_threshold,
            self.mirostat_tau,
            self.mirostat_eta,
        ];
        if finite.iter().any(|v| !v.is_finite())
            || self.n_stages as usize > MAX_STAGES
            || self.penalty_last_n as usize > MAX_PENALTY_LAST_N
            || !(self.mirostat == 0 || self.mirostat == 2)
        {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }
}

/// An amount added to one token's logit by the logit-bias stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct LogitBias {
    pub token: u32,
    pub bias: f32,
}

/// A candidate token: id, (adjusted) logit, probability once computed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    pub p: f32,
}

/// SplitMix64: small, fast, passes BigCrush, the same on every platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

const SAMPLER_MAGIC: &[u8; 4] = b"NLSM";

/// A sampler in caller memory: candidate scratch for the vocabulary, the
/// logit biases, and a ring of the last accepted tokens.
pub struct Sampler<'a> {
    params: SamplerParams,
    n_vocab: usize,
    cand: &'a mut [Candidate],
    size: usize,
    sorted: bool,
    /// Whether `cand[i].id == i` still holds (penalties and bias look tokens
    /// up directly then).
    identity: bool,
    bias_ids: &'a mut [u32],
    bias_vals: &'a mut [f32],
    hist: &'a mut [u32],
    hist_len: usize,
    hist_next: usize,
    /// The penalty window sorted, to count each token once per call.
    counts: &'a mut [u32],
    /// Per token id, its index among the candidates (`NONE` if gone), built
    /// when the candidates are no longer in id order: penalties and biases
    /// find tokens in constant time whatever the order of the stages.
    pos: &'a mut [u32],
    rng: Rng,
    mu: f32,
    grammar: Option<GrammarStage<'a>>,
}

/// No candidate index.
const NONE: u32 = u32::MAX;

struct Layout {
    cand: usize,
    bias: usize,
    hist: usize,
}

impl Layout {
    fn new(n_vocab: usize, p: &SamplerParams, n_bias: usize) -> Result<Self> {
        p.validate()?;
        if n_vocab == 0 || n_vocab > u32::MAX as usize / 2 || n_bias > MAX_BIAS {
            return Err(Error::InvalidArgument);
        }
        Ok(Layout {
            cand: n_vocab,
            bias: n_bias,
            hist: p.penalty_last_n as usize,
        })
    }
    fn bytes(&self) -> Result<usize> {
        let parts = || {
            Some([
                self.cand.checked_mul(core::mem::size_of::<Candidate>())?,
                self.bias.checked_mul(4)?,
                self.bias.checked_mul(4)?,
                self.hist.checked_mul(4)?,
                self.hist.checked_mul(4)?,
                self.cand.checked_mul(4)?,
            ])
        };
        parts()
            .and_then(|p| padded_total(&p))
            .ok_or(Error::InvalidArgument)
    }
}

fn carve<'a>(rest: &mut &'a mut [u8], bytes: usize) -> Result<&'a mut [u8]> {
    let padded = round_up(bytes).ok_or(Error::BufferTooSmall)?;
    let all = core::mem::take(rest);
    if all.len() < padded {
        return Err(Error::BufferTooSmall);
    }
    let (head, tail) = all.split_at_mut(padded);
    *rest = tail;
    Ok(&mut head[..bytes])
}

fn u32s<'a>(rest: &mut &'a mut [u8], n: usize) -> Result<&'a mut [u32]> {
    bytemuck::try_cast_slice_mut(carve(rest, n * 4)?).map_err(|_| Error::Misaligned)
}

fn f32s<'a>(rest: &mut &'a mut [u8], n: usize) -> Result<&'a mut [f32]> {
    bytemuck::try_cast_slice_mut(carve(rest, n * 4)?).map_err(|_| Error::Misaligned)
}

impl<'a> Sampler<'a> {
    /// Bytes of memory [`Sampler::init`] needs for a vocabulary of `n_vocab`
    /// tokens and `n_bias` logit-bias entries.
    pub fn size(n_vocab: usize, params: &SamplerParams, n_bias: usize) -> Result<usize> {
        Layout::new(n_vocab, params, n_bias)?.bytes()
    }

    /// Builds a sampler over `mem` (64-byte aligned, at least
    /// [`Sampler::size`] bytes); `bias` is copied in.
    pub fn init(
        n_vocab: usize,
        params: &SamplerParams,
        bias: &[LogitBias],
        mem: &'a mut [u8],
    ) -> Result<Self> {
        let lay = Layout::new(n_vocab, params, bias.len())?;
        if bias
            .iter()
            .any(|b| b.token as usize >= n_vocab || !b.bias.is_finite())
        {
            return Err(Error::InvalidArgument);
        }
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < lay.bytes()? {
            return Err(Error::BufferTooSmall);
        }
        let mut rest = mem;
        let cand_words = u32s(&mut rest, lay.cand * 3)?;
        let cand = words_as_candidates(cand_words);
        let bias_ids = u32s(&mut rest, lay.bias)?;
        let bias_vals = f32s(&mut rest, lay.bias)?;
        for (i, b) in bias.iter().enumerate() {
            bias_ids[i] = b.token;
            bias_vals[i] = b.bias;
        }
        let hist = u32s(&mut rest, lay.hist)?;
        let counts = u32s(&mut rest, lay.hist)?;
        let pos = u32s(&mut rest, lay.cand)?;
        let mut s = Sampler {
            params: *params,
            n_vocab,
            cand,
            size: 0,
            sorted: false,
            identity: true,
            bias_ids,
            bias_vals,
            hist,
            hist_len: 0,
            hist_next: 0,
            counts,
            pos,
            rng: Rng(params.seed),
            mu: 0.0,
            grammar: None,
        };
        s.reset();
        Ok(s)
    }

    /// Attaches a grammar (or, with None, detaches it) and returns the one
    /// attached before. The grammar's vocabulary must be the sampler's size:
    /// [`Error::InvalidArgument`] otherwise, the sampler unchanged (and the
    /// refused stage dropped: its memory is free again). From now on the
    /// chain sets refused tokens to -infinity at [`Stage::Grammar`] (first
    /// if the chain does not name it), [`Sampler::accept`] advances the
    /// grammar, and the saved state holds the grammar's state.
    pub fn set_grammar(&mut self, g: Option<GrammarStage<'a>>) -> Result<Option<GrammarStage<'a>>> {
        if g.as_ref().is_some_and(|st| st.n_vocab() != self.n_vocab) {
            return Err(Error::InvalidArgument);
        }
        Ok(core::mem::replace(&mut self.grammar, g))
    }

    /// The attached grammar.
    pub fn grammar(&self) -> Option<&GrammarStage<'a>> {
        self.grammar.as_ref()
    }

    /// The attached grammar, to query or advance by hand.
    pub fn grammar_mut(&mut self) -> Option<&mut GrammarStage<'a>> {
        self.grammar.as_mut()
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Forgets the history, reseeds the generator, resets mirostat and
    /// takes the grammar back to its start.
    pub fn reset(&mut self) {
        self.hist_len = 0;
        self.hist_next = 0;
        self.rng = Rng(self.params.seed);
        self.mu = finite_mu(2.0 * self.params.mirostat_tau, 0.0);
        if let Some(g) = &mut self.grammar {
            // The start state fitted its bounds at init: it fits again.
            let _ = g.reset();
        }
    }

    /// Records `token` as generated (for the penalties) and advances the
    /// grammar over it; a token the grammar refuses is
    /// [`Error::InvalidArgument`] and changes nothing.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        if token as usize >= self.n_vocab {
            return Err(Error::TokenOutOfRange);
        }
        if let Some(g) = &mut self.grammar {
            g.accept(token)?;
        }
        let cap = self.hist.len();
        if cap > 0 {
            self.hist[self.hist_next] = token;
            self.hist_next = (self.hist_next + 1) % cap;
            self.hist_len = (self.hist_len + 1).min(cap);
        }
        Ok(())
    }

    /// Bytes [`Sampler::save_state`] writes now.
    pub fn state_size(&self) -> usize {
        let grammar = self.grammar.as_ref().map_or(0, |g| g.state_size());
        4 + 4 + 4 + 4 + 8 + 4 + 4 + 4 * self.hist_len + grammar + crate::state::CHECKSUM_BYTES
    }

    /// Writes what the sampler has learned since `init` or `reset` into `out`
    /// (at least [`Sampler::state_size`] bytes) and returns the bytes
    /// written: the random generator, mirostat's running `mu` and the
    /// penalty history. The settings are not saved: the host creates the
    /// sampler with its settings, then loads the state. Format:
    ///
    /// ```text
    /// b"NLSM", version u32, n_vocab u32, penalty window u32, generator u64,
    /// mu f32, history length u32, history (oldest first) u32...,
    /// [with a grammar: grammar id u64, partial UTF-8 value u32 and bytes
    /// to come u32, stacks u32, each: length u32, positions u32...],
    /// checksum u64
    /// ```
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize> {
        let need = self.state_size();
        if out.len() < need {
            return Err(Error::BufferTooSmall);
        }
        let mut w = crate::state::Writer::new(&mut out[..need]);
        w.bytes(SAMPLER_MAGIC);
        w.u32(crate::state::VERSION);
        w.u32(self.n_vocab as u32);
        w.u32(self.hist.len() as u32);
        w.u64(self.rng.0);
        w.f32(self.mu);
        w.u32(self.hist_len as u32);
        for t in self.history() {
            w.u32(t);
        }
        if let Some(g) = &self.grammar {
            g.save(&mut w);
        }
        Ok(w.finish())
    }

    /// Restores a state from [`Sampler::save_state`] (`state` exactly as
    /// written). Refused with [`Error::StateMismatch`] when it was written for
    /// another vocabulary size or holds more history than this sampler's
    /// penalty window, [`Error::StateCorrupt`] when damaged; on error the
    /// sampler is unchanged.
    pub fn load_state(&mut self, state: &[u8]) -> Result<()> {
        let mut r = crate::state::Reader::open(state, SAMPLER_MAGIC)?;
        let n_vocab = r.u32()? as usize;
        let _window = r.u32()?;
        let rng = r.u64()?;
        let mu = r.f32()?;
        let n = r.u32()? as usize;
        if n_vocab != self.n_vocab || n > self.hist.len() {
            return Err(Error::StateMismatch);
        }
        let has_grammar = r.remaining() != n * 4;
        if r.remaining() < n * 4 || !mu.is_finite() {
            return Err(Error::StateCorrupt);
        }
        if has_grammar != self.grammar.is_some() {
            return Err(Error::StateMismatch);
        }
        let toks = r.bytes(n * 4)?;
        let tok = |i: usize| {
            let b = &toks[i * 4..i * 4 + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        if (0..n).any(|i| tok(i) as usize >= n_vocab) {
            return Err(Error::StateCorrupt);
        }
        if let Some(g) = &mut self.grammar {
            // Last in the state: it checks that nothing follows before it
            // changes anything.
            g.load(&mut r)?;
        }
        for i in 0..n {
            self.hist[i] = tok(i);
        }
        self.hist_len = n;
        self.hist_next = if self.hist.is_empty() {
            0
        } else {
            n % self.hist.len()
        };
        self.rng = Rng(rng);
        self.mu = mu;
        Ok(())
    }

    /// The accepted tokens still in the penalty window, oldest first.
    pub fn history(&self) -> impl Iterator<Item = u32> + '_ {
        let cap = self.hist.len().max(1);
        let start = (self.hist_next + cap - self.hist_len) % cap;
        (0..self.hist_len).map(move |i| self.hist[(start + i) % cap])
    }

    /// Applies the chain to `logits` (`n_vocab` floats) and returns the
    /// surviving candidates with their probabilities, most probable first;
    /// candidates of probability 0 are dropped. Does not draw.
    pub fn candidates(&mut self, logits: &[f32]) -> Result<&[Candidate]> {
        self.apply_chain(logits, true)?;
        self.softmax();
        let n = self.cand[..self.size]
            .iter()
            .position(|c| c.p <= 0.0)
            .unwrap_or(self.size);
        Ok(&self.cand[..n])
    }

    /// Applies the chain to `logits` and draws a token. Does not `accept` it.
    /// With a grammar set to [`check_first`](crate::grammar::GrammarParams):
    /// draws without the grammar, and when the grammar refuses that token,
    /// draws again with it from the random state of the first draw.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if self.grammar.as_ref().is_some_and(|g| g.check_first()) {
            let (rng, mu) = (self.rng, self.mu);
            match self.sample_with(logits, false) {
                Ok(t) => {
                    if let Some(g) = &mut self.grammar {
                        if g.allows(t)? {
                            return Ok(t);
                        }
                    }
                }
                Err(Error::NoCandidates) => {}
                Err(e) => return Err(e),
            }
            self.rng = rng;
            self.mu = mu;
        }
        self.sample_with(logits, true)
    }

    fn sample_with(&mut self, logits: &[f32], grammar: bool) -> Result<u32> {
        self.apply_chain(logits, grammar)?;
        let c = &mut self.cand[..self.size];
        if self.params.temp <= 0.0 {
            let mut best = 0;
            for i in 1..c.len() {
                if c[i].logit > c[best].logit {
                    best = i;
                }
            }
            return Ok(c[best].id);
        }
        self.softmax();
        if self.params.mirostat == 2 {
            let mu = self.mu;
            let keep = self.cand[..self.size]
                .iter()
                .position(|c| -libm::log2f(c.p) > mu)
                .unwrap_or(self.size);
            self.size = keep.max(1);
            self.sorted = false; // recompute probabilities below
            self.softmax();
            let i = self.draw();
            let surprise = -libm::log2f(self.cand[i].p);
            let mu = self.mu - self.params.mirostat_eta * (surprise - self.params.mirostat_tau);
            self.mu = finite_mu(mu, self.mu);
            return Ok(self.cand[i].id);
        }
        let i = self.draw();
        Ok(self.cand[i].id)
    }

    /// Index of a candidate drawn in proportion to `p` (probabilities computed).
    fn draw(&mut self) -> usize {
        let c = &self.cand[..self.size];
        let total: f64 = c.iter().map(|c| c.p as f64).sum();
        let r = self.rng.next_f64() * total;
        let mut acc = 0.0f64;
        let mut last = 0;
        for (i, cd) in c.iter().enumerate() {
            if cd.p > 0.0 {
                acc += cd.p as f64;
                last = i;
                if r < acc {
                    return i;
                }
            }
        }
        last
    }

    /// Loads the logits as candidates, mapping NaN and infinities (see the
    /// module docs).
    fn load(&mut self, logits: &[f32]) -> Result<()> {
        if logits.len() != self.n_vocab {
            return Err(Error::InvalidArgument);
        }
        let any_inf = logits.contains(&f32::INFINITY);
        let mut finite = false;
        for (i, (c, &l)) in self.cand.iter_mut().zip(logits).enumerate() {
            let logit = if any_inf {
                if l == f32::INFINITY {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            } else if l.is_nan() {
                f32::NEG_INFINITY
            } else {
                l
            };
            finite |= logit > f32::NEG_INFINITY;
            *c = Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            };
        }
        if !finite {
            return Err(Error::NoCandidates);
        }
        self.size = self.n_vocab;
        self.sorted = false;
        self.identity = true;
        Ok(())
    }

    fn apply_chain(&mut self, logits: &[f32], grammar: bool) -> Result<()> {
        self.load(logits)?;
        let rng = self.rng;
        let r = self.run_stages(grammar);
        if r.is_err() {
            self.rng = rng;
        }
        r
    }

    fn apply_grammar(&mut self) -> Result<()> {
        if let Some(g) = &mut self.grammar {
            g.apply(&mut self.cand[..self.size])?;
            self.sorted = false;
        }
        Ok(())
    }

    fn run_stages(&mut self, grammar: bool) -> Result<()> {
        let order = self.params.order;
        let stages = &order[..(self.params.n_stages as usize).min(MAX_STAGES)];
        if grammar && !stages.contains(&Stage::Grammar) {
            self.apply_grammar()?;
        }
        for &stage in stages {
            match stage {
                Stage::Grammar if grammar => self.apply_grammar()?,
                Stage::Grammar => {}
                Stage::LogitBias => self.logit_bias(),
                Stage::Penalties => self.penalties(),
                Stage::TopK => self.top_k(self.params.top_k),
                Stage::Typical => self.typical(),
                Stage::TopP => self.top_p(),
                Stage::MinP => self.min_p(),
                Stage::Xtc => self.xtc(),
                Stage::Temperature => self.temperature(),
            }
        }
        // Penalties can push every survivor to -infinity: nothing to draw,
        // and the call changes nothing (XTC's coin is put back).
        if !self.cand[..self.size]
            .iter()
            .any(|c| c.logit > f32::NEG_INFINITY)
        {
            return Err(Error::NoCandidates);
        }
        Ok(())
    }

    /// Index of token `t` among the candidates, if still there (after
    /// [`Sampler::index`] when they are out of id order).
    fn find(&self, t: u32) -> Option<usize> {
        if self.identity {
            return ((t as usize) < self.size).then_some(t as usize);
        }
        match self.pos.get(t as usize) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    /// Builds the id -> index table when the candidates are out of id order
    /// (one pass over the vocabulary; a scan per token looked up cost about
    /// 1.2 s per call with LLaMA 3's vocabulary and a full window).
    fn index(&mut self) {
        if self.identity {
            return;
        }
        self.pos.fill(NONE);
        for (i, c) in self.cand[..self.size].iter().enumerate() {
            if let Some(p) = self.pos.get_mut(c.id as usize) {
                *p = i as u32;
            }
        }
    }

    fn logit_bias(&mut self) {
        if self.bias_ids.is_empty() {
            return;
        }
        self.index();
        for i in 0..self.bias_ids.len() {
            if let Some(j) = self.find(self.bias_ids[i]) {
                self.cand[j].logit += self.bias_vals[i];
                // After a sorting stage (a custom order), the order is gone.
                self.sorted = false;
            }
        }
    }

    fn penalties(&mut self) {
        let p = &self.params;
        let (rep, freq, pres) = (p.penalty_repeat, p.penalty_freq, p.penalty_present);
        if (rep == 1.0 && freq == 0.0 && pres == 0.0) || self.hist_len == 0 {
            return;
        }
        self.index();
        // Each distinct token once, with its count: the window sorted (each
        // entry against every earlier one was 7.1 s per call at 65,536).
        let cap = self.hist.len();
        let start = (self.hist_next + cap - self.hist_len) % cap;
        let n = self.hist_len;
        for i in 0..n {
            self.counts[i] = self.hist[(start + i) % cap];
        }
        heap_sort(&mut self.counts[..n], |a, b| a < b);
        let mut i = 0;
        crate::cost::tick(n as u64);
        while i < n {
            let t = self.counts[i];
            let mut count = 1;
            while i + count < n && self.counts[i + count] == t {
                count += 1;
            }
            i += count;
            if let Some(k) = self.find(t) {
                let c = &mut self.cand[k];
                // An impossible token stays impossible (a negative or zero
                // penalty must not turn -infinity into +infinity or NaN).
                if c.logit == f32::NEG_INFINITY {
                    continue;
                }
                if c.logit <= 0.0 {
                    c.logit *= rep;
                } else {
                    c.logit /= rep;
                }
                c.logit -= count as f32 * freq + pres;
                // inf - inf (a zero penalty, then an infinite frequency
                // term): NaN counts as -infinity, as in the input.
                if c.logit.is_nan() {
                    c.logit = f32::NEG_INFINITY;
                }
            }
        }
        self.sorted = false;
    }

    /// Keeps the `k` largest logits, sorted descending (a size-k min-heap in
    /// one pass, then a sort of the k).
    fn top_k(&mut self, k: i32) {
        let n = self.size;
        let k = if k <= 0 { n } else { (k as usize).min(n) };
        if !self.sorted {
            if k < n {
                let c = &mut self.cand[..n];
                // Min-heap by logit over c[..k].
                for i in (0..k / 2).rev() {
                    sift_down(&mut c[..k], i);
                }
                for i in k..n {
                    if c[i].logit > c[0].logit {
                        c.swap(0, i);
                        sift_down(&mut c[..k], 0);
                    }
                }
            }
            sort_desc(&mut self.cand[..k]);
            self.sorted = true;
            self.identity = false;
        }
        self.size = k;
    }

    /// Sorts (if needed) and computes probabilities of the candidates.
    fn softmax(&mut self) {
        if !self.sorted {
            sort_desc(&mut self.cand[..self.size]);
            self.sorted = true;
            self.identity = false;
        }
        let c = &mut self.cand[..self.size];
        let max = c[0].logit;
        if max == f32::INFINITY {
            // Logits that became +infinity in the chain (a tiny temperature,
            // a huge bias) share all the probability, as +infinity inputs do.
            let n = c.iter().take_while(|x| x.logit == max).count();
            for (i, x) in c.iter_mut().enumerate() {
                x.p = if i < n { 1.0 / n as f32 } else { 0.0 };
            }
            return;
        }
        let mut sum = 0f32;
        for x in c.iter_mut() {
            x.p = libm::expf(x.logit - max);
            sum += x.p;
        }
        for x in c.iter_mut() {
            x.p /= sum;
        }
    }

    fn typical(&mut self) {
        let p = self.params.typical_p;
        if p >= 1.0 {
            return;
        }
        self.softmax();
        let c = &mut self.cand[..self.size];
        let mut entropy = 0f32;
        for x in c.iter() {
            if x.p > 0.0 {
                entropy += -x.p * libm::logf(x.p);
            }
        }
        // Order by |−log p − H| ascending, then keep until the mass passes p.
        let score = |x: &Candidate| libm::fabsf(-libm::logf(x.p) - entropy);
        heap_sort(c, |a, b| {
            score(a).total_cmp(&score(b)).then(a.id.cmp(&b.id)).is_lt()
        });
        let min_keep = self.params.min_keep as usize;
        let mut cum = 0f32;
        let mut last = c.len();
        for (i, x) in c.iter().enumerate() {
            cum += x.p;
            if cum > p && i + 1 >= min_keep {
                last = i + 1;
                break;
            }
        }
        self.size = last;
        self.sorted = false;
    }

    fn top_p(&mut self) {
        let p = self.params.top_p;
        if p >= 1.0 {
            return;
        }
        self.softmax();
        let min_keep = self.params.min_keep as usize;
        let mut cum = 0f32;
        let mut last = self.size;
        for (i, x) in self.cand[..self.size].iter().enumerate() {
            cum += x.p;
            if cum >= p && i + 1 >= min_keep {
                last = i + 1;
                break;
            }
        }
        self.size = last;
    }

    fn min_p(&mut self) {
        let p = self.params.min_p;
        if p <= 0.0 || self.size == 0 {
            return;
        }
        let min_keep = self.params.min_keep as usize;
        let max = self.cand[..self.size]
            .iter()
            .fold(f32::NEG_INFINITY, |m, c| m.max(c.logit));
        let min_logit = max + libm::logf(p);
        let kept = self.cand[..self.size]
            .iter()
            .filter(|c| c.logit >= min_logit)
            .count();
        if kept >= min_keep.max(1) {
            // Stable compaction keeps the current order.
            let mut w = 0;
            for r in 0..self.size {
                if self.cand[r].logit >= min_logit {
                    self.cand[w] = self.cand[r];
                    w += 1;
                }
            }
            if w != self.size {
                self.identity = false;
            }
            self.size = w;
        } else {
            self.softmax();
            let mut i = 1;
            while i < self.size && !(self.cand[i].logit < min_logit && i >= min_keep) {
                i += 1;
            }
            self.size = i;
        }
    }

    fn xtc(&mut self) {
        let p = self.params;
        if p.xtc_probability <= 0.0 || p.xtc_threshold > 0.5 || self.size < 2 {
            return;
        }
        let chance = self.rng.next_f64() as f32;
        if chance > p.xtc_probability {
            return;
        }
        self.softmax();
        let mut last = 0;
        for (i, c) in self.cand[..self.size].iter().enumerate() {
            if c.p >= p.xtc_threshold {
                last = i;
            } else {
                break;
            }
        }
        if self.size - last >= p.min_keep as usize && last > 0 {
            self.cand.copy_within(last..self.size, 0);
            self.size -= last;
        }
    }

    fn temperature(&mut self) {
        let t = self.params.temp;
        let c = &mut self.cand[..self.size];
        if t <= 0.0 {
            let mut best = 0;
            for i in 1..c.len() {
                if c[i].logit > c[best].logit {
                    c[best].logit = f32::NEG_INFINITY;
                    best = i;
                } else {
                    c[i].logit = f32::NEG_INFINITY;
                }
            }
            return;
        }
        for x in c.iter_mut() {
            x.logit /= t;
        }
    }
}

/// Mirostat's `mu` kept finite (extreme tau or eta would overflow it), so
/// that every state a sampler reaches can be saved and loaded: an overflow
/// saturates, NaN (inf - inf) keeps the previous value.
fn finite_mu(mu: f32, previous: f32) -> f32 {
    if mu.is_nan() {
        previous
    } else {
        mu.clamp(-f32::MAX, f32::MAX)
    }
}

fn sift_down(h: &mut [Candidate], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < h.len() && h[l].logit < h[m].logit {
            m = l;
        }
        if r < h.len() && h[r].logit < h[m].logit {
            m = r;
        }
        if m == i {
            return;
        }
        h.swap(i, m);
        i = m;
    }
}

/// Descending by logit; ties by ascending id, so the order is deterministic.
fn sort_desc(c: &mut [Candidate]) {
    heap_sort(c, |a, b| {
        b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)).is_lt()
    });
}

/// In-place heapsort by `less`: O(n log n), no allocation, and a fraction of
/// the code of `sort_unstable_by` (which matters on small devices: core's
/// sort cost the Cortex-M build about 6 KB per element type). The crate's
/// one sort.
pub(crate) fn heap_sort<T>(c: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let sift = |c: &mut [T], mut i: usize, n: usize| loop {
        crate::cost::tick(1);
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < n && less(&c[m], &c[l]) {
            m = l;
        }
        if r < n && less(&c[m], &c[r]) {
            m = r;
        }
        if m == i {
            return;
        }
        c.swap(i, m);
        i = m;
    };
    let n = c.len();
    for i in (0..n / 2).rev() {
        sift(c, i, n);
    }
    for end in (1..n).rev() {
        c.swap(0, end);
        sift(c, 0, end);
    }
}

/// Views candidate storage (three 4-byte words each) as candidates.
fn words_as_candidates(w: &mut [u32]) -> &mut [Candidate] {
    let n = w.len() / 3;
    // A `Candidate` is `repr(C)` of u32, f32, f32: 12 bytes, align 4, no
    // padding, every bit pattern valid; so is `[u32; 3]`.
    const _: () = assert!(core::mem::size_of::<Candidate>() == 12);
    const _: () = assert!(core::mem::align_of::<Candidate>() == 4);
    let ptr = w.as_mut_ptr() as *mut Candidate;
    // SAFETY: `w` holds `3n` u32s, exactly the bytes of `n` candidates
    // (layout asserted above), u32-aligned as `Candidate` needs, and the
    // returned borrow replaces `w`'s.
    #[allow(unsafe_code)]
    unsafe {
        core::slice::from_raw_parts_mut(ptr, n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sampler, SamplerParams, MAX_PENALTY_LAST_N};
    use crate::cost::{assert_n_log_n, take, Aligned};

    /// With LLaMA 3's 128,256 tokens and a full window of distinct
    /// tokens, the counted work of the penalties (the window sorted once,
    /// then one pass) grows as w log w from 1,024 to the largest window;
    /// comparing each entry with every earlier one, as before, grew as w².
    #[test]
    // Large inputs and files: far too slow under Miri, and the code they
    // count (heaps, tables, the cut) is safe Rust.
    #[cfg_attr(miri, ignore)]
    fn penalties_cost_w_log_w() {
        let n_vocab = 128_256;
        let logits: std::vec::Vec<f32> = (0..n_vocab).map(|i| (i % 97) as f32 * 0.01).collect();
        let windows = [1024, 4096, 16_384, MAX_PENALTY_LAST_N];
        let counted: std::vec::Vec<u64> = windows
            .iter()
            .map(|&w| {
                let p = SamplerParams {
                    penalty_last_n: w as u32,
                    penalty_repeat: 1.1,
                    penalty_freq: 0.1,
                    ..SamplerParams::default()
                };
                let size = Sampler::size(n_vocab, &p, 0).unwrap();
                let mut mem = Aligned::new(size);
                let mut s = Sampler::init(n_vocab, &p, &[], mem.get(size)).unwrap();
                for i in 0..w {
                    // Distinct tokens, in an order that is not sorted.
                    s.accept((i * 7919 % n_vocab) as u32).unwrap();
                }
                take();
                s.sample(&logits).unwrap();
                take()
            })
            .collect();
        assert_n_log_n("penalty window", &windows, &counted);
    }
}
