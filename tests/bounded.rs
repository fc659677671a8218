//! Issue 16: every public operation costs time in proportion to its input,
//! and no output is cut short. Costs are checked by counting work where the
//! library exposes a count, never by timing (timings are in the benchmarks).
mod common;
use common::*;
use nanollama::tokenizer::{StreamDecoder, Vocab};
use nanollama::Error;

/// A vocabulary-only GGUF: `model` ("llama" SentencePiece or "gpt2" BPE),
/// its tokens (all normal) and scores.
fn vocab_file(model: &str, tokens: &[&str]) -> Vec<u8> {
    let mut b = GgufBuilder::default();
    b.kv_str("general.architecture", "llama")
        .kv_str("tokenizer.ggml.model", model)
        .kv_str_array("tokenizer.ggml.tokens", tokens);
    let n = tokens.len() as u64;
    let mut scores = vt::F32.to_le_bytes().to_vec();
    scores.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        scores.extend_from_slice(&(-(i as f32)).to_le_bytes());
    }
    b.kv_raw("tokenizer.ggml.scores", vt::ARRAY, scores);
    let mut types = vt::I32.to_le_bytes().to_vec();
    types.extend_from_slice(&n.to_le_bytes());
    for _ in 0..n {
        types.extend_from_slice(&1i32.to_le_bytes());
    }
    b.kv_raw("tokenizer.ggml.token_type", vt::ARRAY, types);
    if model == "gpt2" {
        b.kv_str("tokenizer.ggml.pre", "default")
            .kv_str_array("tokenizer.ggml.merges", &[]);
    }
    b.build()
}

fn load(bytes: &[u8]) -> (AlignedBuf, usize) {
    let size = Vocab::size(bytes).unwrap();
    (AlignedBuf::new(size), size)
}

/// A token text of 1,000 bytes comes back whole through `piece` (with
/// `BufferTooSmall` and the size needed first) and through the streaming
/// detokenizer. (Both cut pieces at 256 bytes and said OK.)
#[test]
fn pieces_of_any_length() {
    let body = "xyz".repeat(333);
    // SentencePiece writes a space as U+2581, byte-level BPE as U+0120.
    for (model, space) in [("llama", "\u{2581}"), ("gpt2", "\u{0120}")] {
        let long = format!("{space}{body}");
        let toks = ["<unk>", "<s>", "</s>", "a", long.as_str()];
        let file = vocab_file(model, &toks);
        let (mut mem, _) = load(&file);
        let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
        let want = format!(" {body}").into_bytes();
        let mut needed = 0;
        let mut small = [0u8; 256];
        assert_eq!(
            v.piece(4, false, &mut small, &mut needed),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(needed, want.len(), "{model}");
        let mut buf = vec![0u8; needed];
        let n = v.piece(4, false, &mut buf, &mut needed).unwrap();
        assert_eq!(&buf[..n], &want[..], "{model}");
        // Streaming: too small first (state unchanged), then whole.
        let mut d = StreamDecoder::new();
        assert_eq!(d.push(&v, 3, false, &mut small, &mut needed), Ok(1));
        assert_eq!(
            d.push(&v, 4, false, &mut small, &mut needed),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(needed, n);
        let mut out = vec![0u8; needed];
        assert_eq!(d.push(&v, 4, false, &mut out, &mut needed), Ok(n));
        assert_eq!(out, buf[..n]);
    }
}

/// 65,536 distinct 10-byte token strings whose FNV-1a hashes agree in their
/// low 20 bits (found by meeting in the middle: random 7-byte prefixes by
/// the state they reach, and 3-byte suffixes run backwards from the target
/// state). The old token table hashed with FNV-1a, so every one of these
/// landed in one slot: 9.4 s to load, every lookup a scan.
fn fnv_flood() -> Vec<String> {
    const P: u32 = 0x0100_0193;
    const MASK: u32 = (1 << 20) - 1;
    let alpha: Vec<u8> = (b'a'..=b'z')
        .chain(b'A'..=b'Z')
        .chain(b'0'..=b'9')
        .collect();
    let step = |h: u32, b: u8| (h ^ b as u32).wrapping_mul(P);
    let mut inv = P;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(P.wrapping_mul(inv)));
    }
    let mut by_state: Vec<Option<[u8; 7]>> = vec![None; 1 << 20];
    let mut rng = Rng::new(16);
    for _ in 0..(1 << 21) {
        let p: [u8; 7] = core::array::from_fn(|_| alpha[(rng.next_u64() % 62) as usize]);
        let h = p.iter().fold(0x811C_9DC5u32, |h, &b| step(h, b));
        by_state[(h & MASK) as usize] = Some(p);
    }
    let target = 0x5_5555 & MASK;
    let mut out = Vec::new();
    'all: for &a in &alpha {
        for &b in &alpha {
            for &c in &alpha {
                // Back through c, b, a: the state the prefix must reach.
                let mut h = target;
                for x in [c, b, a] {
                    h = (h.wrapping_mul(inv) ^ x as u32) & MASK;
                }
                if let Some(p) = by_state[h as usize] {
                    let mut s = p.to_vec();
                    s.extend_from_slice(&[a, b, c]);
                    out.push(String::from_utf8(s).unwrap());
                    if out.len() == 1 << 16 {
                        break 'all;
                    }
                }
            }
        }
    }
    assert_eq!(out.len(), 1 << 16);
    // They are the attack: FNV-1a's low 20 bits are all the target.
    for s in &out {
        let h = s.bytes().fold(0x811C_9DC5u32, step);
        assert_eq!(h & MASK, target);
    }
    out
}

