//! Chat templates on arbitrary input: any bytes as the template string (or
//! a built-in name), any roles and contents. The renderer never writes
//! past the buffer, reports the full length when the buffer is short,
//! renders the same bytes again into a buffer of exactly that length, and
//! the C ABI renders what the Rust API does. Detection is a pure function
//! of the bytes, and a detected kind with a name is that name's kind.
//!
//! Input: byte 0 flags (bit 0 add_assistant, bit 1 a built-in name chosen
//! by byte 1 instead of a template string, bits 2.. the buffer length
//! asked for), then NUL-separated fields: the template string (when not a
//! name), then role, content, role, content, ...
#![no_main]
use core::ffi::c_char;
use libfuzzer_sys::fuzz_target;
use nanollama::chat::{apply_template, detect, Message, Template, BUILTIN};
use nanollama::ffi::{nanollama_chat_apply_template, nanollama_chat_message, NANOLLAMA_STATUS_OK};
use nanollama::Error;
use std::ffi::CString;

const GUARD: usize = 32;

fuzz_target!(|data: &[u8]| {
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let add = flags & 1 != 0;
    let (tmpl, rest): (&[u8], &[u8]) = if flags & 2 != 0 {
        let (&i, rest) = rest.split_first().unwrap_or((&0, &[]));
        (BUILTIN[i as usize % BUILTIN.len()].0.to_bytes(), rest)
    } else {
        let mut it = rest.splitn(2, |&b| b == 0);
        (it.next().unwrap_or(&[]), it.next().unwrap_or(&[]))
    };
    let fields: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0).take(128).collect()
    };
    let msgs: Vec<Message<'_>> = fields
        .chunks(2)
        .map(|c| Message {
            role: c[0],
            content: c.get(1).copied().unwrap_or(&[]),
        })
        .collect();

    let kind = detect(tmpl);
    assert_eq!(kind, detect(tmpl));
    if let Some(k) = kind {
        if let Some(n) = k.name() {
            assert_eq!(Template::from_name(n.as_bytes()), Some(k));
        }
    }

    let len = (flags >> 2) as usize * 7;
    let mut buf = vec![0xA5u8; len + GUARD];
    let mut needed = usize::MAX;
    let r = apply_template(tmpl, &msgs, add, &mut buf[..len], &mut needed);
    assert!(
        buf[len..].iter().all(|&b| b == 0xA5),
        "wrote past the buffer"
    );
    let full = match r {
        Err(Error::UnsupportedTemplate) => {
            assert!(kind.is_none());
            assert_eq!(needed, usize::MAX, "needed set on refusal");
            return;
        }
        Ok(n) => {
            assert!(kind.is_some());
            assert_eq!(n, needed);
            assert!(n <= len);
            buf[..n].to_vec()
        }
        Err(Error::BufferTooSmall) => {
            assert!(needed > len);
            let mut exact = vec![0u8; needed];
            let mut again = 0;
            let n = apply_template(tmpl, &msgs, add, &mut exact, &mut again).unwrap();
            assert_eq!((n, again), (needed, needed));
            exact
        }
        Err(e) => panic!("unexpected {e:?}"),
    };
    // Deterministic: a second rendering is the same bytes.
    let mut again = vec![0u8; full.len()];
    let mut n2 = 0;
    apply_template(tmpl, &msgs, add, &mut again, &mut n2).unwrap();
    assert_eq!(again, full);

    // The C ABI over the same messages (fields hold no NUL).
    let c: Vec<(CString, CString)> = msgs
        .iter()
        .map(|m| {
            (
                CString::new(m.role).unwrap(),
                CString::new(m.content).unwrap(),
            )
        })
        .collect();
    let cm: Vec<nanollama_chat_message> = c
        .iter()
        .map(|(r, t)| nanollama_chat_message {
            role: r.as_ptr(),
            content: t.as_ptr(),
        })
        .collect();
    let mut out = vec![0u8; full.len() + GUARD];
    let mut out_len = 0;
    // SAFETY: every pointer is valid for the length passed with it; the
    // strings are NUL-terminated and outlive the call.
    let s = unsafe {
        nanollama_chat_apply_template(
            tmpl.as_ptr() as *const c_char,
            tmpl.len(),
            cm.as_ptr(),
            cm.len(),
            add,
            out.as_mut_ptr() as *mut c_char,
            full.len(),
            &mut out_len,
        )
    };
    assert_eq!(s, NANOLLAMA_STATUS_OK);
    assert_eq!(&out[..out_len], &full[..]);
    assert!(out[full.len()..].iter().all(|&b| b == 0));
});
