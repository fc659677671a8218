//! One conversation: a KV cache and activation buffers carved from caller
//! memory, a position, and the logits of the last decode.
//!
//! Several contexts may share one [`Model`]; each is used by one thread at a
//! time (its `decode` spreads work over the host's threads itself).

use crate::block::{forward, KvCache, Scratch};
use crate::error::{Error, Result};
use crate::model::{round_up, Config, Model, ALIGN};
use crate::parallel::{DisjointMut, Parallel};
use crate::quant::ACT_MAX_BYTES;
use crate::state::{self, Reader, Writer};
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KvType {
    /// 4 bytes per element: the exact keys and values.
    F32 = 0,
    /// 2 bytes per element: half the memory, keys and values rounded to f16.
    F16 = 1,
}

impl KvType {
    fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

/// Settings of a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Positions the KV cache holds; 0 means the model's training context.
    pub n_ctx: u32,
    /// Most tokens one `decode` call may take; 0 means `min(512, n_ctx)`.
    /// Larger values cost activation memory proportionally.
    pub n_batch: u32,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Keep the logits of every token of a batch (`n_batch` rows of memory),
    /// not only of the last.
    pub logits_all: bool,
    /// Keep the inputs of matrix products in f32 (slower; closer to exact
    /// arithmetic). By default they are converted to the form the weights
    /// meet them in llama.cpp (Q8_0 blocks for Q8_0 weights, f16 for F16,
    /// bf16 for BF16), which computes what llama.cpp computes.
    pub f32_activations: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        Self {
            n_ctx: 0,
            n_batch: 0,
            kv_type: KvType::F16,
            logits_all: false,
            f32_activations: false,
        }
    }
}

/// Largest accepted `n_ctx` and `n_batch`.
const MAX_CTX: usize = 1 << 24;

/// Sizes of the row buffers of a forward pass (see `block::Scratch`) for
/// `rows` tokens and `outputs` rows of logits, in elements.
#[derive(Clone, Copy, Debug)]
struct RowLayout {
    x: usize,
    xb: usize,
    q: usize,
    kv: usize,
    hb: usize,
    rope: usize,
    logits: usize,
    /// Bytes of converted matrix-product inputs.
    act: usize,
}

impl RowLayout {
    fn new(c: &Config, rows: usize, outputs: usize, f32_activations: bool) -> Result<Self> {
        let ovf = Error::InvalidArgument;
        let m = |a: usize, b: usize| a.checked_mul(b).ok_or(ovf);
        Ok(RowLayout {
            x: m(rows, c.dim)?,
            xb: m(rows, c.dim.max(c.q_dim()))?,
            q: m(rows, c.q_dim())?,
            kv: m(rows, c.kv_dim())?,
            hb: m(rows, c.ffn_dim)?,
            rope: m(rows, c.rope_dim)?,
            logits: m(outputs, c.n_vocab)?,
            act: if f32_activations {
                0
            } else {
                let cols = c.dim.max(c.q_dim()).max(c.ffn_dim);
                m(m(rows, cols)?, ACT_MAX_BYTES)?
            },
        })
    }

    /// Bytes of each region, in carving order.
    fn regions(&self) -> [usize; 11] {
        let f = |n: usize| n.saturating_mul(4);
        [
            f(self.x),
            f(self.xb),
            f(self.x),
            f(self.q),
            f(self.kv),
            f(self.kv),
            f(self.hb),
            f(self.hb),
            f(self.rope),
            f(self.logits),
            self.act,
        ]
    }

    fn carve<'a>(&self, c: &mut Carver<'a>) -> Result<Scratch<'a>> {
        Ok(Scratch {
            x: c.f32s(self.x)?,
            xb: c.f32s(self.xb)?,
            xb2: c.f32s(self.x)?,
            q: c.f32s(self.q)?,
            k: c.f32s(self.kv)?,
            v: c.f32s(self.kv)?,
            hb: c.f32s(self.hb)?,
            hb2: c.f32s(self.hb)?,
            rope: c.f32s(self.rope)?,
            logits: c.f32s(self.logits)?,
            act: c.bytes(self.act)?,
        })
    }
}