/// The flood loads with short probe sequences (the table is keyed by a
/// digest of the strings), and every string is found.
#[test]
fn a_hash_flood_vocabulary_loads_in_linear_time() {
    let flood = fnv_flood();
    let mut toks: Vec<&str> = vec!["<unk>", "<s>", "</s>"];
    toks.extend(flood.iter().map(String::as_str));
    let file = vocab_file("llama", &toks);
    let (mut mem, _) = load(&file);
    let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
    assert!(v.max_probe() <= 64, "probe {}", v.max_probe());
    for (i, s) in toks.iter().enumerate() {
        assert_eq!(v.lookup(s.as_bytes()), Some(i as u32));
    }
    assert_eq!(v.lookup(b"not-a-token"), None);
}

/// Every shipped vocabulary's table keeps short probe sequences too (the
/// refusal at 256 can never meet a real file).
#[test]
fn real_vocabularies_probe_briefly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vocab");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("gguf") {
            continue;
        }
        let file = std::fs::read(&p).unwrap();
        let (mut mem, _) = load(&file);
        let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
        println!(
            "{}: {} tokens, longest probe {}",
            p.display(),
            v.n_vocab(),
            v.max_probe()
        );
        assert!(v.max_probe() <= 64, "{}: {}", p.display(), v.max_probe());
        seen += 1;
    }
    assert!(seen >= 9, "{seen} vocabularies");
}

/// A vocabulary-only GGUF with token types (1 normal, 3 control).
fn typed_vocab(model: &str, tokens: &[String], types: &[i32]) -> Vec<u8> {
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut file = vocab_file(model, &refs);
    // Replace the all-normal types written by vocab_file.
    let mut t = vt::I32.to_le_bytes().to_vec();
    t.extend_from_slice(&(types.len() as u64).to_le_bytes());
    let mut want = t.clone();
    for _ in types {
        want.extend_from_slice(&1i32.to_le_bytes());
    }
    for &x in types {
        t.extend_from_slice(&x.to_le_bytes());
    }
    let at = file
        .windows(want.len())
        .position(|w| w == want)
        .expect("types array");
    file[at..at + t.len()].copy_from_slice(&t);
    file
}

