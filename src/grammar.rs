//! GBNF grammars, as llama.cpp reads them, parsed into caller memory.
//!
//! The text is llama.cpp's grammar format (`grammars/README.md` there):
//! rules `name ::= alternatives`, alternatives separated by `|`, sequences
//! of literals `"..."`, character classes `[a-z]` / `[^...]`, `.`, rule
//! references, groups `( ... )`, the repetitions `*`, `+`, `?`, `{m}`,
//! `{m,}`, `{m,n}`, token references `<[id]>` / `!<[id]>`, escapes `\x..`,
//! `\u....`, `\U........`, `\t \r \n \\ \" \[ \] \-`, and `#` comments. A
//! rule may be defined twice (the last definition counts, as in llama.cpp).
//!
//! The result is llama.cpp's: rules of elements (`END`, `ALT`, `RULE_REF`,
//! `CHAR`, `CHAR_NOT`, `CHAR_RNG_UPPER`, `CHAR_ALT`, `CHAR_ANY`, `TOKEN`,
//! `TOKEN_NOT`), repetitions rewritten into copies and helper rules the way
//! its parser does (`S{m,n}` is `m` copies of `S`, then a chain of `n - m`
//! optional rules; `S*` a right-recursive rule), so that a matcher over
//! them accepts the same language token for token.
//!
//! Memory: [`Grammar::size`] runs the parse without writing (counting every
//! element it would write) and returns the bytes [`Grammar::init`] needs:
//! the elements, a table of rule starts, the names' hash table and the
//! working space of the parse and of the left-recursion check. Nothing is
//! recursive on the machine stack but groups, whose nesting is limited.
//!
//! Errors carry a status and the byte offset where the parse stopped. The
//! limits a hostile text meets: a repetition count past 2,000 (llama.cpp's
//! `MAX_REPETITION_THRESHOLD`, with its rule that a group's rule count times
//! the repetition stays under it), groups nested deeper than
//! [`MAX_NESTING`], more than [`MAX_ELEMENTS`] elements after expansion,
//! and texts longer than [`MAX_TEXT`]. Left recursion (`a ::= a "x"`, or
//! through a rule with an empty alternative) is refused, as llama.cpp
//! does; the check is linear in the grammar (llama.cpp's revisits rules).
//! A NUL byte is refused (llama.cpp's text ends at one).

use crate::error::Error;
use crate::model::ALIGN;
use bytemuck::Zeroable;

pub mod matcher;
pub mod stage;
pub mod trie;
pub use matcher::{Matcher, MatcherParams};
pub use stage::{GrammarParams, GrammarStage};
pub use trie::TokenTrie;

/// Element types, numbered as llama.cpp's `llama_gretype`.
pub mod ty {
    /// End of a rule.
    pub const END: u32 = 0;
    /// Start of another alternative.
    pub const ALT: u32 = 1;
    /// A reference to rule `value`.
    pub const RULE_REF: u32 = 2;
    /// The code point `value` (or the first of a class).
    pub const CHAR: u32 = 3;
    /// A negated class, starting with `value`.
    pub const CHAR_NOT: u32 = 4;
    /// Makes the preceding char the lower end of a range up to `value`.
    pub const CHAR_RNG_UPPER: u32 = 5;
    /// Another code point of the class.
    pub const CHAR_ALT: u32 = 6;
    /// Any code point.
    pub const CHAR_ANY: u32 = 7;
    /// The token `value`.
    pub const TOKEN: u32 = 8;
    /// Any token but `value`.
    pub const TOKEN_NOT: u32 = 9;
}

/// One element of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Elem {
    pub ty: u32,
    pub value: u32,
}

// SAFETY: two u32 fields under repr(C): no padding, every bit pattern is
// a value (the derive feature of bytemuck is not among the dependencies).
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Elem {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Elem {}

/// Most elements after expansion.
pub const MAX_ELEMENTS: usize = 1 << 20;
/// Deepest nesting of groups.
pub const MAX_NESTING: usize = 64;
/// Longest grammar text (offsets and ids fit in 32 bits with room).
pub const MAX_TEXT: usize = 1 << 24;
/// llama.cpp's bound on repetitions (`MAX_REPETITION_THRESHOLD`).
pub const MAX_REPETITION: u64 = 2000;

/// Why a grammar was refused, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrammarError {
    pub error: Error,
    /// Byte offset in the text (for an undefined rule, its first use; the
    /// text's length for a missing `root`).
    pub offset: usize,
}

type Res<T> = core::result::Result<T, GrammarError>;

/// A parsed grammar over caller memory.
pub struct Grammar<'a> {
    elems: &'a [Elem],
    starts: &'a [u32],
    root: u32,
}

/// A slot of the names' hash table: the name's bytes in the text, its id
/// and the offset of its first use.
#[derive(Clone, Copy)]
#[repr(C)]
struct Name {
    at: u32,
    len: u32,
    id: u32,
    first: u32,
}

