//! Running a grammar: llama.cpp's set of parser stacks, in caller memory.
//!
//! A stack is a list of element positions (bottom first) whose top is the
//! terminal (a char class or a token) the grammar expects next. The state
//! is the set of every stack the text so far can have reached, each
//! advanced to a terminal (llama.cpp's `llama_grammar_advance_stack`), and
//! the bits of an unfinished UTF-8 sequence. An empty stack means the
//! grammar may end there.
//!
//! Memory is bounded by [`MatcherParams`]: stacks in a set, and positions
//! over all the stacks of a set. A step that would need more is refused
//! with [`Error::GrammarLimit`], and a refused step leaves the state as it
//! was: steps are built in two working sets beside the current one.

use super::{ty, Elem, Grammar};
use crate::error::{Error, Result};
use crate::model::ALIGN;

/// Bounds of a matcher's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatcherParams {
    /// Most stacks in one set (and in the work of one step).
    pub max_stacks: usize,
    /// Most positions (u32) over all the stacks of a set.
    pub max_positions: usize,
}

impl Default for MatcherParams {
    fn default() -> Self {
        Self {
            max_stacks: 1024,
            max_positions: 1 << 16,
        }
    }
}

/// A set of stacks: positions in `pool`, (offset, length) in `idx`, and a
/// hash table over them (slot: generation << 32 | index + 1), cleared by
/// a new generation.
struct Set<'m> {
    pool: &'m mut [u32],
    used: usize,
    idx: &'m mut [[u32; 2]],
    n: usize,
    table: &'m mut [u64],
    generation: u32,
}

impl Set<'_> {
    fn clear(&mut self) {
        self.used = 0;
        self.n = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.table.fill(0);
            self.generation = 1;
        }
    }

    fn get(&self, i: usize) -> &[u32] {
        let [o, l] = self.idx[i];
        &self.pool[o as usize..(o + l) as usize]
    }

    /// Where the stack `head ++ tail` is in the table: `Ok(slot)` of the
    /// entry holding it, or `Err(slot)` of the free slot it would take.
    fn find(&self, head: &[u32], tail: &[u32]) -> core::result::Result<usize, usize> {
        let len = head.len() + tail.len();
        let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
        for &v in head.iter().chain(tail) {
            h = (h ^ u64::from(v)).wrapping_mul(0x100_0000_01b3);
            h ^= h >> 29;
        }
        let mask = self.table.len() - 1;
        let mut slot = h as usize & mask;
        loop {
            let e = self.table[slot];
            if (e >> 32) as u32 != self.generation {
                return Err(slot);
            }
            let s = self.get((e as u32 - 1) as usize);
            if s.len() == len && s[..head.len()] == *head && s[head.len()..] == *tail {
                return Ok(slot);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Whether the stack `s` is in the set.
    fn contains(&self, s: &[u32]) -> bool {
        self.find(s, &[]).is_ok()
    }

    /// Adds the stack `head ++ tail` unless it is there; true if added.
    fn insert(&mut self, head: &[u32], tail: &[u32]) -> Result<bool> {
        let Err(slot) = self.find(head, tail) else {
            return Ok(false);
        };
        let len = head.len() + tail.len();
        if self.n == self.idx.len() || self.used + len > self.pool.len() {
            return Err(Error::GrammarLimit);
        }
        let at = self.used;
        self.pool[at..at + head.len()].copy_from_slice(head);
        self.pool[at + head.len()..at + len].copy_from_slice(tail);
        self.idx[self.n] = [at as u32, len as u32];
        self.used += len;
        self.n += 1;
        self.table[slot] = u64::from(self.generation) << 32 | self.n as u64;
        Ok(true)
    }
}

/// The work list of one advance (a LIFO of stacks).
struct Work<'m> {
    pool: &'m mut [u32],
    idx: &'m mut [[u32; 2]],
}

/// The partial UTF-8 sequence at the end of the text so far (llama.cpp's
/// `llama_partial_utf8`): the bits so far and the bytes still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Partial {
    pub value: u32,
    pub n_remain: i32,
}

/// What one more byte makes of a partial sequence (llama.cpp's decoding:
/// lenient about continuation bytes' tags except at a sequence start).
enum Byte {
    /// A complete code point.
    Char(u32),
    /// Still inside a sequence.
    More(Partial),
    /// An invalid sequence: the token is refused.
    Invalid,
}

fn byte(p: Partial, b: u8, continuing: bool) -> Byte {
    if p.n_remain > 0 {
        // llama.cpp checks the tag only of bytes continuing a sequence
        // begun in an earlier token.
        if continuing && b >> 6 != 2 {
            return Byte::Invalid;
        }
        let v = (p.value << 6) + u32::from(b & 0x3f);
        return if p.n_remain == 1 {
            Byte::Char(v)
        } else {
            Byte::More(Partial {
                value: v,
                n_remain: p.n_remain - 1,
            })
        };
    }
    let len = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4][usize::from(b >> 4)];
    if len == 0 {
        return Byte::Invalid;
    }
    let n_remain = len - 1;
    let value = u32::from(b) & ((1u32 << (7 - n_remain)) - 1);
    if n_remain == 0 {
        Byte::Char(value)
    } else {
        Byte::More(Partial { value, n_remain })
    }
}

