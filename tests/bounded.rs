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

fn hostile_vocab(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/data/hostile/vocab/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// `tests/data/hostile/vocab/flood-fnv.gguf` (tools/make_flood.py): 65,536
/// distinct 10-byte tokens whose FNV-1a hashes agree in their low 20 bits.
/// The old token table hashed with FNV-1a, so every one landed in one slot:
/// 9.4 s to load, every lookup a scan. It loads with short probe sequences
/// (the table is keyed by a digest of the strings), and every string is
/// found.
#[test]
fn a_hash_flood_vocabulary_loads_in_linear_time() {
    let file = hostile_vocab("flood-fnv.gguf");
    let (mut mem, _) = load(&file);
    let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
    assert_eq!(v.n_vocab(), 5 + (1 << 16));
    // The file is the attack: FNV-1a's low 20 bits are one value for all.
    let fnv = |s: &[u8]| {
        s.iter().fold(0x811C_9DC5u32, |h, &b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        }) & ((1 << 20) - 1)
    };
    let target = fnv(v.token_text(5));
    for id in 5..v.n_vocab() as u32 {
        assert_eq!(v.token_text(id).len(), 10);
        assert_eq!(fnv(v.token_text(id)), target, "token {id}");
    }
    assert!(v.max_probe() <= 64, "probe {}", v.max_probe());
    for id in 0..v.n_vocab() as u32 {
        assert_eq!(v.lookup(v.token_text(id)), Some(id));
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

/// `tests/data/hostile/vocab/flood-special.gguf`: 65,536 control tokens
/// that start like the text (the old cut compared every one at every
/// place: 45 s for 100 KB here) and a 100 KB text: the cut finds nothing to
/// cut. (Minutes on the old code, so a regression shows as a hang here; the
/// unit test `a_special_token_flood_costs_linear_work` counts the work, and
/// `examples/bench_cost.rs` times it.)
#[test]
fn a_special_token_flood_costs_one_pass_per_length() {
    let file = hostile_vocab("flood-special.gguf");
    let (mut mem, _) = load(&file);
    let v = Vocab::init(&file, mem.as_mut_slice()).unwrap();
    assert_eq!(v.n_vocab(), 5 + (1 << 16));
    assert!((5..v.n_vocab() as u32).all(|id| v.token_text(id).starts_with(b"aa")));
    let text = vec![b'a'; 100_000];
    let ids = tokenize_with(&v, &text, false, true);
    // SentencePiece: the space-prefixed "a", then "a" for every other byte.
    let (lead, a) = (v.lookup("\u{2581}a".as_bytes()), v.lookup(b"a"));
    assert_eq!(ids.len(), text.len());
    assert_eq!(Some(ids[0]), lead);
    assert!(ids[1..].iter().all(|&t| Some(t) == a));
}

/// 600 tensors, so that the name check runs in passes of 256 (the names of
/// one pass against each other and against every later record): a
/// duplicate is found in one pass, across passes and in the last, partial
/// one; unique names parse.
#[test]
fn duplicate_tensor_names_are_found_in_every_pass() {
    let file = |dup: Option<(usize, usize)>| {
        let mut b = GgufBuilder::default();
        b.kv_str("general.architecture", "llama");
        for i in 0..600 {
            let name = match dup {
                Some((a, d)) if i == d => format!("blk.{a}.w"),
                _ => format!("blk.{i}.w"),
            };
            b.tensor(&name, &[8], 0, vec![0; 32]);
        }
        b.build()
    };
    assert!(nanollama::Gguf::parse(&file(None)).is_ok());
    for pair in [
        (3, 200),
        (0, 255),
        (255, 256),
        (10, 300),
        (513, 599),
        (0, 599),
    ] {
        assert_eq!(
            nanollama::Gguf::parse(&file(Some(pair))).err(),
            Some(Error::DuplicateTensor),
            "{pair:?}"
        );
    }
}
