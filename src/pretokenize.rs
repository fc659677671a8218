//! Byte-level BPE pre-tokenizers, splitting text exactly as llama.cpp's
//! `unicode_regex_split` does.
//!
//! A family (the `tokenizer.ggml.pre` of a file) is a list of steps applied
//! in sequence, each refining the pre-tokens of the previous one (llama.cpp
//! keeps the text between two matches of an expression as a pre-token too).
//! A step is one of the three expressions llama.cpp splits with hand-written
//! code (GPT-2's, LLaMA 3's and Qwen2's, here [`gpt2_next`] and
//! [`llama3_next`]), or an expression that llama.cpp hands to `std::regex`:
//! those are compiled at build time by a small pattern engine ([`Regex`])
//! that has the subset they use (alternation, groups, classes with ranges and
//! negation, `\s` `\S` `\p{..}`, `? * + {m,n}`, `$`, one-symbol lookaheads)
//! with `std::regex`'s ECMAScript semantics (leftmost, first alternative
//! that matches, greedy).
//!
//! llama.cpp runs an expression that names a Unicode category over a
//! "collapsed" text, every code point above U+007F replaced by one byte per
//! category (letters 0xD2, numbers 0xD1, ...; white space 0x0B), and the
//! category itself by that byte plus its ASCII members; it runs the other
//! expressions over the code points, white space above U+007F replaced by
//! 0x0B. `\s` is ASCII white space in both. [`symbol`] gives those symbols,
//! so `[^a-z]` matches every non-ASCII letter and `\p{Lu}` is any letter, as
//! in llama.cpp.
//!
//! Cost: the matcher is a backtracking one that remembers which (instruction,
//! position) pairs failed, for the whole pre-token, so that each is tried
//! once: linear in the text, whatever it holds.

use crate::unicode_tables::{LETTER, MARK, NUMBER, PUNCT, RUNS, SPACE, SYMBOL};

/// Class bits of a code point (0 for separators, controls, unassigned code
/// points and anything past U+10FFFF), from llama.cpp's Unicode data.
pub fn flags(cp: u32) -> u8 {
    let i = RUNS.partition_point(|&r| r >> 8 <= cp);
    match i {
        0 => 0,
        _ => (RUNS[i - 1] & 0xFF) as u8,
    }
}

fn is(f: u8, m: u8) -> bool {
    f & m != 0
}

fn lower_ascii(c: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&c) {
        c + 32
    } else {
        c
    }
}

const CR: u32 = '\r' as u32;
const LF: u32 = '\n' as u32;
const SP: u32 = ' ' as u32;

/// End (exclusive) of the pre-token that starts at `pos` (`pos < cps.len()`)
/// for LLaMA 3's expression (`digits` 3) or Qwen2's (`digits` 1), as
/// llama.cpp's hand-written splitters find it:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
/// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, `cps` being the
/// pre-token of the previous step (nothing is seen past its end).
pub fn llama3_next(cps: &[u32], pos: usize, digits: usize) -> usize {
    let n = cps.len();
    let get = |i: usize| if i < n { cps[i] } else { u32::MAX };
    let fl = |i: usize| if i < n { flags(cps[i]) } else { 0 };
    let cpt = cps[pos];
    let f = fl(pos);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if cpt == '\'' as u32 && pos + 1 < n {
        let c1 = lower_ascii(get(pos + 1));
        if [b's', b't', b'm', b'd'].iter().any(|&c| c as u32 == c1) {
            return pos + 2;
        }
        if pos + 2 < n {
            let c2 = lower_ascii(get(pos + 2));
            let pair = |a: u8, b: u8| c1 == a as u32 && c2 == b as u32;
            if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                return pos + 3;
            }
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if !(cpt == CR || cpt == LF || is(f, NUMBER)) && (is(f, LETTER) || is(fl(pos + 1), LETTER)) {
        let mut p = pos + 1;
        while is(fl(p), LETTER) {
            p += 1;
        }
        return p;
    }
    // \p{N}{1,3}
    if is(f, NUMBER) {
        let mut p = pos;
        while is(fl(p), NUMBER) && p - pos < digits {
            p += 1;
        }
        return p;
    }
    // <space>?[^\s\p{L}\p{N}]+[\r\n]*: llama.cpp enters this branch also for
    // a space at the very end (its flags past the end are all clear).
    let f2 = if cpt == SP { fl(pos + 1) } else { f };
    if !is(f2, SPACE | LETTER | NUMBER) {
        let mut p = pos + usize::from(cpt == SP);
        while p < n && !is(fl(p), SPACE | LETTER | NUMBER) {
            p += 1;
        }
        while get(p) == CR || get(p) == LF {
            p += 1;
        }
        return p;
    }
    let mut ws = 0;
    let mut last_rn = 0;
    while is(fl(pos + ws), SPACE) {
        let c = get(pos + ws);
        if c == CR || c == LF {
            last_rn = pos + ws + 1;
        }
        ws += 1;
    }
    // \s*[\r\n]+
    if last_rn > 0 {
        return last_rn;
    }
    // \s+(?!\S)
    if ws > 1 && pos + ws < n {
        return pos + ws - 1;
    }
    // \s+
    if ws > 0 {
        return pos + ws;
    }
    pos + 1
}

/// End (exclusive) of the pre-token that starts at `pos` for GPT-2's
/// expression `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
/// \s+(?!\S)`, as llama.cpp's hand-written splitter finds it (a lone white
/// space and anything else unmatched is a pre-token of one code point).
pub fn gpt2_next(cps: &[u32], pos: usize) -> usize {
    let n = cps.len();
    let get = |i: usize| if i < n { cps[i] } else { u32::MAX };
    let fl = |i: usize| if i < n { flags(cps[i]) } else { 0 };
    let cpt = cps[pos];
    if cpt == '\'' as u32 && pos + 1 < n {
        let c1 = get(pos + 1);
        if [b's', b't', b'm', b'd'].iter().any(|&c| c as u32 == c1) {
            return pos + 2;
        }
        if pos + 2 < n {
            let c2 = get(pos + 2);
            let pair = |a: u8, b: u8| c1 == a as u32 && c2 == b as u32;
            if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                return pos + 3;
            }
        }
    }
    let start = pos + usize::from(cpt == SP);
    let f2 = fl(start);
    for class in [LETTER, NUMBER] {
        if is(f2, class) {
            let mut p = start;
            while is(fl(p), class) {
                p += 1;
            }
            return p;
        }
    }
    // <space>?[^\s\p{L}\p{N}]+ (nothing past the end)
    if start < n && !is(f2, SPACE | LETTER | NUMBER) {
        let mut p = start;
        while p < n && !is(fl(p), SPACE | LETTER | NUMBER) {
            p += 1;
        }
        return p;
    }
    let mut ws = 0;
    while is(fl(pos + ws), SPACE) {
        ws += 1;
    }
    if ws > 1 && pos + ws < n {
        return pos + ws - 1;
    }
    if ws > 0 {
        return pos + ws;
    }
    pos + 1
}

