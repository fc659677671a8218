//! Issue 20: the grammar stage. Its fast path (a walk of the vocabulary's
//! trie, kept sets for recurring stacks) must give exactly the tokens the
//! one-token-at-a-time check gives, on real vocabularies and llama.cpp's
//! grammars; the sampler must only ever draw allowed tokens; and the state
//! must survive a save and load.
mod common;
use common::*;
use nanollama::grammar::{Grammar, GrammarParams, GrammarStage, TokenTrie};
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::Vocab;
use nanollama::{Error, Sampler, SamplerParams};

fn data(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

/// Leaked objects for a test: a vocabulary and its trie.
fn vocab(name: &str) -> (&'static Vocab<'static>, &'static TokenTrie<'static>) {
    let bytes: &'static [u8] = std::fs::read(data(&format!("vocab/ggml-vocab-{name}.gguf")))
        .unwrap()
        .leak();
    let mem = AlignedBuf::new(Vocab::size(bytes).unwrap()).leak();
    let v: &'static Vocab<'static> = Box::leak(Box::new(Vocab::init(bytes, mem).unwrap()));
    let mem = AlignedBuf::new(TokenTrie::size(v).unwrap()).leak();
    let t = Box::leak(Box::new(TokenTrie::init(v, mem).unwrap()));
    (v, t)
}

fn grammar(text: &str) -> &'static Grammar<'static> {
    let mem = AlignedBuf::new(Grammar::size(text.as_bytes()).unwrap()).leak();
    Box::leak(Box::new(Grammar::init(text.as_bytes(), mem).unwrap()))
}

fn stage(
    g: &'static Grammar<'static>,
    t: &'static TokenTrie<'static>,
    p: &GrammarParams,
) -> GrammarStage<'static> {
    let mem = AlignedBuf::new(GrammarStage::size(t, p).unwrap()).leak();
    GrammarStage::init(g, t, p, mem).unwrap()
}

