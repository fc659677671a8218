//! One conversation: a KV cache and activation buffers carved from caller
//! memory, a position, and the logits of the last decode.
//!
//! Several contexts may share one [`Model`]; each is used by one thread at a
//! time (its `decode` spreads work over the host's threads itself).

use crate::block::{forward, Batch, KvCache, Scratch};
use crate::error::{Error, Result};
use crate::model::{Config, Model, ALIGN};
use crate::parallel::Parallel;
use crate::quant::ACT_MAX_BYTES;
use crate::state::{self, Reader, Writer};

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

/// Sizes of every region of a context's memory, in elements; one function
/// computes it for both the size query and `init`, so they cannot drift.
#[derive(Clone, Copy, Debug)]
struct Layout {
    n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    n_outputs: usize,
    kv_elems: usize,
    x: usize,
    xb: usize,
    q: usize,
    kv: usize,
    hb: usize,
    att: usize,
    rope: usize,
    logits: usize,
    /// Bytes of converted matrix-product inputs.
    act: usize,
}

fn round_up(bytes: usize) -> Option<usize> {
    bytes.checked_add(ALIGN - 1).map(|b| b / ALIGN * ALIGN)
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
            x: m(n_batch, c.dim)?,
            xb: m(n_batch, c.dim.max(c.q_dim()))?,
            q: m(n_batch, c.q_dim())?,
            kv: m(n_batch, c.kv_dim())?,
            hb: m(n_batch, c.ffn_dim)?,
            att: m(c.n_heads, n_ctx)?,
            rope: m(n_batch, c.rope_dim)?,
            logits: m(n_outputs, c.n_vocab)?,
            act: if p.f32_activations {
                0
            } else {
                let cols = c.dim.max(c.q_dim()).max(c.ffn_dim);
                m(m(n_batch, cols)?, ACT_MAX_BYTES)?
            },
        })
    }

    /// Bytes of each region, in carving order.
    fn regions(&self) -> [usize; 14] {
        let kvb = self.kv_elems.saturating_mul(self.kv_type.bytes());
        let f = |n: usize| n.saturating_mul(4);
        [
            kvb,
            kvb,
            f(self.x),
            f(self.xb),
            f(self.x),
            f(self.q),
            f(self.kv),
            f(self.kv),
            f(self.hb),
            f(self.hb),
            f(self.att),
            f(self.rope),
            f(self.logits),
            self.act,
        ]
    }

    fn bytes(&self) -> Result<usize> {
        self.regions().iter().try_fold(0usize, |acc, &r| {
            round_up(r)
                .and_then(|r| acc.checked_add(r))
                .filter(|&t| t < isize::MAX as usize)
                .ok_or(Error::InvalidArgument)
        })
    }
}

/// Hands out consecutive 64-byte-aligned regions of a buffer.
struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
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

/// One conversation over a shared model.
pub struct Context<'m> {
    model: &'m Model<'m>,
    n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    logits_all: bool,
    f32_activations: bool,
    pos: usize,
    /// Rows of logits the last decode produced (0 after reset or truncate).
    n_outputs: usize,
    kv: KvCache<'m>,
    s: Scratch<'m>,
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
        let need = lay.bytes()?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < need {
            return Err(Error::BufferTooSmall);
        }
        let mut c = Carver { rest: mem };
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
        let s = Scratch {
            x: c.f32s(lay.x)?,
            xb: c.f32s(lay.xb)?,
            xb2: c.f32s(lay.x)?,
            q: c.f32s(lay.q)?,
            k: c.f32s(lay.kv)?,
            v: c.f32s(lay.kv)?,
            hb: c.f32s(lay.hb)?,
            hb2: c.f32s(lay.hb)?,
            att: c.f32s(lay.att)?,
            rope: c.f32s(lay.rope)?,
            logits: c.f32s(lay.logits)?,
            act: c.bytes(lay.act)?,
        };
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
            s,
        })
    }

    /// Appends `tokens` at the current position and computes logits (for every
    /// token when the context keeps all logits, else for the last). Checks
    /// everything first: on error nothing changes.
    pub fn decode(&mut self, tokens: &[u32], par: &dyn Parallel) -> Result<()> {
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
        forward(
            self.model,
            self.n_ctx,
            &mut self.kv,
            &mut self.s,
            Batch {
                tokens,
                pos0: self.pos,
                all: self.logits_all,
            },
            par,
        );
        self.pos += tokens.len();
        self.n_outputs = if self.logits_all { tokens.len() } else { 1 };
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

const CONTEXT_MAGIC: &[u8; 4] = b"NLCX";
/// Magic, version, fingerprint and six u32 fields.
const STATE_HEADER: usize = 4 + 4 + 8 + 6 * 4;