/// The symbol llama.cpp's `std::regex` sees for `cp`: ASCII as it is, white
/// space above U+007F as 0x0B, and in a collapsed text every other code point
/// above U+007F as the byte of its category (0xD0 for none).
pub fn symbol(cp: u32, collapsed: bool) -> u32 {
    if cp < 0x80 {
        return cp;
    }
    let f = flags(cp);
    if is(f, SPACE) {
        return 0x0B;
    }
    if !collapsed {
        return cp;
    }
    match f & (LETTER | NUMBER | PUNCT | MARK | SYMBOL) {
        LETTER => 0xD2,
        NUMBER => 0xD1,
        PUNCT => 0xD3,
        MARK => 0xD4,
        SYMBOL => 0xD5,
        _ => 0xD0,
    }
}

/// One instruction of a compiled expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inst {
    /// One symbol of the class.
    Class(u8),
    /// Go on at the first target; on failure, at the second.
    Split(u8, u8),
    Jmp(u8),
    /// Zero-width: the next symbol is in the class (`false`) or is not or
    /// there is none (`true`): `(?=[..])`, `(?!..)`.
    Look(u8, bool),
    /// Zero-width: the end of the pre-token (`$`).
    End,
    Match,
}

/// A set of symbols: a bitmap below 256, sorted disjoint ranges above.
#[derive(Clone, Copy, Debug)]
pub struct Class {
    low: [u64; 4],
    /// `ranges[first..first + len]` of the expression.
    first: u16,
    len: u16,
    /// The ranges say what is not in the class.
    negate: bool,
}

/// A compiled expression over the symbols of one mode.
#[derive(Debug)]
pub struct Regex {
    pub insts: &'static [Inst],
    pub classes: &'static [Class],
    pub ranges: &'static [[u32; 2]],
    /// Over the collapsed text (the expression names a Unicode category).
    pub collapsed: bool,
    /// Number of `Split` instructions (bounds the backtracking stack).
    pub n_split: usize,
}

impl Regex {
    fn contains(&self, c: u8, s: u32) -> bool {
        let c = &self.classes[c as usize];
        if s < 256 {
            return c.low[(s >> 6) as usize] >> (s & 63) & 1 != 0;
        }
        let r = &self.ranges[c.first as usize..(c.first + c.len) as usize];
        let i = r.partition_point(|x| x[1] < s);
        (i < r.len() && r[i][0] <= s) != c.negate
    }

    /// Words of scratch [`Regex::split`] needs for a pre-token of `len`
    /// code points: the failure bitmap, then the stack (two words a frame).
    pub fn work_words(&self, len: usize) -> Option<usize> {
        let bits = self.insts.len().checked_mul(len.checked_add(1)?)?;
        let stack = self.n_split.checked_mul(len + 1)?.checked_mul(2)?;
        bits.div_ceil(64).checked_mul(2)?.checked_add(stack)
    }

    /// Splits the pre-token `cps` as `std::regex_iterator` walks it, calling
    /// `cut(i)` at the start and end of each match (the text between two
    /// matches stays a pre-token). `work`: [`Regex::work_words`] words.
    pub fn split(&self, cps: &[u32], work: &mut [u32], mut cut: impl FnMut(usize)) {
        let len = cps.len();
        let m = self.insts.len();
        let Some(need) = self.work_words(len) else {
            return;
        };
        let Some(work) = work.get_mut(..need) else {
            return;
        };
        let bit_words = (m * (len + 1)).div_ceil(64) * 2;
        let (bits, stack) = work.split_at_mut(bit_words);
        bits.fill(0);
        let mut s = 0;
        while s < len {
            let Some((a, b)) = self.search(cps, s, bits, stack) else {
                break;
            };
            cut(a);
            cut(b);
            // States at b lay on the match's own path: not failures.
            for pc in 0..m {
                let k = b * m + pc;
                bits[k / 32] &= !(1 << (k % 32));
            }
            s = b;
        }
    }