fn grammars() -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(data("grammars"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gbnf"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 8, "llama.cpp's eight grammars");
    v
}

fn bit(mask: &[u64], id: u32) -> bool {
    mask[id as usize >> 6] >> (id & 63) & 1 == 1
}

/// Walks `steps` seeded steps of each grammar on `name`'s vocabulary; at
/// every step the fast mask (with kept sets, and without) equals the
/// token-by-token check over the whole vocabulary. Returns the steps run.
fn fast_equals_slow(name: &str, steps: usize) -> usize {
    let (_, t) = vocab(name);
    let mut total = 0;
    for (gname, text) in grammars() {
        let g = grammar(&text);
        let mut fast = stage(g, t, &GrammarParams::default());
        let no_cache = GrammarParams {
            cache_entries: 0,
            ..GrammarParams::default()
        };
        let mut plain = stage(g, t, &no_cache);
        let mut slow = stage(g, t, &no_cache);
        let mut rng = Rng::new(gname.len() as u64 * 7919 + steps as u64);
        for step in 0..steps {
            let m = fast.allowed().unwrap().to_vec();
            let m2 = plain.allowed().unwrap().to_vec();
            assert_eq!(
                m, m2,
                "{name} {gname} step {step}: kept sets differ from walking"
            );
            let mut allowed = Vec::new();
            for id in 0..t.n_vocab() as u32 {
                let a = slow.allows(id).unwrap();
                assert_eq!(
                    bit(&m, id),
                    a,
                    "{name} {gname} step {step}: token {id} {:?}",
                    String::from_utf8_lossy(t.piece(id))
                );
                if a {
                    allowed.push(id);
                }
            }
            total += 1;
            if allowed.is_empty() {
                break;
            }
            // Short tokens more often: outputs that end within the steps.
            let pick = |r: &mut Rng| allowed[(r.next_u64() % allowed.len() as u64) as usize];
            let mut id = pick(&mut rng);
            for _ in 0..3 {
                let c = pick(&mut rng);
                if t.piece(c).len() < t.piece(id).len() {
                    id = c;
                }
            }
            if t.is_eog(id) {
                assert!(fast.can_end());
                break;
            }
            for s in [&mut fast, &mut plain, &mut slow] {
                s.accept(id).unwrap();
            }
        }
    }
    total
}

#[test]
fn trie_walk_equals_token_by_token_llama3() {
    let n = fast_equals_slow("llama-bpe", 25);
    assert!(n >= 8 * 5, "{n} steps");
}

#[test]
fn trie_walk_equals_token_by_token_spm() {
    // SentencePiece: byte tokens (<0xE2> alone) make partial UTF-8 common.
    let n = fast_equals_slow("llama-spm", 25);
    assert!(n >= 8 * 5, "{n} steps");
}

#[test]
fn the_trie_holds_every_token_once() {
    let (v, t) = vocab("llama-bpe");
    assert_eq!(t.n_vocab(), v.n_vocab());
    // Every token but the end-of-generation ones has its piece (special
    // tokens written out, as llama.cpp's grammar reads them) cut at NUL.
    let mut buf = vec![0u8; 1 << 12];
    for id in 0..v.n_vocab() as u32 {
        let mut need = 0;
        let n = v.piece(id, true, &mut buf, &mut need).unwrap();
        let p = &buf[..n];
        let p = &p[..p.iter().position(|&b| b == 0).unwrap_or(n)];
        let want: &[u8] = if v.is_eog(id) { &[] } else { p };
        assert_eq!(t.piece(id), want, "{id}");
        assert_eq!(t.is_eog(id), v.is_eog(id), "{id}");
    }
    assert!(t.n_nodes() < 2 * v.n_vocab() * 4, "{} nodes", t.n_nodes());
}

/// The sampler with a JSON grammar: every drawn token allowed, the text
/// parses as JSON once the grammar can end, and a saved state continues
/// exactly.
#[test]
fn sampler_draws_only_what_the_grammar_allows() {
    let (v, t) = vocab("llama-bpe");
    let g = grammar(include_str!("data/grammars/json.gbnf"));
    for check_first in [false, true] {
        let gp = GrammarParams {
            check_first,
            ..GrammarParams::default()
        };
        let sp = SamplerParams {
            seed: 42,
            ..SamplerParams::default()
        };
        let n = v.n_vocab();
        let mk = || {
            let mem = AlignedBuf::new(Sampler::size(n, &sp, 0).unwrap()).leak();
            let mut s = Sampler::init(n, &sp, &[], mem).unwrap();
            assert!(matches!(s.set_grammar(Some(stage(g, t, &gp))), Ok(None)));
            s
        };
        let mut s = mk();
        let mut rng = Rng::new(3);
        let mut text = Vec::new();
        let mut saved = None;
        for step in 0..400 {
            // Logits that favour short, JSON-ish tokens and the end.
            let logits: Vec<f32> = (0..n as u32)
                .map(|id| {
                    let p = t.piece(id);
                    let json = p
                        .iter()
                        .all(|b| b"{}[]\":, 0123456789abcdeflnrstu".contains(b));
                    // Later, closing and ending win.
                    let close = step > 60 && matches!(p, b"}" | b"]" | b"\"" | b"\"}");
                    let end = if t.is_eog(id) || close { 6.0 } else { 0.0 };
                    rng.uniform() * 2.0 + if json { 4.0 } else { 0.0 } - p.len() as f32 * 0.3 + end
                })
                .collect();
            if step == 20 {
                let mut b = vec![0u8; s.state_size()];
                let k = s.save_state(&mut b).unwrap();
                saved = Some((b[..k].to_vec(), logits.clone(), text.len()));
            }
            let id = s.sample(&logits).unwrap();
            assert!(s.grammar_mut().unwrap().allows(id).unwrap(), "step {step}");
            s.accept(id).unwrap();
            if t.is_eog(id) {
                break;
            }
            text.extend_from_slice(t.piece(id));
        }
        let json = String::from_utf8(text.clone()).unwrap();
        assert!(s.grammar().unwrap().can_end(), "{json}");
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
            panic!("not JSON ({e}): {json}");
        }
        // Load the state of step 20 into a fresh sampler: the same next token.
        let (state, logits, at) = saved.unwrap();
        let mut s2 = mk();
        s2.load_state(&state).unwrap();
        let id = s2.sample(&logits).unwrap();
        assert_eq!(t.piece(id), &text[at..at + t.piece(id).len()], "{json}");
        // A state without the grammar's section is refused, unchanged.
        let mem = AlignedBuf::new(Sampler::size(n, &sp, 0).unwrap()).leak();
        let mut plain = Sampler::init(n, &sp, &[], mem).unwrap();
        assert_eq!(plain.load_state(&state), Err(Error::StateMismatch));
    }
}

#[test]
fn a_refused_token_changes_nothing() {
    let (v, t) = vocab("llama-bpe");
    let g = grammar("root ::= \"{\" [a-z]+ \"}\"");
    let mut st = stage(g, t, &GrammarParams::default());
    let brace = v.lookup(b"{").unwrap();
    let x = v.lookup(b"x").unwrap();
    assert_eq!(st.accept(x), Err(Error::InvalidArgument));
    st.accept(brace).unwrap();
    assert!(!st.can_end());
    // An end-of-generation token where the grammar may not end.
    let eog = t.eog()[0];
    assert!(!st.allows(eog).unwrap());
    assert_eq!(st.accept(eog), Err(Error::InvalidArgument));
    st.accept(x).unwrap();
    assert_eq!(st.accept(brace), Err(Error::InvalidArgument));
    st.accept(v.lookup(b"}").unwrap()).unwrap();
    assert!(st.can_end() && st.allows(eog).unwrap());
    let m = st.allowed().unwrap();
    let n: u32 = m.iter().map(|w| w.count_ones()).sum();
    assert_eq!(n as usize, t.eog().len());
    assert_eq!(st.allows(v.n_vocab() as u32), Err(Error::TokenOutOfRange));
}
