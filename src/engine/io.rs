//! Buffered, optionally multiplexed reading and writing of the connection.
//!
//! Layer: engine. Uses wire (frame headers, codecs) and tokio's I/O traits.
//! Mirrors upstream io.c: `read_a_msg`/`send_msg` framing, and the
//! "decode, or read more and retry" loop around the sans-IO decoders.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::wire::{
    self, DecodeError, Decoded, FrameHeader, Limits, MsgCode, decode_frame_header,
    encode_frame_header,
};

/// Spare room kept beyond the flush threshold.
const FRAME_DATA: usize = 64 * 1024;
/// Pending output above which `maybe_flush` writes.
const FLUSH_AT: usize = 256 * 1024;
/// Bytes asked of the connection per read.
const READ_CHUNK: usize = 256 * 1024;

/// A message that arrived out of band (not MSG_DATA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InMessage {
    /// Its code.
    pub code: MsgCode,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What the session learned from out-of-band messages; shared by the roles
/// of one side.
#[derive(Debug, Default)]
pub struct Inbox {
    /// io_error bits the peer reported (MSG_IO_ERROR).
    pub io_error: i32,
    /// The peer reported a per-file error (MSG_ERROR_XFER), so our exit is 23.
    pub had_xfer_error: bool,
    /// Last error text from the peer.
    pub last_error: Option<String>,
    /// Exit code carried by MSG_ERROR_EXIT, if one came.
    pub error_exit: Option<i32>,
    /// Indexes the sender could not open (MSG_NO_SEND).
    pub no_send: Vec<i32>,
    /// Names the peer's generator deleted (MSG_DELETED).
    pub deleted: Vec<Vec<u8>>,
    /// Indexes the receiving side has (MSG_SUCCESS, for
    /// `--remove-source-files`), not yet handled.
    pub success: Vec<i32>,
}

/// Callback for text messages from the peer (info, warnings, errors).
pub type MessageSink = Arc<dyn Fn(MsgCode, &[u8]) + Send + Sync>;

/// Reads the peer's stream: demultiplexes frames when enabled, hands
/// messages to the [`Inbox`] and the sink, and decodes values.
pub struct MuxReader<R> {
    inner: R,
    raw: BytesMut,
    data: BytesMut,
    muxed: bool,
    frame_left: usize,
    bytes_read: u64,
    limits: Limits,
    timeout: Option<Duration>,
    inbox: Arc<Mutex<Inbox>>,
    sink: Option<MessageSink>,
}

impl<R: AsyncRead + Unpin> MuxReader<R> {
    /// Wraps a reader; starts unmultiplexed.
    pub fn new(inner: R, limits: Limits) -> Self {
        MuxReader {
            inner,
            raw: BytesMut::with_capacity(READ_CHUNK),
            data: BytesMut::with_capacity(READ_CHUNK),
            muxed: false,
            frame_left: 0,
            bytes_read: 0,
            limits,
            timeout: None,
            inbox: Arc::default(),
            sink: None,
        }
    }

    /// Turns demultiplexing on (from the next byte on).
    pub fn set_muxed(&mut self, on: bool) {
        if on && !self.muxed {
            // Bytes already read raw but not consumed are frame bytes.
            let pending = self.data.split();
            let mut raw = pending;
            raw.extend_from_slice(&self.raw);
            self.raw = raw;
        }
        self.muxed = on;
    }

    /// Whether the stream is demultiplexed.
    pub fn is_muxed(&self) -> bool {
        self.muxed
    }