    /// The first match at or after `from`, as `std::regex_search` finds it.
    fn search(
        &self,
        cps: &[u32],
        from: usize,
        seen: &mut [u32],
        stack: &mut [u32],
    ) -> Option<(usize, usize)> {
        let len = cps.len();
        let m = self.insts.len();
        let sym = |i: usize| symbol(cps[i], self.collapsed);
        for start in from..len {
            let mut sp = 0;
            let mut frame = Some((0usize, start));
            loop {
                let (mut pc, mut pos) = match frame.take() {
                    Some(f) => f,
                    None if sp > 0 => {
                        sp -= 2;
                        (stack[sp] as usize, stack[sp + 1] as usize)
                    }
                    None => break,
                };
                loop {
                    let k = pos * m + pc;
                    if seen[k / 32] >> (k % 32) & 1 != 0 {
                        break;
                    }
                    seen[k / 32] |= 1 << (k % 32);
                    match self.insts[pc] {
                        Inst::Class(c) => {
                            if pos < len && self.contains(c, sym(pos)) {
                                pc += 1;
                                pos += 1;
                            } else {
                                break;
                            }
                        }
                        Inst::Split(x, y) => {
                            // At most one frame per (split, position): the
                            // stack has room for all of them.
                            if let Some(f) = stack.get_mut(sp..sp + 2) {
                                f[0] = y as u32;
                                f[1] = pos as u32;
                                sp += 2;
                            }
                            pc = x as usize;
                        }
                        Inst::Jmp(x) => pc = x as usize,
                        Inst::Look(c, neg) => {
                            if (pos < len && self.contains(c, sym(pos))) != neg {
                                pc += 1;
                            } else {
                                break;
                            }
                        }
                        Inst::End => {
                            if pos == len {
                                pc += 1;
                            } else {
                                break;
                            }
                        }
                        Inst::Match => {
                            if pos > start {
                                return Some((start, pos));
                            }
                            break;
                        }
                    }
                }
            }
        }
        None
    }
}

// ---- The compiler: a `const fn` from the expression text to a program. ----

const MAX_INSTS: usize = 160;
const MAX_CLASSES: usize = 64;
const MAX_RANGES: usize = 200;
const INF: usize = usize::MAX;

/// A program before trimming to its size (compile-time only).
pub struct Compiled {
    pub insts: [Inst; MAX_INSTS],
    pub n_insts: usize,
    pub classes: [Class; MAX_CLASSES],
    pub n_classes: usize,
    pub ranges: [[u32; 2]; MAX_RANGES],
    pub n_ranges: usize,
    pub collapsed: bool,
    pub n_split: usize,
}

const EMPTY_CLASS: Class = Class {
    low: [0; 4],
    first: 0,
    len: 0,
    negate: false,
};

struct Compiler<'a> {
    s: &'a [u8],
    i: usize,
    out: Compiled,
}

/// A set being built: inclusive ranges, unsorted.
struct Set {
    r: [[u32; 2]; MAX_RANGES],
    n: usize,
}

