//! Tolerating a client URL in HTTP/2's `:authority` on plain-text (h2c) connections.
//!
//! etcdctl 3.4 dials a member's advertised client URL for `endpoint status --cluster` through
//! grpc-go's passthrough resolver, which sends the whole URL as the authority:
//! `:authority: http://127.0.0.1:2379`. etcd's Go server accepts that; the `h2` crate under
//! tonic parses the authority strictly and resets the stream (PROTOCOL_ERROR), so the command
//! fails against etch. Over `https://` the problem does not arise (etcdctl then sets the
//! authority to the host name).
//!
//! [`AuthorityFix`] wraps an accepted TCP connection and rewrites, in the client's HTTP/2
//! HEADERS blocks, an `:authority` literal of the form `scheme://host:port[/...]` into
//! `host:port`, before `h2` sees it. Everything else passes unchanged: HTTP/1.1 connections
//! (no HTTP/2 preface), every other frame, every other header field.
//!
//! Why a rewrite of HPACK literals is safe without decoding the whole block: the literal is
//! found by walking the block's representations (each is self-delimiting); the rewritten
//! literal keeps its representation type and name index, and its value only gets shorter. A
//! literal with incremental indexing adds an entry to the dynamic table on both sides; the
//! decoder's entry is then smaller than the one the client's encoder accounts for, so the
//! decoder's table never holds less than the encoder believes and never evicts an entry the
//! encoder may still reference; entries are addressed from the newest, so indexes agree.
//!
//! Only complete frames are passed on (the wrapper buffers one frame at a time; `h2` reads
//! whole frames anyway). A HEADERS frame's padding is dropped (legal); HEADERS followed by
//! CONTINUATION frames is rewritten as a whole and re-split at the default maximum frame size.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The client connection preface of HTTP/2.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a server may have (and h2's default): rewritten
/// header blocks are split into frames of at most this size.
const MAX_FRAME: usize = 16_384;
/// `:authority`'s index in HPACK's static table.
const AUTHORITY_INDEX: u64 = 1;

/// Where the reader is in the client's byte stream.
enum Mode {
    /// Reading the first bytes: the HTTP/2 preface, or anything else.
    Preface,
    /// After the preface: frames.
    Frames,
    /// Not HTTP/2 with prior knowledge (HTTP/1.1), or a TLS connection: bytes pass through.
    Passthrough,
}

/// An accepted connection whose client HEADERS get a tolerant `:authority` (see the module
/// docs). Reads are rewritten; writes pass through.
pub struct AuthorityFix {
    inner: TcpStream,
    machine: Machine,
    /// How much of `machine.ready` the reader has taken.
    ready_at: usize,
    eof: bool,
}

/// The rewriting of the client's byte stream, apart from the socket.
struct Machine {
    mode: Mode,
    /// Bytes read from the socket, not yet processed.
    pending: Vec<u8>,
    /// Processed bytes not yet handed to the reader.
    ready: Vec<u8>,
    /// A HEADERS frame (header, priority fields, fragments so far) waiting for its
    /// CONTINUATION frames.
    open_block: Option<OpenBlock>,
}

struct OpenBlock {
    flags: u8,
    stream: [u8; 4],
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

impl AuthorityFix {
    /// Wraps `inner`; `enabled` false passes every byte through (TLS connections).
    pub fn new(inner: TcpStream, enabled: bool) -> AuthorityFix {
        AuthorityFix {
            inner,
            machine: Machine::new(enabled),
            ready_at: 0,
            eof: false,
        }
    }
}

impl Machine {
    fn new(enabled: bool) -> Machine {
        Machine {
            mode: if enabled {
                Mode::Preface
            } else {
                Mode::Passthrough
            },
            pending: Vec::new(),
            ready: Vec::new(),
            open_block: None,
        }
    }

