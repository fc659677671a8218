//! A grammar as a sampler stage: llama.cpp's grammar sampler, fast.
//!
//! The stage sets to -infinity every candidate whose text the grammar
//! cannot take from its state (llama.cpp's `llama_sampler_init_grammar`:
//! partial UTF-8 across tokens, end-of-generation tokens only where the
//! grammar may end) and advances the grammar over each accepted token.
//!
//! Why it is fast: llama.cpp decodes every candidate's text and checks it
//! against every parser stack, character by character, each step. Here:
//!
//! - the vocabulary is a trie ([`TokenTrie`]), walked once per stack: a
//!   prefix many tokens share is matched once, and a refused prefix drops
//!   its whole subtree;
//! - the set of tokens a stack allows depends only on the stack and the
//!   partial UTF-8 sequence, and the same stacks recur (every character
//!   inside a JSON string leaves the same stack): the sets of recent
//!   stacks are kept, [`GrammarParams::cache_entries`] of them, least
//!   recently used out;
//! - with few candidates left (the stage after top-k) each candidate is
//!   checked alone; and llama.cpp's "sample first, check the drawn token,
//!   constrain only when it is refused" is [`GrammarParams::check_first`].
//!
//! Memory: the matcher's sets ([`MatcherParams`]), the walk's frames and
//! stacks, the cache (a bit per token per entry), one mask; all in the
//! caller's bytes, sized by [`GrammarStage::size`]. A walk that needs more
//! than its bounds falls back to checking each token alone (same result,
//! slower); a state past the matcher's bounds is [`Error::GrammarLimit`].

use super::matcher::{Frame, WalkMem};
use super::{Grammar, Matcher, MatcherParams, TokenTrie};
use crate::error::{Error, Result};
use crate::model::ALIGN;
use crate::sampler::Candidate;

/// Settings of a grammar stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrammarParams {
    /// Bounds of the parser state.
    pub matcher: MatcherParams,
    /// Allowed-token sets kept for recurring stacks (n_vocab / 8 bytes
    /// each); 0 keeps none.
    pub cache_entries: u32,
    /// Longest stack (in positions) whose set is kept.
    pub max_key: u32,
    /// Frames of a trie walk (its depth times the branching of the
    /// grammar at one position).
    pub walk_frames: u32,
    /// Stack positions a walk holds at once.
    pub walk_positions: u32,
    /// Draw from the chain without the grammar first, and constrain (then
    /// draw again from the same random state) only when the drawn token is
    /// refused: llama.cpp's common sampler. The result is the unconstrained
    /// draw whenever the grammar allows it, which is not always the
    /// constrained distribution's draw.
    pub check_first: bool,
}

impl Default for GrammarParams {
    fn default() -> Self {
        Self {
            matcher: MatcherParams::default(),
            cache_entries: 32,
            max_key: 64,
            walk_frames: 8192,
            walk_positions: 1 << 16,
            check_first: false,
        }
    }
}

/// A kept set: its stack (`len` positions at `keys[i * max_key..]`), the
/// partial sequence, when it was last used.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Entry {
    hash_lo: u32,
    hash_hi: u32,
    len: u32,
    value: u32,
    n_remain: i32,
    stamp: u32,
    valid: u32,
    _pad: u32,
}

// SAFETY: eight 4-byte fields under repr(C): no padding, every bit pattern
// is a value.
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Entry {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Entry {}

/// Below this many candidates each is checked alone.
const FEW: usize = 32;

/// A grammar's state and what makes its checks fast, over caller memory.
pub struct GrammarStage<'a> {
    trie: &'a TokenTrie<'a>,
    matcher: Matcher<'a>,
    /// Identifies the grammar in saved states.
    id: u64,
    words: usize,
    mask: &'a mut [u64],
    walk: WalkMem<'a>,
    entries: &'a mut [Entry],
    keys: &'a mut [u32],
    bits: &'a mut [u64],
    max_key: usize,
    clock: u32,
    check_first: bool,
    hits: u64,
    misses: u64,
}

struct Layout {
    matcher: usize,
    words: usize,
    entries: usize,
    max_key: usize,
    frames: usize,
    positions: usize,
}

impl Layout {
    fn new(trie: &TokenTrie<'_>, p: &GrammarParams) -> Result<Self> {
        if p.cache_entries > 1 << 16
            || p.max_key > 1 << 16
            || p.walk_frames == 0
            || p.walk_frames > 1 << 24
            || p.walk_positions > 1 << 26
        {
            return Err(Error::InvalidArgument);
        }
        Ok(Self {
            matcher: Matcher::size(&p.matcher)?,
            words: trie.n_vocab().div_ceil(64),
            entries: p.cache_entries as usize,
            max_key: p.max_key as usize,
            frames: p.walk_frames as usize,
            positions: p.walk_positions as usize,
        })
    }

