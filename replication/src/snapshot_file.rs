//! A Raft snapshot's bytes as openraft sees them: a file of the member's own
//! `etch_engine::storage::Storage`, read and written at a cursor.
//!
//! openraft 0.9 wants a snapshot to be `AsyncRead + AsyncWrite + AsyncSeek + Unpin`; a member's
//! store lives on a [`Storage`](etch_engine::storage::Storage) (the real file system in
//! production, a simulated disk in tests that cut power), so its snapshot files must too: the
//! engine's install reads the received file through that storage. [`SnapshotFile`] is a
//! [`StorageFile`] handle plus a position. Every call does its positioned read or write at once
//! and is always ready: the I/O is a `pread`/`pwrite` of one buffer (openraft's chunks, at most
//! a few MiB), done on the calling task as the engine's own applies are, rather than on tokio's
//! blocking pool (which would also let a paused, simulated clock run on while it waits).
//!
//! Nothing here syncs: a snapshot file is not needed after a restart (see
//! [`crate::state_machine`]), and the install copies the received file and syncs the copy.

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use etch_engine::storage::StorageFile;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A snapshot file on the member's storage, with a cursor. Clones of the handle share the file,
/// not the cursor ([`SnapshotFile::reopen`]).
pub struct SnapshotFile {
    file: Arc<dyn StorageFile>,
    /// Where the next read or write starts.
    pos: u64,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("pos", &self.pos)
            .finish()
    }
}

impl SnapshotFile {
    /// `file`, with the cursor at its start.
    pub fn new(file: Arc<dyn StorageFile>) -> SnapshotFile {
        SnapshotFile { file, pos: 0 }
    }

    /// Another cursor on the same file, at its start (each reader of a snapshot has its own).
    pub fn reopen(&self) -> SnapshotFile {
        SnapshotFile::new(Arc::clone(&self.file))
    }

    /// The cursor's position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's length in bytes.
    pub fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    /// Whether the file holds no byte.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads at the cursor into `buf` (at most its length, less at the end of the file; 0 at
    /// or past the end) and advances it.
    fn read_at_cursor(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.file.len()?;
        let n = len.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        if n > 0 {
            self.file.read_exact_at(&mut buf[..n], self.pos)?;
            self.pos += n as u64;
        }
        Ok(n)
    }

    /// Writes all of `buf` at the cursor and advances it.
    fn write_at_cursor(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self
            .pos
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        self.file.write_all_at(buf, self.pos)?;
        self.pos = end;
        Ok(buf.len())
    }

    /// The position `seek` names; an error (nothing moves) before the start or past 2^64.
    fn target(&self, seek: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match seek {
            SeekFrom::Start(n) => return Ok(n),
            SeekFrom::Current(d) => (self.pos, d),
            SeekFrom::End(d) => (self.file.len()?, d),
        };
        base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek to {base} {delta:+} is outside the file"),
            )
        })
    }
}

impl io::Read for SnapshotFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_at_cursor(buf)
    }
}

impl io::Write for SnapshotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_at_cursor(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Seek for SnapshotFile {
    fn seek(&mut self, seek: SeekFrom) -> io::Result<u64> {
        self.pos = self.target(seek)?;
        Ok(self.pos)
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let dst = buf.initialize_unfilled();
        let n = this.read_at_cursor(dst)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write_at_cursor(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        this.pos = this.target(position)?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}