// SAFETY: four u32 fields under repr(C), as `Elem`.
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Name {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl bytemuck::Pod for Name {}

const UNDEFINED: u32 = u32::MAX;

/// What one parse needs (counted by the dry run).
#[derive(Clone, Copy, Default, Debug)]
struct Counts {
    /// Elements written to the output.
    elems: usize,
    /// Deepest use of the scratch stack (rules being built).
    scratch: usize,
    /// Ids handed out (an upper bound in the dry run: every name use).
    ids: usize,
    /// Name uses (the hash table's size comes from it).
    names: usize,
}

impl Counts {
    fn table(&self) -> usize {
        (2 * self.names.max(1)).next_power_of_two()
    }

    fn bytes(&self) -> Option<usize> {
        let parts = [
            self.elems.checked_mul(8)?,
            self.ids.checked_mul(4)?,
            self.scratch.checked_mul(8)?,
            self.table().checked_mul(16)?,
            // Left-recursion check: a stack of (rule, element) and flags.
            self.ids.checked_mul(8)?,
            self.ids,
        ];
        crate::model::padded_total(&parts)
    }
}

/// The parser: a dry run (no memory, counting) or the real one.
struct Parser<'t, 'm> {
    text: &'t [u8],
    /// None in the dry run.
    mem: Option<Mem<'m>>,
    n: Counts,
    /// Elements on the scratch stack now.
    top: usize,
    /// Ids made for groups and repetitions (the dry run's lower bound of
    /// the rules a group makes).
    made: usize,
    depth: usize,
}

struct Mem<'m> {
    elems: &'m mut [Elem],
    starts: &'m mut [u32],
    scratch: &'m mut [Elem],
    names: &'m mut [Name],
}