    /// Sets the idle timeout for reads.
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        self.timeout = t;
    }

    /// Where out-of-band messages are recorded.
    pub fn inbox(&self) -> Arc<Mutex<Inbox>> {
        Arc::clone(&self.inbox)
    }

    /// Shares an inbox with another reader or role.
    pub fn set_inbox(&mut self, inbox: Arc<Mutex<Inbox>>) {
        self.inbox = inbox;
    }

    /// Receives text messages as they arrive.
    pub fn set_sink(&mut self, sink: Option<MessageSink>) {
        self.sink = sink;
    }

    /// Total bytes read from the connection.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads whatever the connection has into the buffer without looking
    /// at it (read later as usual), at most `cap` bytes held; 0 at the
    /// end of the stream or when full. Cancel-safe: a cancelled call has
    /// read nothing. Used while we write something long the peer answers
    /// as it reads (a forwarded `--files-from` list), so that neither
    /// side blocks on a full pipe.
    ///
    /// # Errors
    /// A broken connection or the idle timeout.
    pub async fn prefetch(&mut self, cap: usize) -> Result<usize> {
        if self.raw.len() >= cap {
            std::future::pending::<()>().await;
        }
        self.read_raw().await
    }

    async fn read_raw(&mut self) -> Result<usize> {
        let mut chunk = self.raw.split_off(self.raw.len());
        chunk.reserve(READ_CHUNK);
        let fut = self.inner.read_buf(&mut chunk);
        let n = match self.timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| Error::Timeout)?,
            None => fut.await,
        }
        .map_err(Error::Connection)?;
        self.raw.unsplit(chunk);
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Reads more data bytes into the data buffer (at least one), handling
    /// any messages met on the way.
    async fn fill(&mut self) -> Result<()> {
        let before = self.data.len();
        loop {
            if !self.muxed {
                if !self.raw.is_empty() {
                    let r = self.raw.split();
                    self.data.unsplit(r);
                    return Ok(());
                }
                if self.read_raw().await? == 0 {
                    return Err(self.eof_error());
                }
                continue;
            }
            self.parse_frames()?;
            if self.data.len() > before {
                return Ok(());
            }
            if self.read_raw().await? == 0 {
                return Err(self.eof_error());
            }
        }
    }

    fn eof_error(&self) -> Error {
        let inbox = self
            .inbox
            .lock()
            .map(|i| (i.error_exit, i.last_error.clone()));
        match inbox {
            Ok((Some(code), msg)) => Error::Remote {
                code,
                message: msg.unwrap_or_default(),
            },
            Ok((None, Some(msg))) => Error::Remote {
                code: 12,
                message: msg,
            },
            _ => Error::UnexpectedEof(self.bytes_read),
        }
    }

    /// Moves whole or partial data frames from `raw` to `data` and handles
    /// complete message frames.
    ///
    /// Lazy as rsync's reader: once data has been moved, the next header
    /// is left alone until more data is needed, so that bytes the peer
    /// sends outside the multiplexing (a `--files-from` list before
    /// protocol 31, right after the multiplexed filter list) are not
    /// taken for a frame.
    fn parse_frames(&mut self) -> Result<()> {
        let mut moved = false;
        loop {
            if self.frame_left > 0 {
                let n = self.frame_left.min(self.raw.len());
                if n == 0 {
                    return Ok(());
                }
                let part = self.raw.split_to(n);
                self.data.unsplit(part);
                self.frame_left -= n;
                moved = true;
                continue;
            }
            if moved {
                return Ok(());
            }
            let hdr: FrameHeader = match decode_frame_header(&self.raw)? {
                Decoded::Done { value, .. } => value,
                Decoded::NeedMore(_) => return Ok(()),
            };
            let len = hdr.len as usize;
            if hdr.code == MsgCode::Data {
                self.raw.advance(4);
                self.frame_left = len;
                continue;
            }
            if len > self.limits.max_msg_len {
                return Err(DecodeError::TooLong {
                    what: "multiplexed message",
                    len: len as u64,
                    max: self.limits.max_msg_len as u64,
                }
                .into());
            }
            if self.raw.len() < 4 + len {
                return Ok(());
            }
            self.raw.advance(4);
            let payload = self.raw.split_to(len).to_vec();
            self.handle_message(hdr.code, payload)?;
        }
    }

    fn handle_message(&mut self, code: MsgCode, payload: Vec<u8>) -> Result<()> {
        let mut inbox = self
            .inbox
            .lock()
            .map_err(|_| Error::Protocol("inbox poisoned".into()))?;
        match code {
            MsgCode::ErrorXfer | MsgCode::Error | MsgCode::Warning | MsgCode::Info => {
                if matches!(code, MsgCode::ErrorXfer | MsgCode::Error) {
                    inbox.last_error =
                        Some(String::from_utf8_lossy(&payload).trim_end().to_string());
                }
                if code == MsgCode::ErrorXfer {
                    inbox.had_xfer_error = true;
                }
                drop(inbox);
                if let Some(sink) = &self.sink {
                    sink(code, &payload);
                }
            }
            MsgCode::IoError => {
                let v = le_i32(&payload)?;
                inbox.io_error |= v & 7;
            }
            MsgCode::NoSend => inbox.no_send.push(le_i32(&payload)?),
            MsgCode::Deleted => {
                let mut name = payload;
                if name.last() == Some(&0) {
                    name.pop();
                    name.push(b'/');
                }
                inbox.deleted.push(name);
            }
            MsgCode::ErrorExit => {
                let code = if payload.is_empty() {
                    0
                } else {
                    le_i32(&payload)?
                };
                inbox.error_exit = Some(code);
                let message = inbox.last_error.clone().unwrap_or_default();
                if code != 0 {
                    return Err(Error::Remote { code, message });
                }
            }
            // 4 bytes, or 20 with a device and inode from a local rsync.
            MsgCode::Success => inbox.success.push(le_i32(&payload)?),
            MsgCode::IoTimeout | MsgCode::Noop => {}
            other => {
                return Err(Error::Protocol(format!(
                    "invalid multi-message {}",
                    other.as_u8()
                )));
            }
        }
        Ok(())
    }

    /// Runs a sans-IO decoder over the buffered data, reading more until it
    /// finishes.
    ///
    /// # Errors
    /// Malformed data, end of stream, timeout, or a fatal peer message.
    pub async fn decode<T>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> std::result::Result<Decoded<T>, DecodeError>,
    ) -> Result<T> {
        loop {
            match f(&self.data)? {
                Decoded::Done { value, used } => {
                    self.data.advance(used);
                    return Ok(value);
                }
                Decoded::NeedMore(_) => self.fill().await?,
            }
        }
    }

    /// Reads exactly `out.len()` data bytes.
    ///
    /// # Errors
    /// End of stream, timeout, or a fatal peer message.
    pub async fn read_exact(&mut self, out: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < out.len() {
            if self.data.is_empty() {
                self.fill().await?;
            }
            let n = (out.len() - done).min(self.data.len());
            out[done..done + n].copy_from_slice(&self.data[..n]);
            self.data.advance(n);
            done += n;
        }
        Ok(())
    }

    /// Reads up to `max` data bytes that are available (at least one) and
    /// passes them to `f`.
    ///
    /// # Errors
    /// End of stream, timeout, or a fatal peer message.
    pub async fn read_some(&mut self, max: usize, f: impl FnOnce(&[u8])) -> Result<usize> {
        if self.data.is_empty() {
            self.fill().await?;
        }
        let n = max.min(self.data.len());
        f(&self.data[..n]);
        self.data.advance(n);
        Ok(n)
    }

    /// Reads one byte.
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_u8(&mut self) -> Result<u8> {
        self.decode(wire::decode_u8).await
    }

    /// Reads an int32.
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_i32(&mut self) -> Result<i32> {
        self.decode(wire::decode_i32).await
    }

    /// Reads a shortint.
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_u16(&mut self) -> Result<u16> {
        self.decode(wire::decode_u16).await
    }

    /// Reads a varint.
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_varint(&mut self) -> Result<i32> {
        self.decode(wire::decode_varint).await
    }

    /// Reads varint30 (int32 below protocol 30).
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_varint30(&mut self, protocol: u8) -> Result<i32> {
        if protocol >= 30 {
            self.read_varint().await
        } else {
            self.read_i32().await
        }
    }

    /// Reads varlong30 with `min` bytes (longint below protocol 30).
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_varlong30(&mut self, protocol: u8, min: usize) -> Result<i64> {
        if protocol >= 30 {
            self.decode(|b| wire::decode_varlong(b, min)).await
        } else {
            self.decode(wire::decode_longint).await
        }
    }

    /// Reads a vstring of at most `max` bytes.
    ///
    /// # Errors
    /// As [`MuxReader::decode`].
    pub async fn read_vstring(&mut self, max: usize) -> Result<Vec<u8>> {
        self.decode(|b| wire::decode_vstring(b, max)).await
    }
}