/// Bytes of regions laid out one after another, each padded to 64 bytes.
fn total(regions: &[usize]) -> Result<usize> {
    regions.iter().try_fold(0usize, |acc, &r| {
        round_up(r)
            .and_then(|r| acc.checked_add(r))
            .filter(|&t| t < isize::MAX as usize)
            .ok_or(Error::InvalidArgument)
    })
}

/// Sizes of every region of a context's memory, in elements; one function
/// computes it for both the size query and `init`, so they cannot drift.
#[derive(Clone, Copy, Debug)]
struct Layout {
    n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    n_outputs: usize,
    kv_elems: usize,
    att: usize,
    rows: RowLayout,
}

impl Layout {
    fn new(c: &Config, p: &ContextParams) -> Result<Self> {
        let n_ctx = if p.n_ctx == 0 {
            c.n_ctx_train
        } else {
            p.n_ctx as usize
        };
        let n_batch = if p.n_batch == 0 {
            n_ctx.min(512)
        } else {
            (p.n_batch as usize).min(n_ctx)
        };
        if n_ctx > MAX_CTX {
            return Err(Error::InvalidArgument);
        }
        let ovf = Error::InvalidArgument;
        let m = |a: usize, b: usize| a.checked_mul(b).ok_or(ovf);
        let n_outputs = if p.logits_all { n_batch } else { 1 };
        Ok(Layout {
            n_ctx,
            n_batch,
            kv_type: p.kv_type,
            n_outputs,
            kv_elems: m(m(c.n_layers, n_ctx)?, c.kv_dim())?,
            att: m(c.n_heads, n_ctx)?,
            rows: RowLayout::new(c, n_batch, n_outputs, p.f32_activations)?,
        })
    }

    fn bytes(&self) -> Result<usize> {
        let kvb = self.kv_elems.saturating_mul(self.kv_type.bytes());
        let own = total(&[kvb, kvb, self.att.saturating_mul(4)])?;
        own.checked_add(total(&self.rows.regions())?)
            .filter(|&t| t < isize::MAX as usize)
            .ok_or(Error::InvalidArgument)
    }
}

/// Hands out consecutive 64-byte-aligned regions of a buffer.
struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    /// A carver over `mem`, which must be 64-byte aligned and hold `need`
    /// bytes (what `init` of a context or a batch refuses otherwise).
    fn over(mem: &'a mut [u8], need: usize) -> Result<Self> {
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < need {
            return Err(Error::BufferTooSmall);
        }
        Ok(Carver { rest: mem })
    }
    fn bytes(&mut self, n: usize) -> Result<&'a mut [u8]> {
        let padded = round_up(n).ok_or(Error::BufferTooSmall)?;
        let rest = core::mem::take(&mut self.rest);
        if rest.len() < padded {
            return Err(Error::BufferTooSmall);
        }
        let (head, tail) = rest.split_at_mut(padded);
        self.rest = tail;
        Ok(&mut head[..n])
    }
    fn f32s(&mut self, n: usize) -> Result<&'a mut [f32]> {
        bytemuck::try_cast_slice_mut(self.bytes(n * 4)?).map_err(|_| Error::Misaligned)
    }
    fn u16s(&mut self, n: usize) -> Result<&'a mut [u16]> {
        bytemuck::try_cast_slice_mut(self.bytes(n * 2)?).map_err(|_| Error::Misaligned)
    }
}

/// Where a context's tokens sit in the rows of the pass that runs them:
/// set for the length of one `forward` (see [`Seqs`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Step {
    /// First row of the batch.
    pub(crate) row0: usize,
    /// Tokens appended.
    pub(crate) n: usize,
}

