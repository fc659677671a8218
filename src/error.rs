//! The one error type of the crate: `Copy`, no allocation, a static message each.

/// Everything that can go wrong, each with its own code. The numeric values are
/// the C status codes (0 is success and 1 a NULL pointer, which only the C ABI
/// can see); values are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Error {
    /// An argument is out of its documented range.
    InvalidArgument = 2,
    /// A caller buffer is smaller than the size query asked for.
    BufferTooSmall = 3,
    /// A caller buffer does not start on the required alignment (64 bytes).
    Misaligned = 4,
    /// The GGUF bytes end inside a header, key, value or tensor record.
    Truncated = 5,
    /// The bytes do not start with the GGUF magic.
    BadMagic = 6,
    /// The GGUF version is not 2 or 3 (or the file is big-endian).
    UnsupportedVersion = 7,
    /// A tensor, metadata or array count is larger than the bytes can hold.
    CountTooLarge = 8,
    /// A string length runs past the end of the bytes.
    StringPastEnd = 9,
    /// A tensor's data offset or size runs past the end of the bytes.
    TensorPastEnd = 10,
    /// A tensor's dimensions are invalid: zero, too many, not a whole number of
    /// blocks, or their product overflows.
    BadDimensions = 11,
    /// `general.alignment` is zero or not a power of two, or a tensor's offset is
    /// not a multiple of it.
    DataMisaligned = 12,
    /// A metadata value type or tensor type id that GGUF does not define.
    UnknownType = 13,
    /// A metadata value of the wrong type for its key, a nested array, or a key
    /// that is not UTF-8.
    BadMetadata = 14,
    /// `general.architecture` is missing or is not one this build computes
    /// (`llama`, `qwen2`).
    UnsupportedArchitecture = 15,
    /// A tensor is stored in a type this build does not implement.
    UnsupportedTensorType = 16,
    /// A required hyper-parameter key is missing.
    MissingKey = 17,
    /// Hyper-parameters are inconsistent or out of range (for example heads
    /// that do not divide the embedding, or a vocabulary size that disagrees
    /// with the embedding table).
    BadHyperparameters = 18,
    /// A required tensor is missing.
    MissingTensor = 19,
    /// A tensor's shape does not match the hyper-parameters.
    TensorShape = 20,
    /// Two tensors have the same name.
    DuplicateTensor = 21,
    /// A token id is not below the vocabulary size.
    TokenOutOfRange = 22,
    /// The batch would pass the end of the context (`n_ctx`).
    ContextFull = 23,
    /// The batch has more tokens than the context's `n_batch`.
    BatchTooLarge = 24,
    /// No token has a finite logit (all NaN or negative infinity), so there is
    /// nothing to sample.
    NoCandidates = 25,
    /// The file has no vocabulary, or one of a kind this build cannot encode.
    UnsupportedTokenizer = 26,
    /// A saved state was written for another model, or for settings this
    /// context or sampler cannot hold (KV type, vocabulary, a position past
    /// `n_ctx`, a longer penalty history).
    StateMismatch = 27,
    /// A saved state is truncated, corrupted, or not a state of this kind.
    StateCorrupt = 28,
    /// A tensor's data starts before the end of the tensor listed before it.
    TensorOverlap = 29,
    /// The file asks for a RoPE scaling type (`rope.scaling.type`) or RoPE
    /// parameters this build does not compute.
    UnsupportedRopeScaling = 30,
    /// The file describes a mixture of experts (`expert_count` above zero, or
    /// expert tensors); the engine computes dense feed-forwards only.
    UnsupportedExperts = 31,
    /// The file asks for attention or final logit soft-capping.
    UnsupportedSoftcap = 32,
    /// The file has a tensor the engine would not use (a bias the
    /// architecture does not have, an extra tensor in a block, a tensor of an
    /// unknown kind): computing without it would be computing something else.
    UnexpectedTensor = 33,
    /// The file asks for an attention, logit, embedding or residual scale,
    /// a sliding window, non-causal attention or another variant of the
    /// block that the engine does not compute.
    UnsupportedHyperparameter = 34,
    // 35 is the C ABI's BAD_STRUCT_SIZE, which only the C ABI can see.
    /// A chat template that is neither a built-in name nor a template
    /// string recognised as one (see [`crate::chat`]).
    UnsupportedTemplate = 36,
    /// A context in one `decode_many` call runs another model than the
    /// batch (every context of one pass must read the same weights).
    ModelMismatch = 37,
    /// The same context twice in one `decode_many` call.
    DuplicateContext = 38,
    /// A GBNF grammar that does not parse (with the byte offset in
    /// [`crate::grammar::GrammarError`]): a missing `::=`, `)` or `]`, an
    /// unknown escape, a NUL byte, the end of the text inside a literal.
    GrammarSyntax = 39,
    /// A grammar that uses a rule it never defines, or has no `root`.
    GrammarUndefinedRule = 40,
    /// A grammar with a left-recursive rule (`a ::= a "x"`), which a
    /// top-down matcher cannot run (llama.cpp refuses it too).
    GrammarLeftRecursion = 41,
    /// A grammar past a documented limit: repetitions (`{m,n}` past 2,000,
    /// as llama.cpp), nesting of groups, or elements after expansion.
    GrammarLimit = 42,
}