    /// Moves what can be processed from `pending` to `ready`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Passthrough => {
                    self.ready.append(&mut self.pending);
                    return;
                }
                Mode::Preface => {
                    let n = self.pending.len().min(PREFACE.len());
                    if self.pending[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    if n < PREFACE.len() {
                        return;
                    }
                    self.ready.extend(self.pending.drain(..PREFACE.len()));
                    self.mode = Mode::Frames;
                }
                Mode::Frames => {
                    if self.pending.len() < FRAME_HEADER {
                        return;
                    }
                    let len = usize::from(self.pending[0]) << 16
                        | usize::from(self.pending[1]) << 8
                        | usize::from(self.pending[2]);
                    if self.pending.len() < FRAME_HEADER + len {
                        return;
                    }
                    let frame: Vec<u8> = self.pending.drain(..FRAME_HEADER + len).collect();
                    self.frame(&frame);
                }
            }
        }
    }

    /// Handles one complete frame.
    fn frame(&mut self, frame: &[u8]) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream: [u8; 4] = [frame[5], frame[6], frame[7], frame[8]];
        let payload = &frame[FRAME_HEADER..];
        match kind {
            HEADERS if self.open_block.is_none() => {
                let Some((priority, fragment)) = split_headers(flags, payload) else {
                    // Malformed padding or priority: h2 will say so.
                    self.ready.extend_from_slice(frame);
                    return;
                };
                self.open_block = Some(OpenBlock {
                    flags,
                    stream,
                    priority,
                    block: fragment.to_vec(),
                });
                if flags & END_HEADERS != 0 {
                    self.close_block();
                }
            }
            CONTINUATION if self.open_block.is_some() => {
                if let Some(open) = &mut self.open_block {
                    open.block.extend_from_slice(payload);
                }
                if flags & END_HEADERS != 0 {
                    self.close_block();
                }
            }
            _ => {
                // Anything else; a frame interleaved into an open header block is a protocol
                // error h2 reports, so pass what was held first.
                if let Some(open) = self.open_block.take() {
                    self.emit_block(open, false);
                }
                self.ready.extend_from_slice(frame);
            }
        }
    }

    fn close_block(&mut self) {
        if let Some(mut open) = self.open_block.take() {
            if let Some(fixed) = rewrite_block(&open.block) {
                open.block = fixed;
            }
            self.emit_block(open, true);
        }
    }

    /// Writes `open` as HEADERS (+ CONTINUATION) frames; `complete` sets END_HEADERS on the
    /// last one.
    fn emit_block(&mut self, open: OpenBlock, complete: bool) {
        let mut first = Vec::new();
        if let Some(p) = open.priority {
            first.extend_from_slice(&p);
        }
        let room = MAX_FRAME - first.len();
        let split = open.block.len().min(room);
        first.extend_from_slice(&open.block[..split]);
        let rest = &open.block[split..];
        let mut flags = open.flags & !(PADDED | END_HEADERS);
        if rest.is_empty() && complete {
            flags |= END_HEADERS;
        }
        push_frame(&mut self.ready, HEADERS, flags, open.stream, &first);
        let chunks: Vec<&[u8]> = rest.chunks(MAX_FRAME).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let flags = if last && complete { END_HEADERS } else { 0 };
            push_frame(&mut self.ready, CONTINUATION, flags, open.stream, chunk);
        }
    }
}

fn push_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: [u8; 4], payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream);
    out.extend_from_slice(payload);
}

/// A HEADERS payload's priority fields and header block fragment (padding removed).
fn split_headers(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    if flags & PADDED != 0 {
        let (&pad, rest) = body.split_first()?;
        body = rest.get(..rest.len().checked_sub(usize::from(pad))?)?;
    }
    let priority = if flags & PRIORITY != 0 {
        let p: [u8; 5] = body.get(..5)?.try_into().ok()?;
        body = &body[5..];
        Some(p)
    } else {
        None
    };
    Some((priority, body))
}