fn err<T>(error: Error, offset: usize) -> Res<T> {
    Err(GrammarError { error, offset })
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

impl<'t, 'm> Parser<'t, 'm> {
    fn at(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    fn space(&self, mut i: usize, newline_ok: bool) -> usize {
        loop {
            match self.at(i) {
                b' ' | b'\t' => i += 1,
                b'\r' | b'\n' if newline_ok => i += 1,
                b'#' => {
                    while !matches!(self.at(i), 0 | b'\r' | b'\n') {
                        i += 1;
                    }
                }
                _ => return i,
            }
        }
    }

    fn name_end(&self, i: usize) -> Res<usize> {
        let mut j = i;
        while is_word(self.at(j)) {
            j += 1;
        }
        if j == i {
            return err(Error::GrammarSyntax, i);
        }
        Ok(j)
    }

    fn int_end(&self, i: usize) -> Res<usize> {
        let mut j = i;
        while self.at(j).is_ascii_digit() {
            j += 1;
        }
        if j == i {
            return err(Error::GrammarSyntax, i);
        }
        Ok(j)
    }

    /// The decimal at `i..j`, saturating (counts past the limits are
    /// refused or treated as unbounded anyway).
    fn int(&self, i: usize, j: usize) -> u64 {
        self.text[i..j].iter().fold(0u64, |v, &d| {
            v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
    }

    fn hex(&self, i: usize, size: usize) -> Res<(u32, usize)> {
        let mut v = 0u32;
        for k in 0..size {
            let d = match self.at(i + k) {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => return err(Error::GrammarSyntax, i),
            };
            v = (v << 4) | u32::from(d);
        }
        Ok((v, i + size))
    }

    /// One character of a literal or class: an escape or a UTF-8 sequence
    /// (decoded as llama.cpp does, leniently: it assumes valid UTF-8).
    fn char(&self, i: usize) -> Res<(u32, usize)> {
        let c = self.at(i);
        if c == b'\\' {
            return match self.at(i + 1) {
                b'x' => self.hex(i + 2, 2),
                b'u' => self.hex(i + 2, 4),
                b'U' => self.hex(i + 2, 8),
                b't' => Ok((9, i + 2)),
                b'r' => Ok((13, i + 2)),
                b'n' => Ok((10, i + 2)),
                e @ (b'\\' | b'"' | b'[' | b']' | b'-') => Ok((u32::from(e), i + 2)),
                _ => err(Error::GrammarSyntax, i),
            };
        }
        if c == 0 {
            return err(Error::GrammarSyntax, i);
        }
        let len = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][usize::from(c >> 4)];
        let mut v = u32::from(c & ((1u16 << (8 - len)) - 1) as u8);
        let mut j = i + 1;
        while j < i + len && self.at(j) != 0 {
            v = (v << 6) + u32::from(self.at(j) & 0x3f);
            j += 1;
        }
        Ok((v, j))
    }

    /// Pushes an element of the rule being built.
    fn push(&mut self, e: Elem, at: usize) -> Res<()> {
        if self.top >= MAX_ELEMENTS {
            return err(Error::GrammarLimit, at);
        }
        if let Some(m) = &mut self.mem {
            m.scratch[self.top] = e;
        }
        self.top += 1;
        self.n.scratch = self.n.scratch.max(self.top);
        Ok(())
    }

    /// Appends the elements `from..to` of the scratch stack again.
    fn repeat(&mut self, from: usize, to: usize, times: u64, at: usize) -> Res<()> {
        let len = (to - from) as u64;
        let total = len.saturating_mul(times).saturating_add(self.top as u64);
        if total > MAX_ELEMENTS as u64 {
            return err(Error::GrammarLimit, at);
        }
        if let Some(m) = &mut self.mem {
            for _ in 0..times {
                m.scratch.copy_within(from..to, self.top);
                self.top += to - from;
            }
        } else {
            self.top = total as usize;
        }
        self.n.scratch = self.n.scratch.max(self.top);
        Ok(())
    }

    /// Moves the scratch stack's `from..` (a finished rule, END included)
    /// to the output as rule `id`.
    fn finish_rule(&mut self, id: u32, from: usize, at: usize) -> Res<()> {
        let len = self.top - from;
        let start = self.n.elems;
        if start + len > MAX_ELEMENTS {
            return err(Error::GrammarLimit, at);
        }
        if let Some(m) = &mut self.mem {
            m.elems[start..start + len].copy_from_slice(&m.scratch[from..self.top]);
            m.starts[id as usize] = start as u32;
        }
        self.n.elems += len;
        self.top = from;
        Ok(())
    }

    fn new_id(&mut self, at: usize) -> Res<u32> {
        if self.n.ids >= MAX_ELEMENTS {
            return err(Error::GrammarLimit, at);
        }
        let id = self.n.ids as u32;
        self.n.ids += 1;
        Ok(id)
    }

    /// The id of the name at `i..j` (made at its first use).
    fn symbol(&mut self, i: usize, j: usize) -> Res<u32> {
        self.n.names += 1;
        let Some(m) = &self.mem else {
            return self.new_id(i);
        };
        let name = &self.text[i..j];
        let mask = m.names.len() - 1;
        let mut h = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) as usize
            & mask;
        loop {
            let slot = m.names[h];
            if slot.len == 0 {
                break;
            }
            let s = slot.at as usize;
            if &self.text[s..s + slot.len as usize] == name {
                return Ok(slot.id);
            }
            h = (h + 1) & mask;
        }
        let id = self.new_id(i)?;
        if let Some(m) = &mut self.mem {
            m.names[h] = Name {
                at: i as u32,
                len: (j - i) as u32,
                id,
                first: i as u32,
            };
        }
        Ok(id)
    }

    /// A helper rule's id (llama.cpp's `generate_symbol_id`).
    fn made_id(&mut self, at: usize) -> Res<u32> {
        self.made += 1;
        self.new_id(at)
    }

    /// `alternatives` into rule `id`, from `i`; returns where it stopped.
    fn alternates(&mut self, i: usize, id: u32, nested: bool) -> Res<usize> {
        let from = self.top;
        let mut pos = self.sequence(i, nested)?;
        while self.at(pos) == b'|' {
            self.push(
                Elem {
                    ty: ty::ALT,
                    value: 0,
                },
                pos,
            )?;
            pos = self.space(pos + 1, true);
            pos = self.sequence(pos, nested)?;
        }
        self.push(
            Elem {
                ty: ty::END,
                value: 0,
            },
            pos,
        )?;
        self.finish_rule(id, from, pos)?;
        Ok(pos)
    }

    fn sequence(&mut self, i: usize, nested: bool) -> Res<usize> {
        let mut last = self.top;
        let mut pos = i;
        let mut n_prev: u64 = 1;
        loop {
            let c = self.at(pos);
            if c == b'"' {
                pos += 1;
                last = self.top;
                n_prev = 1;
                while self.at(pos) != b'"' {
                    if self.at(pos) == 0 {
                        return err(Error::GrammarSyntax, pos);
                    }
                    let (v, next) = self.char(pos)?;
                    self.push(
                        Elem {
                            ty: ty::CHAR,
                            value: v,
                        },
                        pos,
                    )?;
                    pos = next;
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'[' {
                pos += 1;
                let mut start = ty::CHAR;
                if self.at(pos) == b'^' {
                    pos += 1;
                    start = ty::CHAR_NOT;
                }
                last = self.top;
                n_prev = 1;
                while self.at(pos) != b']' {
                    if self.at(pos) == 0 {
                        return err(Error::GrammarSyntax, pos);
                    }
                    let (v, next) = self.char(pos)?;
                    let t = if self.top > last { ty::CHAR_ALT } else { start };
                    self.push(Elem { ty: t, value: v }, pos)?;
                    pos = next;
                    if self.at(pos) == b'-' && self.at(pos + 1) != b']' {
                        if self.at(pos + 1) == 0 {
                            return err(Error::GrammarSyntax, pos + 1);
                        }
                        let (hi, next) = self.char(pos + 1)?;
                        self.push(
                            Elem {
                                ty: ty::CHAR_RNG_UPPER,
                                value: hi,
                            },
                            pos,
                        )?;
                        pos = next;
                    }
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'<' || c == b'!' {
                let mut t = ty::TOKEN;
                if c == b'!' {
                    t = ty::TOKEN_NOT;
                    pos += 1;
                }
                let (id, next) = self.token(pos)?;
                last = self.top;
                n_prev = 1;
                self.push(Elem { ty: t, value: id }, pos)?;
                pos = self.space(next, nested);
            } else if is_word(c) {
                let end = self.name_end(pos)?;
                let id = self.symbol(pos, end)?;
                pos = self.space(end, nested);
                last = self.top;
                n_prev = 1;
                self.push(
                    Elem {
                        ty: ty::RULE_REF,
                        value: id,
                    },
                    pos,
                )?;
            } else if c == b'(' {
                if self.depth >= MAX_NESTING {
                    return err(Error::GrammarLimit, pos);
                }
                let open = pos;
                pos = self.space(pos + 1, true);
                let (ids0, made0) = (self.n.ids, self.made);
                let sub = self.made_id(open)?;
                self.depth += 1;
                pos = self.alternates(pos, sub, true)?;
                self.depth -= 1;
                let made = if self.mem.is_some() {
                    self.n.ids - ids0
                } else {
                    self.made - made0
                };
                n_prev = (made as u64).max(1);
                last = self.top;
                self.push(
                    Elem {
                        ty: ty::RULE_REF,
                        value: sub,
                    },
                    pos,
                )?;
                if self.at(pos) != b')' {
                    return err(Error::GrammarSyntax, pos);
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'.' {
                last = self.top;
                n_prev = 1;
                self.push(
                    Elem {
                        ty: ty::CHAR_ANY,
                        value: 0,
                    },
                    pos,
                )?;
                pos = self.space(pos + 1, nested);
            } else if c == b'*' || c == b'+' || c == b'?' {
                let at = pos;
                pos = self.space(pos + 1, nested);
                let (min, max) = match c {
                    b'*' => (0, None),
                    b'+' => (1, None),
                    _ => (0, Some(1)),
                };
                self.repetition(&mut last, &mut n_prev, min, max, at)?;
            } else if c == b'{' {
                let at = pos;
                pos = self.space(pos + 1, nested);
                if !self.at(pos).is_ascii_digit() {
                    return err(Error::GrammarSyntax, pos);
                }
                let end = self.int_end(pos)?;
                let min = self.int(pos, end);
                pos = self.space(end, nested);
                let max;
                if self.at(pos) == b'}' {
                    max = Some(min);
                    pos = self.space(pos + 1, nested);
                } else if self.at(pos) == b',' {
                    pos = self.space(pos + 1, nested);
                    let mut m = None;
                    if self.at(pos).is_ascii_digit() {
                        let end = self.int_end(pos)?;
                        m = Some(self.int(pos, end));
                        pos = self.space(end, nested);
                    }
                    if self.at(pos) != b'}' {
                        return err(Error::GrammarSyntax, pos);
                    }
                    max = m;
                    pos = self.space(pos + 1, nested);
                } else {
                    return err(Error::GrammarSyntax, pos);
                }
                if min > MAX_REPETITION {
                    return err(Error::GrammarLimit, at);
                }
                // llama.cpp: a bound past the threshold is no bound.
                let max = max.filter(|&m| m <= MAX_REPETITION);
                self.repetition(&mut last, &mut n_prev, min, max, at)?;
            } else {
                return Ok(pos);
            }
        }
    }

    /// `<[id]>` (a token by id). Token text (`<|eot_id|>`) needs a
    /// vocabulary, which the parser does not have: refused, as llama.cpp
    /// refuses it without one.
    fn token(&self, i: usize) -> Res<(u32, usize)> {
        if self.at(i) != b'<' {
            return err(Error::GrammarSyntax, i);
        }
        if self.at(i + 1) != b'[' {
            return err(Error::GrammarSyntax, i);
        }
        let p = i + 2;
        let end = self.int_end(p)?;
        let v = self.int(p, end);
        if v > u64::from(u32::MAX) {
            return err(Error::GrammarSyntax, p);
        }
        if self.at(end) != b']' {
            return err(Error::GrammarSyntax, end);
        }
        if self.at(end + 1) != b'>' {
            return err(Error::GrammarSyntax, end + 1);
        }
        Ok((v as u32, end + 2))
    }

    /// llama.cpp's rewrite of the last symbol (scratch `last..top`):
    /// `S{m,n}` → `S` m times, then `S'(n-m)` with `S'(x) ::= S S'(x-1) |`
    /// and `S'(1) ::= S |`; `S{m,}` → `S` m times, then `S' ::= S S' |`.
    fn repetition(
        &mut self,
        last: &mut usize,
        n_prev: &mut u64,
        min: u64,
        max: Option<u64>,
        at: usize,
    ) -> Res<()> {
        if *last == self.top {
            return err(Error::GrammarSyntax, at);
        }
        let total = match max {
            Some(m) if m > 0 => m,
            _ if min > 0 => min,
            _ => 1,
        };
        if n_prev.saturating_mul(total) > MAX_REPETITION {
            return err(Error::GrammarLimit, at);
        }
        // The symbol stays at `from..to` while its copies and the helper
        // rules (built above the stack, then moved out) are made from it;
        // without a minimum it leaves the sequence at the end.
        let (from, to) = (*last, self.top);
        if min > 0 {
            self.repeat(from, to, min - 1, at)?;
        }
        let keep = if min == 0 { from } else { self.top };
        let n_opt = match max {
            None => 1,
            Some(m) => m.saturating_sub(min),
        };
        let mut last_rec = 0u32;
        for k in 0..n_opt {
            let id = self.made_id(at)?;
            let start = self.top;
            self.repeat(from, to, 1, at)?;
            if k > 0 || max.is_none() {
                let target = if max.is_none() { id } else { last_rec };
                self.push(
                    Elem {
                        ty: ty::RULE_REF,
                        value: target,
                    },
                    at,
                )?;
            }
            self.push(
                Elem {
                    ty: ty::ALT,
                    value: 0,
                },
                at,
            )?;
            self.push(
                Elem {
                    ty: ty::END,
                    value: 0,
                },
                at,
            )?;
            self.finish_rule(id, start, at)?;
            last_rec = id;
        }
        self.top = keep;
        if n_opt > 0 {
            self.push(
                Elem {
                    ty: ty::RULE_REF,
                    value: last_rec,
                },
                at,
            )?;
        }
        *n_prev = n_prev.saturating_mul(total);
        // As llama.cpp: the next repetition applies to what this one made
        // (`last` stays).
        Ok(())
    }

    fn rule(&mut self, i: usize) -> Res<usize> {
        let end = self.name_end(i)?;
        let pos = self.space(end, false);
        let id = self.symbol(i, end)?;
        if !(self.at(pos) == b':' && self.at(pos + 1) == b':' && self.at(pos + 2) == b'=') {
            return err(Error::GrammarSyntax, pos);
        }
        let pos = self.space(pos + 3, true);
        let mut pos = self.alternates(pos, id, false)?;
        match self.at(pos) {
            b'\r' => pos += if self.at(pos + 1) == b'\n' { 2 } else { 1 },
            b'\n' => pos += 1,
            0 => {}
            _ => return err(Error::GrammarSyntax, pos),
        }
        Ok(self.space(pos, true))
    }

    fn parse(&mut self) -> Res<()> {
        let mut pos = self.space(0, true);
        while self.at(pos) != 0 {
            pos = self.rule(pos)?;
        }
        Ok(())
    }
}

fn check_text(text: &[u8]) -> Res<()> {
    if text.len() > MAX_TEXT {
        return err(Error::GrammarLimit, MAX_TEXT);
    }
    if let Some(i) = text.iter().position(|&b| b == 0) {
        return err(Error::GrammarSyntax, i);
    }
    Ok(())
}

fn dry_run(text: &[u8]) -> Res<Counts> {
    check_text(text)?;
    let mut p = Parser {
        text,
        mem: None,
        n: Counts::default(),
        top: 0,
        made: 0,
        depth: 0,
    };
    p.parse()?;
    Ok(p.n)
}

/// The next `n` values of `T` from `rest` (then past a multiple of
/// [`ALIGN`]); `rest` is long enough, by the caller's layout.
fn carve<'a, T: bytemuck::Pod>(rest: &mut &'a mut [u8], n: usize) -> &'a mut [T] {
    let bytes = (n * core::mem::size_of::<T>()).div_ceil(ALIGN) * ALIGN;
    let all = core::mem::take(rest);
    let (head, tail) = all.split_at_mut(bytes);
    *rest = tail;
    // Offsets are multiples of ALIGN from an aligned start, and T's size
    // divides the byte count: the cast cannot fail.
    bytemuck::cast_slice_mut(&mut head[..n * core::mem::size_of::<T>()])
}

impl<'a> Grammar<'a> {
    /// Bytes [`Grammar::init`] needs for `text` (or why it will refuse it;
    /// `init` may still refuse a grammar the size query passed, for the
    /// repetition rule that needs the names known).
    pub fn size(text: &[u8]) -> Res<usize> {
        let n = dry_run(text)?;
        n.bytes().ok_or(GrammarError {
            error: Error::GrammarLimit,
            offset: 0,
        })
    }

    /// Parses `text` into `mem` (64-byte aligned, [`Grammar::size`] bytes).
    pub fn init(text: &[u8], mem: &'a mut [u8]) -> Res<Self> {
        let n = dry_run(text)?;
        let need = n.bytes().ok_or(GrammarError {
            error: Error::GrammarLimit,
            offset: 0,
        })?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return err(Error::Misaligned, 0);
        }
        if mem.len() < need {
            return err(Error::BufferTooSmall, 0);
        }
        let mut rest = &mut mem[..need];
        let elems: &mut [Elem] = carve(&mut rest, n.elems);
        let starts: &mut [u32] = carve(&mut rest, n.ids);
        let scratch: &mut [Elem] = carve(&mut rest, n.scratch);
        let names: &mut [Name] = carve(&mut rest, n.table());
        starts.fill(UNDEFINED);
        names.fill(Name::zeroed());
        let mut p = Parser {
            text,
            mem: Some(Mem {
                elems,
                starts,
                scratch,
                names,
            }),
            n: Counts::default(),
            top: 0,
            made: 0,
            depth: 0,
        };
        p.parse()?;
        let ids = p.n.ids;
        let n_elems = p.n.elems;
        let Some(Mem {
            elems,
            starts,
            names,
            ..
        }) = p.mem
        else {
            return err(Error::GrammarSyntax, 0);
        };
        // Every name defined, and a root.
        let mut root = None;
        for slot in names.iter().filter(|s| s.len != 0) {
            if starts[slot.id as usize] == UNDEFINED {
                return err(Error::GrammarUndefinedRule, slot.first as usize);
            }
            let s = slot.at as usize;
            if &text[s..s + slot.len as usize] == b"root" {
                root = Some(slot.id);
            }
        }
        let Some(root) = root else {
            return err(Error::GrammarUndefinedRule, text.len());
        };
        let (stack, flags) = rest.split_at_mut(ids * 8);
        let stack: &mut [[u32; 2]] = bytemuck::cast_slice_mut(stack);
        let g = Grammar {
            elems: &elems[..n_elems],
            starts: &starts[..ids],
            root,
        };
        if let Some(rule) = g.left_recursion(stack, &mut flags[..ids]) {
            // The offset of the rule's name, if it has one.
            let at = names
                .iter()
                .find(|s| s.len != 0 && s.id == rule)
                .map_or(0, |s| s.first as usize);
            return err(Error::GrammarLeftRecursion, at);
        }
        Ok(g)
    }

    /// The id of `root`.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// Rules (ids `0..n_rules`).
    pub fn n_rules(&self) -> usize {
        self.starts.len()
    }

    /// All elements; rule `r` starts at [`Grammar::rule_start`].
    pub fn elems(&self) -> &'a [Elem] {
        self.elems
    }

    /// Where rule `r` starts in [`Grammar::elems`].
    pub fn rule_start(&self, r: u32) -> usize {
        self.starts[r as usize] as usize
    }

    /// Rule `r`'s elements, END included.
    pub fn rule(&self, r: u32) -> &'a [Elem] {
        let s = self.rule_start(r);
        let len = self.elems[s..]
            .iter()
            .position(|e| e.ty == ty::END)
            .map_or(0, |p| p + 1);
        &self.elems[s..s + len]
    }

    /// The first left-recursive rule found, as llama.cpp's check finds it
    /// (a rule reached again through leftmost references, looking past a
    /// reference to a rule with an empty alternative), with a stack in
    /// caller memory and each rule explored once.
    fn left_recursion(&self, stack: &mut [[u32; 2]], flags: &mut [u8]) -> Option<u32> {
        const DONE: u8 = 1;
        const OPEN: u8 = 2;
        const EMPTY: u8 = 4;
        flags.fill(0);
        let end_of_seq = |e: &Elem| e.ty == ty::END || e.ty == ty::ALT;
        for r0 in 0..self.starts.len() as u32 {
            if flags[r0 as usize] & DONE != 0 {
                continue;
            }
            let mut sp = 0;
            let enter = |r: u32, flags: &mut [u8]| {
                flags[r as usize] |= OPEN;
                let mut at_start = true;
                for e in self.rule(r) {
                    if end_of_seq(e) {
                        if at_start {
                            flags[r as usize] |= EMPTY;
                            break;
                        }
                        at_start = true;
                    } else {
                        at_start = false;
                    }
                }
            };
            enter(r0, flags);
            // Frames: (rule, next element; bit 31: looking at leftmost).
            stack[sp] = [r0, 1 << 31];
            sp += 1;
            while sp > 0 {
                let [r, state] = stack[sp - 1];
                let mut i = (state & !(1 << 31)) as usize;
                let mut left = state >> 31 == 1;
                let rule = self.rule(r);
                let mut descend = None;
                while i < rule.len() {
                    let e = rule[i];
                    i += 1;
                    if e.ty == ty::RULE_REF && left {
                        let f = flags[e.value as usize];
                        if f & OPEN != 0 {
                            return Some(e.value);
                        }
                        if f & DONE == 0 {
                            // Come back to this element to read EMPTY.
                            descend = Some(e.value);
                            i -= 1;
                            break;
                        }
                        if f & EMPTY == 0 {
                            left = false;
                        }
                    } else {
                        left = end_of_seq(&e);
                    }
                }
                stack[sp - 1] = [r, i as u32 | (u32::from(left) << 31)];
                match descend {
                    Some(c) => {
                        enter(c, flags);
                        stack[sp] = [c, 1 << 31];
                        sp += 1;
                    }
                    None => {
                        flags[r as usize] = (flags[r as usize] & !OPEN) | DONE;
                        sp -= 1;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn parse(text: &str) -> Res<(Vec<Vec<Elem>>, u32)> {
        let n = Grammar::size(text.as_bytes())?;
        let mut buf = std::vec![0u64; n.div_ceil(8) + 8];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let off = bytes.as_ptr().align_offset(ALIGN);
        let g = Grammar::init(text.as_bytes(), &mut bytes[off..off + n])?;
        let rules = (0..g.n_rules() as u32)
            .map(|r| g.rule(r).to_vec())
            .collect();
        Ok((rules, g.root()))
    }

    fn e(ty: u32, value: u32) -> Elem {
        Elem { ty, value }
    }

    #[test]
    fn a_small_grammar_gives_llama_cpp_elements() {
        // llama.cpp's test-grammar-parser: `root ::= "a" | [bdx-z] | [^1-3]`.
        let (rules, root) = parse("root  ::= \"a\" | [bdx-z] | [^1-3]").unwrap();
        assert_eq!(root, 0);
        use ty::*;
        assert_eq!(
            rules[0],
            [
                e(CHAR, 'a' as u32),
                e(ALT, 0),
                e(CHAR, 'b' as u32),
                e(CHAR_ALT, 'd' as u32),
                e(CHAR_ALT, 'x' as u32),
                e(CHAR_RNG_UPPER, 'z' as u32),
                e(ALT, 0),
                e(CHAR_NOT, '1' as u32),
                e(CHAR_RNG_UPPER, '3' as u32),
                e(END, 0),
            ]
        );
    }

    #[test]
    fn repetitions_rewrite_as_llama_cpp() {
        use ty::*;
        // `root ::= "a"{2,4}`: a a S'(2), S'(2) ::= a S'(1) |, S'(1) ::= a |.
        let (rules, _) = parse("root ::= \"a\"{2,4}").unwrap();
        let a = 'a' as u32;
        assert_eq!(
            rules[0],
            [e(CHAR, a), e(CHAR, a), e(RULE_REF, 2), e(END, 0)]
        );
        assert_eq!(rules[1], [e(CHAR, a), e(ALT, 0), e(END, 0)]);
        assert_eq!(rules[2], [e(CHAR, a), e(RULE_REF, 1), e(ALT, 0), e(END, 0)]);
        // `x*`: S' ::= x S' |.
        let (rules, _) = parse("root ::= [x]*").unwrap();
        let x = 'x' as u32;
        assert_eq!(rules[0], [e(RULE_REF, 1), e(END, 0)]);
        assert_eq!(rules[1], [e(CHAR, x), e(RULE_REF, 1), e(ALT, 0), e(END, 0)]);
        // `x+`: x S'.
        let (rules, _) = parse("root ::= \"x\"+").unwrap();
        assert_eq!(rules[0], [e(CHAR, x), e(RULE_REF, 1), e(END, 0)]);
        // `x?`: S' ::= x |.
        let (rules, _) = parse("root ::= \"x\"?").unwrap();
        assert_eq!(rules[0], [e(RULE_REF, 1), e(END, 0)]);
        assert_eq!(rules[1], [e(CHAR, x), e(ALT, 0), e(END, 0)]);
        // A group and a reference defined later.
        let (rules, root) = parse("root ::= (b \"c\")* \nb ::= \"b\"").unwrap();
        assert_eq!(root, 0);
        assert_eq!(rules[0], [e(RULE_REF, 3), e(END, 0)]);
        assert_eq!(rules[1], [e(RULE_REF, 2), e(CHAR, 'c' as u32), e(END, 0)]);
        assert_eq!(rules[2], [e(CHAR, 'b' as u32), e(END, 0)]);
        assert_eq!(
            rules[3],
            [e(RULE_REF, 1), e(RULE_REF, 3), e(ALT, 0), e(END, 0)]
        );
    }

    #[test]
    // Miri isolates the file system; the parser itself runs under Miri in
    // the other tests.
    #[cfg_attr(miri, ignore)]
    fn llama_cpp_grammars_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/grammars");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().and_then(|e| e.to_str()) != Some("gbnf") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let (rules, root) = parse(&text).unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
            assert!(rules.len() > (root as usize));
            n += 1;
        }
        assert!(n >= 8, "{n} grammars");
    }

    #[test]
    fn bad_grammars_get_a_status_and_an_offset() {
        let cases: &[(&str, Error, usize)] = &[
            ("root ::= \"a", Error::GrammarSyntax, 11),
            ("root ::= [a", Error::GrammarSyntax, 11),
            ("root ::= (\"a\"", Error::GrammarSyntax, 13),
            ("root := \"a\"", Error::GrammarSyntax, 5),
            ("root ::= \"\\q\"", Error::GrammarSyntax, 10),
            ("root ::= \"\\x4\"", Error::GrammarSyntax, 12),
            ("root ::= \"a\" ]", Error::GrammarSyntax, 13),
            ("root ::= *", Error::GrammarSyntax, 9),
            ("root ::= \"a\"{x}", Error::GrammarSyntax, 13),
            ("root ::= \"a\"{1,2", Error::GrammarSyntax, 16),
            ("root ::= \"a\"\0", Error::GrammarSyntax, 12),
            ("root ::= foo", Error::GrammarUndefinedRule, 9),
            ("a ::= \"x\"", Error::GrammarUndefinedRule, 9),
            ("", Error::GrammarUndefinedRule, 0),
            ("root ::= root \"x\"", Error::GrammarLeftRecursion, 0),
            (
                "root ::= a\na ::= b \"x\" | \"y\"\nb ::= a",
                Error::GrammarLeftRecursion,
                9,
            ),
            (
                "root ::= e a\ne ::= \"\" | \"z\"\na ::= root",
                Error::GrammarLeftRecursion,
                0,
            ),
            ("root ::= \"a\"{2001}", Error::GrammarLimit, 12),
            ("root ::= <foo>", Error::GrammarSyntax, 9),
        ];
        for &(text, error, offset) in cases {
            let got = parse(text).err();
            assert_eq!(got, Some(GrammarError { error, offset }), "{text:?}");
        }
    }

    #[test]
    fn hostile_grammars_stay_within_their_limits() {
        // Miri interprets every step: the same cases, smaller where the
        // size is not what is tested.
        let (depth, rules) = if cfg!(miri) {
            (100, 200)
        } else {
            (100_000, 20_000)
        };
        // Deep nesting: a status, not a stack overflow.
        let deep = std::format!("root ::= {}\"a\"{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(
            parse(&deep).err().map(|e| e.error),
            Some(Error::GrammarLimit)
        );
        // Huge counts: llama.cpp's rules (a max past 2,000 is no max, a
        // min past it is refused).
        assert!(parse("root ::= \"a\"{0,1000000}").is_ok());
        assert_eq!(
            parse("root ::= \"a\"{1000000}").err().map(|e| e.error),
            Some(Error::GrammarLimit)
        );
        assert_eq!(
            parse("root ::= \"a\"{99999999999999999999999}")
                .err()
                .map(|e| e.error),
            Some(Error::GrammarLimit)
        );
        // Nested repetitions multiply out: refused by the threshold.
        assert_eq!(
            parse("root ::= ((\"a\"{0,50}){0,50})")
                .err()
                .map(|e| e.error),
            Some(Error::GrammarLimit)
        );
        // A long literal repeated: bounded by MAX_ELEMENTS (a million
        // elements written before the refusal: too slow under Miri).
        if !cfg!(miri) {
            let long = std::format!("root ::= \"{}\"{{2000}}", "a".repeat(10_000));
            assert_eq!(
                parse(&long).err().map(|e| e.error),
                Some(Error::GrammarLimit)
            );
        }
        // Many rules: linear (a hash table), and a long left chain checked
        // without recursion.
        let mut chain = std::string::String::from("root ::= r0\n");
        for i in 0..rules {
            chain += &std::format!("r{i} ::= r{} \"x\"\n", i + 1);
        }
        chain += &std::format!("r{rules} ::= \"y\"\n");
        assert!(parse(&chain).is_ok());
        chain += &std::format!("r{rules} ::= root\n");
        assert_eq!(
            parse(&chain).err().map(|e| e.error),
            Some(Error::GrammarLeftRecursion)
        );
    }

    #[test]
    fn init_refuses_small_and_misaligned_memory() {
        let text = b"root ::= \"a\"+";
        let n = Grammar::size(text).unwrap();
        let mut buf = std::vec![0u64; n.div_ceil(8) + 16];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let off = bytes.as_ptr().align_offset(ALIGN);
        let buf = &mut bytes[off..];
        assert_eq!(
            Grammar::init(text, &mut buf[..n - 1])
                .err()
                .map(|e| e.error),
            Some(Error::BufferTooSmall)
        );
        assert_eq!(
            Grammar::init(text, &mut buf[1..]).err().map(|e| e.error),
            Some(Error::Misaligned)
        );
        assert!(Grammar::init(text, &mut buf[..n]).is_ok());
    }
}