/// One conversation over a shared model.
pub struct Context<'m> {
    model: &'m Model<'m>,
    pub(crate) n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    pub(crate) logits_all: bool,
    f32_activations: bool,
    pub(crate) pos: usize,
    /// Rows of logits the last decode produced (0 after reset or truncate).
    n_outputs: usize,
    pub(crate) kv: KvCache<'m>,
    /// Attention scores, `n_heads × n_ctx`: one row per head, written by that
    /// head's task alone.
    pub(crate) att: DisjointMut<'m, f32>,
    /// This context's place in the pass running now.
    pub(crate) step: Step,
    /// Set while `decode_many` looks for a context given twice.
    marked: bool,
    s: Scratch<'m>,
}

/// The contexts one forward pass runs, in order; each appends `step.n`
/// tokens at its `pos`, and their rows of the batch follow one another.
pub struct Seqs<'a, 'm> {
    ctxs: &'a [NonNull<Context<'m>>],
    _borrow: PhantomData<&'a mut Context<'m>>,
}

// SAFETY: shared, a `Seqs` only hands out `&Context` (and `Context` is
// `Sync`: see the assertion below); `get_mut` needs it exclusively.
#[allow(unsafe_code)]
unsafe impl Sync for Seqs<'_, '_> {}
const _: () = {
    const fn sync<T: Sync>() {}
    sync::<Context<'static>>();
};

impl<'a, 'm> Seqs<'a, 'm> {
    /// # Safety
    /// Every pointer is valid, the pointers are distinct, and nothing else
    /// uses these contexts for `'a`.
    #[allow(unsafe_code)]
    unsafe fn new(ctxs: &'a [NonNull<Context<'m>>]) -> Self {
        Seqs {
            ctxs,
            _borrow: PhantomData,
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.ctxs.len()
    }
    pub(crate) fn get(&self, i: usize) -> &Context<'m> {
        // SAFETY: valid and ours (see `new`); while this shared borrow of
        // `self` lives, no `&mut` comes out of it.
        #[allow(unsafe_code)]
        unsafe {
            self.ctxs[i].as_ref()
        }
    }
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Context<'m> {
        // SAFETY: valid, distinct and ours (see `new`); the exclusive borrow
        // of `self` keeps this the only reference into the contexts.
        #[allow(unsafe_code)]
        unsafe {
            &mut *self.ctxs[i].as_ptr()
        }
    }
}

impl<'m> Context<'m> {
    /// Bytes of caller memory [`Context::init`] needs.
    pub fn size(model: &Model<'_>, params: &ContextParams) -> Result<usize> {
        Layout::new(model.config(), params)?.bytes()
    }

    /// Builds a context over `mem` (at least [`Context::size`] bytes, 64-byte
    /// aligned). The memory must stay untouched while the context lives.
    pub fn init(model: &'m Model<'m>, params: &ContextParams, mem: &'m mut [u8]) -> Result<Self> {
        let lay = Layout::new(model.config(), params)?;
        let mut c = Carver::over(mem, lay.bytes()?)?;
        let kv = match lay.kv_type {
            KvType::F32 => KvCache::F32 {
                k: c.f32s(lay.kv_elems)?,
                v: c.f32s(lay.kv_elems)?,
            },
            KvType::F16 => KvCache::F16 {
                k: c.u16s(lay.kv_elems)?,
                v: c.u16s(lay.kv_elems)?,
            },
        };
        let att = DisjointMut::new(c.f32s(lay.att)?);
        let s = lay.rows.carve(&mut c)?;
        Ok(Context {
            model,
            n_ctx: lay.n_ctx,
            n_batch: lay.n_batch,
            kv_type: lay.kv_type,
            logits_all: lay.n_outputs > 1 || params.logits_all,
            f32_activations: params.f32_activations,
            pos: 0,
            n_outputs: 0,
            kv,
            att,
            step: Step::default(),
            marked: false,
            s,
        })
    }