/// `bytes` up to its first NUL.
fn cut_nul(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
}

/// The code points `bytes` completes after the partial sequence `p`, or
/// None when llama.cpp's decoder finds it invalid.
fn decoded_chars(mut p: Partial, bytes: &[u8]) -> Option<usize> {
    let mut continuing = p.n_remain > 0;
    let mut n = 0;
    for &b in bytes {
        match byte(p, b, continuing) {
            Byte::Invalid => return None,
            Byte::More(q) => p = q,
            Byte::Char(_) => {
                n += 1;
                p = Partial::default();
                continuing = false;
            }
        }
    }
    Some(n)
}

fn end_of_seq(e: Elem) -> bool {
    e.ty == ty::END || e.ty == ty::ALT
}

fn is_char(e: Elem) -> bool {
    matches!(e.ty, ty::CHAR | ty::CHAR_NOT | ty::CHAR_ANY)
}

/// Walks the class at `pos` (its chars, ranges, or `.` as the range of
/// every code point): whether `hit` holds for one of its ranges, whether
/// the class is positive, and the position after it.
#[inline]
fn class(elems: &[Elem], mut pos: usize, hit: impl Fn(u32, u32) -> bool) -> (bool, bool, usize) {
    let positive = matches!(elems[pos].ty, ty::CHAR | ty::CHAR_ANY);
    let mut found = false;
    loop {
        let e = elems[pos];
        let (lo, hi) = if elems[pos + 1].ty == ty::CHAR_RNG_UPPER {
            pos += 2;
            (e.value, elems[pos - 1].value)
        } else if e.ty == ty::CHAR_ANY {
            pos += 1;
            (0, u32::MAX)
        } else {
            pos += 1;
            (e.value, e.value)
        };
        found |= hit(lo, hi);
        if elems[pos].ty != ty::CHAR_ALT {
            break;
        }
    }
    (found, positive, pos)
}

/// Whether `c` is in the class at `pos`, and the position after it.
#[inline]
fn match_char(elems: &[Elem], pos: usize, c: u32) -> (bool, usize) {
    let (found, positive, after) = class(elems, pos, |lo, hi| lo <= c && c <= hi);
    (found == positive, after)
}

/// Whether some completion of `p` can be in the class at `pos` (llama.cpp's
/// `llama_grammar_match_partial_char`).
fn match_partial(elems: &[Elem], pos: usize, p: Partial) -> bool {
    if p.n_remain < 0 || (p.n_remain == 1 && p.value < 2) {
        return false;
    }
    let shift = 6 * p.n_remain as u32;
    let mut low = p.value << shift;
    let high = low | ((1u32 << shift) - 1);
    if low == 0 {
        if p.n_remain == 2 {
            low = 1 << 11;
        } else if p.n_remain == 3 {
            low = 1 << 16;
        }
    }
    let (found, positive, _) = class(elems, pos, |lo, hi| lo <= high && low <= hi);
    found == positive
}

/// Adds to `out` every stack that `head ++ tail` reaches by expanding the
/// rule references on top, each ending at a terminal (or empty).
fn advance(
    g: (&[Elem], &[u32]),
    head: &[u32],
    tail: &[u32],
    out: &mut Set<'_>,
    seen: &mut Set<'_>,
    work: &mut Work<'_>,
) -> Result<()> {
    let (elems, starts) = g;
    seen.clear();
    let len = head.len() + tail.len();
    if len > work.pool.len() || work.idx.is_empty() {
        return Err(Error::GrammarLimit);
    }
    work.pool[..head.len()].copy_from_slice(head);
    work.pool[head.len()..len].copy_from_slice(tail);
    work.idx[0] = [0, len as u32];
    let mut n = 1;
    while n > 0 {
        n -= 1;
        let [o, l] = work.idx[n];
        let (o, l) = (o as usize, l as usize);
        // Popped: its space is free again once it is in `seen`.
        let mut used = o;
        if !seen.insert(&work.pool[o..o + l], &[])? {
            continue;
        }
        let s = seen.get(seen.n - 1);
        let Some(&top) = s.last() else {
            out.insert(s, &[])?;
            continue;
        };
        let top = top as usize;
        let e = elems[top];
        if e.ty != ty::RULE_REF {
            out.insert(s, &[])?;
            continue;
        }
        let base = &s[..s.len() - 1];
        let mut sub = starts[e.value as usize] as usize;
        loop {
            let mut add = [0u32; 2];
            let mut k = 0;
            if !end_of_seq(elems[top + 1]) {
                add[k] = top as u32 + 1;
                k += 1;
            }
            if !end_of_seq(elems[sub]) {
                add[k] = sub as u32;
                k += 1;
            }
            let l = base.len() + k;
            if n == work.idx.len() || used + l > work.pool.len() {
                return Err(Error::GrammarLimit);
            }
            work.pool[used..used + base.len()].copy_from_slice(base);
            work.pool[used + base.len()..used + l].copy_from_slice(&add[..k]);
            work.idx[n] = [used as u32, l as u32];
            used += l;
            n += 1;
            while !end_of_seq(elems[sub]) {
                sub += 1;
            }
            if elems[sub].ty == ty::ALT {
                sub += 1;
            } else {
                break;
            }
        }
    }
    Ok(())
}

