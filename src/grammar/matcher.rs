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

    /// Adds the stack `head ++ tail` unless it is there; true if added.
    fn insert(&mut self, head: &[u32], tail: &[u32]) -> Result<bool> {
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
                break;
            }
            let s = self.get((e as u32 - 1) as usize);
            if s.len() == len && s[..head.len()] == *head && s[head.len()..] == *tail {
                return Ok(false);
            }
            slot = (slot + 1) & mask;
        }
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

fn end_of_seq(e: Elem) -> bool {
    e.ty == ty::END || e.ty == ty::ALT
}

fn is_char(e: Elem) -> bool {
    matches!(e.ty, ty::CHAR | ty::CHAR_NOT | ty::CHAR_ANY)
}

/// Walks the class at `pos` (its chars, ranges, or `.` as the range of
/// every code point): whether `hit` holds for one of its ranges, whether
/// the class is positive, and the position after it.
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
    /// the state is unchanged).
    pub fn allows(&mut self, id: u32, bytes: &[u8]) -> Result<bool> {
        if bytes.first().is_none_or(|&b| b == 0) {
            return Ok(false);
        }
        if self.token_match(id) {
            return Ok(true);
        }
        let Some((set, p)) = self.run(bytes)? else {
            return Ok(false);
        };
        if p.n_remain == 0 {
            return Ok(self.sets[set].n > 0 || set == self.cur);
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
            if hit {
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