fn le_i32(p: &[u8]) -> Result<i32> {
    match p.get(..4) {
        Some(b) => Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Error::Protocol("short message payload".into())),
    }
}

/// Writes our stream: buffers data, frames it when multiplexing is on.
///
/// When multiplexed, the buffer keeps 4 bytes reserved at its front for the
/// frame header, which is filled in when the buffer is written, so data is
/// never copied to add framing.
pub struct MuxWriter<W> {
    inner: W,
    buf: Vec<u8>,
    muxed: bool,
    bytes_written: u64,
    timeout: Option<Duration>,
    /// `--bwlimit`: bytes per second, and when and where counting began.
    rate: Option<(u64, std::time::Instant, u64)>,
    /// Keep-alives: the longest lull in our output before
    /// [`keepalive`](Self::keepalive) writes something, and when we last
    /// wrote.
    lull: Option<Duration>,
    last_out: std::time::Instant,
}

/// The largest payload one frame can carry (24-bit length).
const MAX_FRAME: usize = 0x00FF_FFFF;

impl<W: AsyncWrite + Unpin> MuxWriter<W> {
    /// Wraps a writer; starts unmultiplexed.
    pub fn new(inner: W) -> Self {
        MuxWriter {
            inner,
            buf: Vec::with_capacity(FLUSH_AT + FRAME_DATA),
            muxed: false,
            bytes_written: 0,
            timeout: None,
            rate: None,
            lull: None,
            last_out: std::time::Instant::now(),
        }
    }