/// `to` := the stacks of `from` after the code point `c`.
fn step(
    g: (&[Elem], &[u32]),
    from: &Set<'_>,
    c: u32,
    to: &mut Set<'_>,
    seen: &mut Set<'_>,
    work: &mut Work<'_>,
) -> Result<()> {
    to.clear();
    for i in 0..from.n {
        let s = from.get(i);
        let Some(&top) = s.last() else {
            continue;
        };
        let top = top as usize;
        if !is_char(g.0[top]) {
            continue;
        }
        let (ok, after) = match_char(g.0, top, c);
        if !ok {
            continue;
        }
        let t = [after as u32];
        let tail: &[u32] = if end_of_seq(g.0[after]) { &[] } else { &t };
        advance(g, &s[..s.len() - 1], tail, to, seen, work)?;
    }
    Ok(())
}

/// The grammar's state: the stacks and the partial UTF-8 sequence.
pub struct Matcher<'a> {
    elems: &'a [Elem],
    starts: &'a [u32],
    root: u32,
    /// The current set and two to work in.
    sets: [Set<'a>; 3],
    cur: usize,
    seen: Set<'a>,
    work: Work<'a>,
    partial: Partial,
}

struct Layout {
    stacks: usize,
    positions: usize,
    table: usize,
}

fn pad(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl Layout {
    fn new(p: &MatcherParams) -> Result<Self> {
        if p.max_stacks == 0 || p.max_stacks > 1 << 20 || p.max_positions > 1 << 26 {
            return Err(Error::InvalidArgument);
        }
        Ok(Self {
            stacks: p.max_stacks,
            positions: p.max_positions,
            table: (2 * p.max_stacks).next_power_of_two(),
        })
    }

    fn set_bytes(&self) -> usize {
        pad(self.positions * 4) + pad(self.stacks * 8) + pad(self.table * 8)
    }

    fn bytes(&self) -> usize {
        4 * self.set_bytes() + pad(self.positions * 4) + pad(self.stacks * 8)
    }
}

fn new_set<'a>(rest: &mut &'a mut [u8], lay: &Layout) -> Set<'a> {
    let pool = super::carve(rest, lay.positions);
    let idx = super::carve(rest, lay.stacks);
    let table: &mut [u64] = super::carve(rest, lay.table);
    table.fill(0);
    Set {
        pool,
        used: 0,
        idx,
        n: 0,
        table,
        generation: 1,
    }
}

/// Two distinct sets of the three (`a != b`), the first shared.
fn pair<'s, 'a>(sets: &'s mut [Set<'a>; 3], a: usize, b: usize) -> (&'s Set<'a>, &'s mut Set<'a>) {
    let [s0, s1, s2] = sets;
    match (a, b) {
        (0, 1) => (s0, s1),
        (0, 2) => (s0, s2),
        (1, 0) => (s1, s0),
        (1, 2) => (s1, s2),
        (2, 0) => (s2, s0),
        _ => (s2, s1),
    }
}

impl<'a> Matcher<'a> {
    /// Bytes of memory [`Matcher::init`] needs.
    pub fn size(params: &MatcherParams) -> Result<usize> {
        Ok(Layout::new(params)?.bytes())
    }

    /// A matcher at the start of `g` (its `root`), over `mem` (64-byte
    /// aligned, [`Matcher::size`] bytes).
    pub fn init(g: &Grammar<'a>, params: &MatcherParams, mem: &'a mut [u8]) -> Result<Self> {
        let lay = Layout::new(params)?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < lay.bytes() {
            return Err(Error::BufferTooSmall);
        }
        let mut rest = &mut mem[..lay.bytes()];
        let sets = [
            new_set(&mut rest, &lay),
            new_set(&mut rest, &lay),
            new_set(&mut rest, &lay),
        ];
        let seen = new_set(&mut rest, &lay);
        let work = Work {
            pool: super::carve(&mut rest, lay.positions),
            idx: super::carve(&mut rest, lay.stacks),
        };
        let mut m = Matcher {
            elems: g.elems(),
            starts: g.starts,
            root: g.root(),
            sets,
            cur: 0,
            seen,
            work,
            partial: Partial::default(),
        };
        m.reset()?;
        Ok(m)
    }

    /// Back to the start of the grammar.
    pub fn reset(&mut self) -> Result<()> {
        let g = (self.elems, self.starts);
        let to = (self.cur + 1) % 3;
        let out = &mut self.sets[to];
        out.clear();
        let mut pos = self.starts[self.root as usize] as usize;
        loop {
            let p = [pos as u32];
            let head: &[u32] = if end_of_seq(self.elems[pos]) { &[] } else { &p };
            advance(g, head, &[], out, &mut self.seen, &mut self.work)?;
            while !end_of_seq(self.elems[pos]) {
                pos += 1;
            }
            if self.elems[pos].ty == ty::ALT {
                pos += 1;
            } else {
                break;
            }
        }
        self.cur = to;
        self.partial = Partial::default();
        Ok(())
    }