    /// Checks that `n` tokens can be appended now: what `decode` and
    /// `decode_many` refuse.
    fn check(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument);
        }
        if tokens.len() > self.n_batch {
            return Err(Error::BatchTooLarge);
        }
        let n_vocab = self.model.config().n_vocab;
        if tokens.iter().any(|&t| t as usize >= n_vocab) {
            return Err(Error::TokenOutOfRange);
        }
        if self.pos + tokens.len() > self.n_ctx {
            return Err(Error::ContextFull);
        }
        Ok(())
    }

    /// What a pass that appended `n` tokens leaves.
    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.n_outputs = if self.logits_all { n } else { 1 };
    }

    /// Appends `tokens` at the current position and computes logits (for every
    /// token when the context keeps all logits, else for the last). Checks
    /// everything first: on error nothing changes.
    pub fn decode(&mut self, tokens: &[u32], par: &dyn Parallel) -> Result<()> {
        self.check(tokens)?;
        let model = self.model;
        // The context's own row buffers serve the pass; the context lends
        // them while it is the pass's one sequence.
        let mut s = core::mem::take(&mut self.s);
        self.step = Step {
            row0: 0,
            n: tokens.len(),
        };
        let one = [NonNull::from(&mut *self)];
        // SAFETY: one valid pointer from `&mut self`, unused otherwise until
        // `seqs` is dropped.
        #[allow(unsafe_code)]
        let mut seqs = unsafe { Seqs::new(&one) };
        forward(model, &mut s, &mut seqs, tokens, par);
        self.s = s;
        self.advance(tokens.len());
        Ok(())
    }

    /// Logits of the last decode: `n_outputs × n_vocab` floats, one row per
    /// token of the batch (or one row, the last token's, unless the context
    /// keeps all logits). Empty before the first decode and after
    /// reset/truncate.
    pub fn logits(&self) -> &[f32] {
        &self.s.logits[..self.n_outputs * self.model.config().n_vocab]
    }

    /// Logits of the last token of the last decode (empty if none).
    pub fn last_logits(&self) -> &[f32] {
        let n = self.model.config().n_vocab;
        let all = self.logits();
        &all[all.len().saturating_sub(n)..]
    }

    /// Number of positions filled.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Most tokens per decode.
    pub fn n_batch(&self) -> usize {
        self.n_batch
    }
    /// KV cache element type.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }
    /// Whether every token of a batch gets its logits.
    pub fn logits_all(&self) -> bool {
        self.logits_all
    }
    /// Whether matrix-product inputs stay in f32.
    pub fn f32_activations(&self) -> bool {
        self.f32_activations
    }
    /// The model this context runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Rolls back to position `pos` (at most the current one): later tokens are
    /// forgotten, and the logits are cleared.
    pub fn truncate(&mut self, pos: usize) -> Result<()> {
        if pos > self.pos {
            return Err(Error::InvalidArgument);
        }
        self.pos = pos;
        self.n_outputs = 0;
        Ok(())
    }

    /// Forgets every token.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.n_outputs = 0;
    }

    /// Bytes [`Context::save_state`] writes now: a header, the keys and
    /// values of the `pos` filled positions, and the logits of the last
    /// decode. Grows with `pos`.
    pub fn state_size(&self) -> usize {
        let c = self.model.config();
        let kv = 2 * c.n_layers * self.pos * c.kv_dim() * self.kv_type.bytes();
        STATE_HEADER + kv + self.n_outputs * c.n_vocab * 4 + state::CHECKSUM_BYTES
    }

    /// Writes the conversation into `out` (at least [`Context::state_size`]
    /// bytes; any alignment) and returns the bytes written. The format:
    ///
    /// ```text
    /// b"NLCX", version u32, model fingerprint u64, kv_type u32, n_layers u32,
    /// kv_dim u32, n_vocab u32, pos u32, n_outputs u32,
    /// per layer: keys of positions 0..pos; per layer: values of 0..pos
    /// (f32 or f16 bits, little-endian), logits n_outputs × n_vocab f32,
    /// checksum u64
    /// ```
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize> {
        let need = self.state_size();
        if out.len() < need {
            return Err(Error::BufferTooSmall);
        }
        let c = self.model.config();
        let mut w = Writer::new(&mut out[..need]);
        w.bytes(CONTEXT_MAGIC);
        w.u32(state::VERSION);
        w.u64(self.model.fingerprint());
        w.u32(self.kv_type as u32);
        for v in [c.n_layers, c.kv_dim(), c.n_vocab, self.pos, self.n_outputs] {
            w.u32(v as u32);
        }
        let row = c.kv_dim();
        let filled = |l: usize| l * self.n_ctx * row..(l * self.n_ctx + self.pos) * row;
        match &self.kv {
            KvCache::F32 { k, v } => {
                for cache in [&**k, &**v] {
                    for l in 0..c.n_layers {
                        for x in &cache[filled(l)] {
                            w.f32(*x);
                        }
                    }
                }
            }
            KvCache::F16 { k, v } => {
                for cache in [&**k, &**v] {
                    for l in 0..c.n_layers {
                        for x in &cache[filled(l)] {
                            w.bytes(&x.to_le_bytes());
                        }
                    }
                }
            }
        }
        for x in self.logits() {
            w.f32(*x);
        }
        Ok(w.finish())
    }

    /// Replaces the conversation with a state from [`Context::save_state`]
    /// (`state` exactly as written). The state must come from the same model
    /// (fingerprint) with the same KV type, and fit this context's `n_ctx`;
    /// a state with the logits of a whole batch loaded into a context that
    /// keeps only the last keeps the last row. Everything is checked first:
    /// on error ([`Error::StateCorrupt`], [`Error::StateMismatch`]) the
    /// context is unchanged.
    pub fn load_state(&mut self, state: &[u8]) -> Result<()> {
        let mut r = Reader::open(state, CONTEXT_MAGIC)?;
        let c = self.model.config();
        let fingerprint = r.u64()?;
        let kv_type = r.u32()?;
        let (n_layers, kv_dim, n_vocab) = (r.u32()?, r.u32()?, r.u32()?);
        let (pos, n_outputs) = (r.u32()? as usize, r.u32()? as usize);
        if fingerprint != self.model.fingerprint()
            || kv_type != self.kv_type as u32
            || n_layers as usize != c.n_layers
            || kv_dim as usize != c.kv_dim()
            || n_vocab as usize != c.n_vocab
            || pos > self.n_ctx
            || n_outputs > pos
        {
            return Err(Error::StateMismatch);
        }
        let row = c.kv_dim();
        let kv_bytes = 2 * c.n_layers * pos * row * self.kv_type.bytes();
        if r.remaining() != kv_bytes + n_outputs * c.n_vocab * 4 {
            return Err(Error::StateCorrupt);
        }
        // Checked: from here on nothing can fail.
        let n_ctx = self.n_ctx;
        let filled = |l: usize| l * n_ctx * row..(l * n_ctx + pos) * row;
        let le32 = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        match &mut self.kv {
            KvCache::F32 { k, v } => {
                for cache in [k, v] {
                    for l in 0..c.n_layers {
                        let src = r.bytes(pos * row * 4)?;
                        for (d, s) in cache[filled(l)].iter_mut().zip(src.chunks_exact(4)) {
                            *d = le32(s);
                        }
                    }
                }
            }
            KvCache::F16 { k, v } => {
                for cache in [k, v] {
                    for l in 0..c.n_layers {
                        let src = r.bytes(pos * row * 2)?;
                        for (d, s) in cache[filled(l)].iter_mut().zip(src.chunks_exact(2)) {
                            *d = u16::from_le_bytes([s[0], s[1]]);
                        }
                    }
                }
            }
        }
        let cap = self.s.logits.len() / c.n_vocab;
        let keep = n_outputs.min(cap);
        r.bytes((n_outputs - keep) * c.n_vocab * 4)?;
        let src = r.bytes(keep * c.n_vocab * 4)?;
        for (d, s) in self.s.logits.iter_mut().zip(src.chunks_exact(4)) {
            *d = le32(s);
        }
        self.pos = pos;
        self.n_outputs = keep;
        Ok(())
    }
}

