//! The byte form of everything replication stores or sends: a version byte, then postcard.
//!
//! The version byte lets a later format be introduced without guessing: a decoder refuses any
//! version it does not know with a typed error instead of misreading the bytes. Decoding is
//! bounded (a size limit checked before any work, no trailing bytes, nesting limited by the
//! types themselves, see [`crate::command::MAX_TXN_DEPTH`]), because the bytes come from disk and
//! from peers.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded (or a value encoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// No bytes at all.
    Empty,
    /// A version byte this build does not know (a newer writer, or garbage).
    UnsupportedVersion(u8),
    /// More bytes than the caller allows.
    TooLarge {
        /// The size given.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes left over after the value: the input is not one encoded value.
    TrailingBytes(usize),
    /// postcard could not encode or decode the value.
    Malformed(String),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Empty => write!(f, "empty input"),
            CodecError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "format version {v} is not supported (this build reads {FORMAT_VERSION})"
                )
            }
            CodecError::TooLarge { size, limit } => {
                write!(f, "{size} bytes exceed the limit of {limit}")
            }
            CodecError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the value"),
            CodecError::Malformed(msg) => write!(f, "malformed: {msg}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Encodes `value` as the version byte followed by its postcard form.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    postcard::to_io(value, &mut out).map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(out)
}

/// How many bytes [`encode`] makes of `value`, without allocating them (what a member's
/// admission check counts before it proposes an entry or appends a leader's entries). A value
/// postcard cannot encode counts as 0: encoding it fails later anyway.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_or(0, |n: usize| n + 1)
}

/// Decodes what [`encode`] produced, refusing inputs longer than `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}