    /// Stacks in the current set.
    pub fn n_stacks(&self) -> usize {
        self.sets[self.cur].n
    }

    /// Whether the grammar may end here (some stack is empty): where
    /// llama.cpp allows end-of-generation tokens.
    pub fn can_end(&self) -> bool {
        let s = &self.sets[self.cur];
        (0..s.n).any(|i| s.get(i).is_empty())
    }

    /// Runs the bytes of a token's text from the current state into a
    /// working set; returns it (None: no stack survives) and the partial
    /// sequence at the end.
    fn run(&mut self, bytes: &[u8]) -> Result<Option<(usize, Partial)>> {
        let g = (self.elems, self.starts);
        let mut from = self.cur;
        let mut p = self.partial;
        let mut continuing = p.n_remain > 0;
        for &b in bytes {
            match byte(p, b, continuing) {
                Byte::Invalid => return Ok(None),
                Byte::More(q) => p = q,
                Byte::Char(c) => {
                    continuing = false;
                    p = Partial::default();
                    let to = if from == self.cur {
                        (self.cur + 1) % 3
                    } else {
                        3 - self.cur - from
                    };
                    let (src, dst) = pair(&mut self.sets, from, to);
                    step(g, src, c, dst, &mut self.seen, &mut self.work)?;
                    from = to;
                    if self.sets[to].n == 0 {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some((from, p)))
    }

    /// Whether the grammar can take the token `id` whose text is `bytes`
    /// (llama.cpp's `llama_grammar_reject_candidates` for one candidate;
    /// the state is unchanged). The text ends at a NUL byte, as llama.cpp's
    /// decoder reads it; a text that is empty or not UTF-8 as that decoder
    /// reads it is never taken. One deliberate difference: a token element
    /// (`<[id]>`) is matched by the whole token only, never by a token whose
    /// first characters were matched by characters of the grammar
    /// (llama.cpp's candidate check lets such a token through, and its
    /// accept then aborts on it).
    pub fn allows(&mut self, id: u32, bytes: &[u8]) -> Result<bool> {
        let bytes = cut_nul(bytes);
        let Some(chars) = decoded_chars(self.partial, bytes) else {
            return Ok(false);
        };
        if bytes.is_empty() {
            return Ok(false);
        }
        if chars > 0 && self.token_match(id) {
            return Ok(true);
        }
        let Some((set, p)) = self.run(bytes)? else {
            return Ok(false);
        };
        if p.n_remain == 0 {
            return Ok(self.sets[set].n > 0 && chars > 0);
        }
        let s = &self.sets[set];
        Ok((0..s.n).any(|i| {
            s.get(i).last().is_some_and(|&t| {
                is_char(self.elems[t as usize]) && match_partial(self.elems, t as usize, p)
            })
        }))
    }

    fn token_match(&self, id: u32) -> bool {
        let s = &self.sets[self.cur];
        (0..s.n).any(|i| {
            s.get(i).last().is_some_and(|&t| {
                let e = self.elems[t as usize];
                (e.ty == ty::TOKEN && e.value == id) || (e.ty == ty::TOKEN_NOT && e.value != id)
            })
        })
    }

    /// Advances over the token `id` with text `bytes` (llama.cpp's
    /// `llama_grammar_accept_token`). Refused with
    /// [`Error::InvalidArgument`] if no stack survives it, and with
    /// [`Error::GrammarLimit`] past the bounds; either way the state stays.
    pub fn accept(&mut self, id: u32, bytes: &[u8]) -> Result<()> {
        if !self.allows(id, bytes)? {
            return Err(Error::InvalidArgument);
        }
        let bytes = cut_nul(bytes);
        let whole = decoded_chars(self.partial, bytes).is_some_and(|n| n > 0);
        let g = (self.elems, self.starts);
        let run = self.run(bytes)?;
        let (set, p) = match run {
            Some((set, p)) if set != self.cur => (set, p),
            // No code point completed: the same stacks, a longer partial.
            Some((_, p)) => {
                let to = (self.cur + 1) % 3;
                let (src, dst) = pair(&mut self.sets, self.cur, to);
                dst.clear();
                for i in 0..src.n {
                    let s = src.get(i);
                    if s.last().is_some_and(|&t| is_char(g.0[t as usize])) {
                        dst.insert(s, &[])?;
                    }
                }
                (to, p)
            }
            None => {
                let to = (self.cur + 1) % 3;
                self.sets[to].clear();
                (to, Partial::default())
            }
        };
        // Stacks expecting this very token.
        let (src, dst) = pair(&mut self.sets, self.cur, set);
        for i in 0..src.n {
            let s = src.get(i);
            let Some(&t) = s.last() else { continue };
            let e = g.0[t as usize];
            let hit =
                (e.ty == ty::TOKEN && e.value == id) || (e.ty == ty::TOKEN_NOT && e.value != id);
            if hit && whole {
                let t1 = [t + 1];
                let tail: &[u32] = if end_of_seq(g.0[t as usize + 1]) {
                    &[]
                } else {
                    &t1
                };
                advance(
                    g,
                    &s[..s.len() - 1],
                    tail,
                    dst,
                    &mut self.seen,
                    &mut self.work,
                )?;
            }
        }
        if self.sets[set].n == 0 {
            return Err(Error::InvalidArgument);
        }
        self.cur = set;
        self.partial = p;
        Ok(())
    }
}

/// One step of a walk over the trie: the children `cursor..end` still to
/// visit, the set of stacks they are matched against (`lists[set..set +
/// n_set]`, each an (offset, length) of a stack in the pool), the partial
/// sequence, and the sets the children continue with, remembered by which
/// of the stacks matched (`memo`: the mask's halves, the set; they do not
/// depend on which character matched, and a set that continues into
/// itself, as a string's characters do, passes its memory on).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(super) struct Frame {
    cursor: u32,
    end: u32,
    set: u32,
    n_set: u32,
    value: u32,
    n_remain: i32,
    continuing: u32,
    pool_mark: u32,
    lists_mark: u32,
    n_memo: u32,
    memo: [[u32; 4]; MEMO],
}

/// What a walk reads of its frame at every node.
struct FrameHead {
    set: u32,
    n_set: u32,
    value: u32,
    n_remain: i32,
    continuing: u32,
}

/// Transitions a frame remembers.
const MEMO: usize = 2;

// SAFETY: 4-byte fields and arrays of them under repr(C): no padding,
// every bit pattern is a value.
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Frame {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Frame {}

/// The working memory of a walk: frames, and stacks in a LIFO pool.
pub(super) struct WalkMem<'m> {
    pub(super) frames: &'m mut [Frame],
    pub(super) pool: &'m mut [u32],
    pub(super) lists: &'m mut [[u32; 2]],
}

/// Most stacks in one set of a walk (a match is a 64-bit mask).
const WALK_SET: usize = 64;

#[inline]
fn set_bits(mask: &mut [u64], ids: &[u32]) {
    for &id in ids {
        mask[id as usize >> 6] |= 1u64 << (id & 63);
    }
}

impl Matcher<'_> {
    /// The partial UTF-8 sequence at the end of the text so far.
    pub(super) fn partial(&self) -> Partial {
        self.partial
    }

    /// Stack `i` of the current set, bottom first.
    pub(super) fn stack(&self, i: usize) -> &[u32] {
        self.sets[self.cur].get(i)
    }

    /// Sets in `mask` the bit of every token of `trie` that stack `i` of
    /// the current set takes ([`Matcher::allows`] for each token, as one
    /// walk over the trie: a prefix shared by many tokens is matched once,
    /// against the set of stacks it leads to, so an ambiguous grammar costs
    /// no more than its sets). [`Error::GrammarLimit`] when the walk needs
    /// more than `w` (or a set of more than 64 stacks).
    pub(super) fn walk(
        &mut self,
        i: usize,
        trie: &super::TokenTrie<'_>,
        mask: &mut [u64],
        w: &mut WalkMem<'_>,
    ) -> Result<()> {
        let elems = self.elems;
        let g = (self.elems, self.starts);
        let p0 = self.partial;
        let to = (self.cur + 1) % 3;
        let (cur, tmp) = pair(&mut self.sets, self.cur, to);
        let s = cur.get(i);
        let Some(&top) = s.last() else {
            return Ok(());
        };
        let e = elems[top as usize];
        if e.ty == ty::TOKEN || e.ty == ty::TOKEN_NOT {
            // By id, for tokens whose text completes a character.
            let whole = |id: u32| decoded_chars(p0, trie.piece(id)).is_some_and(|n| n > 0);
            if e.ty == ty::TOKEN {
                if whole(e.value) {
                    set_bits(mask, &[e.value]);
                }
            } else {
                for &id in trie.ids() {
                    if id != e.value && whole(id) {
                        set_bits(mask, &[id]);
                    }
                }
            }
            return Ok(());
        }
        if !is_char(e) {
            return Ok(());
        }
        let (frames, pool, lists) = (&mut *w.frames, &mut *w.pool, &mut *w.lists);
        if s.len() > pool.len() || frames.is_empty() || lists.is_empty() {
            return Err(Error::GrammarLimit);
        }
        pool[..s.len()].copy_from_slice(s);
        lists[0] = [0, s.len() as u32];
        let (mut used, mut nl) = (s.len(), 1usize);
        frames[0] = Frame {
            cursor: 0,
            end: trie.n_nodes() as u32,
            set: 0,
            n_set: 1,
            value: p0.value,
            n_remain: p0.n_remain,
            continuing: u32::from(p0.n_remain > 0),
            pool_mark: used as u32,
            lists_mark: nl as u32,
            ..Frame::default()
        };
        let mut nf = 1usize;
        while nf > 0 {
            let fr = &mut frames[nf - 1];
            if fr.cursor >= fr.end {
                used = fr.pool_mark as usize;
                nl = fr.lists_mark as usize;
                nf -= 1;
                continue;
            }
            let n = fr.cursor as usize;
            let (b, end, toks) = trie.node(n);
            fr.cursor = end as u32;
            // The fields read on every node (the whole frame is copied only
            // where a child is made from it).
            let f = FrameHead {
                set: fr.set,
                n_set: fr.n_set,
                value: fr.value,
                n_remain: fr.n_remain,
                continuing: fr.continuing,
            };
            let has_children = n + 1 < end;
            let set = f.set as usize..(f.set + f.n_set) as usize;
            let top_of = |pool: &[u32], [o, l]: [u32; 2]| pool[(o + l - 1) as usize] as usize;
            match byte(
                Partial {
                    value: f.value,
                    n_remain: f.n_remain,
                },
                b,
                f.continuing != 0,
            ) {
                Byte::Invalid => {}
                Byte::More(q) => {
                    let mut ok = false;
                    let mut open = q.value < 2;
                    for &st in &lists[set] {
                        let t = top_of(pool, st);
                        let m = match_partial(elems, t, q);
                        ok |= m;
                        // A refused partial under a positive class: no
                        // completion is in it (unless overlong, which the
                        // test refuses and the decoder takes). A negated
                        // class is refused when any excluded code point
                        // could follow, while others still match.
                        open |= m || elems[t].ty != ty::CHAR;
                    }
                    if ok {
                        set_bits(mask, toks);
                    }
                    if has_children && open {
                        if nf == frames.len() {
                            return Err(Error::GrammarLimit);
                        }
                        frames[nf] = Frame {
                            cursor: n as u32 + 1,
                            end: end as u32,
                            value: q.value,
                            n_remain: q.n_remain,
                            pool_mark: used as u32,
                            lists_mark: nl as u32,
                            ..frames[nf - 1]
                        };
                        nf += 1;
                    }
                }
                Byte::Char(c) => {
                    let mut hit = 0u64;
                    for (k, &st) in lists[set.clone()].iter().enumerate() {
                        if match_char(elems, top_of(pool, st), c).0 {
                            hit |= 1 << k;
                        }
                    }
                    if hit == 0 {
                        continue;
                    }
                    set_bits(mask, toks);
                    if !has_children {
                        continue;
                    }
                    let (lo, hi) = (hit as u32, (hit >> 32) as u32);
                    let fr = &frames[nf - 1];
                    let known = fr.memo[..fr.n_memo as usize]
                        .iter()
                        .find(|m| m[0] == lo && m[1] == hi)
                        .copied();
                    let (cset, cn, inherit) = if let Some(m) = known {
                        (m[2], m[3], m[2] == f.set && m[3] == f.n_set)
                    } else {
                        // The stacks the matched ones continue to, without
                        // duplicates.
                        tmp.clear();
                        for (k, &[o, l]) in lists[set.clone()].iter().enumerate() {
                            if hit >> k & 1 == 0 {
                                continue;
                            }
                            let st = &pool[o as usize..(o + l) as usize];
                            let after = match_char(elems, st[st.len() - 1] as usize, c).1;
                            let t = [after as u32];
                            let tail: &[u32] = if end_of_seq(elems[after]) { &[] } else { &t };
                            let base = &st[..st.len() - 1];
                            if is_char(elems[after]) {
                                tmp.insert(base, tail)?;
                            } else {
                                advance(g, base, tail, tmp, &mut self.seen, &mut self.work)?;
                            }
                        }
                        let chars = (0..tmp.n)
                            .filter(|&j| {
                                tmp.get(j)
                                    .last()
                                    .is_some_and(|&t| is_char(elems[t as usize]))
                            })
                            .count();
                        let same = chars == f.n_set as usize
                            && lists[set.clone()]
                                .iter()
                                .all(|&[o, l]| tmp.contains(&pool[o as usize..(o + l) as usize]));
                        let (cset, cn) = if same {
                            (f.set, f.n_set)
                        } else {
                            if chars > WALK_SET || nl + chars > lists.len() {
                                return Err(Error::GrammarLimit);
                            }
                            let start = nl;
                            for j in 0..tmp.n {
                                let st = tmp.get(j);
                                if !st.last().is_some_and(|&t| is_char(elems[t as usize])) {
                                    continue;
                                }
                                if used + st.len() > pool.len() {
                                    return Err(Error::GrammarLimit);
                                }
                                pool[used..used + st.len()].copy_from_slice(st);
                                lists[nl] = [used as u32, st.len() as u32];
                                used += st.len();
                                nl += 1;
                            }
                            (start as u32, chars as u32)
                        };
                        let fr = &mut frames[nf - 1];
                        let slot = if (fr.n_memo as usize) < MEMO {
                            fr.n_memo += 1;
                            fr.n_memo as usize - 1
                        } else {
                            // Keep the first (the common case comes first).
                            MEMO - 1
                        };
                        fr.memo[slot] = [lo, hi, cset, cn];
                        (cset, cn, same)
                    };
                    if cn == 0 {
                        continue;
                    }
                    if nf == frames.len() {
                        return Err(Error::GrammarLimit);
                    }
                    let parent = frames[nf - 1];
                    frames[nf] = Frame {
                        cursor: n as u32 + 1,
                        end: end as u32,
                        set: cset,
                        n_set: cn,
                        value: 0,
                        n_remain: 0,
                        continuing: 0,
                        pool_mark: used as u32,
                        lists_mark: nl as u32,
                        // The same set moves the same way: its memory too.
                        n_memo: if inherit { parent.n_memo } else { 0 },
                        memo: if inherit { parent.memo } else { [[0; 4]; MEMO] },
                    };
                    nf += 1;
                }
            }
        }
        Ok(())
    }
}

impl Matcher<'_> {
    /// Bytes [`Matcher::save`] writes now.
    pub(super) fn state_size(&self) -> usize {
        let s = &self.sets[self.cur];
        12 + (0..s.n).map(|i| 4 + 4 * s.get(i).len()).sum::<usize>()
    }

