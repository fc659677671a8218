//! Chat templates: a conversation rendered into the prompt text a model was
//! trained on, byte for byte as llama.cpp's `llama_chat_apply_template`
//! renders it.
//!
//! A template is named either by one of llama.cpp's built-in names
//! (`chatml`, `llama3`, ...: [`BUILTIN`]) or by a model's own Jinja
//! template (`tokenizer.chat_template`), which is *recognised* by the fixed
//! substrings llama.cpp looks for ([`detect`]), never interpreted. A
//! template that is not recognised is [`Error::UnsupportedTemplate`], never
//! a guess.
//!
//! Nothing allocates: the text is written into the caller's buffer, and a
//! buffer too short gets [`Error::BufferTooSmall`] with the length needed.
//! The cost is linear in the template plus the messages: detection runs a
//! bounded number of linear substring searches, and rendering touches each
//! message a bounded number of times.

use core::ffi::CStr;

use crate::error::{Error, Result};

/// One message of a conversation: any bytes (the role is usually `system`,
/// `user` or `assistant`). Text that looks like special tokens is copied
/// verbatim. (llama.cpp's messages are C strings, which end at a NUL; here
/// every byte is copied, NUL included.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub role: &'a [u8],
    pub content: &'a [u8],
}

/// The template kinds llama.cpp renders (`llm_chat_template`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    Chatml,
    Llama2,
    Llama2Sys,
    Llama2SysBos,
    Llama2SysStrip,
    MistralV1,
    MistralV3,
    MistralV3Tekken,
    MistralV7,
    MistralV7Tekken,
    Phi3,
    Phi4,
    Falcon3,
    Zephyr,
    Monarch,
    Gemma,
    Orion,
    Openchat,
    Vicuna,
    VicunaOrca,
    Deepseek,
    Deepseek2,
    Deepseek3,
    DeepseekOcr,
    CommandR,
    Llama3,
    Chatglm3,
    Chatglm4,
    Glmedge,
    Minicpm,
    Exaone3,
    Exaone4,
    ExaoneMoe,
    RwkvWorld,
    Granite3,
    Granite40,
    Granite41,
    Gigachat,
    Megrez,
    Yandex,
    Bailing,
    BailingThink,
    Bailing2,
    Llama4,
    Smolvlm,
    /// Detected from a template only: llama.cpp has no name for it.
    Dots1,
    HunyuanMoe,
    GptOss,
    HunyuanDense,
    HunyuanVl,
    KimiK2,
    SeedOss,
    Grok2,
    PanguEmbed,
    SolarOpen,
}

/// llama.cpp's built-in template names, in its (alphabetical) order.
pub const BUILTIN: &[(&CStr, Template)] = &[
    (c"bailing", Template::Bailing),
    (c"bailing-think", Template::BailingThink),
    (c"bailing2", Template::Bailing2),
    (c"chatglm3", Template::Chatglm3),
    (c"chatglm4", Template::Chatglm4),
    (c"chatml", Template::Chatml),
    (c"command-r", Template::CommandR),
    (c"deepseek", Template::Deepseek),
    (c"deepseek-ocr", Template::DeepseekOcr),
    (c"deepseek2", Template::Deepseek2),
    (c"deepseek3", Template::Deepseek3),
    (c"exaone-moe", Template::ExaoneMoe),
    (c"exaone3", Template::Exaone3),
    (c"exaone4", Template::Exaone4),
    (c"falcon3", Template::Falcon3),
    (c"gemma", Template::Gemma),
    (c"gigachat", Template::Gigachat),
    (c"glmedge", Template::Glmedge),
    (c"gpt-oss", Template::GptOss),
    (c"granite", Template::Granite3),
    (c"granite-4.0", Template::Granite40),
    (c"granite-4.1", Template::Granite41),
    (c"grok-2", Template::Grok2),
    (c"hunyuan-dense", Template::HunyuanDense),
    (c"hunyuan-moe", Template::HunyuanMoe),
    (c"hunyuan-vl", Template::HunyuanVl),
    (c"kimi-k2", Template::KimiK2),
    (c"llama2", Template::Llama2),
    (c"llama2-sys", Template::Llama2Sys),
    (c"llama2-sys-bos", Template::Llama2SysBos),
    (c"llama2-sys-strip", Template::Llama2SysStrip),
    (c"llama3", Template::Llama3),
    (c"llama4", Template::Llama4),
    (c"megrez", Template::Megrez),
    (c"minicpm", Template::Minicpm),
    (c"mistral-v1", Template::MistralV1),
    (c"mistral-v3", Template::MistralV3),
    (c"mistral-v3-tekken", Template::MistralV3Tekken),
    (c"mistral-v7", Template::MistralV7),
    (c"mistral-v7-tekken", Template::MistralV7Tekken),
    (c"monarch", Template::Monarch),
    (c"openchat", Template::Openchat),
    (c"orion", Template::Orion),
    (c"pangu-embedded", Template::PanguEmbed),
    (c"phi3", Template::Phi3),
    (c"phi4", Template::Phi4),
    (c"rwkv-world", Template::RwkvWorld),
    (c"seed_oss", Template::SeedOss),
    (c"smolvlm", Template::Smolvlm),
    (c"solar-open", Template::SolarOpen),
    (c"vicuna", Template::Vicuna),
    (c"vicuna-orca", Template::VicunaOrca),
    (c"yandex", Template::Yandex),
    (c"zephyr", Template::Zephyr),
];

