//! The hostile-file suite: every file in `tests/data/hostile/` (made by
//! `tools/make_hostile.py` from `valid.gguf`, each telling one lie) is refused
//! with the status `expected.tsv` names, through the Rust API (`Gguf::parse`,
//! `Model::size`, `Model::init`, `Vocab::size`) and through `nanollama
//! info` (exit code 1 and that status's message, never a signal).
mod common;
use common::*;
use nanollama::tokenizer::Vocab;
use nanollama::{Error, Gguf, Model};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile")
}

/// (file, expected status or None for the valid file, the lie).
fn manifest() -> Vec<(String, Option<Error>, String)> {
    let text = std::fs::read_to_string(dir().join("expected.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad manifest line {l:?}");
            let want = match f[1] {
                "Ok" => None,
                s => Some(
                    *Error::ALL
                        .iter()
                        .find(|e| format!("{e:?}") == s)
                        .unwrap_or_else(|| panic!("{}: no status {s}", f[0])),
                ),
            };
            (f[0].to_string(), want, f[2].to_string())
        })
        .collect()
}

/// The first refusal of the model loader, and that each later call repeats
/// an earlier call's refusal (nothing is accepted after a refusal).
fn load(bytes: &[u8]) -> Result<(), Error> {
    let parse = Gguf::parse(bytes).map(|_| ());
    let size = Model::size(bytes);
    let mut mem = AlignedBuf::new(*size.as_ref().unwrap_or(&4096));
    let init = Model::init(bytes, mem.as_mut_slice()).map(|_| ());
    if let Err(e) = parse {
        assert_eq!(size, Err(e));
        assert_eq!(init, Err(e));
    }
    if let Err(e) = size {
        assert_eq!(init, Err(e));
    }
    init
}

#[test]
fn every_hostile_file_is_refused_with_its_status() {
    let cases = manifest();
    // The manifest and the directory agree: no file is left unchecked.
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    let listed: BTreeSet<String> = cases.iter().map(|c| c.0.clone()).collect();
    assert_eq!(on_disk, listed);
    assert!(cases.len() > 40, "{} files", cases.len());
    assert_eq!(cases[0].1, None, "the first entry is the valid file");

    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for (file, want, lie) in &cases {
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let got = load(&bytes);
        if got != want.map_or(Ok(()), Err) {
            wrong.push(format!("{file} ({lie}): want {want:?}, got {got:?}"));
        }
        // The tokenizer reads the same header: it must not accept what the
        // parser refuses, nor panic on any of it.
        if let Some(Err(e)) = want.map(|_| Gguf::parse(&bytes)) {
            assert_eq!(Vocab::size(&bytes), Err(e), "{file}: tokenizer");
        }
        if let Some(e) = want {
            seen.insert(format!("{e:?}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    println!("{} hostile files, statuses: {seen:?}", cases.len() - 1);
    // Every load-time status (GGUF_TRUNCATED to DUPLICATE_TENSOR, and
    // TENSOR_OVERLAP to UNEXPECTED_TENSOR: what the engine does not
    // compute) is exercised by some file.
    let load_time = |e: &&Error| {
        (Error::Truncated as u32..=Error::DuplicateTensor as u32).contains(&(**e as u32))
            || (Error::TensorOverlap as u32..=Error::UnsupportedHyperparameter as u32)
                .contains(&(**e as u32))
    };
    for e in Error::ALL.iter().filter(load_time) {
        assert!(seen.contains(&format!("{e:?}")), "no file gives {e:?}");
    }
}

#[test]
fn nanollama_info_refuses_every_hostile_file_with_a_message() {
    let exe = cli_exe();
    let mut wrong = Vec::new();
    for (file, want, lie) in manifest() {
        let path = dir().join(&file);
        let o = Command::new(&exe).arg("info").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let ok = match want {
            None => o.status.code() == Some(0) && err.is_empty(),
            // Exited (not killed by a signal) with 1 and one line naming the
            // file and the status's message.
            Some(e) => {
                o.status.code() == Some(1)
                    && err.lines().count() == 1
                    && err.starts_with("nanollama: ")
                    && err.contains(&file)
                    && err.trim_end().ends_with(e.message())
            }
        };
        if !ok {
            wrong.push(format!("{file} ({lie}): {:?} {err:?}", o.status));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