    /// Writes the partial sequence and the stacks.
    pub(super) fn save(&self, w: &mut crate::state::Writer<'_>) {
        let s = &self.sets[self.cur];
        w.u32(self.partial.value);
        w.u32(self.partial.n_remain as u32);
        w.u32(s.n as u32);
        for i in 0..s.n {
            let st = s.get(i);
            w.u32(st.len() as u32);
            for &v in st {
                w.u32(v);
            }
        }
    }

    /// Reads what [`Matcher::save`] wrote (for this grammar): every
    /// position must be the start of an element inside a rule, every top a
    /// terminal. [`Error::StateCorrupt`] otherwise, [`Error::StateMismatch`]
    /// past this matcher's bounds; on error the state is unchanged. The
    /// state must end after it.
    pub(super) fn load(&mut self, r: &mut crate::state::Reader<'_>) -> Result<()> {
        let value = r.u32()?;
        let n_remain = r.u32()? as i32;
        if !(0..=3).contains(&n_remain) || value >= 1 << 21 {
            return Err(Error::StateCorrupt);
        }
        let n = r.u32()? as usize;
        let to = (self.cur + 1) % 3;
        let elems = self.elems;
        let out = &mut self.sets[to];
        out.clear();
        for _ in 0..n {
            let len = r.u32()? as usize;
            if len > r.remaining() / 4 {
                return Err(Error::StateCorrupt);
            }
            let b = r.bytes(4 * len)?;
            let at =
                |k: usize| u32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]]);
            for k in 0..len {
                let ok = elems.get(at(k) as usize).is_some_and(|e| {
                    !matches!(e.ty, ty::END | ty::ALT | ty::CHAR_RNG_UPPER | ty::CHAR_ALT)
                        && (k + 1 < len || is_char(*e) || matches!(e.ty, ty::TOKEN | ty::TOKEN_NOT))
                });
                if !ok {
                    return Err(Error::StateCorrupt);
                }
            }
            // Through the work pool: a stack is added whole or not at all.
            if len > self.work.pool.len() {
                return Err(Error::StateMismatch);
            }
            for k in 0..len {
                self.work.pool[k] = at(k);
            }
            let added = out.insert(&self.work.pool[..len], &[]);
            match added {
                Ok(true) => {}
                Ok(false) => return Err(Error::StateCorrupt),
                Err(_) => return Err(Error::StateMismatch),
            }
        }
        if n == 0 || r.remaining() != 0 {
            return Err(Error::StateCorrupt);
        }
        self.cur = to;
        self.partial = Partial { value, n_remain };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// A buffer with a 64-byte aligned window of `n` bytes.
    struct Buf(Vec<u64>, usize);
    impl Buf {
        fn new(n: usize) -> Self {
            Buf(std::vec![0u64; n.div_ceil(8) + 8], n)
        }
        fn bytes(&mut self) -> &mut [u8] {
            let n = self.1;
            let b: &mut [u8] = bytemuck::cast_slice_mut(&mut self.0);
            let off = b.as_ptr().align_offset(ALIGN);
            &mut b[off..off + n]
        }
    }

    fn with<R>(text: &str, p: MatcherParams, f: impl FnOnce(&mut Matcher<'_>) -> R) -> R {
        let mut gb = Buf::new(Grammar::size(text.as_bytes()).unwrap());
        let g = Grammar::init(text.as_bytes(), gb.bytes()).unwrap();
        let mut mb = Buf::new(Matcher::size(&p).unwrap());
        let mut m = Matcher::init(&g, &p, mb.bytes()).unwrap();
        f(&mut m)
    }

    /// Bounds for the tests: the defaults, and smaller under Miri (which
    /// interprets every byte of the sets it clears).
    fn small() -> MatcherParams {
        if cfg!(miri) {
            MatcherParams {
                max_stacks: 64,
                max_positions: 4096,
            }
        } else {
            MatcherParams::default()
        }
    }

    const JSON: &str = include_str!("../../tests/data/grammars/json.gbnf");

    /// Feeds `text` in pieces of `k` bytes; Ok if every piece is allowed
    /// and accepted.
    fn feed(m: &mut Matcher<'_>, text: &[u8], k: usize) -> Result<()> {
        for piece in text.chunks(k) {
            if !m.allows(0, piece)? {
                return Err(Error::InvalidArgument);
            }
            m.accept(0, piece)?;
        }
        Ok(())
    }

    #[test]
    fn json_accepts_json_and_refuses_the_rest() {
        let good: &[&str] = &[
            "{}",
            "{\"a\": [1, 2.5e3, -0.5, \"x\\u00e9\\n\"], \"b\": null, \"c\": {\"d\": true}}",
            "{\"caf\u{e9}\": \"\u{1F600}\"}",
        ];
        // Byte by byte (UTF-8 split across tokens) is the case Miri runs.
        let ks: &[usize] = if cfg!(miri) { &[1] } else { &[1, 2, 3, 7, 64] };
        for text in good {
            for &k in ks {
                with(JSON, small(), |m| {
                    feed(m, text.as_bytes(), k).unwrap_or_else(|e| panic!("{text:?} k={k}: {e:?}"));
                    assert!(m.can_end(), "{text:?}");
                });
            }
        }
        let bad: &[&str] = &[
            "[1]",
            "{\"a\" 1}",
            "{\"a\": 01}",
            "{\"a\": tru}x",
            "{\"a\": \"\x01\"}",
        ];
        for text in bad {
            with(JSON, small(), |m| {
                assert!(feed(m, text.as_bytes(), 1).is_err(), "{text:?}");
            });
        }
        // Not finished: no end yet.
        with(JSON, small(), |m| {
            feed(m, b"{\"a\": 1", 1).unwrap();
            assert!(!m.can_end());
            feed(m, b"}", 1).unwrap();
            assert!(m.can_end());
        });
    }

    #[test]
    fn a_refused_token_leaves_the_state() {
        with(JSON, small(), |m| {
            feed(m, b"{\"k\": ", 3).unwrap();
            let before = m.n_stacks();
            assert!(!m.allows(0, b"}x").unwrap());
            assert_eq!(m.accept(0, b"}x"), Err(Error::InvalidArgument));
            assert_eq!(m.n_stacks(), before);
            feed(m, b"[]}", 1).unwrap();
            assert!(m.can_end());
        });
    }

    #[test]
    fn utf8_split_across_tokens() {
        let e = "\u{e9}".as_bytes(); // C3 A9
        with("root ::= \"\u{e9}\" \"x\"", small(), |m| {
            assert!(m.allows(0, &e[..1]).unwrap());
            // A lead byte of another range cannot become an é.
            assert!(!m.allows(0, &[0xe2]).unwrap());
            // A continuation byte alone is invalid.
            assert!(!m.allows(0, &[0xa9]).unwrap());
            m.accept(0, &e[..1]).unwrap();
            assert!(!m.allows(0, b"x").unwrap());
            assert!(m.allows(0, &[0xa9, b'x']).unwrap());
            m.accept(0, &[0xa9]).unwrap();
            assert!(!m.can_end());
            m.accept(0, b"x").unwrap();
            assert!(m.can_end());
        });
    }

    #[test]
    fn token_elements_match_by_id() {
        with("root ::= <[7]> \"a\" !<[7]>", small(), |m| {
            assert!(m.allows(7, b"zz").unwrap());
            assert!(!m.allows(8, b"zz").unwrap());
            m.accept(7, b"zz").unwrap();
            m.accept(1, b"a").unwrap();
            assert!(!m.allows(7, b"q").unwrap());
            assert!(m.allows(9, b"q").unwrap());
            m.accept(9, b"q").unwrap();
            assert!(m.can_end());
        });
    }

    #[test]
    fn past_the_bounds_is_a_status() {
        // Nesting grows the stacks: a bound on positions is met mid-run,
        // refused, and the state stays usable.
        let g = "root ::= \"(\" root \")\" | \"x\"";
        let p = MatcherParams {
            max_stacks: 16,
            max_positions: 64,
        };
        with(g, p, |m| {
            let mut depth = 0;
            loop {
                let before = m.n_stacks();
                match m.accept(0, b"(") {
                    Ok(()) => depth += 1,
                    Err(e) => {
                        assert_eq!(e, Error::GrammarLimit);
                        assert_eq!(m.n_stacks(), before);
                        break;
                    }
                }
                assert!(depth < 1000);
            }
            assert!(depth > 4, "{depth}");
            m.accept(0, b"x").unwrap();
            for _ in 0..depth {
                assert!(!m.can_end());
                m.accept(0, b")").unwrap();
            }
            assert!(m.can_end());
        });
        // Too small for the start itself: a status from init.
        let text = b"root ::= x*\nx ::= \"a\" | \"a\" \"a\" | \"a\" \"a\" \"a\"";
        let mut gb = Buf::new(Grammar::size(text).unwrap());
        let g = Grammar::init(text, gb.bytes()).unwrap();
        let p = MatcherParams {
            max_stacks: 1,
            max_positions: 64,
        };
        let mut mb = Buf::new(Matcher::size(&p).unwrap());
        assert_eq!(
            Matcher::init(&g, &p, mb.bytes()).err(),
            Some(Error::GrammarLimit)
        );
        // Ambiguity does not grow the set: duplicates merge.
        let p = small();
        let mut mb = Buf::new(Matcher::size(&p).unwrap());
        let mut m = Matcher::init(&g, &p, mb.bytes()).unwrap();
        for _ in 0..if cfg!(miri) { 50 } else { 1000 } {
            m.accept(0, b"a").unwrap();
        }
        assert!(m.n_stacks() <= 8, "{}", m.n_stacks());
        assert!(m.can_end());
    }
}