impl Template {
    /// The template of a built-in name (exact bytes), if any.
    pub fn from_name(name: &[u8]) -> Option<Template> {
        BUILTIN
            .iter()
            .find(|(n, _)| n.to_bytes() == name)
            .map(|&(_, t)| t)
    }

    /// The built-in name of this template (`None` for [`Template::Dots1`],
    /// which llama.cpp only detects).
    pub fn name(self) -> Option<&'static str> {
        self.c_name().and_then(|n| n.to_str().ok())
    }

    /// [`Template::name`] NUL-terminated (for the C ABI).
    pub fn c_name(self) -> Option<&'static CStr> {
        BUILTIN.iter().find(|(_, t)| *t == self).map(|&(n, _)| n)
    }

    /// Renders `messages` into `out` (see [`apply_template`]).
    pub fn render(
        self,
        messages: &[Message<'_>],
        add_assistant: bool,
        out: &mut [u8],
        needed: &mut usize,
    ) -> Result<usize> {
        render_with(self, &messages, add_assistant, out, needed)
    }
}

/// Renders `messages` with `template` (a built-in name or a model's Jinja
/// template string, recognised as llama.cpp recognises it) into `out`,
/// ending with the assistant's header when `add_assistant` (for the
/// templates that have one). Returns the length written; `*needed` is set
/// to the full length on success and on `BufferTooSmall` (nothing
/// meaningful is written then). `UnsupportedTemplate` when the template is
/// not recognised. All of `template` is read (llama.cpp's, a C string, ends
/// at its first NUL).
pub fn apply_template(
    template: &[u8],
    messages: &[Message<'_>],
    add_assistant: bool,
    out: &mut [u8],
    needed: &mut usize,
) -> Result<usize> {
    let t = detect(template).ok_or(Error::UnsupportedTemplate)?;
    t.render(messages, add_assistant, out, needed)
}

/// The model's own chat template, the string `tokenizer.chat_template` of
/// the GGUF file (`MissingKey` when it has none, `BadMetadata` when it is
/// not a string).
pub fn gguf_chat_template(gguf: &[u8]) -> Result<&[u8]> {
    let g = crate::gguf::Gguf::parse(gguf)?;
    match g.get("tokenizer.chat_template") {
        None => Err(Error::MissingKey),
        Some(v) => v.as_bytes().ok_or(Error::BadMetadata),
    }
}

/// Messages as the renderer reads them: by index, each a bounded number of
/// times, so that the C ABI can hand its array over without copying it.
pub(crate) trait Messages {
    fn count(&self) -> usize;
    fn at(&self, i: usize) -> Message<'_>;
}

impl Messages for &[Message<'_>] {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> Message<'_> {
        self[i]
    }
}

/// Does `hay` contain `needle`? Knuth–Morris–Pratt, so linear in `hay`
/// whatever its bytes (needles are the fixed strings below, all shorter
/// than `MAX_NEEDLE`).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    const MAX_NEEDLE: usize = 128;
    let m = needle.len();
    if m == 0 {
        return true;
    }
    if m > MAX_NEEDLE || m > hay.len() {
        return false;
    }
    // fail[i]: length of the longest proper border of needle[..=i].
    let mut fail = [0u8; MAX_NEEDLE];
    let mut k = 0usize;
    for i in 1..m {
        while k > 0 && needle[i] != needle[k] {
            k = fail[k - 1] as usize;
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        fail[i] = k as u8;
    }
    let mut q = 0usize;
    for &b in hay {
        while q > 0 && b != needle[q] {
            q = fail[q - 1] as usize;
        }
        if b == needle[q] {
            q += 1;
            if q == m {
                return true;
            }
        }
    }
    false
}

/// The template llama.cpp's `llm_chat_detect_template` finds for `tmpl`: a
/// built-in name, else the first rule of its chain whose substrings the
/// text contains; `None` when none matches.
pub fn detect(tmpl: &[u8]) -> Option<Template> {
    use Template as T;
    if let Some(t) = Template::from_name(tmpl) {
        return Some(t);
    }
    let has = |s: &str| contains(tmpl, s.as_bytes());
    let t = if has("<|im_start|>") {
        if has("<|im_sep|>") {
            T::Phi4
        } else if has("<end_of_utterance>") {
            T::Smolvlm
        } else {
            T::Chatml
        }
    } else if tmpl.starts_with(b"mistral") || has("[INST]") {
        if has("[SYSTEM_PROMPT]") {
            T::MistralV7
        } else if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
            if has(" [INST]") {
                T::MistralV1
            } else if has("\"[INST]\"") {
                T::MistralV3Tekken
            } else {
                T::MistralV3
            }
        } else if has("content.strip()") {
            T::Llama2SysStrip
        } else if has("bos_token + '[INST]") {
            T::Llama2SysBos
        } else if has("<<SYS>>") {
            T::Llama2Sys
        } else {
            T::Llama2
        }
    } else if has("<|assistant|>") && has("<|end|>") {
        T::Phi3
    } else if has("[gMASK]<sop>") {
        T::Chatglm4
    } else if has("<|assistant|>") && has("<|user|>") {
        if has("<|tool_declare|>") {
            T::ExaoneMoe
        } else if has("</s>") {
            T::Falcon3
        } else {
            T::Glmedge
        }
    } else if has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>") {
        T::Glmedge
    } else if has("<|user|>") && has("<|endoftext|>") {
        T::Zephyr
    } else if has("bos_token + message['role']") {
        T::Monarch
    } else if has("<start_of_turn>") {
        T::Gemma
    } else if has("'\\n\\nAssistant: ' + eos_token") {
        T::Orion
    } else if has("GPT4 Correct ") {
        T::Openchat
    } else if has("USER: ") && has("ASSISTANT: ") {
        if has("SYSTEM: ") {
            T::VicunaOrca
        } else {
            T::Vicuna
        }
    } else if has("### Instruction:") && has("<|EOT|>") {
        T::Deepseek
    } else if has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>") {
        T::CommandR
    } else if has("<|start_header_id|>") && has("<|end_header_id|>") {
        T::Llama3
    } else if has("[gMASK]sop") {
        T::Chatglm3
    } else if has("<用户>") {
        T::Minicpm
    } else if has("'Assistant: ' + message['content'] + eos_token") {
        T::Deepseek2
    } else if has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>") {
        T::Deepseek3
    } else if has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]") {
        if has("[|tool|]") {
            T::Exaone4
        } else {
            T::Exaone3
        }
    } else if has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}") {
        T::RwkvWorld
    } else if has("<|start_of_role|>") {
        if has("<tool_call>") || has("<tools>") {
            if has("g4_default_system_message") {
                T::Granite40
            } else {
                T::Granite41
            }
        } else {
            T::Granite3
        }
    } else if has(
        "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]",
    ) {
        T::Gigachat
    } else if has("<|role_start|>") {
        T::Megrez
    } else if has(" Ассистент:") {
        T::Yandex
    } else if has("<role>ASSISTANT</role>") && has("'HUMAN'") {
        T::Bailing
    } else if has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>") {
        T::BailingThink
    } else if has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>") {
        T::Bailing2
    } else if has("<|header_start|>") && has("<|header_end|>") {
        T::Llama4
    } else if has("<|endofuserprompt|>") {
        T::Dots1
    } else if has("<|extra_0|>") && has("<|extra_4|>") {
        T::HunyuanMoe
    } else if has("<|start|>") && has("<|channel|>") {
        T::GptOss
    } else if has("<｜hy_Assistant｜>") && has("<｜hy_begin▁of▁sentence｜>") {
        T::HunyuanVl
    } else if has("<｜hy_Assistant｜>") && has("<｜hy_place▁holder▁no▁3｜>") {
        T::HunyuanDense
    } else if has("<|im_assistant|>assistant<|im_middle|>") {
        T::KimiK2
    } else if has("<seed:bos>") {
        T::SeedOss
    } else if has("'Assistant: '  + message['content'] + '<|separator|>") {
        T::Grok2
    } else if has("[unused9]系统：[unused10]") {
        T::PanguEmbed
    } else if has("<|begin|>") && has("<|end|>") && has("<|content|>") {
        T::SolarOpen
    } else {
        return None;
    };
    Some(t)
}