/// Settings of a [`Batch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchParams {
    /// Most tokens one [`Batch::decode_many`] call takes over all its
    /// contexts; 0 means 64. Memory grows with it (the activations and
    /// logits of that many tokens).
    pub max_tokens: u32,
}

/// Row buffers for stepping many contexts of one model together:
/// [`Batch::decode_many`] appends tokens to each of them with one pass over
/// the weights. Built over caller memory like a context; one batch serves
/// any contexts of its model, one call at a time.
pub struct Batch<'m> {
    model: &'m Model<'m>,
    max_tokens: usize,
    s: Scratch<'m>,
}

impl<'m> Batch<'m> {
    fn layout(model: &Model<'_>, params: &BatchParams) -> Result<(usize, RowLayout)> {
        let rows = match params.max_tokens {
            0 => 64,
            n => n as usize,
        };
        if rows > MAX_CTX {
            return Err(Error::InvalidArgument);
        }
        Ok((rows, RowLayout::new(model.config(), rows, rows, false)?))
    }

    /// Bytes of caller memory [`Batch::init`] needs.
    pub fn size(model: &Model<'_>, params: &BatchParams) -> Result<usize> {
        total(&Self::layout(model, params)?.1.regions())
    }

    /// Builds a batch over `mem` (at least [`Batch::size`] bytes, 64-byte
    /// aligned), for contexts of `model`.
    pub fn init(model: &'m Model<'m>, params: &BatchParams, mem: &'m mut [u8]) -> Result<Self> {
        let (max_tokens, lay) = Self::layout(model, params)?;
        let s = lay.carve(&mut Carver::over(mem, total(&lay.regions())?)?)?;
        Ok(Batch {
            model,
            max_tokens,
            s,
        })
    }

