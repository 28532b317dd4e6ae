//! Length-prefixed frames (SPEC 5): a `u32` little-endian length, then that
//! many bytes of payload.
//!
//! Invariant kept here: **a connection's buffer never holds more than one
//! frame limit plus one read.** A length over the limit is an error as soon
//! as its four bytes arrive, before any of the payload is buffered, and
//! the connection is then closed (a stream whose framing is lost cannot be
//! resynchronised).

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use futures::io::{AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
/// Bytes [`write_frames`] gathers into one write at most (a single larger
/// frame is written alone).
pub const COALESCE_BYTES_MAX: usize = 256 * 1024;
/// A reader's buffer grown past this by a large frame is given back once
/// the frame is consumed: one large request does not pin its memory for
/// the connection's life.
const BUFFER_KEEP_BYTES: usize = 1024 * 1024;

/// Why a stream can no longer be read as frames.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over the limit.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The length announced.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A zero length: no message is empty.
    #[error("a frame of length 0")]
    Empty,
}

/// Splits the bytes read from a connection into frames.
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Where the next frame starts in `buffer`.
    start: usize,
    max: u32,
}

impl FrameReader {
    /// A reader accepting payloads of up to `max` bytes.
    pub fn new(max: u32) -> Self {
        FrameReader {
            buffer: Vec::new(),
            start: 0,
            max,
        }
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Gives back memory a large frame left behind.
    fn shrink(&mut self) {
        if self.buffer.capacity() > BUFFER_KEEP_BYTES && self.buffer.len() < BUFFER_KEEP_BYTES / 2 {
            self.buffer.shrink_to(BUFFER_KEEP_BYTES / 2);
        }
    }

    /// Bytes the reader holds (its buffer's capacity).
    pub fn buffer_bytes(&self) -> usize {
        self.buffer.capacity()
    }

    /// The next complete frame's payload, if it has arrived. After an error
    /// the stream is unusable: close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let available = &self.buffer[self.start..];
        let Some(prefix) = available.get(..LENGTH_BYTES) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let end = LENGTH_BYTES + len as usize;
        let Some(payload) = available.get(LENGTH_BYTES..end) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += end;
        // Drop consumed bytes once they outweigh what is left.
        if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
            self.shrink();
        }
        Ok(Some(payload))
    }

    /// The length the next frame announces, once its prefix has arrived
    /// (checked against the limit only by [`FrameReader::next_frame`]).
    pub fn next_len(&self) -> Option<u32> {
        let prefix = self.buffer.get(self.start..self.start + LENGTH_BYTES)?;
        Some(u32::from_le_bytes([
            prefix[0], prefix[1], prefix[2], prefix[3],
        ]))
    }

    /// Whether a whole frame (or a length that is an error) waits to be
    /// taken with [`FrameReader::next_frame`].
    pub fn has_frame(&self) -> bool {
        self.next_len().is_some_and(|len| {
            len == 0 || len > self.max || self.pending() >= LENGTH_BYTES + len as usize
        })
    }

    /// Bytes received that form no complete frame yet: at the end of the
    /// stream, a truncated frame.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }
}

