//! LLaMA 3's pre-tokenizer, written out by hand (no regex engine):
//! `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//! ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, over code points
//! classified by the generated tables in `unicode_tables`.

use crate::unicode_tables::{ASSIGNED, LETTER, NUMBER, RUN_FLAGS, RUN_STARTS, SPACE};

/// Class flags of a code point (0 for none or out of range).
pub fn flags(cp: u32) -> u8 {
    if cp > 0x10FFFF {
        return 0;
    }
    let i = RUN_STARTS.partition_point(|&s| s <= cp);
    RUN_FLAGS.get(i.wrapping_sub(1)).copied().unwrap_or(0)
}

fn lower_ascii(c: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// End (exclusive) of the pre-token that starts at `pos` (`pos < cps.len()`).
pub fn llama3_next(cps: &[u32], pos: usize) -> usize {
    let n = cps.len();
    let get = |i: usize| if i < n { cps[i] } else { u32::MAX };
    let fl = |i: usize| if i < n { flags(cps[i]) } else { 0 };
    let is = |f: u8, m: u8| f & m != 0;
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
    if !(cpt == '\r' as u32 || cpt == '\n' as u32 || is(f, NUMBER))
        && (is(f, LETTER) || is(fl(pos + 1), LETTER))
    {
        let mut p = pos + 1;
        while is(fl(p), LETTER) {
            p += 1;
        }
        return p;
    }
    // \p{N}{1,3}
    if is(f, NUMBER) {
        let mut p = pos;
        while is(fl(p), NUMBER) && p - pos < 3 {
            p += 1;
        }
        return p;
    }
    // <space>?[^\s\p{L}\p{N}]+[\r\n]*
    let f2 = if cpt == ' ' as u32 { fl(pos + 1) } else { f };
    let other = |f: u8| !is(f, SPACE | LETTER | NUMBER) && is(f, ASSIGNED);
    if other(f2) {
        let mut p = pos + usize::from(cpt == ' ' as u32);
        while other(fl(p)) {
            p += 1;
        }
        while get(p) == '\r' as u32 || get(p) == '\n' as u32 {
            p += 1;
        }
        return p;
    }
    let mut ws = 0;
    let mut last_rn = 0;
    while is(fl(pos + ws), SPACE) {
        let c = get(pos + ws);
        if c == '\r' as u32 || c == '\n' as u32 {
            last_rn = pos + ws + 1;
        }
        ws += 1;
    }
    // \s*[\r\n]+
    if last_rn > 0 {
        return last_rn;
    }
    // \s+(?!\S)
    if ws > 1 && get(pos + ws) != u32::MAX {
        return pos + ws - 1;
    }
    // \s+
    if ws > 0 {
        return pos + ws;
    }
    pos + 1
}