    /// Turns keep-alives on for an idle timeout of `timeout`, or off with
    /// `None`. rsync waits `(timeout + 1) / 2` whole seconds
    /// (`allowed_lull`); we write after two fifths of the timeout, because
    /// rsync checks in whole seconds (`now - last >= timeout` on
    /// `time()`): a gap of just over a second already counts as two at
    /// `--timeout=2`.
    pub fn set_keepalive(&mut self, timeout: Option<Duration>) {
        self.lull = timeout
            .filter(|t| !t.is_zero())
            .map(|t| (t * 2 / 5).max(Duration::from_millis(200)));
    }

    /// Whether keep-alives are on ([`set_keepalive`](Self::set_keepalive)).
    pub fn keepalive_on(&self) -> bool {
        self.lull.is_some()
    }

    /// Keeps a peer with an idle timeout from giving up on us while we
    /// work without writing (rsync's `maybe_send_keepalive`): once no
    /// output went out for half the timeout, the buffered data is written,
    /// or, with nothing buffered, an empty `MSG_DATA` frame (without
    /// multiplexing nothing can be sent but data). Cheap when nothing is
    /// due: call it as often as convenient.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn keepalive(&mut self) -> Result<()> {
        let Some(lull) = self.lull else {
            return Ok(());
        };
        if self.last_out.elapsed() < lull {
            return Ok(());
        }
        if self.pending() > 0 {
            return self.flush().await;
        }
        if self.muxed {
            let mut frame = Vec::with_capacity(4);
            encode_frame_header(&mut frame, MsgCode::Data, 0);
            self.write_raw(&frame).await?;
            self.inner.flush().await.map_err(Error::Connection)?;
        }
        Ok(())
    }

    /// Limits the average output rate (`--bwlimit`, in bytes per second;
    /// `None` or 0 for no limit).
    pub fn set_bwlimit(&mut self, bytes_per_sec: Option<u64>) {
        self.rate = bytes_per_sec
            .filter(|r| *r > 0)
            .map(|r| (r, std::time::Instant::now(), self.bytes_written));
    }

    /// Sleeps as long as the output is ahead of the rate limit.
    async fn throttle(&mut self) {
        let Some((rate, start, base)) = self.rate else {
            return;
        };
        let sent = self.bytes_written.saturating_sub(base);
        #[allow(clippy::cast_precision_loss)]
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        let spent = start.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }

    fn data_start(&self) -> usize {
        if self.muxed { 4 } else { 0 }
    }

    /// Turns multiplexing on or off. Data already buffered stays part of
    /// the stream and is framed by the new rule.
    pub fn set_muxed(&mut self, on: bool) {
        if on == self.muxed {
            return;
        }
        if on {
            self.buf.splice(0..0, [0u8; 4]);
        } else {
            self.buf.drain(0..4);
        }
        self.muxed = on;
    }

    /// Sets the idle timeout for writes.
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        self.timeout = t;
    }

    /// Whether output is multiplexed.
    pub fn is_muxed(&self) -> bool {
        self.muxed
    }

    /// Total bytes written to the connection, counting buffered data.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written + self.buf.len() as u64
    }

    /// The data buffer, for encoders to append to (append only).
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Bytes of data waiting in the buffer.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.data_start()
    }

    /// Appends data bytes.
    pub fn put(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    async fn write_all_timed(&mut self, bytes_from: usize) -> Result<()> {
        let fut = self.inner.write_all(&self.buf[bytes_from..]);
        match self.timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| Error::Timeout)?,
            None => fut.await,
        }
        .map_err(Error::Connection)?;
        if self.lull.is_some() {
            self.last_out = std::time::Instant::now();
        }
        Ok(())
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let fut = self.inner.write_all(bytes);
        match self.timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| Error::Timeout)?,
            None => fut.await,
        }
        .map_err(Error::Connection)?;
        self.bytes_written += bytes.len() as u64;
        if self.lull.is_some() {
            self.last_out = std::time::Instant::now();
        }
        Ok(())
    }

    /// Writes the buffered data (one frame when multiplexed).
    async fn write_pending(&mut self) -> Result<()> {
        let n = self.pending();
        if n == 0 {
            return Ok(());
        }
        if !self.muxed {
            self.write_all_timed(0).await?;
            self.bytes_written += self.buf.len() as u64;
            self.buf.clear();
            return Ok(());
        }
        if n <= MAX_FRAME {
            let mut hdr = Vec::with_capacity(4);
            encode_frame_header(&mut hdr, MsgCode::Data, n);
            self.buf[..4].copy_from_slice(&hdr);
            self.write_all_timed(0).await?;
        } else {
            // Larger than one frame can carry: frame it piece by piece.
            let data = self.buf.split_off(4);
            for chunk in data.chunks(MAX_FRAME) {
                let mut hdr = Vec::with_capacity(4);
                encode_frame_header(&mut hdr, MsgCode::Data, chunk.len());
                self.write_raw(&hdr).await?;
                self.write_raw(chunk).await?;
            }
            self.buf.truncate(4);
            return Ok(());
        }
        self.bytes_written += self.buf.len() as u64;
        self.buf.truncate(4);
        Ok(())
    }

    /// Writes buffered data if a good amount has piled up.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn maybe_flush(&mut self) -> Result<()> {
        if self.pending() >= FLUSH_AT {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Writes everything buffered and flushes the connection.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn flush(&mut self) -> Result<()> {
        self.write_pending().await?;
        self.inner.flush().await.map_err(Error::Connection)?;
        self.throttle().await;
        Ok(())
    }

    /// Sends an out-of-band message after the data written so far. Without
    /// multiplexing the message cannot travel and is dropped.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_msg(&mut self, code: MsgCode, payload: &[u8]) -> Result<()> {
        if !self.muxed {
            return Ok(());
        }
        self.write_pending().await?;
        let payload = &payload[..payload.len().min(4096)];
        let mut frame = Vec::with_capacity(4 + payload.len());
        encode_frame_header(&mut frame, code, payload.len());
        frame.extend_from_slice(payload);
        self.write_raw(&frame).await?;
        self.inner.flush().await.map_err(Error::Connection)
    }

    /// Shuts the write side down.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.flush().await?;
        self.inner.shutdown().await.map_err(Error::Connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_writes_an_empty_data_frame_only_when_due() -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Connection)?;
        rt.block_on(async {
            let mut w = MuxWriter::new(Vec::new());
            w.set_muxed(true);
            // Off: nothing, however long the lull.
            w.keepalive().await?;
            assert!(w.inner.is_empty());
            w.set_keepalive(Some(Duration::from_secs(1)));
            assert!(w.keepalive_on());
            // Not due yet: a write just happened.
            w.put(b"abc");
            w.flush().await?;
            let after_data = w.inner.len();
            w.keepalive().await?;
            assert_eq!(w.inner.len(), after_data);
            // Due (two fifths of a second): an empty MSG_DATA frame.
            tokio::time::sleep(Duration::from_millis(450)).await;
            w.keepalive().await?;
            assert_eq!(&w.inner[after_data..], &[0, 0, 0, 7]);
            // Due with data buffered: the data goes instead.
            tokio::time::sleep(Duration::from_millis(450)).await;
            w.put(b"xy");
            w.keepalive().await?;
            assert_eq!(&w.inner[after_data + 4..], &[2, 0, 0, 7, b'x', b'y']);
            // Unmultiplexed: only data can go, so nothing without data.
            let mut u = MuxWriter::new(Vec::new());
            u.set_keepalive(Some(Duration::from_secs(1)));
            tokio::time::sleep(Duration::from_millis(450)).await;
            u.keepalive().await?;
            assert!(u.inner.is_empty());
            Ok(())
        })
    }
}
