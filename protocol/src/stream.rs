//! Reassembling frames from a byte stream (QUIC streams deliver bytes in arbitrary chunks).

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::{FRAME_HEADER_LEN, Frame, FrameHeader};

/// A sans-IO streaming frame decoder: feed it the bytes a stream delivers, pull whole frames.
///
/// ```
/// # use protocol::{Frame, FrameDecoder};
/// # use bytes::Bytes;
/// let wire = Frame::audio(7, 20_000, Bytes::from_static(b"opus")).encode().unwrap();
/// let mut decoder = FrameDecoder::new();
/// decoder.push_bytes(wire.slice(..5)); // a partial frame: nothing yet
/// assert_eq!(decoder.next_frame().unwrap(), None);
/// decoder.push_bytes(wire.slice(5..));
/// let frame = decoder.next_frame().unwrap().unwrap();
/// assert_eq!((frame.sequence, &frame.payload[..]), (7, &b"opus"[..]));
/// ```
///
/// Call [`next_frame`](Self::next_frame) until it returns `Ok(None)` after every push; the
/// decoder then holds at most one partial frame ([`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN)).
///
/// Zero-copy where it can be: frames that lie wholly inside a chunk given to
/// [`push_bytes`](Self::push_bytes) are slices of that chunk. Only a frame split across chunks
/// is copied, once, into an internal buffer.
///
/// Errors are final: a byte stream cannot resynchronise after a bad header, so once
/// [`next_frame`](Self::next_frame) has returned an error it returns the same error forever
/// and the caller should close the stream.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Start of a frame split across chunks. Precedes `pending` in stream order.
    partial: BytesMut,
    /// The latest chunk, not yet consumed.
    pending: Bytes,
    /// The error that broke the stream, if any.
    failed: Option<ProtocolError>,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk received from the stream (e.g. from a QUIC `read_chunk`).
    pub fn push_bytes(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.pending.is_empty() {
            // The caller pushed again without draining: keep stream order by moving the older
            // chunk into the copy buffer.
            self.partial.extend_from_slice(&self.pending);
        }
        self.pending = chunk;
    }

    /// Feeds borrowed bytes received from the stream (copied once).
    pub fn push(&mut self, data: &[u8]) {
        if !self.pending.is_empty() {
            self.partial.extend_from_slice(&self.pending);
            self.pending = Bytes::new();
        }
        self.partial.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        self.partial.len() + self.pending.len()
    }

    /// Whether the decoder has stopped at an error.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the error that broke
    /// the stream (bad magic or version, unknown frame type, oversized payload).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.decode_next() {
            Ok(frame) => Ok(frame),
            Err(error) => {
                self.partial = BytesMut::new();
                self.pending = Bytes::new();
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Whether the stream ended cleanly: call after the peer finished the stream and
    /// [`next_frame`](Self::next_frame) returned `Ok(None)`. Leftover bytes are a
    /// [`ProtocolError::Truncated`] frame.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let available = self.buffered_len();
        if available == 0 {
            return Ok(());
        }
        let mut head = self.partial.to_vec();
        head.extend_from_slice(&self.pending);
        Err(match FrameHeader::parse(&head) {
            Ok(Some(header)) => ProtocolError::Truncated {
                what: "frame payload",
                needed: header.payload_len,
                available: available - FRAME_HEADER_LEN,
            },
            Ok(None) => ProtocolError::Truncated {
                what: "frame header",
                needed: FRAME_HEADER_LEN,
                available,
            },
            Err(error) => error,
        })
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if self.partial.is_empty() {
                // Fast path: the frame starts inside the latest chunk.
                if self.pending.is_empty() {
                    return Ok(None);
                }
                if let Some((frame, used)) = Frame::decode_prefix(&self.pending)? {
                    let _ = self.pending.split_to(used);
                    return Ok(Some(frame));
                }
                // Only part of a frame: keep it for the next chunk.
                self.partial.extend_from_slice(&self.pending);
                self.pending = Bytes::new();
                return Ok(None);
            }

            // Slow path: complete the split frame with just the bytes it still needs.
            let needed = match FrameHeader::parse(&self.partial)? {
                None => FRAME_HEADER_LEN - self.partial.len(),
                Some(header) if self.partial.len() >= header.frame_len() => {
                    let whole = self.partial.split_to(header.frame_len()).freeze();
                    return Ok(Some(Frame::from_parts(
                        header,
                        whole.slice(FRAME_HEADER_LEN..),
                    )));
                }
                Some(header) => header.frame_len() - self.partial.len(),
            };
            if self.pending.is_empty() {
                return Ok(None);
            }
            let take = needed.min(self.pending.len());
            let part = self.pending.split_to(take);
            self.partial.extend_from_slice(&part);
        }
    }
}