/// The crate's result type.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// A static, one-line description.
    pub fn message(self) -> &'static str {
        // Every message is ASCII, so this never falls back.
        self.c_message().to_str().unwrap_or("")
    }

    /// The same description as a NUL-terminated string (for the C ABI).
    pub const fn c_message(self) -> &'static core::ffi::CStr {
        match self {
            Error::InvalidArgument => c"invalid argument",
            Error::BufferTooSmall => c"buffer too small",
            Error::Misaligned => c"buffer not aligned to 64 bytes",
            Error::Truncated => c"GGUF data truncated",
            Error::BadMagic => c"not a GGUF file (bad magic)",
            Error::UnsupportedVersion => c"unsupported GGUF version",
            Error::CountTooLarge => c"GGUF count larger than the file",
            Error::StringPastEnd => c"GGUF string runs past the end of the file",
            Error::TensorPastEnd => c"tensor data runs past the end of the file",
            Error::BadDimensions => c"tensor dimensions invalid or overflowing",
            Error::DataMisaligned => c"tensor data misaligned or bad general.alignment",
            Error::UnknownType => c"unknown GGUF value or tensor type",
            Error::BadMetadata => c"metadata value of the wrong type",
            Error::UnsupportedArchitecture => {
                c"unsupported model architecture (not llama or qwen2)"
            }
            Error::UnsupportedTensorType => c"tensor type not supported",
            Error::MissingKey => c"required metadata key missing",
            Error::BadHyperparameters => c"inconsistent or out-of-range hyper-parameters",
            Error::MissingTensor => c"required tensor missing",
            Error::TensorShape => c"tensor shape does not match the hyper-parameters",
            Error::DuplicateTensor => c"duplicate tensor name",
            Error::TokenOutOfRange => c"token id outside the vocabulary",
            Error::ContextFull => c"batch would pass the context length",
            Error::BatchTooLarge => c"batch larger than n_batch",
            Error::NoCandidates => c"no token has a finite logit",
            Error::UnsupportedTokenizer => c"missing or unsupported tokenizer",
            Error::StateMismatch => c"saved state is for another model or incompatible settings",
            Error::StateCorrupt => c"saved state truncated or corrupted",
            Error::TensorOverlap => c"tensor data overlaps an earlier tensor's",
            Error::UnsupportedRopeScaling => c"RoPE scaling type or parameters not supported",
            Error::UnsupportedExperts => c"mixture-of-experts models are not supported",
            Error::UnsupportedSoftcap => c"attention or logit soft-capping not supported",
            Error::UnexpectedTensor => {
                c"tensor the engine does not use (unexpected for the architecture)"
            }
            Error::UnsupportedHyperparameter => c"hyper-parameter asks for a block variant not supported (scale, sliding window, ...)",
            Error::UnsupportedTemplate => c"chat template not recognised (not a built-in name or known template)",
            Error::ModelMismatch => c"context of another model than the batch's",
            Error::DuplicateContext => c"the same context twice in one call",
            Error::GrammarSyntax => c"grammar syntax error",
            Error::GrammarUndefinedRule => c"grammar uses an undefined rule or has no root",
            Error::GrammarLeftRecursion => c"grammar has a left-recursive rule",
            Error::GrammarLimit => c"grammar exceeds a limit (repetitions, nesting, size)",
        }
    }

    /// Every error, in code order (for tests and tools).
    pub const ALL: [Error; 40] = [
        Error::InvalidArgument,
        Error::BufferTooSmall,
        Error::Misaligned,
        Error::Truncated,
        Error::BadMagic,
        Error::UnsupportedVersion,
        Error::CountTooLarge,
        Error::StringPastEnd,
        Error::TensorPastEnd,
        Error::BadDimensions,
        Error::DataMisaligned,
        Error::UnknownType,
        Error::BadMetadata,
        Error::UnsupportedArchitecture,
        Error::UnsupportedTensorType,
        Error::MissingKey,
        Error::BadHyperparameters,
        Error::MissingTensor,
        Error::TensorShape,
        Error::DuplicateTensor,
        Error::TokenOutOfRange,
        Error::ContextFull,
        Error::BatchTooLarge,
        Error::NoCandidates,
        Error::UnsupportedTokenizer,
        Error::StateMismatch,
        Error::StateCorrupt,
        Error::TensorOverlap,
        Error::UnsupportedRopeScaling,
        Error::UnsupportedExperts,
        Error::UnsupportedSoftcap,
        Error::UnexpectedTensor,
        Error::UnsupportedHyperparameter,
        Error::UnsupportedTemplate,
        Error::ModelMismatch,
        Error::DuplicateContext,
        Error::GrammarSyntax,
        Error::GrammarUndefinedRule,
        Error::GrammarLeftRecursion,
        Error::GrammarLimit,
    ];

    /// The error of a status code, if it is one.
    pub fn from_code(code: u32) -> Option<Error> {
        Error::ALL.iter().copied().find(|e| *e as u32 == code)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_messages_distinct() {
        for (i, e) in Error::ALL.iter().enumerate() {
            // Dense from 2, but for 35 (the C ABI's BAD_STRUCT_SIZE).
            let code = i as u32 + 2;
            assert_eq!(*e as u32, if code >= 35 { code + 1 } else { code });
            assert_eq!(Error::from_code(*e as u32), Some(*e));
            for f in &Error::ALL[..i] {
                assert_ne!(e.message(), f.message());
            }
        }
    }
}
