//! GGUF parsing, model init and vocabulary init from arbitrary bytes.
//! Whatever the bytes, every call returns (no panic, no read outside them),
//! and what the parser accepted can be walked to its end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::gguf::Value;
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::Vocab;
use nanollama::{Gguf, Model};

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else {
        // Everything built on the parser refuses the same bytes.
        assert!(Model::size(data).is_err());
        assert!(Vocab::size(data).is_err());
        return;
    };
    let mut n = 0usize;
    for (k, v) in g.metadata() {
        n += k.len();
        if let Value::Array(a) = v {
            // Every element the parser counted can be read back.
            for i in 0..a.len().min(4096) {
                assert!(a.get(i).is_some());
            }
            assert!(a.get(a.len()).is_none());
        }
        let key = core::str::from_utf8(k).unwrap();
        assert!(g.get(key).is_some());
    }
    for t in g.tensors() {
        n += t.name.len();
        // Tensor data lies inside the bytes.
        assert!(t
            .offset
            .checked_add(t.size)
            .is_some_and(|e| e <= data.len()));
        assert!(t.n_elements() > 0);
    }
    std::hint::black_box(n);
    if let Ok(need) = Model::size(data) {
        let mut mem = AlignedBuf::new(need);
        if let Ok(m) = Model::init(data, mem.as_mut_slice()) {
            let info = m.info();
            std::hint::black_box((info.n_params, m.fingerprint()));
        }
        // Too small a buffer is refused, not overrun.
        if need > 0 {
            let mut small = AlignedBuf::new(need - 1);
            assert!(Model::init(data, small.as_mut_slice()).is_err());
        }
    }
    if let Ok(need) = Vocab::size(data) {
        let mut mem = AlignedBuf::new(need);
        if let Ok(v) = Vocab::init(data, mem.as_mut_slice()) {
            let mut buf = [0u8; 256];
            for id in 0..v.n_vocab().min(512) as u32 {
                let mut needed = 0;
                match v.piece(id, true, &mut buf, &mut needed) {
                    Ok(k) => assert!(k <= buf.len() && k == needed),
                    // Too small a buffer says how much is needed.
                    Err(_) => assert!(needed > buf.len()),
                }
                let t = v.token_text(id);
                if let Some(found) = v.lookup(t) {
                    assert!((found as usize) < v.n_vocab());
                }
            }
        }
    }
});