/// Decodes an HPACK integer with an `n`-bit prefix at `block[*at]`.
fn read_int(block: &[u8], at: &mut usize, n: u32) -> Option<u64> {
    let mask = (1u16 << n) as u8 - 1;
    let first = *block.get(*at)? & mask;
    *at += 1;
    if first < mask {
        return Some(u64::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let b = *block.get(*at)?;
        *at += 1;
        value = value.checked_add(u64::from(b & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// Encodes `value` with an `n`-bit prefix, the prefix's other bits being `high`.
fn write_int(out: &mut Vec<u8>, high: u8, n: u32, value: u64) {
    let mask = (1u16 << n) as u8 - 1;
    if value < u64::from(mask) {
        out.push(high | value as u8);
        return;
    }
    out.push(high | mask);
    let mut rest = value - u64::from(mask);
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads an HPACK string literal at `block[*at]`: its decoded bytes.
fn read_string(block: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let huffman = *block.get(*at)? & 0x80 != 0;
    let len = usize::try_from(read_int(block, at, 7)?).ok()?;
    let raw = block.get(*at..at.checked_add(len)?)?;
    *at += len;
    if !huffman {
        return Some(raw.to_vec());
    }
    let mut out = Vec::new();
    httlib_huffman::decode(raw, &mut out, httlib_huffman::DecoderSpeed::FourBits).ok()?;
    Some(out)
}

/// `host:port` of a URL given as an authority (`http://host:port/...`), or `None` when the
/// value has no scheme (it is left alone).
fn authority_of_url(value: &[u8]) -> Option<&[u8]> {
    let at = value.windows(3).position(|w| w == b"://")?;
    let rest = &value[at + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The header block with every `:authority` URL literal rewritten to its `host:port`, or
/// `None` when nothing changed (or the block does not parse: left to h2 to refuse).
pub fn rewrite_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len());
    let mut at = 0;
    let mut changed = false;
    while at < block.len() {
        let start = at;
        let b = block[at];
        if b & 0x80 != 0 {
            // Indexed field.
            read_int(block, &mut at, 7)?;
            out.extend_from_slice(&block[start..at]);
            continue;
        }
        if b & 0xe0 == 0x20 {
            // Dynamic table size update.
            read_int(block, &mut at, 5)?;
            out.extend_from_slice(&block[start..at]);
            continue;
        }
        // A literal: with incremental indexing (01), without indexing (0000) or never
        // indexed (0001).
        let prefix = if b & 0xc0 == 0x40 { 6 } else { 4 };
        let index = read_int(block, &mut at, prefix)?;
        let name = if index == 0 {
            Some(read_string(block, &mut at)?)
        } else {
            None
        };
        let value_at = at;
        let value = read_string(block, &mut at)?;
        let is_authority = index == AUTHORITY_INDEX || name.as_deref() == Some(b":authority");
        match authority_of_url(&value).filter(|_| is_authority) {
            Some(fixed) => {
                changed = true;
                out.extend_from_slice(&block[start..value_at]);
                write_int(&mut out, 0x00, 7, fixed.len() as u64);
                out.extend_from_slice(fixed);
            }
            None => out.extend_from_slice(&block[start..at]),
        }
    }
    changed.then_some(out)
}

impl AsyncRead for AuthorityFix {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let ready = &mut this.machine.ready;
            if this.ready_at < ready.len() {
                let n = (ready.len() - this.ready_at).min(buf.remaining());
                buf.put_slice(&ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == ready.len() {
                    ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // What never formed a whole frame goes to h2 as it is (it reports the error).
                let m = &mut this.machine;
                if let Some(open) = m.open_block.take() {
                    m.emit_block(open, false);
                }
                m.ready.append(&mut m.pending);
                if m.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if matches!(this.machine.mode, Mode::Passthrough) && this.machine.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        this.eof = true;
                    } else {
                        this.machine.pending.extend_from_slice(filled);
                        this.machine.process();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for AuthorityFix {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for AuthorityFix {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn huffman(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        httlib_huffman::encode(text.as_bytes(), &mut out).unwrap();
        let mut s = Vec::new();
        write_int(&mut s, 0x80, 7, out.len() as u64);
        s.extend(out);
        s
    }

    fn raw(text: &str) -> Vec<u8> {
        let mut s = Vec::new();
        write_int(&mut s, 0x00, 7, text.len() as u64);
        s.extend_from_slice(text.as_bytes());
        s
    }

    /// Decodes a block of literals and indexed fields into (name index or name, value).
    fn fields(block: &[u8]) -> Vec<(String, String)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                let i = read_int(block, &mut at, 7).unwrap();
                out.push((format!("#{i}"), String::new()));
                continue;
            }
            let prefix = if b & 0xc0 == 0x40 { 6 } else { 4 };
            let index = read_int(block, &mut at, prefix).unwrap();
            let name = if index == 0 {
                String::from_utf8(read_string(block, &mut at).unwrap()).unwrap()
            } else {
                format!("#{index}")
            };
            let value = String::from_utf8(read_string(block, &mut at).unwrap()).unwrap();
            out.push((name, value));
        }
        out
    }

    #[test]
    fn a_url_authority_becomes_host_and_port() {
        // :method POST (indexed 3), :authority with incremental indexing (Huffman), a
        // never-indexed literal, content-type with a literal name.
        let mut block = vec![0x83, 0x41];
        block.extend(huffman("http://127.0.0.1:2379"));
        block.push(0x10);
        block.extend(raw("x-secret"));
        block.extend(raw("s"));
        block.push(0x40);
        block.extend(raw("content-type"));
        block.extend(huffman("application/grpc"));
        let fixed = rewrite_block(&block).expect("rewritten");
        assert_eq!(
            fields(&fixed),
            [
                ("#3".to_string(), String::new()),
                ("#1".to_string(), "127.0.0.1:2379".to_string()),
                ("x-secret".to_string(), "s".to_string()),
                ("content-type".to_string(), "application/grpc".to_string()),
            ]
        );
        // The representation type is kept (incremental indexing: 01 prefix).
        assert_eq!(fixed[1] & 0xc0, 0x40);
    }

    #[test]
    fn valid_authorities_and_other_fields_are_untouched() {
        let mut block = vec![0x41];
        block.extend(huffman("127.0.0.1:2379"));
        block.push(0x04); // :path without indexing
        block.extend(raw("/etcdserverpb.KV/Range"));
        assert_eq!(rewrite_block(&block), None);
        // Another header whose value is a URL stays as it is.
        let mut block = vec![0x40];
        block.extend(raw("referer"));
        block.extend(raw("http://a:1/b"));
        assert_eq!(rewrite_block(&block), None);
        // Garbage does not parse: left alone for h2 to refuse.
        assert_eq!(rewrite_block(&[0x41, 0xff]), None);
    }

    #[test]
    fn a_path_after_the_url_is_dropped_and_long_values_keep_their_integers() {
        let url = format!("https://{}:443/x", "h".repeat(300));
        let mut block = vec![0x01]; // :authority without indexing
        block.extend(raw(&url));
        let fixed = rewrite_block(&block).unwrap();
        assert_eq!(
            fields(&fixed),
            [("#1".to_string(), format!("{}:443", "h".repeat(300)))]
        );
    }

    #[test]
    fn frames_are_rewritten_across_continuations_and_padding() {
        let mut block = vec![0x82, 0x41];
        block.extend(huffman("http://127.0.0.1:2379"));
        let (a, b) = block.split_at(3);
        let stream = [0, 0, 0, 1];
        let mut input = PREFACE.to_vec();
        // SETTINGS (empty), HEADERS padded without END_HEADERS, CONTINUATION with it.
        push_frame(&mut input, 0x4, 0, [0; 4], &[]);
        let mut padded = vec![2u8];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0]);
        push_frame(&mut input, HEADERS, PADDED, stream, &padded);
        push_frame(&mut input, CONTINUATION, END_HEADERS, stream, b);
        push_frame(&mut input, 0x0, 0x1, stream, b"data");

        let mut expected = PREFACE.to_vec();
        push_frame(&mut expected, 0x4, 0, [0; 4], &[]);
        let mut want_block = vec![0x82, 0x41];
        want_block.extend(raw("127.0.0.1:2379"));
        push_frame(&mut expected, HEADERS, END_HEADERS, stream, &want_block);
        push_frame(&mut expected, 0x0, 0x1, stream, b"data");

        // Fed byte by byte, as a slow socket would.
        let mut m = Machine::new(true);
        for byte in &input {
            m.pending.push(*byte);
            m.process();
        }
        assert_eq!(m.ready, expected);
    }

    #[test]
    fn http1_and_disabled_connections_pass_through() {
        let req = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
        for enabled in [true, false] {
            let mut m = Machine::new(enabled);
            m.pending.extend_from_slice(req);
            m.process();
            assert_eq!(m.ready, req);
        }
    }
}