const fn contains_at(s: &[u8], i: usize, pat: &[u8]) -> bool {
    if i + pat.len() > s.len() {
        return false;
    }
    let mut k = 0;
    while k < pat.len() {
        if s[i + k] != pat[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// The categories llama.cpp collapses, with the symbols that stand for them
/// in a collapsed text (its byte for code points above U+007F, then the
/// ASCII members).
const CATEGORIES: [(&[u8], &[[u32; 2]]); 10] = {
    const N: &[[u32; 2]] = &[[0xD1, 0xD1], [0x30, 0x39]];
    const L: &[[u32; 2]] = &[[0xD2, 0xD2], [0x41, 0x5A], [0x61, 0x7A]];
    const P: &[[u32; 2]] = &[
        [0xD3, 0xD3],
        [0x21, 0x23],
        [0x25, 0x2A],
        [0x2C, 0x2F],
        [0x3A, 0x3B],
        [0x3F, 0x40],
        [0x5B, 0x5D],
        [0x5F, 0x5F],
        [0x7B, 0x7B],
        [0x7D, 0x7D],
    ];
    const M: &[[u32; 2]] = &[[0xD4, 0xD4]];
    const S: &[[u32; 2]] = &[
        [0xD5, 0xD5],
        [0x24, 0x24],
        [0x2B, 0x2B],
        [0x3C, 0x3E],
        [0x5E, 0x5E],
        [0x60, 0x60],
        [0x7C, 0x7C],
        [0x7E, 0x7E],
    ];
    [
        (b"\\p{N}", N),
        (b"\\p{L}", L),
        (b"\\p{P}", P),
        (b"\\p{M}", M),
        (b"\\p{S}", S),
        (b"\\p{Lu}", L),
        (b"\\p{Ll}", L),
        (b"\\p{Lt}", L),
        (b"\\p{Lm}", L),
        (b"\\p{Lo}", L),
    ]
};

const SPACES: &[[u32; 2]] = &[[0x09, 0x0D], [0x20, 0x20]];

impl Set {
    const fn new() -> Set {
        Set {
            r: [[0; 2]; MAX_RANGES],
            n: 0,
        }
    }
    const fn add(&mut self, lo: u32, hi: u32) {
        if self.n == MAX_RANGES {
            panic!("pattern: too many ranges");
        }
        if lo > hi {
            panic!("pattern: range out of order");
        }
        self.r[self.n] = [lo, hi];
        self.n += 1;
    }
    const fn add_all(&mut self, rs: &[[u32; 2]]) {
        let mut k = 0;
        while k < rs.len() {
            self.add(rs[k][0], rs[k][1]);
            k += 1;
        }
    }
}

impl Compiler<'_> {
    const fn peek(&self) -> u8 {
        if self.i < self.s.len() {
            self.s[self.i]
        } else {
            0
        }
    }

    const fn emit(&mut self, inst: Inst) -> usize {
        if self.out.n_insts == MAX_INSTS {
            panic!("pattern: too many instructions");
        }
        self.out.insts[self.out.n_insts] = inst;
        if let Inst::Split(..) = inst {
            self.out.n_split += 1;
        }
        self.out.n_insts += 1;
        self.out.n_insts - 1
    }

    const fn patch_second(&mut self, at: usize, target: usize) {
        if let Inst::Split(x, _) = self.out.insts[at] {
            self.out.insts[at] = Inst::Split(x, target as u8);
        } else if let Inst::Jmp(_) = self.out.insts[at] {
            self.out.insts[at] = Inst::Jmp(target as u8);
        }
    }

    /// One UTF-8 character of the pattern.
    const fn char(&mut self) -> u32 {
        let b = self.peek();
        let (len, init) = if b < 0x80 {
            (1, b as u32)
        } else if b >= 0xF0 {
            (4, (b & 0x07) as u32)
        } else if b >= 0xE0 {
            (3, (b & 0x0F) as u32)
        } else {
            (2, (b & 0x1F) as u32)
        };
        let mut c = init;
        let mut k = 1;
        while k < len {
            c = c << 6 | (self.s[self.i + k] & 0x3F) as u32;
            k += 1;
        }
        self.i += len;
        c
    }

    /// `\p{..}` at the cursor, in collapsed mode: adds its symbols.
    const fn category(&mut self, set: &mut Set) -> bool {
        let mut k = 0;
        while k < CATEGORIES.len() {
            let (name, rs) = CATEGORIES[k];
            if contains_at(self.s, self.i, name) {
                if !self.out.collapsed {
                    panic!("pattern: category outside collapsed mode");
                }
                set.add_all(rs);
                self.i += name.len();
                return true;
            }
            k += 1;
        }
        false
    }

    /// One class item after a backslash (cursor on the backslash): adds it,
    /// returning the single character it is, if it is one.
    const fn escape(&mut self, set: &mut Set, negated_ok: bool) -> Option<u32> {
        if self.category(set) {
            return None;
        }
        self.i += 1;
        let c = self.peek();
        self.i += 1;
        match c {
            b's' => {
                set.add_all(SPACES);
                None
            }
            b'S' => {
                if !negated_ok {
                    panic!("pattern: \\S inside a class");
                }
                // Complement of \s, as a whole class.
                set.add(0, 0x08);
                set.add(0x0E, 0x1F);
                set.add(0x21, u32::MAX);
                None
            }
            b'r' => Some(13),
            b'n' => Some(10),
            b't' => Some(9),
            b'd' | b'D' | b'w' | b'W' | b'b' | b'B' | b'x' | b'u' | b'p' | b'0'..=b'9' => {
                panic!("pattern: unsupported escape")
            }
            _ => {
                self.i -= 1;
                Some(self.char())
            }
        }
    }

    /// Registers a set as a class; its index.
    const fn class(&mut self, set: &mut Set, negate: bool) -> u8 {
        let mut low = [0u64; 4];
        let mut k = 0;
        while k < set.n {
            let [lo, hi] = set.r[k];
            let mut c = lo;
            while c <= hi && c < 256 {
                low[(c >> 6) as usize] |= 1 << (c & 63);
                c += 1;
            }
            k += 1;
        }
        if negate {
            let mut w = 0;
            while w < 4 {
                low[w] = !low[w];
                w += 1;
            }
        }
        // Ranges above 255, sorted and merged.
        let first = self.out.n_ranges;
        let mut k = 0;
        while k < set.n {
            let [lo, hi] = set.r[k];
            if hi >= 256 {
                let lo = if lo < 256 { 256 } else { lo };
                // Insertion into the sorted tail.
                if self.out.n_ranges == MAX_RANGES {
                    panic!("pattern: too many ranges");
                }
                let mut j = self.out.n_ranges;
                while j > first && self.out.ranges[j - 1][0] > lo {
                    self.out.ranges[j] = self.out.ranges[j - 1];
                    j -= 1;
                }
                self.out.ranges[j] = [lo, hi];
                self.out.n_ranges += 1;
            }
            k += 1;
        }
        let mut w = first;
        let mut r = first;
        while r < self.out.n_ranges {
            let cur = self.out.ranges[r];
            if w > first && cur[0] <= self.out.ranges[w - 1][1].saturating_add(1) {
                if cur[1] > self.out.ranges[w - 1][1] {
                    self.out.ranges[w - 1][1] = cur[1];
                }
            } else {
                self.out.ranges[w] = cur;
                w += 1;
            }
            r += 1;
        }
        self.out.n_ranges = w;
        if self.out.n_classes == MAX_CLASSES {
            panic!("pattern: too many classes");
        }
        self.out.classes[self.out.n_classes] = Class {
            low,
            first: first as u16,
            len: (w - first) as u16,
            negate,
        };
        self.out.n_classes += 1;
        (self.out.n_classes - 1) as u8
    }

    /// `[...]` at the cursor.
    const fn bracket(&mut self) -> u8 {
        self.i += 1;
        let negate = self.peek() == b'^';
        if negate {
            self.i += 1;
        }
        let mut set = Set::new();
        loop {
            let b = self.peek();
            if b == b']' {
                self.i += 1;
                break;
            }
            if b == 0 {
                panic!("pattern: unclosed class");
            }
            let single = if b == b'\\' {
                self.escape(&mut set, false)
            } else {
                Some(self.char())
            };
            if let Some(lo) = single {
                if self.peek() == b'-' && self.i + 1 < self.s.len() && self.s[self.i + 1] != b']' {
                    self.i += 1;
                    let hi = if self.peek() == b'\\' {
                        match self.escape(&mut set, false) {
                            Some(c) => c,
                            None => panic!("pattern: class as range end"),
                        }
                    } else {
                        self.char()
                    };
                    set.add(lo, hi);
                } else {
                    set.add(lo, lo);
                }
            }
        }
        self.class(&mut set, negate)
    }

    /// One symbol class at the cursor outside brackets: `[..]`, an escape or
    /// a literal.
    const fn single(&mut self) -> u8 {
        let b = self.peek();
        if b == b'[' {
            return self.bracket();
        }
        let mut set = Set::new();
        if b == b'\\' {
            if let Some(c) = self.escape(&mut set, true) {
                set.add(c, c);
            }
        } else {
            match b {
                b'.' | b'^' | b')' | b'|' | b'?' | b'*' | b'+' | b'{' | 0 => {
                    panic!("pattern: unsupported syntax")
                }
                _ => {}
            }
            let c = self.char();
            set.add(c, c);
        }
        self.class(&mut set, false)
    }

    /// One atom; whether it can match the empty string.
    const fn atom(&mut self) -> bool {
        match self.peek() {
            b'(' => {
                self.i += 1;
                if self.peek() == b'?' {
                    self.i += 1;
                    let kind = self.peek();
                    self.i += 1;
                    if kind == b'=' || kind == b'!' {
                        let c = self.single();
                        if self.peek() != b')' {
                            panic!("pattern: lookahead of more than one symbol");
                        }
                        self.i += 1;
                        self.emit(Inst::Look(c, kind == b'!'));
                        return true;
                    }
                    if kind != b':' {
                        panic!("pattern: unsupported group");
                    }
                }
                let nullable = self.alt();
                if self.peek() != b')' {
                    panic!("pattern: unclosed group");
                }
                self.i += 1;
                nullable
            }
            b'$' => {
                self.i += 1;
                self.emit(Inst::End);
                true
            }
            _ => {
                let c = self.single();
                self.emit(Inst::Class(c));
                false
            }
        }
    }

    const fn number(&mut self) -> usize {
        let mut v = 0;
        while self.peek().is_ascii_digit() {
            v = v * 10 + (self.peek() - b'0') as usize;
            self.i += 1;
        }
        v
    }

    /// The quantifier at the cursor, as (min, max).
    const fn quantifier(&mut self) -> Option<(usize, usize)> {
        let q = match self.peek() {
            b'?' => (0, 1),
            b'*' => (0, INF),
            b'+' => (1, INF),
            b'{' => {
                self.i += 1;
                let lo = self.number();
                let hi = if self.peek() == b',' {
                    self.i += 1;
                    if self.peek() == b'}' {
                        INF
                    } else {
                        self.number()
                    }
                } else {
                    lo
                };
                if self.peek() != b'}' || hi < lo {
                    panic!("pattern: bad repetition");
                }
                (lo, hi)
            }
            _ => return None,
        };
        self.i += 1;
        if self.peek() == b'?' {
            panic!("pattern: lazy quantifiers are not supported");
        }
        Some(q)
    }

    /// An atom with its quantifier; whether it can match the empty string.
    const fn repeat(&mut self) -> bool {
        let (i0, n0, c0, r0, s0) = (
            self.i,
            self.out.n_insts,
            self.out.n_classes,
            self.out.n_ranges,
            self.out.n_split,
        );
        let nullable = self.atom();
        let Some((min, max)) = self.quantifier() else {
            return nullable;
        };
        if max == INF && nullable {
            panic!("pattern: a loop that can match nothing");
        }
        let after = self.i;
        // Emit the atom again in the quantifier's shape.
        self.out.n_insts = n0;
        self.out.n_classes = c0;
        self.out.n_ranges = r0;
        self.out.n_split = s0;
        let mut k = 0;
        let copies = if max == INF && min > 0 { min - 1 } else { min };
        while k < copies {
            self.i = i0;
            self.atom();
            k += 1;
        }
        if max == INF {
            if min > 0 {
                let top = self.out.n_insts;
                self.i = i0;
                self.atom();
                let here = self.out.n_insts;
                self.emit(Inst::Split(top as u8, (here + 1) as u8));
            } else {
                let top = self.emit(Inst::Split(0, 0));
                self.out.insts[top] = Inst::Split((top + 1) as u8, 0);
                self.i = i0;
                self.atom();
                self.emit(Inst::Jmp(top as u8));
                let end = self.out.n_insts;
                self.patch_second(top, end);
            }
        } else {
            let mut splits = [0usize; 16];
            let extra = max - min;
            if extra > splits.len() {
                panic!("pattern: repetition too long");
            }
            let mut k = 0;
            while k < extra {
                let sp = self.emit(Inst::Split(0, 0));
                self.out.insts[sp] = Inst::Split((sp + 1) as u8, 0);
                splits[k] = sp;
                self.i = i0;
                self.atom();
                k += 1;
            }
            let end = self.out.n_insts;
            let mut k = 0;
            while k < extra {
                self.patch_second(splits[k], end);
                k += 1;
            }
        }
        self.i = after;
        min == 0 || nullable
    }

    /// A sequence up to `|`, `)` or the end.
    const fn seq(&mut self) -> bool {
        let mut nullable = true;
        loop {
            match self.peek() {
                b'|' | b')' | 0 => return nullable,
                _ => {
                    if !self.repeat() {
                        nullable = false;
                    }
                }
            }
        }
    }

    /// Whether another alternative of the current group follows.
    const fn bar_ahead(&self) -> bool {
        let mut i = self.i;
        let mut depth = 0;
        let mut in_class = false;
        while i < self.s.len() {
            let b = self.s[i];
            if b == b'\\' {
                i += 2;
                continue;
            }
            if in_class {
                if b == b']' {
                    in_class = false;
                }
            } else if b == b'[' {
                in_class = true;
            } else if b == b'(' {
                depth += 1;
            } else if b == b')' {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            } else if b == b'|' && depth == 0 {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Alternatives separated by `|`.
    const fn alt(&mut self) -> bool {
        let mut jumps = [0usize; 16];
        let mut nj = 0;
        let mut nullable = false;
        loop {
            if !self.bar_ahead() {
                if self.seq() {
                    nullable = true;
                }
                break;
            }
            let sp = self.emit(Inst::Split(0, 0));
            self.out.insts[sp] = Inst::Split((sp + 1) as u8, 0);
            if self.seq() {
                nullable = true;
            }
            if nj == jumps.len() {
                panic!("pattern: too many alternatives");
            }
            jumps[nj] = self.emit(Inst::Jmp(0));
            nj += 1;
            self.i += 1; // the '|'
            let next = self.out.n_insts;
            self.patch_second(sp, next);
        }
        let end = self.out.n_insts;
        let mut k = 0;
        while k < nj {
            self.patch_second(jumps[k], end);
            k += 1;
        }
        nullable
    }
}

/// Compiles an expression, written as llama.cpp writes it (its C++ string
/// literals read the same in Rust). Collapsed mode when the text names one
/// of the categories llama.cpp collapses, as llama.cpp decides.
pub const fn compile(pattern: &str) -> Compiled {
    let s = pattern.as_bytes();
    let mut collapsed = false;
    let mut i = 0;
    while i < s.len() {
        let mut k = 0;
        while k < CATEGORIES.len() {
            if contains_at(s, i, CATEGORIES[k].0) {
                collapsed = true;
            }
            k += 1;
        }
        i += 1;
    }
    let mut c = Compiler {
        s,
        i: 0,
        out: Compiled {
            insts: [Inst::Match; MAX_INSTS],
            n_insts: 0,
            classes: [EMPTY_CLASS; MAX_CLASSES],
            n_classes: 0,
            ranges: [[0; 2]; MAX_RANGES],
            n_ranges: 0,
            collapsed,
            n_split: 0,
        },
    };
    if c.alt() {
        panic!("pattern: matches the empty string");
    }
    if c.i != s.len() {
        panic!("pattern: unbalanced ')'");
    }
    c.emit(Inst::Match);
    c.out
}

/// The first `N` items of `src` (to trim a compiled program to its size).
pub const fn trim<T: Copy, const N: usize>(src: &[T], fill: T) -> [T; N] {
    let mut out = [fill; N];
    let mut k = 0;
    while k < N {
        out[k] = src[k];
        k += 1;
    }
    out
}

/// A `static` [`Regex`] compiled from an expression at build time.
macro_rules! regex {
    ($name:ident = $pattern:expr) => {
        static $name: Regex = {
            const C: Compiled = compile($pattern);
            const INSTS: [Inst; C.n_insts] = trim(&C.insts, Inst::Match);
            const CLASSES: [Class; C.n_classes] = trim(&C.classes, EMPTY_CLASS);
            const RANGES: [[u32; 2]; C.n_ranges] = trim(&C.ranges, [0, 0]);
            Regex {
                insts: &INSTS,
                classes: &CLASSES,
                ranges: &RANGES,
                collapsed: C.collapsed,
                n_split: C.n_split,
            }
        };
    };
}

// llama.cpp's expressions (llm_tokenizer_bpe in llama-vocab.cpp) that it
// does not split by hand.
regex!(PUNCT_RUN = "[\\p{P}\\$\\+<=>\\^~\\|]+");
regex!(PUNCT_RUN_FALCON = "[\\p{P}\\$\\+<=>\\^~\\|`]+");
regex!(NUMBERS = "\\p{N}+");
regex!(DIGIT = "\\p{N}");
regex!(DIGITS3 = "\\p{N}{1,3}");
regex!(THREE_DIGITS = "[0-9][0-9][0-9]");
regex!(NEWLINE = "[\r\n]");
regex!(DS_LETTERS = "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+");
regex!(DS_PUNCT = "\\s?[!-/:-~！-／：-～‘-‟　-。]+");
regex!(DS_TRAILING_SPACE = "\\s+$");
regex!(DS_CJK = "[一-龥ࠀ-一가-퟿]+");
regex!(DS3_CJK = "[一-龥぀-ゟ゠-ヿ]+");
regex!(DS3_WORDS = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+");
regex!(DSC_LETTERS = "\\s?\\p{L}+");
regex!(DSC_PUNCT = "\\s?\\p{P}+");
regex!(TEKKEN = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");

/// One step of a pre-tokenizer.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// llama.cpp's hand-written GPT-2 splitter.
    Gpt2,
    /// llama.cpp's hand-written LLaMA 3 (`digits` 3) or Qwen2 (1) splitter.
    Llama3 { digits: usize },
    /// An expression llama.cpp hands to `std::regex`.
    Regex(&'static Regex),
}

/// The pre-tokenizers of the LLaMA-family files llama.cpp reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// llama.cpp's `default` (no `tokenizer.ggml.pre`).
    Default,
    Gpt2,
    Llama3,
    /// StarCoder, SmolLM, Command-R, Refact, ...: single digits, then GPT-2.
    StarCoder,
    Qwen2,
    DeepSeekLlm,
    DeepSeekCoder,
    DeepSeekV3,
    Falcon,
    /// Mistral's Tekken (Nemo, Ministral, Pixtral's text).
    Tekken,
}

impl PreTokenizer {
    /// Every family.
    pub const ALL: [PreTokenizer; 10] = [
        PreTokenizer::Default,
        PreTokenizer::Gpt2,
        PreTokenizer::Llama3,
        PreTokenizer::StarCoder,
        PreTokenizer::Qwen2,
        PreTokenizer::DeepSeekLlm,
        PreTokenizer::DeepSeekCoder,
        PreTokenizer::DeepSeekV3,
        PreTokenizer::Falcon,
        PreTokenizer::Tekken,
    ];
}

/// How llama.cpp reads a `tokenizer.ggml.pre` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreInfo {
    pub pre: PreTokenizer,
    /// A word that is a token is kept whole, merges or not.
    pub ignore_merges: bool,
    /// BOS at the start unless the file says otherwise.
    pub add_bos: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer of a `tokenizer.ggml.pre` value (empty: none), as
    /// llama.cpp maps the names of these families; None for any other name.
    pub fn from_name(name: &[u8]) -> Option<PreInfo> {
        use PreTokenizer::*;
        let (pre, ignore_merges, add_bos) = match name {
            b"" | b"default" => (Default, false, false),
            b"llama3" | b"llama-v3" | b"llama-bpe" | b"falcon3" | b"falcon-h1" | b"pixtral"
            | b"midm-2.0" | b"lfm2" | b"jina-v5-nano" => (Llama3, true, true),
            b"dbrx" | b"smaug-bpe" => (Llama3, false, false),
            b"gpt-2" | b"phi-2" | b"jina-es" | b"jina-de" | b"gigachat" | b"jina-v2-es"
            | b"jina-v2-de" | b"a.x-4.0" | b"mellum" | b"modern-bert" | b"exaone4"
            | b"jina-v1-en" | b"jina-v2-code" | b"roberta-bpe" | b"mpt" | b"olmo" | b"jais"
            | b"trillion" | b"granite-docling" => (Gpt2, false, false),
            b"starcoder" | b"refact" | b"command-r" | b"smollm" | b"codeshell" | b"exaone"
            | b"minerva-7b" | b"mellum2" => (StarCoder, false, false),
            b"qwen2" | b"deepseek-r1-qwen" | b"kormo" | b"f2llmv2" | b"megrez" | b"stablelm2"
            | b"hunyuan" | b"solar-open" => (Qwen2, false, false),
            b"deepseek-llm" => (DeepSeekLlm, false, false),
            b"deepseek-coder" => (DeepSeekCoder, false, false),
            b"deepseek-v3" | b"hunyuan-dense" | b"hy_v4" | b"joyai-llm" => {
                (DeepSeekV3, false, false)
            }
            b"falcon" => (Falcon, false, false),
            b"tekken" => (Tekken, true, true),
            _ => return None,
        };
        Some(PreInfo {
            pre,
            ignore_merges,
            add_bos,
        })
    }

    /// The steps, in the order llama.cpp applies them.
    pub fn steps(self) -> &'static [Step] {
        use Step::Regex as R;
        static DEFAULT: [Step; 4] = [R(&PUNCT_RUN), Step::Gpt2, R(&NUMBERS), R(&THREE_DIGITS)];
        static GPT2: [Step; 1] = [Step::Gpt2];
        static LLAMA3: [Step; 1] = [Step::Llama3 { digits: 3 }];
        static STARCODER: [Step; 2] = [R(&DIGIT), Step::Gpt2];
        static QWEN2: [Step; 1] = [Step::Llama3 { digits: 1 }];
        static DEEPSEEK_LLM: [Step; 6] = [
            R(&NEWLINE),
            R(&DS_LETTERS),
            R(&DS_PUNCT),
            R(&DS_TRAILING_SPACE),
            R(&DS_CJK),
            R(&NUMBERS),
        ];
        static DEEPSEEK_CODER: [Step; 5] = [
            R(&NEWLINE),
            R(&DSC_LETTERS),
            R(&DSC_PUNCT),
            R(&DS_CJK),
            R(&DIGIT),
        ];
        static DEEPSEEK_V3: [Step; 3] = [R(&DIGITS3), R(&DS3_CJK), R(&DS3_WORDS)];
        static FALCON: [Step; 3] = [R(&PUNCT_RUN_FALCON), Step::Gpt2, R(&THREE_DIGITS)];
        static TEKKEN_STEPS: [Step; 1] = [R(&TEKKEN)];
        match self {
            PreTokenizer::Default => &DEFAULT,
            PreTokenizer::Gpt2 => &GPT2,
            PreTokenizer::Llama3 => &LLAMA3,
            PreTokenizer::StarCoder => &STARCODER,
            PreTokenizer::Qwen2 => &QWEN2,
            PreTokenizer::DeepSeekLlm => &DEEPSEEK_LLM,
            PreTokenizer::DeepSeekCoder => &DEEPSEEK_CODER,
            PreTokenizer::DeepSeekV3 => &DEEPSEEK_V3,
            PreTokenizer::Falcon => &FALCON,
            PreTokenizer::Tekken => &TEKKEN_STEPS,
        }
    }

    /// Words of scratch [`split`] needs for `n` code points.
    pub fn work_words(self, n: usize) -> Option<usize> {
        let mut need = 0;
        for s in self.steps() {
            if let Step::Regex(r) = s {
                need = need.max(r.work_words(n)?);
            }
        }
        Some(need)
    }
}

/// Sets bit `i` of `cuts`.
fn set(cuts: &mut [u64], i: usize) {
    cuts[i / 64] |= 1 << (i % 64);
}

/// The first set bit of `cuts` after `i` (there is one at the end).
pub fn next_cut(cuts: &[u64], i: usize) -> usize {
    let mut w = (i + 1) / 64;
    let mut word = cuts[w] & (!0u64).checked_shl(((i + 1) % 64) as u32).unwrap_or(0);
    while word == 0 {
        w += 1;
        word = cuts[w];
    }
    w * 64 + word.trailing_zeros() as usize
}

/// Splits `cps` into pre-tokens: sets bit i of `cuts` (`cps.len() / 64 + 1`
/// words) where a pre-token starts, and bit `cps.len()`. `work`:
/// [`PreTokenizer::work_words`] words.
pub fn split(pre: PreTokenizer, cps: &[u32], cuts: &mut [u64], work: &mut [u32]) {
    let n = cps.len();
    cuts.fill(0);
    set(cuts, 0);
    set(cuts, n);
    for step in pre.steps() {
        let mut a = 0;
        while a < n {
            let b = next_cut(cuts, a);
            let frag = &cps[a..b];
            match step {
                Step::Gpt2 | Step::Llama3 { .. } => {
                    let mut p = 0;
                    while p < frag.len() {
                        p = match step {
                            Step::Gpt2 => gpt2_next(frag, p),
                            Step::Llama3 { digits } => llama3_next(frag, p, *digits),
                            Step::Regex(_) => frag.len(),
                        };
                        set(cuts, a + p);
                    }
                }
                Step::Regex(r) => r.split(frag, work, |i| set(cuts, a + i)),
            }
            a = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(pre: PreTokenizer, text: &str) -> Vec<String> {
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut cuts = vec![0u64; cps.len() / 64 + 1];
        let mut work = vec![0u32; pre.work_words(cps.len()).unwrap()];
        split(pre, &cps, &mut cuts, &mut work);
        let mut out = Vec::new();
        let mut a = 0;
        while a < cps.len() {
            let b = next_cut(&cuts, a);
            out.push(text.chars().skip(a).take(b - a).collect());
            a = b;
        }
        out
    }

    #[test]
    fn programs_compile_to_their_shape() {
        // \p{N}{1,3}: a class, then two nested optional copies.
        assert_eq!(
            DIGITS3.insts,
            &[
                Inst::Class(0),
                Inst::Split(2, 5),
                Inst::Class(1),
                Inst::Split(4, 5),
                Inst::Class(2),
                Inst::Match
            ]
        );
        assert!(DIGITS3.collapsed && !THREE_DIGITS.collapsed);
        // The DeepSeek letter class keeps its non-ASCII ranges, merged.
        assert!(DS_LETTERS.ranges.len() > 50);
        assert!(DS_LETTERS.ranges.windows(2).all(|w| w[0][1] + 1 < w[1][0]));
    }

    #[test]
    fn families_split_as_llama_cpp() {
        use PreTokenizer::*;
        // Values from tools/llama_unicode.cpp (llama.cpp's own splitter).
        assert_eq!(
            pieces(Tekken, "Hello World 12345 ÀBCdef"),
            ["Hello", " World", " ", "1", "2", "3", "4", "5", " ÀBCdef"]
        );
        assert_eq!(
            pieces(StarCoder, "abc 123  x"),
            ["abc", " ", "1", "2", "3", " ", " x"]
        );
        assert_eq!(pieces(DeepSeekLlm, "a b  \n"), ["a", " b", "  ", "\n"]);
        assert_eq!(pieces(Default, "x=1234;"), ["x", "=", "123", "4", ";"]);
    }
}