/// C's `isspace` in the "C" locale (includes `\v`, unlike
/// `u8::is_ascii_whitespace`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Whitespace trimmed from both ends, as llama.cpp's `trim`.
fn trim(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_space(s[a]) {
        a += 1;
    }
    while b > a && is_space(s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// Writes what fits into `out` and counts everything.
struct Sink<'o> {
    out: &'o mut [u8],
    n: usize,
    overflow: bool,
}

impl Sink<'_> {
    fn put(&mut self, s: &[u8]) {
        let Some(end) = self.n.checked_add(s.len()) else {
            self.overflow = true;
            return;
        };
        if let Some(dst) = self.out.get_mut(self.n..end) {
            dst.copy_from_slice(s);
        }
        self.n = end;
    }

    fn s(&mut self, s: &str) {
        self.put(s.as_bytes());
    }

    /// `s` with ASCII letters upper-cased (C's `toupper` in the "C" locale).
    fn put_upper(&mut self, s: &[u8]) {
        let start = self.n;
        self.put(s);
        if let Some(dst) = self.out.get_mut(start..self.n) {
            dst.make_ascii_uppercase();
        }
    }
}

pub(crate) fn render_with<M: Messages + ?Sized>(
    t: Template,
    chat: &M,
    add_ass: bool,
    out: &mut [u8],
    needed: &mut usize,
) -> Result<usize> {
    let mut w = Sink {
        out,
        n: 0,
        overflow: false,
    };
    render(t, chat, add_ass, &mut w);
    if w.overflow {
        return Err(Error::InvalidArgument);
    }
    *needed = w.n;
    if w.n > w.out.len() {
        return Err(Error::BufferTooSmall);
    }
    Ok(w.n)
}