    /// Most tokens one call takes.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Appends tokens to each of `ctxs` and computes their logits with one
    /// pass over the weights: context `i` takes the next `n_each[i]` tokens
    /// of `tokens` (one each when `n_each` is `None`), at its own position,
    /// attending over its own cache. Each context's logits, position and
    /// cache end exactly (to the bit) as its own [`Context::decode`] of the
    /// same tokens leaves them, whatever its company, order or the threads.
    ///
    /// Everything is checked first, and on error no context changes:
    /// no contexts, `n_each` of another length or a count of 0, or `tokens`
    /// not exactly the tokens counted ([`Error::InvalidArgument`]); more
    /// than [`Batch::max_tokens`] in all, or more than a context's
    /// `n_batch` for it ([`Error::BatchTooLarge`]); a context of another
    /// model ([`Error::ModelMismatch`]); contexts that differ in
    /// `f32_activations` ([`Error::InvalidArgument`]); and what `decode`
    /// refuses ([`Error::TokenOutOfRange`], [`Error::ContextFull`]).
    pub fn decode_many(
        &mut self,
        ctxs: &mut [&mut Context<'m>],
        tokens: &[u32],
        n_each: Option<&[u32]>,
        par: &dyn Parallel,
    ) -> Result<()> {
        let ptrs = ctxs as *mut [&mut Context<'m>] as *const [NonNull<Context<'m>>];
        // SAFETY: `&mut Context` and `NonNull<Context>` have one layout;
        // the pointers come from distinct exclusive borrows held for the call.
        #[allow(unsafe_code)]
        let ptrs = unsafe { &*ptrs };
        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe {
            self.decode_raw(ptrs, tokens, n_each, par)
        }
    }

    /// [`Batch::decode_many`] over pointers, which may repeat a context
    /// (refused: [`Error::DuplicateContext`]).
    ///
    /// # Safety
    /// Every pointer is valid, and nothing else uses these contexts during
    /// the call.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn decode_raw(
        &mut self,
        ctxs: &[NonNull<Context<'m>>],
        tokens: &[u32],
        n_each: Option<&[u32]>,
        par: &dyn Parallel,
    ) -> Result<()> {
        let count = |i: usize| n_each.map_or(1, |n| n[i] as usize);
        if ctxs.is_empty() || n_each.is_some_and(|n| n.len() != ctxs.len() || n.contains(&0)) {
            return Err(Error::InvalidArgument);
        }
        let n_tokens = (0..ctxs.len())
            .try_fold(0usize, |a, i| a.checked_add(count(i)))
            .filter(|&n| n <= self.max_tokens)
            .ok_or(Error::BatchTooLarge)?;
        if tokens.len() != n_tokens {
            return Err(Error::InvalidArgument);
        }
        // A context given twice: mark each until one is marked already,
        // then clear the marks set (linear in the contexts; only places, no
        // references, are used).
        let mark = |p: &NonNull<Context<'m>>| {
            // SAFETY: valid (contract); a place, no reference.
            unsafe { &raw mut (*p.as_ptr()).marked }
        };
        let mut marked = 0;
        for p in ctxs {
            // SAFETY: valid (contract); no reference into it is alive.
            if unsafe { mark(p).read() } {
                break;
            }
            // SAFETY: as above.
            unsafe { mark(p).write(true) };
            marked += 1;
        }
        for p in &ctxs[..marked] {
            // SAFETY: as above.
            unsafe { mark(p).write(false) };
        }
        if marked < ctxs.len() {
            return Err(Error::DuplicateContext);
        }
        // SAFETY: valid (contract), distinct (checked), ours for the call.
        let mut seqs = unsafe { Seqs::new(ctxs) };
        let f32_act = seqs.get(0).f32_activations;
        let mut t0 = 0;
        for i in 0..seqs.len() {
            let c = seqs.get(i);
            if !core::ptr::eq(c.model, self.model) {
                return Err(Error::ModelMismatch);
            }
            if c.f32_activations != f32_act {
                return Err(Error::InvalidArgument);
            }
            c.check(&tokens[t0..t0 + count(i)])?;
            t0 += count(i);
        }
        // Checked: from here on nothing can fail.
        for i in 0..seqs.len() {
            seqs.get_mut(i).step = Step {
                row0: 0,
                n: count(i),
            };
        }
        // Contexts that keep f32 inputs: the pass runs without conversion.
        let act = f32_act.then(|| core::mem::take(&mut self.s.act));
        forward(self.model, &mut self.s, &mut seqs, tokens, par);
        if let Some(act) = act {
            self.s.act = act;
        }
        let n_vocab = self.model.config().n_vocab;
        let mut k = 0;
        for i in 0..seqs.len() {
            let c = seqs.get_mut(i);
            c.advance(count(i));
            // The rows `forward` wrote for it, in order: as many as it keeps.
            let rows = c.n_outputs * n_vocab;
            c.s.logits[..rows].copy_from_slice(&self.s.logits[k..k + rows]);
            k += rows;
        }
        Ok(())
    }
}