    fn bytes(&self) -> Option<usize> {
        let parts = [
            self.matcher,
            self.words.checked_mul(8)?,
            self.frames.checked_mul(core::mem::size_of::<Frame>())?,
            self.positions.checked_mul(4)?,
            self.frames.checked_mul(8)?,
            self.entries.checked_mul(core::mem::size_of::<Entry>())?,
            self.entries.checked_mul(self.max_key)?.checked_mul(4)?,
            self.entries.checked_mul(self.words)?.checked_mul(8)?,
        ];
        crate::model::padded_total(&parts)
    }
}

/// A stack's key hash (with the partial sequence).
fn key_hash(stack: &[u32], value: u32, n_remain: i32) -> u64 {
    let mut h = crate::state::HASH_SEED ^ u64::from(value) ^ (n_remain as u64) << 40;
    for &v in stack {
        h = (h ^ u64::from(v)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    h
}

impl<'a> GrammarStage<'a> {
    /// Bytes [`GrammarStage::init`] needs (with the defaults and LLaMA 3's
    /// 128,256 tokens: about 2.6 MB, of which the kept sets are 0.5 MB).
    pub fn size(trie: &TokenTrie<'_>, params: &GrammarParams) -> Result<usize> {
        Layout::new(trie, params)?
            .bytes()
            .ok_or(Error::InvalidArgument)
    }

    /// A stage at the start of `g`, for the vocabulary of `trie`, over
    /// `mem` (64-byte aligned, [`GrammarStage::size`] bytes).
    pub fn init(
        g: &Grammar<'a>,
        trie: &'a TokenTrie<'a>,
        params: &GrammarParams,
        mem: &'a mut [u8],
    ) -> Result<Self> {
        let lay = Layout::new(trie, params)?;
        let total = lay.bytes().ok_or(Error::InvalidArgument)?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < total {
            return Err(Error::BufferTooSmall);
        }
        let (m, mut rest) = mem[..total].split_at_mut(lay.matcher);
        let matcher = Matcher::init(g, &params.matcher, m)?;
        let mask: &mut [u64] = super::carve(&mut rest, lay.words);
        let frames: &mut [Frame] = super::carve(&mut rest, lay.frames);
        let pool: &mut [u32] = super::carve(&mut rest, lay.positions);
        let lists: &mut [[u32; 2]] = super::carve(&mut rest, lay.frames);
        let entries: &mut [Entry] = super::carve(&mut rest, lay.entries);
        entries.fill(Entry::default());
        let keys: &mut [u32] = super::carve(&mut rest, lay.entries * lay.max_key);
        let bits: &mut [u64] = super::carve(&mut rest, lay.entries * lay.words);
        let mut id = crate::state::hash(crate::state::HASH_SEED, bytemuck::cast_slice(g.elems()));
        id = crate::state::hash(id, bytemuck::cast_slice(g.starts));
        id = crate::state::hash(id, &g.root().to_le_bytes());
        Ok(Self {
            trie,
            matcher,
            id,
            words: lay.words,
            mask,
            walk: WalkMem {
                frames,
                pool,
                lists,
            },
            entries,
            keys,
            bits,
            max_key: lay.max_key,
            clock: 0,
            check_first: params.check_first,
            hits: 0,
            misses: 0,
        })
    }

    /// Tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.trie.n_vocab()
    }

    /// Whether [`GrammarParams::check_first`] is set.
    pub fn check_first(&self) -> bool {
        self.check_first
    }

    /// Whether the grammar may end here.
    pub fn can_end(&self) -> bool {
        self.matcher.can_end()
    }

    /// Stacks in the parser state.
    pub fn n_stacks(&self) -> usize {
        self.matcher.n_stacks()
    }

    /// Steps whose stacks' sets were found kept, and those walked.
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Back to the start of the grammar (the kept sets stay: they depend
    /// on the grammar only).
    pub fn reset(&mut self) -> Result<()> {
        self.matcher.reset()
    }

    /// Whether the grammar takes token `id` now.
    pub fn allows(&mut self, id: u32) -> Result<bool> {
        if id as usize >= self.trie.n_vocab() {
            return Err(Error::TokenOutOfRange);
        }
        if self.trie.is_eog(id) {
            return Ok(self.matcher.can_end());
        }
        self.matcher.allows(id, self.trie.piece(id))
    }

    /// Advances the grammar over token `id`: [`Error::InvalidArgument`]
    /// when the grammar does not take it (an end-of-generation token where
    /// the grammar may not end, or text it refuses), the state unchanged.
    pub fn accept(&mut self, id: u32) -> Result<()> {
        if id as usize >= self.trie.n_vocab() {
            return Err(Error::TokenOutOfRange);
        }
        if self.trie.is_eog(id) {
            return if self.matcher.can_end() {
                Ok(())
            } else {
                Err(Error::InvalidArgument)
            };
        }
        self.matcher.accept(id, self.trie.piece(id))
    }

    /// A bit per token of the vocabulary, set where the grammar takes it.
    pub fn allowed(&mut self) -> Result<&[u64]> {
        self.mask.fill(0);
        let mut walked = true;
        for i in 0..self.matcher.n_stacks() {
            if !self.stack_into_mask(i)? {
                walked = false;
                break;
            }
        }
        if !walked {
            // A walk past its bounds: every token alone.
            self.mask.fill(0);
            for &id in self.trie.ids() {
                if self.matcher.allows(id, self.trie.piece(id))? {
                    self.mask[id as usize >> 6] |= 1 << (id & 63);
                }
            }
        }
        if self.matcher.can_end() {
            for &id in self.trie.eog() {
                if let Some(w) = self.mask.get_mut(id as usize >> 6) {
                    *w |= 1 << (id & 63);
                }
            }
        }
        Ok(self.mask)
    }

    /// ORs stack `i`'s set into the mask, from the kept sets or a walk;
    /// false when the walk went past its bounds.
    fn stack_into_mask(&mut self, i: usize) -> Result<bool> {
        let stack = self.matcher.stack(i);
        let p = self.matcher.partial();
        let key = stack.len() <= self.max_key && !self.entries.is_empty();
        let h = key_hash(stack, p.value, p.n_remain);
        self.clock = self.clock.wrapping_add(1);
        if key {
            let mk = self.max_key;
            let found = self.entries.iter().position(|e| {
                e.valid != 0
                    && e.hash_lo == h as u32
                    && e.hash_hi == (h >> 32) as u32
                    && e.len as usize == stack.len()
                    && e.value == p.value
                    && e.n_remain == p.n_remain
            });
            if let Some(k) = found.filter(|&k| self.keys[k * mk..k * mk + stack.len()] == *stack) {
                self.entries[k].stamp = self.clock;
                self.hits += 1;
                let bits = &self.bits[k * self.words..(k + 1) * self.words];
                for (m, b) in self.mask.iter_mut().zip(bits) {
                    *m |= b;
                }
                return Ok(true);
            }
        }
        self.misses += 1;
        if !key {
            return match self.matcher.walk(i, self.trie, self.mask, &mut self.walk) {
                Ok(()) => Ok(true),
                Err(Error::GrammarLimit) => Ok(false),
                Err(e) => Err(e),
            };
        }
        // The least recently used entry (an empty one first).
        let k = (0..self.entries.len())
            .min_by_key(|&k| {
                let e = &self.entries[k];
                (e.valid != 0, self.clock.wrapping_sub(e.stamp) ^ u32::MAX)
            })
            .unwrap_or(0);
        let words = self.words;
        let bits = &mut self.bits[k * words..(k + 1) * words];
        bits.fill(0);
        self.entries[k].valid = 0;
        match self.matcher.walk(i, self.trie, bits, &mut self.walk) {
            Ok(()) => {}
            Err(Error::GrammarLimit) => return Ok(false),
            Err(e) => return Err(e),
        }
        let stack = self.matcher.stack(i);
        let mk = self.max_key;
        self.keys[k * mk..k * mk + stack.len()].copy_from_slice(stack);
        self.entries[k] = Entry {
            hash_lo: h as u32,
            hash_hi: (h >> 32) as u32,
            len: stack.len() as u32,
            value: p.value,
            n_remain: p.n_remain,
            stamp: self.clock,
            valid: 1,
            _pad: 0,
        };
        for (m, b) in self
            .mask
            .iter_mut()
            .zip(&self.bits[k * words..(k + 1) * words])
        {
            *m |= b;
        }
        Ok(true)
    }

    /// Sets to -infinity the logit of every candidate the grammar refuses.
    pub fn apply(&mut self, cand: &mut [Candidate]) -> Result<()> {
        if cand.iter().any(|c| c.id as usize >= self.trie.n_vocab()) {
            return Err(Error::TokenOutOfRange);
        }
        if cand.len() < FEW {
            for c in cand.iter_mut() {
                if !self.allows(c.id)? {
                    c.logit = f32::NEG_INFINITY;
                }
            }
            return Ok(());
        }
        let mask = self.allowed()?;
        for c in cand.iter_mut() {
            if mask[c.id as usize >> 6] >> (c.id & 63) & 1 == 0 {
                c.logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Bytes [`GrammarStage::save`] writes now.
    pub fn state_size(&self) -> usize {
        8 + self.matcher.state_size()
    }

    /// Writes the grammar's identity and the parser state.
    pub fn save(&self, w: &mut crate::state::Writer<'_>) {
        w.u64(self.id);
        self.matcher.save(w);
    }

    /// Reads what [`GrammarStage::save`] wrote: [`Error::StateMismatch`] for
    /// another grammar; the state unchanged on error.
    pub fn load(&mut self, r: &mut crate::state::Reader<'_>) -> Result<()> {
        if r.u64()? != self.id {
            return Err(Error::StateMismatch);
        }
        self.matcher.load(r)
    }
}