/// The generic shapes: `pre role mid content post` per message, then
/// `gen` when asked for the assistant's turn.
fn simple<M: Messages + ?Sized>(
    chat: &M,
    w: &mut Sink<'_>,
    add_ass: bool,
    [pre, mid, post, gen]: [&str; 4],
    trimmed: bool,
) {
    for i in 0..chat.count() {
        let m = chat.at(i);
        w.s(pre);
        w.put(m.role);
        w.s(mid);
        w.put(if trimmed { trim(m.content) } else { m.content });
        w.s(post);
    }
    if add_ass {
        w.s(gen);
    }
}

/// Per-role prefix and suffix of the content; roles not listed write
/// nothing. Then `gen` when asked for the assistant's turn.
fn by_role<M: Messages + ?Sized>(
    chat: &M,
    w: &mut Sink<'_>,
    add_ass: bool,
    roles: &[(&str, &str, &str)],
    gen: &str,
    trimmed: bool,
) {
    for i in 0..chat.count() {
        let m = chat.at(i);
        if let Some(&(_, pre, post)) = roles.iter().find(|r| r.0.as_bytes() == m.role) {
            w.s(pre);
            w.put(if trimmed { trim(m.content) } else { m.content });
            w.s(post);
        }
    }
    if add_ass {
        w.s(gen);
    }
}

/// The contents of the `system` messages in `chat[from..to]`, trimmed when
/// `trimmed` (Gemma's and Orion's held-back system prompt).
fn pending_system<M: Messages + ?Sized>(
    chat: &M,
    w: &mut Sink<'_>,
    from: usize,
    to: usize,
    trimmed: bool,
) {
    for j in from..to {
        let m = chat.at(j);
        if m.role == b"system" {
            w.put(if trimmed { trim(m.content) } else { m.content });
        }
    }
}

