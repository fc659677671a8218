//! A conversation over one context: messages rendered with the model's chat
//! template, each turn decoding only what the KV cache does not hold yet.
//!
//! The conversation keeps its history (roles and texts) in caller memory,
//! and the number of bytes of the rendered conversation whose tokens are in
//! the context (`cached`). A turn renders the whole history with the
//! assistant's header, checks that it begins with what was rendered before
//! (a template that rewrites earlier turns is refused, `StateMismatch`,
//! rather than decoded wrongly), and tokenizes and decodes only the rest,
//! as llama.cpp's own chat loop does. The answer's tokens are the sampled
//! ones; its text is appended to the history as the assistant's message.
//!
//! The system prompt, when the first message is one, is decoded on its own
//! first, so that [`Conversation::drop_oldest_turn`] can cut the context
//! back to the end of it and decode the kept turns again: the host's
//! choice when a turn reports `ContextFull`.

use crate::chat::{Message, Template};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::parallel::Parallel;
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, Vocab};

/// Most messages a conversation holds (the renderer sees them all at once,
/// as a list on the stack).
pub const MAX_MESSAGES: usize = 128;

/// How large a conversation may grow.
#[derive(Clone, Copy, Debug)]
pub struct ConversationParams {
    /// Messages kept (at most [`MAX_MESSAGES`]).
    pub max_messages: usize,
    /// Bytes of message text (roles and contents) kept.
    pub max_text: usize,
}

impl Default for ConversationParams {
    fn default() -> Self {
        Self {
            max_messages: 64,
            max_text: 32 * 1024,
        }
    }
}

/// What a turn did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// Tokens of the prompt decoded for this turn (the new messages only).
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-generation token included when met).
    pub generated: usize,
    /// Generation stopped at an end-of-generation token (else at the limit,
    /// at the end of the context, or because the host asked).
    pub stopped_at_eog: bool,
}

/// A saved conversation: magic, version, message count, `cached`,
/// `system_end`, then each message's role and text lengths and the texts.
const STATE_MAGIC: &[u8; 4] = b"NLCV";
const STATE_HEAD: usize = 28;

/// Bytes a rendered conversation may need beyond its text (headers and
/// separators of each message).
const RENDER_PER_MESSAGE: usize = 256;

struct Layout {
    msgs: usize,
    text: usize,
    render: usize,
    scratch: usize,
    tokens: usize,
}

impl Layout {
    fn new(p: &ConversationParams) -> Result<Self> {
        if p.max_messages == 0
            || p.max_messages > MAX_MESSAGES
            || p.max_text == 0
            || p.max_text > u32::MAX as usize / 2
        {
            return Err(Error::InvalidArgument);
        }
        let round = |n: usize| {
            n.checked_add(63)
                .map(|n| n & !63)
                .ok_or(Error::InvalidArgument)
        };
        let render = p
            .max_text
            .checked_add(
                RENDER_PER_MESSAGE
                    .checked_mul(p.max_messages + 1)
                    .ok_or(Error::InvalidArgument)?,
            )
            .ok_or(Error::InvalidArgument)?;
        let scratch = Vocab::scratch_size(render).ok_or(Error::InvalidArgument)?;
        Ok(Self {
            msgs: round(p.max_messages * 16)?,
            text: round(p.max_text)?,
            render: round(render)?,
            scratch: round(scratch)?,
            tokens: round(render.checked_mul(12).ok_or(Error::InvalidArgument)? + 8)?,
        })
    }

    fn bytes(&self) -> Result<usize> {
        [self.text, self.render, self.scratch, self.tokens]
            .iter()
            .try_fold(self.msgs, |a, &b| a.checked_add(b))
            .ok_or(Error::InvalidArgument)
    }
}

/// The message at `[role offset, role length, text offset, text length]`
/// of `text`.
fn message_at(text: &[u8], [ro, rl, to, tl]: [u32; 4]) -> Message<'_> {
    Message {
        role: &text[ro as usize..(ro + rl) as usize],
        content: &text[to as usize..(to + tl) as usize],
    }
}

