//! Frames on a peer stream: a 4-byte big-endian length, then that many bytes of
//! [`crate::codec`] (version byte + postcard). Each stream carries one request frame one way
//! and one reply frame back.
//!
//! The length is checked against the reader's limit before anything is allocated, and the body
//! is then read as it arrives (the buffer grows with the bytes actually received), so a peer
//! that announces a huge frame and sends little costs little memory.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::{self, CodecError};

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// Initial buffer for a frame body: larger frames grow the buffer as their bytes arrive.
const INITIAL_BUFFER: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The announced (or, when sending, the encoded) length is over the limit.
    TooLarge {
        /// The length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream ended before the prefix or the body was complete.
    Truncated {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        received: usize,
    },
    /// Bytes after the frame, where the stream should have ended.
    TrailingBytes(usize),
    /// The body is not a valid encoded message.
    Codec(CodecError),
    /// The stream failed while reading.
    Io(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { size, limit } => {
                write!(f, "frame of {size} bytes exceeds the limit of {limit}")
            }
            FrameError::Truncated { expected, received } => {
                write!(f, "frame truncated: {received} of {expected} bytes")
            }
            FrameError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the frame"),
            FrameError::Codec(e) => write!(f, "frame body: {e}"),
            FrameError::Io(e) => write!(f, "stream: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes `value` as one frame, refusing to produce a frame over `limit` bytes of body (the
/// peer would refuse it).
pub fn encode<T: Serialize + ?Sized>(value: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let body = codec::encode(value).map_err(FrameError::Codec)?;
    let size = body.len();
    let announced = u32::try_from(size)
        .ok()
        .filter(|_| size <= limit)
        .ok_or(FrameError::TooLarge { size, limit })?;
    let mut out = Vec::with_capacity(PREFIX + size);
    out.extend_from_slice(&announced.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length a prefix announces, if within `limit`.
fn announced(prefix: [u8; PREFIX], limit: usize) -> Result<usize, FrameError> {
    let size = u32::from_be_bytes(prefix) as usize;
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    Ok(size)
}

/// Decodes a whole stream's bytes held in memory: exactly one frame of at most `limit` body
/// bytes, nothing after it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, FrameError> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<PREFIX>() else {
        return Err(FrameError::Truncated {
            expected: PREFIX,
            received: bytes.len(),
        });
    };
    let size = announced(*prefix, limit)?;
    if rest.len() < size {
        return Err(FrameError::Truncated {
            expected: size,
            received: rest.len(),
        });
    }
    if rest.len() > size {
        return Err(FrameError::TrailingBytes(rest.len() - size));
    }
    codec::decode(rest, limit).map_err(FrameError::Codec)
}

/// Reads one frame of at most `limit` body bytes from `reader` and decodes it. Does not wait
/// for the end of the stream after the frame.
pub async fn read<T, R>(reader: &mut R, limit: usize) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX];
    let mut got = 0;
    while got < PREFIX {
        let n = reader
            .read(&mut prefix[got..])
            .await
            .map_err(|e| FrameError::Io(e.to_string()))?;
        if n == 0 {
            return Err(FrameError::Truncated {
                expected: PREFIX,
                received: got,
            });
        }
        got += n;
    }
    let size = announced(prefix, limit)?;
    let mut body = Vec::with_capacity(size.min(INITIAL_BUFFER));
    (&mut *reader)
        .take(size as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| FrameError::Io(e.to_string()))?;
    if body.len() < size {
        return Err(FrameError::Truncated {
            expected: size,
            received: body.len(),
        });
    }
    codec::decode(&body, limit).map_err(FrameError::Codec)
}