fn render<M: Messages + ?Sized>(t: Template, chat: &M, add_ass: bool, w: &mut Sink<'_>) {
    use Template as T;
    let n = chat.count();
    match t {
        T::Chatml => simple(
            chat,
            w,
            add_ass,
            [
                "<|im_start|>",
                "\n",
                "<|im_end|>\n",
                "<|im_start|>assistant\n",
            ],
            false,
        ),
        T::MistralV7 | T::MistralV7Tekken => {
            let sp = if t == T::MistralV7 { " " } else { "" };
            for i in 0..n {
                let m = chat.at(i);
                match m.role {
                    b"system" => {
                        w.s("[SYSTEM_PROMPT]");
                        w.s(sp);
                        w.put(m.content);
                        w.s("[/SYSTEM_PROMPT]");
                    }
                    b"user" => {
                        w.s("[INST]");
                        w.s(sp);
                        w.put(m.content);
                        w.s("[/INST]");
                    }
                    _ => {
                        w.s(sp);
                        w.put(m.content);
                        w.s("</s>");
                    }
                }
            }
        }
        T::MistralV1 | T::MistralV3 | T::MistralV3Tekken => {
            let lead = if t == T::MistralV1 { " " } else { "" };
            let trail = if t == T::MistralV3Tekken { "" } else { " " };
            let trim_ass = t == T::MistralV3;
            let mut inside = false;
            for i in 0..n {
                let m = chat.at(i);
                if !inside {
                    w.s(lead);
                    w.s("[INST]");
                    w.s(trail);
                    inside = true;
                }
                match m.role {
                    b"system" => {
                        w.put(m.content);
                        w.s("\n\n");
                    }
                    b"user" => {
                        w.put(m.content);
                        w.s(lead);
                        w.s("[/INST]");
                    }
                    _ => {
                        w.s(trail);
                        w.put(if trim_ass { trim(m.content) } else { m.content });
                        w.s("</s>");
                        inside = false;
                    }
                }
            }
        }
        T::Llama2 | T::Llama2Sys | T::Llama2SysBos | T::Llama2SysStrip => {
            let sys = t != T::Llama2;
            let bos_inside = t == T::Llama2SysBos;
            let strip = t == T::Llama2SysStrip;
            let mut inside = true;
            w.s("[INST] ");
            for i in 0..n {
                let m = chat.at(i);
                let c = if strip { trim(m.content) } else { m.content };
                if !inside {
                    inside = true;
                    w.s(if bos_inside { "<s>[INST] " } else { "[INST] " });
                }
                match m.role {
                    b"system" if sys => {
                        w.s("<<SYS>>\n");
                        w.put(c);
                        w.s("\n<</SYS>>\n\n");
                    }
                    b"system" => {
                        w.put(c);
                        w.s("\n");
                    }
                    b"user" => {
                        w.put(c);
                        w.s(" [/INST]");
                    }
                    _ => {
                        w.put(c);
                        w.s("</s>");
                        inside = false;
                    }
                }
            }
        }
        T::Phi3 => simple(
            chat,
            w,
            add_ass,
            ["<|", "|>\n", "<|end|>\n", "<|assistant|>\n"],
            false,
        ),
        T::Phi4 => simple(
            chat,
            w,
            add_ass,
            [
                "<|im_start|>",
                "<|im_sep|>",
                "<|im_end|>",
                "<|im_start|>assistant<|im_sep|>",
            ],
            false,
        ),
        T::Falcon3 => simple(
            chat,
            w,
            add_ass,
            ["<|", "|>\n", "\n", "<|assistant|>\n"],
            false,
        ),
        T::Zephyr => simple(
            chat,
            w,
            add_ass,
            ["<|", "|>\n", "<|endoftext|>\n", "<|assistant|>\n"],
            false,
        ),
        T::Monarch => {
            for i in 0..n {
                let m = chat.at(i);
                if i != 0 {
                    w.s("<s>");
                }
                w.put(m.role);
                w.s("\n");
                w.put(m.content);
                w.s("</s>\n");
            }
            if add_ass {
                w.s("<s>assistant\n");
            }
        }
        T::Gemma => {
            // System messages are held back and written, trimmed and run
            // together, at the start of the next turn not the model's.
            let mut from = 0;
            let mut pending = false;
            for i in 0..n {
                let m = chat.at(i);
                if m.role == b"system" {
                    pending |= !trim(m.content).is_empty();
                    continue;
                }
                let model = m.role == b"assistant" || m.role == b"model";
                w.s("<start_of_turn>");
                w.put(if m.role == b"assistant" {
                    b"model"
                } else {
                    m.role
                });
                w.s("\n");
                if !model {
                    if pending {
                        pending_system(chat, w, from, i, true);
                        w.s("\n\n");
                        pending = false;
                    }
                    from = i + 1;
                }
                w.put(trim(m.content));
                w.s("<end_of_turn>\n");
            }
            if add_ass {
                w.s("<start_of_turn>model\n");
            }
        }
        T::Orion => {
            let mut from = 0;
            let mut pending = false;
            for i in 0..n {
                let m = chat.at(i);
                match m.role {
                    b"system" => pending |= !m.content.is_empty(),
                    b"user" => {
                        w.s("Human: ");
                        if pending {
                            pending_system(chat, w, from, i, false);
                            w.s("\n\n");
                            pending = false;
                        }
                        from = i + 1;
                        w.put(m.content);
                        w.s("\n\nAssistant: </s>");
                    }
                    _ => {
                        w.put(m.content);
                        w.s("</s>");
                    }
                }
            }
        }
        T::Openchat => {
            for i in 0..n {
                let m = chat.at(i);
                if m.role == b"system" {
                    w.put(m.content);
                } else {
                    w.s("GPT4 Correct ");
                    if let Some((first, rest)) = m.role.split_first() {
                        w.put(&[first.to_ascii_uppercase()]);
                        w.put(rest);
                    }
                    w.s(": ");
                    w.put(m.content);
                }
                w.s("<|end_of_turn|>");
            }
            if add_ass {
                w.s("GPT4 Correct Assistant:");
            }
        }
        T::Vicuna | T::VicunaOrca => {
            let sys = if t == T::VicunaOrca {
                ("system", "SYSTEM: ", "\n")
            } else {
                ("system", "", "\n\n")
            };
            let roles = [
                sys,
                ("user", "USER: ", "\n"),
                ("assistant", "ASSISTANT: ", "</s>\n"),
            ];
            by_role(chat, w, add_ass, &roles, "ASSISTANT:", false);
        }
        T::Deepseek => by_role(
            chat,
            w,
            add_ass,
            &[
                ("system", "", ""),
                ("user", "### Instruction:\n", "\n"),
                ("assistant", "### Response:\n", "\n<|EOT|>\n"),
            ],
            "### Response:\n",
            false,
        ),
        T::CommandR => by_role(
            chat,
            w,
            add_ass,
            &[
                (
                    "system",
                    "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>",
                    "<|END_OF_TURN_TOKEN|>",
                ),
                (
                    "user",
                    "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
                    "<|END_OF_TURN_TOKEN|>",
                ),
                (
                    "assistant",
                    "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
                    "<|END_OF_TURN_TOKEN|>",
                ),
            ],
            "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
            true,
        ),
        T::Llama3 => simple(
            chat,
            w,
            add_ass,
            [
                "<|start_header_id|>",
                "<|end_header_id|>\n\n",
                "<|eot_id|>",
                "<|start_header_id|>assistant<|end_header_id|>\n\n",
            ],
            true,
        ),
        T::Chatglm3 => {
            w.s("[gMASK]sop");
            simple(
                chat,
                w,
                add_ass,
                ["<|", "|>\n ", "", "<|assistant|>"],
                false,
            );
        }
        T::Chatglm4 => {
            w.s("[gMASK]<sop>");
            simple(
                chat,
                w,
                add_ass,
                ["<|", "|>\n", "", "<|assistant|>\n"],
                false,
            );
        }
        T::Glmedge => simple(chat, w, add_ass, ["<|", "|>\n", "", "<|assistant|>"], false),
        T::Minicpm => {
            for i in 0..n {
                let m = chat.at(i);
                if m.role == b"user" {
                    w.s("<用户>");
                    w.put(trim(m.content));
                    w.s("<AI>");
                } else {
                    w.put(trim(m.content));
                }
            }
        }
        T::Deepseek2 => by_role(
            chat,
            w,
            add_ass,
            &[
                ("system", "", "\n\n"),
                ("user", "User: ", "\n\n"),
                ("assistant", "Assistant: ", "<｜end▁of▁sentence｜>"),
            ],
            "Assistant:",
            false,
        ),
        T::Deepseek3 => by_role(
            chat,
            w,
            add_ass,
            &[
                ("system", "", "\n\n"),
                ("user", "<｜User｜>", ""),
                ("assistant", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
            ],
            "<｜Assistant｜>",
            false,
        ),
        T::DeepseekOcr => {
            for i in 0..n {
                w.put(chat.at(i).content);
            }
        }
        T::Exaone3 | T::Exaone4 => {
            let roles = [
                ("system", "[|system|]", "[|endofturn|]\n"),
                ("user", "[|user|]", "\n"),
                ("assistant", "[|assistant|]", "[|endofturn|]\n"),
                ("tool", "[|tool|]", "[|endofturn|]\n"),
            ];
            let k = if t == T::Exaone4 { 4 } else { 3 };
            by_role(chat, w, add_ass, &roles[..k], "[|assistant|]", true);
        }
        T::ExaoneMoe => by_role(
            chat,
            w,
            add_ass,
            &[
                ("system", "<|system|>\n", "<|endofturn|>\n"),
                ("user", "<|user|>\n", "<|endofturn|>\n"),
                ("assistant", "<|assistant|>\n", "<|endofturn|>\n"),
                ("tool", "<|tool|>\n", "<|endofturn|>\n"),
            ],
            "<|assistant|>\n",
            true,
        ),
        T::RwkvWorld => {
            for i in 0..n {
                let m = chat.at(i);
                match m.role {
                    b"system" => {
                        w.s("System: ");
                        w.put(trim(m.content));
                        w.s("\n\n");
                    }
                    b"user" => {
                        w.s("User: ");
                        w.put(trim(m.content));
                        w.s("\n\n");
                        if i == n - 1 {
                            w.s("Assistant:");
                        }
                    }
                    b"assistant" => {
                        w.s("Assistant: ");
                        w.put(trim(m.content));
                        w.s("\n\n");
                    }
                    _ => {}
                }
            }
        }
        T::Granite3 | T::Granite40 | T::Granite41 => {
            for i in 0..n {
                let m = chat.at(i);
                let call = m.role == b"assistant_tool_call";
                if call && t != T::Granite3 {
                    w.s("<|start_of_role|>assistant<|end_of_role|><|tool_call|>");
                } else {
                    w.s("<|start_of_role|>");
                    w.put(m.role);
                    w.s("<|end_of_role|>");
                    if call {
                        w.s("<|tool_call|>");
                    }
                }
                w.put(m.content);
                w.s("<|end_of_text|>\n");
            }
            if add_ass {
                w.s("<|start_of_role|>assistant<|end_of_role|>");
            }
        }
        T::Gigachat => {
            let has_system = n > 0 && chat.at(0).role == b"system";
            w.s("<s>");
            if has_system {
                w.put(chat.at(0).content);
                w.s("<|message_sep|>");
            }
            for i in usize::from(has_system)..n {
                let m = chat.at(i);
                match m.role {
                    b"user" => {
                        w.s("user<|role_sep|>");
                        w.put(m.content);
                        w.s("<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
                    }
                    b"assistant" => {
                        w.s("assistant<|role_sep|>");
                        w.put(m.content);
                        w.s("<|message_sep|>");
                    }
                    _ => {}
                }
            }
            if add_ass {
                w.s("assistant<|role_sep|>");
            }
        }
        T::Megrez => simple(
            chat,
            w,
            add_ass,
            [
                "<|role_start|>",
                "<|role_end|>",
                "<|turn_end|>",
                "<|role_start|>assistant<|role_end|>",
            ],
            false,
        ),
        T::Yandex => by_role(
            chat,
            w,
            add_ass,
            &[
                ("user", " Пользователь: ", "\n\n"),
                ("assistant", " Ассистент: ", "\n\n"),
            ],
            " Ассистент:[SEP]",
            false,
        ),
        T::Bailing | T::BailingThink | T::Bailing2 => {
            let two = t == T::Bailing2;
            if two && !(n > 0 && chat.at(0).role == b"system") {
                w.s("<role>SYSTEM</role>detailed thinking off<|role_end|>");
            }
            for i in 0..n {
                let m = chat.at(i);
                w.s("<role>");
                if m.role == b"user" {
                    w.s("HUMAN");
                } else {
                    w.put_upper(m.role);
                }
                w.s("</role>");
                w.put(m.content);
                if two {
                    w.s("<|role_end|>");
                }
            }
            if add_ass {
                w.s("<role>ASSISTANT</role>");
                if t == T::BailingThink {
                    w.s("<think>");
                }
            }
        }
        T::Llama4 => simple(
            chat,
            w,
            add_ass,
            [
                "<|header_start|>",
                "<|header_end|>\n\n",
                "<|eot|>",
                "<|header_start|>assistant<|header_end|>\n\n",
            ],
            true,
        ),
        T::Smolvlm => {
            w.s("<|im_start|>");
            for i in 0..n {
                let m = chat.at(i);
                match m.role {
                    b"system" => {
                        w.put(m.content);
                        w.s("\n\n");
                    }
                    b"user" => {
                        w.s("User: ");
                        w.put(m.content);
                        w.s("<end_of_utterance>\n");
                    }
                    _ => {
                        w.s("Assistant: ");
                        w.put(m.content);
                        w.s("<end_of_utterance>\n");
                    }
                }
            }
            if add_ass {
                w.s("Assistant:");
            }
        }
        T::Dots1 => {
            for i in 0..n {
                let m = chat.at(i);
                let (pre, post) = match m.role {
                    b"system" => ("<|system|>", "<|endofsystem|>"),
                    b"user" => ("<|userprompt|>", "<|endofuserprompt|>"),
                    _ => ("<|response|>", "<|endofresponse|>"),
                };
                w.s(pre);
                w.put(m.content);
                w.s(post);
            }
            if add_ass {
                w.s("<|response|>");
            }
        }
        T::HunyuanMoe => {
            for i in 0..n {
                let m = chat.at(i);
                match m.role {
                    b"system" => {
                        w.s("<|startoftext|>");
                        w.put(m.content);
                        w.s("<|extra_4|>");
                    }
                    b"assistant" => {
                        w.put(m.content);
                        w.s("<|eos|>");
                    }
                    _ => {
                        w.s("<|startoftext|>");
                        w.put(m.content);
                        w.s("<|extra_0|>");
                    }
                }
            }
        }
        T::GptOss => {
            for i in 0..n {
                let m = chat.at(i);
                w.s("<|start|>");
                w.put(m.role);
                w.s("<|message|>");
                w.put(m.content);
                w.s(if m.role == b"assistant" {
                    "<|return|>"
                } else {
                    "<|end|>"
                });
            }
            if add_ass {
                w.s("<|start|>assistant");
            }
        }
        T::HunyuanDense => {
            for i in 0..n {
                let m = chat.at(i);
                if i == 0 && m.role == b"system" {
                    w.put(m.content);
                    w.s("<｜hy_place▁holder▁no▁3｜>");
                }
                match m.role {
                    b"assistant" => {
                        w.s("<｜hy_Assistant｜>");
                        w.put(m.content);
                        w.s("<｜hy_place▁holder▁no▁2｜>");
                    }
                    b"user" => {
                        w.s("<｜hy_User｜>");
                        w.put(m.content);
                        w.s("<｜hy_Assistant｜>");
                    }
                    _ => {}
                }
            }
        }
        T::HunyuanVl => {
            w.s("<｜hy_begin▁of▁sentence｜>");
            for i in 0..n {
                let m = chat.at(i);
                if i == 0 && m.role == b"system" {
                    w.put(m.content);
                    w.s("<｜hy_place▁holder▁no▁3｜>");
                    continue;
                }
                match m.role {
                    b"user" => {
                        w.put(m.content);
                        w.s("<｜hy_User｜>");
                    }
                    b"assistant" => {
                        w.put(m.content);
                        w.s("<｜hy_Assistant｜>");
                    }
                    _ => {}
                }
            }
        }
        T::KimiK2 => {
            for i in 0..n {
                let m = chat.at(i);
                w.s(match m.role {
                    b"system" => "<|im_system|>system<|im_middle|>",
                    b"user" => "<|im_user|>user<|im_middle|>",
                    b"assistant" => "<|im_assistant|>assistant<|im_middle|>",
                    b"tool" => "<|im_system|>tool<|im_middle|>",
                    _ => "",
                });
                w.put(m.content);
                w.s("<|im_end|>");
            }
            if add_ass {
                w.s("<|im_assistant|>assistant<|im_middle|>");
            }
        }
        T::SeedOss => {
            for i in 0..n {
                let m = chat.at(i);
                w.s("<seed:bos>");
                w.put(m.role);
                w.s("\n");
                w.put(if m.role == b"assistant" {
                    trim(m.content)
                } else {
                    m.content
                });
                w.s("<seed:eos>");
            }
            if add_ass {
                w.s("<seed:bos>assistant\n");
            }
        }
        T::Grok2 => {
            for i in 0..n {
                let m = chat.at(i);
                let (pre, c) = match m.role {
                    b"system" => ("System: ", trim(m.content)),
                    b"user" => ("Human: ", trim(m.content)),
                    b"assistant" => ("Assistant: ", m.content),
                    _ => continue,
                };
                w.s(pre);
                w.put(c);
                w.s("<|separator|>\n\n");
            }
            if add_ass {
                w.s("Assistant:");
            }
        }
        T::PanguEmbed => {
            for i in 0..n {
                let m = chat.at(i);
                if i == 0 && m.role != b"system" {
                    w.s("[unused9]系统：[unused10]");
                }
                let pre = match m.role {
                    b"system" => "[unused9]系统：",
                    b"user" => "[unused9]用户：",
                    b"assistant" => "[unused9]助手：",
                    b"tool" => "[unused9]工具：",
                    b"function" => "[unused9]方法：",
                    _ => continue,
                };
                w.s(pre);
                w.put(m.content);
                w.s("[unused10]");
            }
            if add_ass {
                w.s("[unused9]助手：");
            }
        }
        T::SolarOpen => simple(
            chat,
            w,
            add_ass,
            ["<|begin|>", "<|content|>", "<|end|>", "<|begin|>assistant"],
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> [Message<'static>; 6] {
        let m = |role: &'static str, content: &'static str| Message {
            role: role.as_bytes(),
            content: content.as_bytes(),
        };
        [
            m("system", "You are a helpful assistant"),
            m("user", "Hello"),
            m("assistant", "Hi there"),
            m("user", "Who are you"),
            m("assistant", "   I am an assistant   "),
            m("user", "Another question"),
        ]
    }

    fn render_vec(t: &str, msgs: &[Message<'_>], add: bool) -> Result<std::vec::Vec<u8>> {
        let mut needed = 0;
        match apply_template(t.as_bytes(), msgs, add, &mut [], &mut needed) {
            Ok(0) => return Ok(std::vec::Vec::new()),
            Ok(_) => unreachable!(),
            Err(Error::BufferTooSmall) => {}
            Err(e) => return Err(e),
        }
        let mut out = std::vec![0u8; needed];
        let n = apply_template(t.as_bytes(), msgs, add, &mut out, &mut needed)?;
        assert_eq!(n, needed);
        Ok(out)
    }

    #[test]
    fn contains_is_a_substring_search() {
        assert!(contains(b"abcabd", b"abd"));
        assert!(contains(b"aaab", b"aab"));
        assert!(!contains(b"aaaa", b"aab"));
        assert!(contains(b"x", b""));
        assert!(!contains(b"", b"x"));
        assert!(contains(b"ababcabab", b"abab"));
        assert!(!contains(b"abababa", b"abac"));
    }

    #[test]
    fn trim_is_c_isspace() {
        assert_eq!(trim(b"\x0b\x0c \t\r\n a b \x0b"), b"a b");
        assert_eq!(trim(b"   "), b"");
        // Not whitespace for C: NBSP, NUL.
        assert_eq!(trim(b"\0a\xa0"), b"\0a\xa0");
    }

    #[test]
    fn names_round_trip() {
        for &(n, t) in BUILTIN {
            assert_eq!(Template::from_name(n.to_bytes()), Some(t));
            assert_eq!(t.c_name(), Some(n));
            assert_eq!(t.name().map(str::as_bytes), Some(n.to_bytes()));
            assert_eq!(detect(n.to_bytes()), Some(t));
        }
        for w in BUILTIN.windows(2) {
            assert!(w[0].0 < w[1].0, "sorted as llama.cpp's std::map");
        }
        assert_eq!(Template::Dots1.name(), None);
        assert_eq!(detect(b"dots1"), None);
        // A name must match exactly (no case folding, no trimming).
        assert_eq!(Template::from_name(b"ChatML"), None);
        assert_eq!(Template::from_name(b"chatml "), None);
    }

    #[test]
    fn chatml_and_llama3_render() {
        let c = conv();
        assert_eq!(
            render_vec("chatml", &c[..2], true).unwrap(),
            b"<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render_vec("llama3", &c[3..5], false).unwrap(),
            b"<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
        );
    }

    #[test]
    fn gemma_holds_system_back_until_a_user_turn() {
        let m = |role: &'static str, content: &'static str| Message {
            role: role.as_bytes(),
            content: content.as_bytes(),
        };
        let c = [
            m("system", " a "),
            m("assistant", "x"),
            m("system", "b"),
            m("user", "u"),
            m("system", "  "),
            m("user", "v"),
        ];
        assert_eq!(
            render_vec("gemma", &c, false).unwrap(),
            b"<start_of_turn>model\nx<end_of_turn>\n<start_of_turn>user\nab\n\nu<end_of_turn>\n<start_of_turn>user\nv<end_of_turn>\n"
        );
    }

    #[test]
    fn short_buffer_reports_the_length_and_stays_in_bounds() {
        let c = conv();
        let full = render_vec("mistral-v7", &c, true).unwrap();
        for len in 0..full.len() {
            let mut buf = std::vec![0xAAu8; len + 8];
            let mut needed = 0;
            let r = apply_template(b"mistral-v7", &c, true, &mut buf[..len], &mut needed);
            assert_eq!(r, Err(Error::BufferTooSmall));
            assert_eq!(needed, full.len());
            assert!(buf[len..].iter().all(|&b| b == 0xAA));
        }
    }

    #[test]
    fn unknown_templates_get_a_status() {
        let c = conv();
        for t in ["", "INVALID TEMPLATE", "{{ messages }}", "chatml\n"] {
            let mut needed = 7;
            let mut buf = [0u8; 16];
            assert_eq!(
                apply_template(t.as_bytes(), &c, true, &mut buf, &mut needed),
                Err(Error::UnsupportedTemplate)
            );
            assert_eq!(needed, 7);
        }
    }

    #[test]
    fn empty_conversation() {
        assert_eq!(render_vec("chatml", &[], false).unwrap(), b"");
        assert_eq!(
            render_vec("chatml", &[], true).unwrap(),
            b"<|im_start|>assistant\n"
        );
        assert_eq!(
            render_vec("bailing2", &[], true).unwrap(),
            b"<role>SYSTEM</role>detailed thinking off<|role_end|><role>ASSISTANT</role>"
        );
        assert_eq!(render_vec("rwkv-world", &[], true).unwrap(), b"");
    }
}
