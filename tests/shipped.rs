//! The shipped model (models/kjv-llama.gguf) against llama.cpp: from each
//! prompt in tests/data/greedy/ (written by `python3 tools/compare_greedy.py
//! --write` with llama.cpp's greedy choices), the library must tokenize the
//! prompt to llama.cpp's ids and then pick llama.cpp's 200 greedy tokens, one
//! decode per token, with the default context settings (F16 KV cache, inputs
//! converted as llama.cpp converts them), inline and on a thread pool.
mod common;
use common::AlignedBuf;
use nanollama::host::ThreadPool;
use nanollama::tokenizer::Vocab;
use nanollama::{Context, ContextParams, Inline, Model, Parallel};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Case {
    prompt: String,
    prompt_ids: Vec<u32>,
    greedy: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let dir = root().join("tests/data/greedy");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/greedy")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ids"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", p.display());
        let ids = |l: &str| l.split_whitespace().map(|t| t.parse().unwrap()).collect();
        out.push(Case {
            prompt: lines[0].to_string(),
            prompt_ids: ids(lines[1]),
            greedy: ids(lines[2]),
        });
    }
    assert!(out.len() >= 4, "too few greedy fixtures");
    out
}

fn greedy(model: &Model<'_>, prompt: &[u32], n: usize, par: &dyn Parallel) -> Vec<u32> {
    let p = ContextParams::default();
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    ctx.decode(prompt, par).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let l = ctx.last_logits();
        let t = (0..l.len()).fold(0, |b, i| if l[i] > l[b] { i } else { b }) as u32;
        out.push(t);
        if ctx.pos() == ctx.n_ctx() {
            break;
        }
        ctx.decode(&[t], par).unwrap();
    }
    out
}

#[test]
fn greedy_text_matches_llama_cpp_token_for_token() {
    common::kernels_from_env();
    let bytes = std::fs::read(root().join("models/kjv-llama.gguf")).unwrap();
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let mut vm = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let vocab = Vocab::init(&bytes, vm.as_mut_slice()).unwrap();
    let pool = ThreadPool::new(2);
    for (i, case) in cases().iter().enumerate() {
        let ids = common::tokenize(&vocab, &case.prompt);
        assert_eq!(ids, case.prompt_ids, "{:?}", case.prompt);
        assert!(case.greedy.len() >= 200, "{:?}", case.prompt);
        let par: &dyn Parallel = if i % 2 == 0 { &Inline } else { &pool };
        let ours = greedy(&model, &case.prompt_ids, case.greedy.len(), par);
        let same = ours
            .iter()
            .zip(&case.greedy)
            .take_while(|(a, b)| a == b)
            .count();
        assert_eq!(
            ours, case.greedy,
            "{:?}: identical for the first {same} tokens only",
            case.prompt
        );
    }
}
