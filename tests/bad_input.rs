//! Every kind of bad input gets its own error through the Rust API, never a
//! panic, and a failed call changes nothing.
mod common;
use common::*;
use nanollama::gguf::Gguf;
use nanollama::{Context, ContextParams, Error, Inline, KvType, Model};

fn base() -> GgufBuilder {
    tiny_builder(&TinyConfig::default(), ty::F32, 7)
}

/// Parses and loads `bytes` as a model, returning the first error.
fn load(bytes: &[u8]) -> Result<(), Error> {
    let need = Model::size(bytes)?;
    let mut mem = AlignedBuf::new(need);
    Model::init(bytes, mem.as_mut_slice()).map(|_| ())
}

fn with_kv(key: &str, t: u32, payload: Vec<u8>) -> Vec<u8> {
    let mut b = base();
    b.kv_raw(key, t, payload);
    b.build()
}

/// Offset of the first byte after the fixed header (magic, version, counts).
const HEADER: usize = 24;

#[test]
fn valid_model_loads() {
    assert_eq!(load(&base().build()), Ok(()));
}

#[test]
fn every_truncation_is_refused_without_panic() {
    let bytes = base().build();
    let g = Gguf::parse(&bytes).unwrap();
    let data = g.data_offset();
    let mut seen = std::collections::BTreeSet::new();
    // Every cut inside the header, metadata and tensor table; a sample of
    // cuts inside the tensor data.
    let cuts = (0..data).chain((data..bytes.len()).step_by(97));
    for cut in cuts {
        let r = Gguf::parse(&bytes[..cut]).and_then(|_| load(&bytes[..cut]));
        let e = r.expect_err("a truncated file was accepted");
        let allowed = [
            Error::Truncated,
            Error::StringPastEnd,
            Error::CountTooLarge,
            Error::TensorPastEnd,
            Error::BadMagic,
        ];
        assert!(allowed.contains(&e), "cut {cut}: {e:?}");
        if cut >= data {
            assert_eq!(e, Error::TensorPastEnd, "cut {cut} inside tensor data");
        }
        if (1..4).contains(&cut) {
            assert_eq!(e, Error::Truncated, "cut {cut} inside the magic");
        }
        seen.insert(format!("{e:?}"));
    }
    assert!(seen.len() >= 3, "{seen:?}");
}

#[test]
fn bad_magic_and_versions() {
    let mut bytes = base().build();
    bytes[0] = b'X';
    assert_eq!(Gguf::parse(&bytes).err(), Some(Error::BadMagic));
    assert_eq!(Gguf::parse(b"GGML").err(), Some(Error::BadMagic));
    for v in [0u32, 1, 4, 0x0300_0000] {
        let mut b = base();
        b.version = v;
        assert_eq!(
            Gguf::parse(&b.build()).err(),
            Some(Error::UnsupportedVersion),
            "v{v}"
        );
    }
    let mut b = base();
    b.version = 2;
    assert_eq!(load(&b.build()), Ok(()));
}

#[test]
fn huge_counts() {
    let bytes = base().build();
    for (at, what) in [(8usize, "tensor count"), (16, "metadata count")] {
        for n in [u64::MAX, u64::MAX / 2, 1 << 40, 1 << 32] {
            let mut b = bytes.clone();
            b[at..at + 8].copy_from_slice(&n.to_le_bytes());
            assert_eq!(
                Gguf::parse(&b).err(),
                Some(Error::CountTooLarge),
                "{what} {n}"
            );
        }
    }
    // An array whose count cannot fit: u32 elements, and strings.
    for elem in [vt::U32, vt::STRING, vt::U8] {
        let mut p = elem.to_le_bytes().to_vec();
        p.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let f = with_kv("x.array", vt::ARRAY, p);
        assert_eq!(Gguf::parse(&f).err(), Some(Error::CountTooLarge));
    }
}