/// `payload` with its length prefix.
///
/// # Panics
/// If the payload is 4 GiB or more (the server's own responses are bounded
/// far below).
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame is shorter than 4 GiB");
    let mut frame = Vec::with_capacity(LENGTH_BYTES + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Writes every frame `frames` yields until the channel ends. Frames
/// already queued when a write starts go out in the same write: with many
/// requests pipelined, one system call carries many frames instead of one
/// each.
///
/// Each item is dropped only once its bytes are written (or the write
/// failed): an item that carries accounting (a request's in-flight count,
/// queued bytes) releases it when it has truly left.
pub async fn write_frames<W: AsyncWrite + Unpin, T: AsRef<[u8]>>(
    writer: &mut W,
    frames: &mut UnboundedReceiver<T>,
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    let mut items = Vec::new();
    while let Some(first) = frames.next().await {
        // Answers finish in groups (a group commit answers all its commits
        // at once): let the tasks woken with this one queue theirs first.
        yield_now().await;
        if first.as_ref().len() >= COALESCE_BYTES_MAX {
            // Large: written from where it is, not copied.
            writer.write_all(first.as_ref()).await?;
            writer.flush().await?;
            continue;
        }
        batch.clear();
        batch.extend_from_slice(first.as_ref());
        items.push(first);
        while batch.len() < COALESCE_BYTES_MAX {
            match frames.try_recv() {
                Ok(frame) => {
                    batch.extend_from_slice(frame.as_ref());
                    items.push(frame);
                }
                Err(_) => break,
            }
        }
        writer.write_all(&batch).await?;
        writer.flush().await?;
        items.clear();
        if batch.capacity() > BUFFER_KEEP_BYTES {
            batch = Vec::new();
        }
    }
    Ok(())
}

/// Returns `Pending` once (after asking to be polled again), so every task
/// already woken runs before the caller goes on.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_read_boundary() {
        let mut stream = Vec::new();
        for payload in [&b"a"[..], b"hello", &[7u8; 300]] {
            stream.extend(encode_frame(payload));
        }
        for chunk in [1, 2, 3, 5, 64, stream.len()] {
            let mut reader = FrameReader::new(1024);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.extend(piece);
                while let Some(frame) = reader.next_frame().expect("valid") {
                    frames.push(frame);
                }
            }
            assert_eq!(frames.len(), 3, "chunk {chunk}");
            assert_eq!(frames[1], b"hello");
            assert_eq!(frames[2].len(), 300);
            assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn an_oversized_or_empty_length_is_refused_before_its_payload() {
        let mut reader = FrameReader::new(100);
        reader.extend(&101u32.to_le_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
        let mut reader = FrameReader::new(100);
        reader.extend(&u32::MAX.to_le_bytes());
        assert!(reader.next_frame().is_err());
        let mut reader = FrameReader::new(100);
        reader.extend(&0u32.to_le_bytes());
        assert_eq!(reader.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn a_large_frame_does_not_pin_its_buffer() {
        let mut reader = FrameReader::new(8 << 20);
        reader.extend(&encode_frame(&vec![7u8; 4 << 20]));
        reader.extend(&encode_frame(b"small"));
        assert!(reader.buffer_bytes() >= 4 << 20);
        assert_eq!(
            reader.next_frame().expect("valid").map(|f| f.len()),
            Some(4 << 20)
        );
        assert_eq!(reader.next_frame().expect("valid"), Some(b"small".to_vec()));
        assert!(
            reader.buffer_bytes() <= BUFFER_KEEP_BYTES,
            "{} bytes kept after the large frame",
            reader.buffer_bytes()
        );
    }

    #[test]
    fn a_truncated_frame_stays_pending() {
        let mut reader = FrameReader::new(100);
        let frame = encode_frame(b"truncated");
        reader.extend(&frame[..frame.len() - 1]);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.pending(), frame.len() - 1);
    }

    #[test]
    fn queued_frames_go_out_in_one_write() {
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        for payload in [&b"a"[..], b"bc", b"def"] {
            tx.unbounded_send(encode_frame(payload)).expect("open");
        }
        drop(tx);
        let mut out = futures::io::Cursor::new(Vec::new());
        {
            let mut writing = std::pin::pin!(write_frames(&mut out, &mut rx));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // Every frame is queued and the writer never blocks: a few polls.
            let written = (0..8).find_map(|_| match writing.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => Some(result),
                std::task::Poll::Pending => None,
            });
            assert!(matches!(written, Some(Ok(()))), "{written:?}");
        }
        let mut reader = FrameReader::new(16);
        reader.extend(out.get_ref());
        let mut read = Vec::new();
        while let Ok(Some(frame)) = reader.next_frame() {
            read.push(frame);
        }
        assert_eq!(read, [b"a".to_vec(), b"bc".to_vec(), b"def".to_vec()]);
    }
}