/// One conversation (see the module documentation). It borrows the
/// vocabulary; the context, sampler and host threads are passed to each
/// call, so one context can be reset and given to another conversation.
pub struct Conversation<'m> {
    vocab: &'m Vocab<'m>,
    template: Template,
    /// `[role offset, role length, text offset, text length]` per message.
    msgs: &'m mut [[u32; 4]],
    n_msgs: usize,
    text: &'m mut [u8],
    text_len: usize,
    render: &'m mut [u8],
    scratch: &'m mut [u8],
    tokens: &'m mut [u32],
    /// Bytes of the rendered conversation whose tokens the context holds.
    cached: usize,
    /// The context position where the turns after the system prompt start.
    system_end: usize,
}

impl<'m> Conversation<'m> {
    /// Bytes of caller memory [`Conversation::init`] needs.
    pub fn size(params: &ConversationParams) -> Result<usize> {
        Layout::new(params)?.bytes()
    }

    /// A conversation with no messages over `mem` (at least
    /// [`Conversation::size`] bytes, 64-byte aligned), rendered with
    /// `template`.
    pub fn init(
        vocab: &'m Vocab<'m>,
        template: Template,
        params: &ConversationParams,
        mem: &'m mut [u8],
    ) -> Result<Self> {
        let lay = Layout::new(params)?;
        if !(mem.as_ptr() as usize).is_multiple_of(64) {
            return Err(Error::Misaligned);
        }
        if mem.len() < lay.bytes()? {
            return Err(Error::BufferTooSmall);
        }
        let (msgs, rest) = mem.split_at_mut(lay.msgs);
        let (text, rest) = rest.split_at_mut(lay.text);
        let (render, rest) = rest.split_at_mut(lay.render);
        let (scratch, rest) = rest.split_at_mut(lay.scratch);
        let tokens = &mut rest[..lay.tokens];
        let msgs: &mut [[u32; 4]] =
            bytemuck::try_cast_slice_mut(&mut msgs[..params.max_messages * 16])
                .map_err(|_| Error::Misaligned)?;
        let tokens: &mut [u32] =
            bytemuck::try_cast_slice_mut(tokens).map_err(|_| Error::Misaligned)?;
        Ok(Self {
            vocab,
            template,
            msgs,
            n_msgs: 0,
            text: &mut text[..params.max_text],
            text_len: 0,
            render,
            scratch,
            tokens,
            cached: 0,
            system_end: 0,
        })
    }

    /// Messages in the history.
    pub fn len(&self) -> usize {
        self.n_msgs
    }

    /// Whether the history is empty.
    pub fn is_empty(&self) -> bool {
        self.n_msgs == 0
    }