#[test]
fn string_lengths_past_the_end() {
    // A value string.
    let mut p = (u64::MAX - 3).to_le_bytes().to_vec();
    p.extend_from_slice(b"abc");
    let f = with_kv("x.s", vt::STRING, p);
    assert_eq!(Gguf::parse(&f).err(), Some(Error::StringPastEnd));
    // A key string: the first key's length is right after the header.
    let mut f = base().build();
    f[HEADER..HEADER + 8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert_eq!(Gguf::parse(&f).err(), Some(Error::StringPastEnd));
    // A tensor name.
    let mut b = base();
    b.tensors[0].name = "x".repeat(10);
    let good = b.build();
    let pos = good
        .windows(10)
        .position(|w| w == "x".repeat(10).as_bytes())
        .unwrap();
    let mut f = good.clone();
    f[pos - 8..pos].copy_from_slice(&(good.len() as u64).to_le_bytes());
    assert_eq!(Gguf::parse(&f).err(), Some(Error::StringPastEnd));
}

#[test]
fn tensor_offsets_and_sizes_past_the_end() {
    let b = base();
    let last = b.tensors.len() - 1;
    let f = b.build_with(|i, off| if i == last { off + (1 << 20) } else { off });
    assert_eq!(Gguf::parse(&f).err(), Some(Error::TensorPastEnd));
    let f = b.build_with(|i, off| if i == 0 { u64::MAX - 31 } else { off });
    assert_eq!(Gguf::parse(&f).err(), Some(Error::TensorPastEnd));
    // Size past the end: a dimension larger than the data written.
    let mut b2 = base();
    let n = b2.tensors.len() - 1;
    b2.tensors[n].dims[1] *= 1000;
    assert_eq!(Gguf::parse(&b2.build()).err(), Some(Error::TensorPastEnd));
}

#[test]
fn bad_dimensions() {
    for dims in [
        vec![1u64 << 33, 1 << 33],
        vec![u64::MAX, 2],
        vec![0, 64],
        vec![64, 0],
        vec![1 << 62, 1],
    ] {
        let mut b = base();
        b.tensors[0].dims = dims.clone();
        assert_eq!(
            Gguf::parse(&b.build()).err(),
            Some(Error::BadDimensions),
            "{dims:?}"
        );
    }
    for nd in [0usize, 5] {
        let mut b = base();
        b.tensors[0].dims = vec![1; nd];
        assert_eq!(
            Gguf::parse(&b.build()).err(),
            Some(Error::BadDimensions),
            "n_dims {nd}"
        );
    }
    // Q8_0 rows must be whole blocks of 32.
    let mut b = base();
    b.tensors[0].ty = ty::Q8_0;
    b.tensors[0].dims = vec![40, 2];
    assert_eq!(Gguf::parse(&b.build()).err(), Some(Error::BadDimensions));
}

#[test]
fn misaligned_data_and_bad_alignment() {
    let b = base();
    let f = b.build_with(|i, off| if i == 1 { off + 4 } else { off });
    assert_eq!(Gguf::parse(&f).err(), Some(Error::DataMisaligned));
    for a in [0u32, 3, 48] {
        let f = with_kv("general.alignment", vt::U32, a.to_le_bytes().to_vec());
        assert_eq!(
            Gguf::parse(&f).err(),
            Some(Error::DataMisaligned),
            "alignment {a}"
        );
    }
    let f = with_kv("general.alignment", vt::U64, 32u64.to_le_bytes().to_vec());
    assert_eq!(Gguf::parse(&f).err(), Some(Error::BadMetadata));
    // A valid non-default alignment loads.
    let mut b = base();
    b.alignment = 64;
    b.kv_u32("general.alignment", 64);
    assert_eq!(load(&b.build()), Ok(()));
}

#[test]
fn unknown_types() {
    let f = with_kv("x.y", 13, vec![0; 8]);
    assert_eq!(Gguf::parse(&f).err(), Some(Error::UnknownType));
    let mut p = 99u32.to_le_bytes().to_vec();
    p.extend_from_slice(&0u64.to_le_bytes());
    let f = with_kv("x.y", vt::ARRAY, p);
    assert_eq!(Gguf::parse(&f).err(), Some(Error::UnknownType));
    for t in [4u32, 5, 31, 99, u32::MAX] {
        let mut b = base();
        b.tensors[0].ty = t;
        assert_eq!(
            Gguf::parse(&b.build()).err(),
            Some(Error::UnknownType),
            "type {t}"
        );
    }
}

#[test]
fn bad_metadata_values() {
    // Nested array.
    let mut p = vt::ARRAY.to_le_bytes().to_vec();
    p.extend_from_slice(&1u64.to_le_bytes());
    p.extend_from_slice(&vt::U8.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    assert_eq!(
        Gguf::parse(&with_kv("x.n", vt::ARRAY, p)).err(),
        Some(Error::BadMetadata)
    );
    // A bool of 2.
    assert_eq!(
        Gguf::parse(&with_kv("x.b", vt::BOOL, vec![2])).err(),
        Some(Error::BadMetadata)
    );
    // A required key of the wrong type.
    let f = with_kv("llama.block_count", vt::STRING, gguf_string(b"2"));
    assert_eq!(load(&f), Err(Error::BadMetadata));
    let f = with_kv(
        "llama.attention.layer_norm_rms_epsilon",
        vt::U32,
        1u32.to_le_bytes().to_vec(),
    );
    assert_eq!(load(&f), Err(Error::BadMetadata));
    let f = with_kv("general.architecture", vt::U32, 1u32.to_le_bytes().to_vec());
    assert_eq!(load(&f), Err(Error::BadMetadata));
    // A key that is not UTF-8.
    let mut b = base();
    b.kvs.push((vec![0xff, 0xfe], vt::U8, vec![1]));
    assert_eq!(Gguf::parse(&b.build()).err(), Some(Error::BadMetadata));
}

#[test]
fn architecture_and_keys() {
    let mut b = base();
    b.remove_kv("general.architecture");
    assert_eq!(load(&b.build()), Err(Error::UnsupportedArchitecture));
    let mut b = base();
    b.kv_str("general.architecture", "gpt2");
    assert_eq!(load(&b.build()), Err(Error::UnsupportedArchitecture));
    for key in [
        "llama.embedding_length",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.context_length",
    ] {
        let mut b = base();
        b.remove_kv(key);
        assert_eq!(load(&b.build()), Err(Error::MissingKey), "{key}");
    }
    // Optional keys fall back to their defaults.
    for key in [
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.rope.dimension_count",
    ] {
        let mut b = base();
        b.remove_kv(key);
        let r = load(&b.build());
        if key.ends_with("head_count_kv") {
            // Default n_kv = n_heads: the k/v tensors then have the wrong shape.
            assert_eq!(r, Err(Error::TensorShape));
        } else {
            assert_eq!(r, Ok(()), "{key}");
        }
    }
}

#[test]
fn inconsistent_hyperparameters() {
    let cases: Vec<(&str, u32)> = vec![
        ("llama.attention.head_count", 3),    // does not divide 64
        ("llama.attention.head_count_kv", 3), // does not divide 4 heads
        ("llama.attention.head_count_kv", 0),
        ("llama.attention.head_count", 0),
        ("llama.embedding_length", 0),
        ("llama.block_count", 0),
        ("llama.feed_forward_length", 0),
        ("llama.context_length", 0),
        ("llama.rope.dimension_count", 17), // odd
        ("llama.rope.dimension_count", 32), // more than head_dim 16
        ("llama.attention.key_length", 15), // odd head
    ];
    for (key, v) in cases {
        let mut b = base();
        b.kv_u32(key, v);
        assert_eq!(
            load(&b.build()),
            Err(Error::BadHyperparameters),
            "{key} = {v}"
        );
    }
    for eps in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let mut b = base();
        b.kv_f32("llama.attention.layer_norm_rms_epsilon", eps);
        assert_eq!(
            load(&b.build()),
            Err(Error::BadHyperparameters),
            "eps {eps}"
        );
    }
    // A vocabulary that disagrees with the embedding table (100 rows).
    let mut b = base();
    let toks: Vec<String> = (0..99).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = toks.iter().map(String::as_str).collect();
    b.kv_str_array("tokenizer.ggml.tokens", &refs);
    assert_eq!(load(&b.build()), Err(Error::BadHyperparameters));
    let mut b = base();
    b.kv_u32("llama.vocab_size", 101);
    assert_eq!(load(&b.build()), Err(Error::BadHyperparameters));
}

#[test]
fn missing_wrong_and_duplicate_tensors() {
    let names: Vec<String> = base().tensors.iter().map(|t| t.name.clone()).collect();
    for name in &names {
        if name == "output.weight" {
            continue; // absent output means tied
        }
        let mut b = base();
        b.tensors.retain(|t| &t.name != name);
        assert_eq!(
            load(&b.build()),
            Err(Error::MissingTensor),
            "without {name}"
        );
    }
    // Wrong shapes: transposed, one row short, an extra dimension.
    for name in [
        "blk.0.attn_k.weight",
        "blk.1.ffn_down.weight",
        "output.weight",
        "token_embd.weight",
    ] {
        let mut b = base();
        let t = b.tensors.iter_mut().find(|t| t.name == name).unwrap();
        t.dims.swap(0, 1);
        let r = load(&b.build());
        if name == "token_embd.weight" {
            // The vocabulary comes from token_embd, so the output disagrees.
            assert!(r == Err(Error::TensorShape), "{name}: {r:?}");
        } else {
            assert_eq!(r, Err(Error::TensorShape), "{name} transposed");
        }
    }
    let mut b = base();
    let t = b
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.ffn_up.weight")
        .unwrap();
    t.dims = vec![t.dims[0], t.dims[1] / 2, 2];
    assert_eq!(load(&b.build()), Err(Error::TensorShape));
    let mut b = base();
    let dup = b
        .tensors
        .iter()
        .find(|t| t.name == "blk.1.attn_k.weight")
        .unwrap()
        .clone();
    b.tensors.push(dup);
    assert_eq!(load(&b.build()), Err(Error::DuplicateTensor));
    // An unsupported (but valid GGUF) type for a weight: Q4_0, 18 bytes per 32.
    let mut b = base();
    let t = b
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.attn_v.weight")
        .unwrap();
    let n = (t.dims[0] * t.dims[1]) as usize;
    t.ty = ty::Q4_0;
    t.data = vec![0; n / 32 * 18];
    assert_eq!(load(&b.build()), Err(Error::UnsupportedTensorType));
    // A norm stored as F16.
    let mut b = base();
    let t = b
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.1.ffn_norm.weight")
        .unwrap();
    t.ty = ty::F16;
    t.data.truncate(t.data.len() / 2);
    assert_eq!(load(&b.build()), Err(Error::UnsupportedTensorType));
}

#[test]
fn buffers_too_small_or_misaligned() {
    let bytes = base().build();
    let need = Model::size(&bytes).unwrap();
    let mut mem = AlignedBuf::new(need + 64);
    assert_eq!(
        Model::init(&bytes, &mut mem.as_mut_slice()[..need - 1]).err(),
        Some(Error::BufferTooSmall)
    );
    assert_eq!(
        Model::init(&bytes, &mut mem.as_mut_slice()[1..need + 1]).err(),
        Some(Error::Misaligned)
    );
    let mut mm = AlignedBuf::new(need);
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let p = ContextParams::default();
    let cneed = Context::size(&model, &p).unwrap();
    let mut cm = AlignedBuf::new(cneed + 64);
    assert!(matches!(
        Context::init(&model, &p, &mut cm.as_mut_slice()[..cneed - 1]),
        Err(Error::BufferTooSmall)
    ));
    assert!(matches!(
        Context::init(&model, &p, &mut cm.as_mut_slice()[8..cneed + 8]),
        Err(Error::Misaligned)
    ));
    let huge = ContextParams {
        n_ctx: u32::MAX,
        ..p
    };
    assert_eq!(Context::size(&model, &huge), Err(Error::InvalidArgument));
}

/// A context over the base model with `n_ctx` 8 and `n_batch` 4.
fn with_context(f: impl FnOnce(&mut Context<'_>, &Model<'_>)) {
    let bytes = base().build();
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let p = ContextParams {
        n_ctx: 8,
        n_batch: 4,
        kv_type: KvType::F32,
        logits_all: false,
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &p).unwrap());
    let mut ctx = Context::init(&model, &p, cm.as_mut_slice()).unwrap();
    f(&mut ctx, &model);
}