const CONTEXT_MAGIC: &[u8; 4] = b"NLCX";
/// Magic, version, fingerprint and six u32 fields.
const STATE_HEADER: usize = 4 + 4 + 8 + 6 * 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Inline;
    use std::vec;
    use std::vec::Vec;

    /// `n` zeroed bytes at a 64-byte boundary inside `v`.
    fn aligned(v: &mut Vec<u8>, n: usize) -> &mut [u8] {
        *v = vec![0u8; n + 64];
        let off = v.as_ptr().align_offset(64);
        &mut v[off..off + n]
    }

    /// A tiny F32 LLaMA file (dim 8, one layer, two query heads over one
    /// KV head, vocab 8), small enough for Miri.
    fn tiny_file() -> Vec<u8> {
        let s = |v: &mut Vec<u8>, t: &str| {
            v.extend_from_slice(&(t.len() as u64).to_le_bytes());
            v.extend_from_slice(t.as_bytes());
        };
        let (dim, ffn, vocab, kv) = (8u64, 8u64, 8u64, 4u64);
        let kvs: [(&str, u32); 6] = [
            ("llama.embedding_length", dim as u32),
            ("llama.block_count", 1),
            ("llama.feed_forward_length", ffn as u32),
            ("llama.attention.head_count", 2),
            ("llama.attention.head_count_kv", 1),
            ("llama.context_length", 16),
        ];
        let tensors: [(&str, &[u64]); 12] = [
            ("token_embd.weight", &[dim, vocab]),
            ("blk.0.attn_norm.weight", &[dim]),
            ("blk.0.attn_q.weight", &[dim, dim]),
            ("blk.0.attn_k.weight", &[dim, kv]),
            ("blk.0.attn_v.weight", &[dim, kv]),
            ("blk.0.attn_output.weight", &[dim, dim]),
            ("blk.0.ffn_norm.weight", &[dim]),
            ("blk.0.ffn_gate.weight", &[dim, ffn]),
            ("blk.0.ffn_up.weight", &[dim, ffn]),
            ("blk.0.ffn_down.weight", &[ffn, dim]),
            ("output_norm.weight", &[dim]),
            ("output.weight", &[dim, vocab]),
        ];
        let mut f = b"GGUF".to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        f.extend_from_slice(&(kvs.len() as u64 + 2).to_le_bytes());
        s(&mut f, "general.architecture");
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, "llama");
        s(&mut f, "llama.attention.layer_norm_rms_epsilon");
        f.extend_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&1e-5f32.to_le_bytes());
        for (k, v) in kvs {
            s(&mut f, k);
            f.extend_from_slice(&4u32.to_le_bytes());
            f.extend_from_slice(&v.to_le_bytes());
        }
        let mut off = 0u64;
        for (name, dims) in tensors {
            s(&mut f, name);
            f.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                f.extend_from_slice(&d.to_le_bytes());
            }
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&off.to_le_bytes());
            off += dims.iter().product::<u64>() * 4;
        }
        f.resize(f.len().div_ceil(32) * 32, 0);
        let mut x = 1u32;
        for _ in 0..off / 4 {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let v = (x >> 9) as f32 / (1u32 << 23) as f32 - 0.5;
            f.extend_from_slice(&v.to_le_bytes());
        }
        f
    }

    /// Under Miri too (the raw pointers of `Seqs` and the marks): two
    /// contexts stepped together give each one's own bits; the same
    /// context twice is refused, unmarked, and the next call goes through.
    #[test]
    fn decode_many_over_pointers() {
        let file = tiny_file();
        let mut mm = Vec::new();
        let model = Model::init(&file, aligned(&mut mm, Model::size(&file).unwrap())).unwrap();
        let p = ContextParams {
            n_ctx: 4,
            n_batch: 2,
            ..ContextParams::default()
        };
        let n = Context::size(&model, &p).unwrap();
        let (mut m1, mut m2, mut m3) = (Vec::new(), Vec::new(), Vec::new());
        let mut a = Context::init(&model, &p, aligned(&mut m1, n)).unwrap();
        let mut b = Context::init(&model, &p, aligned(&mut m2, n)).unwrap();
        let mut alone = Context::init(&model, &p, aligned(&mut m3, n)).unwrap();
        let bp = BatchParams { max_tokens: 3 };
        let mut bm = Vec::new();
        let n = Batch::size(&model, &bp).unwrap();
        let mut batch = Batch::init(&model, &bp, aligned(&mut bm, n)).unwrap();
        batch
            .decode_many(&mut [&mut a, &mut b], &[3, 1, 2], Some(&[1, 2]), &Inline)
            .unwrap();
        alone.decode(&[1, 2], &Inline).unwrap();
        assert_eq!(b.logits(), alone.logits());
        assert_eq!((a.pos(), b.pos()), (1, 2));
        let pa = NonNull::from(&mut a);
        // SAFETY: one valid context, twice: refused before any use.
        #[allow(unsafe_code)]
        let twice = unsafe { batch.decode_raw(&[pa, pa], &[5, 6], None, &Inline) };
        assert_eq!(twice, Err(Error::DuplicateContext));
        assert!(!a.marked && a.pos() == 1);
        batch
            .decode_many(&mut [&mut b, &mut a], &[7, 6], None, &Inline)
            .unwrap();
        alone.decode(&[7], &Inline).unwrap();
        assert_eq!(b.logits(), alone.logits());
        assert_eq!((a.pos(), b.pos()), (2, 3));
    }
}