    /// Message `i`: its role and text.
    pub fn message(&self, i: usize) -> Option<Message<'_>> {
        Some(message_at(self.text, *self.msgs[..self.n_msgs].get(i)?))
    }

    /// Appends a message to the history (nothing is decoded until
    /// [`Conversation::prompt`]). `BufferTooSmall` when the history is full.
    pub fn push(&mut self, role: &[u8], content: &[u8]) -> Result<()> {
        if self.n_msgs == self.msgs.len() {
            return Err(Error::BufferTooSmall);
        }
        let need = role
            .len()
            .checked_add(content.len())
            .ok_or(Error::BufferTooSmall)?;
        if need > self.text.len() - self.text_len {
            return Err(Error::BufferTooSmall);
        }
        let ro = self.text_len;
        self.text[ro..ro + role.len()].copy_from_slice(role);
        let to = ro + role.len();
        self.text[to..to + content.len()].copy_from_slice(content);
        self.text_len = to + content.len();
        self.msgs[self.n_msgs] = [
            ro as u32,
            role.len() as u32,
            to as u32,
            content.len() as u32,
        ];
        self.n_msgs += 1;
        Ok(())
    }

    /// Forgets every message and empties `ctx`.
    pub fn reset(&mut self, ctx: &mut Context<'_>) {
        self.n_msgs = 0;
        self.text_len = 0;
        self.cached = 0;
        self.system_end = 0;
        ctx.reset();
    }

    /// Renders messages `0..n` into the render buffer.
    fn render_first(&mut self, n: usize, add_assistant: bool) -> Result<usize> {
        let empty = Message {
            role: &[],
            content: &[],
        };
        let mut list = [empty; MAX_MESSAGES];
        for (m, &at) in list.iter_mut().zip(&self.msgs[..n]) {
            *m = message_at(self.text, at);
        }
        let mut needed = 0;
        self.template
            .render(&list[..n], add_assistant, self.render, &mut needed)
    }

    /// Tokenizes `render[from..to]` and decodes it on top of `ctx`; the
    /// first text of a context gets the BOS the file asks for. Returns the
    /// tokens decoded. On `ContextFull` nothing is decoded.
    fn decode_text(
        &mut self,
        ctx: &mut Context<'_>,
        sampler: &mut Sampler<'_>,
        from: usize,
        to: usize,
        par: &dyn Parallel,
    ) -> Result<usize> {
        let add = crate::tokenizer::AddTokens {
            bos: ctx.pos() == 0 && self.vocab.add_bos(),
            eos: false,
        };
        let mut needed = 0;
        let n = self.vocab.tokenize_with(
            &self.render[from..to],
            add,
            true,
            self.scratch,
            self.tokens,
            &mut needed,
        )?;
        if ctx.pos() + n > ctx.n_ctx() {
            return Err(Error::ContextFull);
        }
        for chunk in self.tokens[..n].chunks(ctx.n_batch().max(1)) {
            ctx.decode(chunk, par)?;
        }
        for &t in &self.tokens[..n] {
            sampler.accept(t)?;
        }
        Ok(n)
    }

    /// Decodes what the context does not hold yet of the history, rendered
    /// with the assistant's header: the new messages only. Returns the
    /// tokens decoded. `ContextFull` (nothing decoded) when they do not fit;
    /// `StateMismatch` when the template renders the earlier turns otherwise
    /// than before.
    pub fn prompt(
        &mut self,
        ctx: &mut Context<'_>,
        sampler: &mut Sampler<'_>,
        par: &dyn Parallel,
    ) -> Result<usize> {
        let mut decoded = 0;
        // A system prompt first, on its own (see `drop_oldest_turn`).
        if self.cached == 0
            && ctx.pos() == 0
            && self.n_msgs > 0
            && self.message(0).is_some_and(|m| m.role == b"system")
        {
            let end = self.render_first(1, false)?;
            decoded += self.decode_text(ctx, sampler, 0, end, par)?;
            self.cached = end;
            self.system_end = ctx.pos();
        }
        let end = self.render_first(self.n_msgs, true)?;
        if end < self.cached {
            return Err(Error::StateMismatch);
        }
        decoded += self.decode_text(ctx, sampler, self.cached, end, par)?;
        self.cached = end;
        Ok(decoded)
    }

    /// Generates the assistant's answer after [`Conversation::prompt`]:
    /// samples, decodes and streams each piece of text to `on_text` (which
    /// returns false to stop) until an end-of-generation token, `max_tokens`
    /// or the end of the context; the answer is appended to the history.
    pub fn generate(
        &mut self,
        ctx: &mut Context<'_>,
        sampler: &mut Sampler<'_>,
        max_tokens: usize,
        on_text: &mut dyn FnMut(&[u8]) -> bool,
        par: &dyn Parallel,
    ) -> Result<Turn> {
        if self.n_msgs == self.msgs.len() {
            return Err(Error::BufferTooSmall);
        }
        // The answer's text goes straight into the history.
        let role = b"assistant";
        if self.text.len() - self.text_len < role.len() {
            return Err(Error::BufferTooSmall);
        }
        let ro = self.text_len;
        self.text[ro..ro + role.len()].copy_from_slice(role);
        let to = ro + role.len();
        let mut len = 0;
        let mut turn = Turn::default();
        let mut dec = StreamDecoder::new();
        let mut piece = [0u8; 256];
        let mut keep_going = true;
        while turn.generated < max_tokens && keep_going {
            let t = sampler.sample(ctx.last_logits())?;
            sampler.accept(t)?;
            turn.generated += 1;
            if self.vocab.is_eog(t) {
                turn.stopped_at_eog = true;
                break;
            }
            let mut needed = 0;
            let k = match dec.push(self.vocab, t, false, &mut piece, &mut needed) {
                Ok(k) => k,
                Err(Error::BufferTooSmall) => 0, // a piece over 256 bytes: not shown
                Err(e) => return Err(e),
            };
            if to + len + k > self.text.len() {
                break; // the history is full: the answer ends here
            }
            self.text[to + len..to + len + k].copy_from_slice(&piece[..k]);
            len += k;
            keep_going = on_text(&piece[..k]);
            if ctx.pos() == ctx.n_ctx() {
                break;
            }
            ctx.decode(&[t], par)?;
        }
        let mut needed = 0;
        let k = dec.flush(&mut piece, &mut needed)?;
        if to + len + k <= self.text.len() {
            self.text[to + len..to + len + k].copy_from_slice(&piece[..k]);
            len += k;
            on_text(&piece[..k]);
        }
        self.text_len = to + len;
        self.msgs[self.n_msgs] = [ro as u32, role.len() as u32, to as u32, len as u32];
        self.n_msgs += 1;
        // The context holds the rendered prompt and the answer's tokens (not
        // the end-of-generation token: the next turn's text begins with it).
        self.cached += len;
        Ok(turn)
    }

    /// One turn: `content` from the user, then the answer (other roles:
    /// [`Conversation::push`], [`Conversation::prompt`] and
    /// [`Conversation::generate`]).
    pub fn respond(
        &mut self,
        ctx: &mut Context<'_>,
        sampler: &mut Sampler<'_>,
        content: &[u8],
        max_tokens: usize,
        on_text: &mut dyn FnMut(&[u8]) -> bool,
        par: &dyn Parallel,
    ) -> Result<Turn> {
        // Room for the message and its answer, checked before anything is
        // decoded.
        if self.n_msgs + 2 > self.msgs.len() {
            return Err(Error::BufferTooSmall);
        }
        let (n, text_len) = (self.n_msgs, self.text_len);
        self.push(b"user", content)?;
        let prompt_tokens = match self.prompt(ctx, sampler, par) {
            Ok(k) => k,
            Err(e) => {
                // Refused: the history is as it was.
                self.n_msgs = n;
                self.text_len = text_len;
                return Err(e);
            }
        };
        let mut turn = self.generate(ctx, sampler, max_tokens, on_text, par)?;
        turn.prompt_tokens = prompt_tokens;
        Ok(turn)
    }

    /// Bytes [`Conversation::save_state`] writes now.
    pub fn state_size(&self) -> usize {
        STATE_HEAD + 8 * self.n_msgs + self.text_len
    }

    /// Writes the history and what the context holds of it (not the
    /// context itself: save that with [`Context::save_state`] beside it).
    /// Returns the bytes written; `BufferTooSmall` when `out` is shorter
    /// than [`Conversation::state_size`].
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize> {
        let n = self.state_size();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        out[..4].copy_from_slice(STATE_MAGIC);
        out[4..8].copy_from_slice(&1u32.to_le_bytes());
        out[8..12].copy_from_slice(&(self.n_msgs as u32).to_le_bytes());
        out[12..20].copy_from_slice(&(self.cached as u64).to_le_bytes());
        out[20..28].copy_from_slice(&(self.system_end as u64).to_le_bytes());
        let mut at = STATE_HEAD;
        for m in &self.msgs[..self.n_msgs] {
            out[at..at + 4].copy_from_slice(&m[1].to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&m[3].to_le_bytes());
            at += 8;
        }
        out[at..].copy_from_slice(&self.text[..self.text_len]);
        Ok(n)
    }

    /// Restores a history saved by [`Conversation::save_state`] (load the
    /// context's state saved with it into the context). `StateCorrupt` for
    /// bytes that are not such a state, `BufferTooSmall` when it holds more
    /// than this conversation's params allow; the conversation is unchanged
    /// on error.
    pub fn load_state(&mut self, state: &[u8]) -> Result<()> {
        let u32_at = |i: usize| -> Result<u32> {
            let b = state.get(i..i + 4).ok_or(Error::StateCorrupt)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let u64_at =
            |i: usize| -> Result<u64> { Ok(u32_at(i)? as u64 | (u32_at(i + 4)? as u64) << 32) };
        if state.get(..4) != Some(&STATE_MAGIC[..]) || u32_at(4)? != 1 {
            return Err(Error::StateCorrupt);
        }
        let n = u32_at(8)? as usize;
        let (cached, system_end) = (u64_at(12)?, u64_at(20)?);
        if n > self.msgs.len() {
            return Err(Error::BufferTooSmall);
        }
        let mut total = 0usize;
        for i in 0..n {
            let (rl, tl) = (u32_at(STATE_HEAD + 8 * i)?, u32_at(STATE_HEAD + 8 * i + 4)?);
            total = total
                .checked_add(rl as usize)
                .and_then(|t| t.checked_add(tl as usize))
                .ok_or(Error::StateCorrupt)?;
        }
        let text = state.get(STATE_HEAD + 8 * n..).ok_or(Error::StateCorrupt)?;
        if text.len() != total {
            return Err(Error::StateCorrupt);
        }
        if total > self.text.len() {
            return Err(Error::BufferTooSmall);
        }
        let cached = usize::try_from(cached).map_err(|_| Error::StateCorrupt)?;
        let system_end = usize::try_from(system_end).map_err(|_| Error::StateCorrupt)?;
        let mut off = 0u32;
        for i in 0..n {
            let (rl, tl) = (u32_at(STATE_HEAD + 8 * i)?, u32_at(STATE_HEAD + 8 * i + 4)?);
            self.msgs[i] = [off, rl, off + rl, tl];
            off += rl + tl;
        }
        self.text[..total].copy_from_slice(text);
        self.n_msgs = n;
        self.text_len = total;
        self.cached = cached;
        self.system_end = system_end;
        Ok(())
    }

    /// Drops the oldest turn after the system prompt (the first message
    /// that is not `system`, and the answer after it), cuts the context
    /// back to the end of the system prompt and decodes the kept messages
    /// again: the host's choice when a turn reports `ContextFull`. Returns
    /// the tokens decoded; `InvalidArgument` when there is no turn to drop.
    pub fn drop_oldest_turn(
        &mut self,
        ctx: &mut Context<'_>,
        sampler: &mut Sampler<'_>,
        par: &dyn Parallel,
    ) -> Result<usize> {
        let first = usize::from(self.message(0).is_some_and(|m| m.role == b"system"));
        if self.n_msgs <= first {
            return Err(Error::InvalidArgument);
        }
        // The turn: one message, and the assistant's answer after it.
        let mut k = 1;
        if self
            .message(first + 1)
            .is_some_and(|m| m.role == b"assistant")
        {
            k = 2;
        }
        // Their text is contiguous in the history: close the gap.
        let start = self.msgs[first][0] as usize;
        let last = self.msgs[first + k - 1];
        let gap = (last[2] + last[3]) as usize - start;
        self.text.copy_within(start + gap..self.text_len, start);
        self.text_len -= gap;
        for m in &mut self.msgs[first + k..self.n_msgs] {
            m[0] -= gap as u32;
            m[2] -= gap as u32;
        }
        self.msgs.copy_within(first + k..self.n_msgs, first);
        self.n_msgs -= k;
        ctx.truncate(self.system_end)?;
        self.cached = if first == 1 {
            self.render_first(1, false)?
        } else {
            0
        };
        if self.n_msgs == first {
            return Ok(0);
        }
        // The kept messages, rendered as they stand (the last an answer: no
        // assistant header after it).
        let last_is_answer = self
            .message(self.n_msgs - 1)
            .is_some_and(|m| m.role == b"assistant");
        let end = self.render_first(self.n_msgs, !last_is_answer)?;
        let n = self.decode_text(ctx, sampler, self.cached, end, par)?;
        self.cached = end;
        Ok(n)
    }
}