#[test]
fn bad_decodes_change_nothing() {
    let mut reference = Vec::new();
    with_context(|ctx, _| {
        for batch in [&[1u32, 2, 3][..], &[4, 5, 6, 7], &[9]] {
            ctx.decode(batch, &Inline).unwrap();
        }
        reference = ctx.logits().to_vec();
    });
    with_context(|ctx, model| {
        ctx.decode(&[1, 2, 3], &Inline).unwrap();
        ctx.decode(&[4, 5, 6, 7], &Inline).unwrap();
        let before = ctx.logits().to_vec();
        let n_vocab = model.config().n_vocab as u32;
        let bad: Vec<(Vec<u32>, Error)> = vec![
            (vec![], Error::InvalidArgument),
            (vec![4, n_vocab], Error::TokenOutOfRange),
            (vec![u32::MAX], Error::TokenOutOfRange),
            (vec![1, 2, 3, 4, 5], Error::BatchTooLarge),
            (vec![1, 2], Error::ContextFull),
        ];
        for (toks, want) in bad {
            assert_eq!(ctx.decode(&toks, &Inline), Err(want), "{toks:?}");
            assert_eq!(ctx.pos(), 7);
            assert_eq!(ctx.logits(), &before[..]);
        }
        assert_eq!(ctx.truncate(8), Err(Error::InvalidArgument));
        assert_eq!(ctx.pos(), 7);
        assert_eq!(ctx.logits(), &before[..]);
        // The failed calls left no trace in the cache either.
        ctx.decode(&[9], &Inline).unwrap();
        let after: Vec<u32> = ctx.logits().iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = reference.iter().map(|v| v.to_bits()).collect();
        assert_eq!(after, want);
    });
}