/// llama.cpp's special-token cut, as it is written there: each token,
/// longest first (ties by id), at every place left to right where it fits
/// between the tokens already cut. Returns (place, id) of the cuts.
fn cut_naive(text: &[u8], specials: &[(u32, &[u8])]) -> Vec<(usize, u32)> {
    let mut order: Vec<&(u32, &[u8])> = specials.iter().collect();
    order.sort_by_key(|(id, t)| (std::cmp::Reverse(t.len()), *id));
    let mut taken = vec![false; text.len()];
    let mut cuts = Vec::new();
    for (id, t) in order {
        let mut p = 0;
        while p + t.len() <= text.len() {
            if &text[p..p + t.len()] == *t && !taken[p..p + t.len()].iter().any(|&x| x) {
                taken[p..p + t.len()].iter_mut().for_each(|x| *x = true);
                cuts.push((p, *id));
                p += t.len();
            } else {
                p += 1;
            }
        }
    }
    cuts.sort();
    cuts
}

/// The linear-time cut gives llama.cpp's cuts on texts and token sets made
/// to overlap every way (nested, equal lengths crossing, repeats of one
/// text), 3,000 random cases.
#[test]
fn special_tokens_are_cut_as_llama_cpp_cuts_them() {
    let mut rng = Rng::new(5);
    for case in 0..3000 {
        let n_special = 1 + (rng.next_u64() % 12) as usize;
        // Bytes 'a'..'c' are normal tokens 3..6 (a byte-level BPE without
        // merges: every other byte is its own token).
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        tokens.extend(["a", "b", "c"].map(String::from));
        let mut types = vec![3, 3, 3, 1, 1, 1];
        for _ in 0..n_special {
            let len = 1 + (rng.next_u64() % 4) as usize;
            let s: String = (0..len)
                .map(|_| (b'a' + (rng.next_u64() % 3) as u8) as char)
                .collect();
            tokens.push(s);
            types.push(3);
        }
        let file = typed_vocab("gpt2", &tokens, &types);
        let (mut mem, _) = load(&file);
        let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
        let len = (rng.next_u64() % 40) as usize;
        let text: Vec<u8> = (0..len)
            .map(|_| b'a' + (rng.next_u64() % 3) as u8)
            .collect();
        let specials: Vec<(u32, &[u8])> = (6..tokens.len())
            .map(|i| (i as u32, tokens[i].as_bytes()))
            .collect();
        let cuts = cut_naive(&text, &specials);
        // The ids llama.cpp would give: the cuts, and one token per other
        // byte.
        let mut want = Vec::new();
        let mut p = 0;
        let mut c = cuts.iter().peekable();
        while p < text.len() {
            if let Some(&&(at, id)) = c.peek() {
                if at == p {
                    want.push(id);
                    p += tokens[id as usize].len();
                    c.next();
                    continue;
                }
            }
            want.push(3 + (text[p] - b'a') as u32);
            p += 1;
        }
        let ids = tokenize_with(&v, &text, false, true);
        assert_eq!(
            &ids[..],
            &want[..],
            "case {case}: text {:?} specials {:?}",
            String::from_utf8_lossy(&text),
            &tokens[6..]
        );
    }
}

/// 65,536 control tokens that start like the text (the old cut compared
/// every one at every place: 45 s for 100 KB here) and a 100 KB text: the
/// cut finds nothing to cut and every byte is its own token. (Minutes on
/// the old code, so a regression shows as a hang here; the benchmark
/// figures are in the closing note.)
#[test]
fn a_special_token_flood_costs_one_pass_per_length() {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "a"].map(String::from).to_vec();
    let mut types = vec![2, 3, 3, 1];
    for i in 0..1 << 16 {
        tokens.push(format!("aa{i:05}"));
        types.push(3);
    }
    let file = typed_vocab("gpt2", &tokens, &types);
    let (mut mem, _) = load(&file);
    let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
    let text = vec![b'a'; 100_000];
    let ids = tokenize_with(&v, &text, false, true);
    assert_eq!(ids.len(), text.len());
    assert!(ids.iter().all(|&t| t == 3));
}
