//! The compact binary frame: audio, visemes and (on QUIC streams) JSON events.
//!
//! Layout, all integers big-endian (network order):
//!
//! | offset | size | field                                              |
//! |-------:|-----:|----------------------------------------------------|
//! | 0      | 2    | magic `0x43 0x50` (`"CP"`)                         |
//! | 2      | 1    | version, [`FRAME_VERSION`]                         |
//! | 3      | 1    | frame type, [`FrameType`]                          |
//! | 4      | 2    | flags, [`FrameFlags`]                              |
//! | 6      | 4    | sequence number (u32, per stream and frame type)   |
//! | 10     | 8    | media timestamp, microseconds (u64)                |
//! | 18     | 4    | payload length (u32, at most [`MAX_FRAME_PAYLOAD`]) |
//! | 22     | n    | payload                                            |

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::version::{FRAME_VERSION, MAX_FRAME_PAYLOAD};

/// Size of the fixed frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 22;

/// The two bytes every frame starts with (`"CP"`, companion protocol). A stream that does not
/// start with them is not speaking this protocol or has lost sync.
pub const FRAME_MAGIC: [u8; 2] = *b"CP";

/// What a frame's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// Encoded audio in the format agreed for the session (Opus packet or PCM s16le samples);
    /// the timestamp is the media time of the first sample.
    Audio = 0x01,
    /// One viseme (lipsync) frame, see [`viseme`](crate::viseme); the timestamp is the media
    /// time of the outgoing audio it belongs with.
    Viseme = 0x02,
    /// One JSON event ([`ServerEvent`](crate::ServerEvent) or
    /// [`ClientEvent`](crate::ClientEvent)) as UTF-8; the timestamp is 0 unless the event
    /// refers to media time.
    Event = 0x03,
}

impl FrameType {
    /// The frame type for a header byte, or [`ProtocolError::UnknownFrameType`].
    pub fn from_byte(byte: u8) -> Result<Self, ProtocolError> {
        match byte {
            0x01 => Ok(Self::Audio),
            0x02 => Ok(Self::Viseme),
            0x03 => Ok(Self::Event),
            other => Err(ProtocolError::UnknownFrameType(other)),
        }
    }

    /// The header byte for this frame type.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// Flag bits of a frame header. Bits this build does not know are kept as received (a newer
/// peer may set them) and re-encoded unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(pub u16);

impl FrameFlags {
    /// No flags set.
    pub const NONE: Self = Self(0);
    /// Last frame of a segment: the end of a response's audio, or of the user's utterance when
    /// the client knows it (push-to-talk).
    pub const END_OF_SEGMENT: Self = Self(0x0001);
    /// The media timestamp does not continue from the previous frame of this type (after an
    /// interruption, mute or packet loss): receivers reset their playout clock.
    pub const DISCONTINUITY: Self = Self(0x0002);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` set too.
    #[must_use]
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The decoded fixed-size header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the payload holds.
    pub frame_type: FrameType,
    /// Flag bits.
    pub flags: FrameFlags,
    /// Sequence number, counted per stream and frame type; wraps at `u32::MAX`.
    pub sequence: u32,
    /// Media timestamp in microseconds since the start of the session's media clock.
    pub media_time_us: u64,
    /// Payload length in bytes (already checked against [`MAX_FRAME_PAYLOAD`]).
    pub payload_len: usize,
}

impl FrameHeader {
    /// Parses a header from the start of `input`.
    ///
    /// Returns `Ok(None)` when fewer than [`FRAME_HEADER_LEN`] bytes are present but the ones
    /// that are present are valid so far (a stream decoder waits for more). The magic, version
    /// and frame type are checked as soon as their bytes arrive, and the payload length before
    /// any payload is buffered, so garbage and oversized frames are rejected early.
    pub fn parse(input: &[u8]) -> Result<Option<Self>, ProtocolError> {
        // Check each magic byte as soon as it arrives, so garbage is refused at once.
        if let Some((offset, (&found, &expected))) = input
            .iter()
            .zip(FRAME_MAGIC.iter())
            .enumerate()
            .find(|(_, (found, expected))| found != expected)
        {
            return Err(ProtocolError::BadMagic {
                offset,
                found,
                expected,
            });
        }
        if let Some(&version) = input.get(2)
            && version != FRAME_VERSION
        {
            return Err(ProtocolError::UnsupportedVersion {
                found: version,
                supported: FRAME_VERSION,
            });
        }
        if let Some(&kind) = input.get(3) {
            FrameType::from_byte(kind)?;
        }
        let Some(header) = input.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let frame_type = FrameType::from_byte(header[3])?;
        let flags = FrameFlags(u16::from_be_bytes([header[4], header[5]]));
        let sequence = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        let mut time = [0; 8];
        time.copy_from_slice(&header[10..18]);
        let media_time_us = u64::from_be_bytes(time);
        let declared = u32::from_be_bytes([header[18], header[19], header[20], header[21]]);
        // A u32 always fits in usize on the 32- and 64-bit targets we build for; saturate
        // anyway so a 16-bit target would report "oversized" rather than wrap.
        let payload_len = usize::try_from(declared).unwrap_or(usize::MAX);
        if payload_len > MAX_FRAME_PAYLOAD {
            return Err(ProtocolError::Oversized {
                what: "frame payload",
                actual: payload_len,
                max: MAX_FRAME_PAYLOAD,
            });
        }
        Ok(Some(Self {
            frame_type,
            flags,
            sequence,
            media_time_us,
            payload_len,
        }))
    }

    /// Header plus payload length in bytes.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload_len
    }

    /// Appends the 22 header bytes to `dst`.
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_slice(&FRAME_MAGIC);
        dst.put_u8(FRAME_VERSION);
        dst.put_u8(self.frame_type.as_byte());
        dst.put_u16(self.flags.0);
        dst.put_u32(self.sequence);
        dst.put_u64(self.media_time_us);
        // Callers check payload_len <= MAX_FRAME_PAYLOAD, which fits in u32.
        dst.put_u32(u32::try_from(self.payload_len).unwrap_or(u32::MAX));
    }
}

/// One binary frame. The payload is a [`Bytes`]: decoding from a `Bytes` slices the input
/// instead of copying it, and cloning a frame is cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub frame_type: FrameType,
    /// Flag bits.
    pub flags: FrameFlags,
    /// Sequence number, counted per stream and frame type; wraps at `u32::MAX`.
    pub sequence: u32,
    /// Media timestamp in microseconds since the start of the session's media clock.
    pub media_time_us: u64,
    /// The payload, at most [`MAX_FRAME_PAYLOAD`] bytes.
    pub payload: Bytes,
}

impl Frame {
    /// An audio frame with no flags.
    pub fn audio(sequence: u32, media_time_us: u64, payload: Bytes) -> Self {
        Self {
            frame_type: FrameType::Audio,
            flags: FrameFlags::NONE,
            sequence,
            media_time_us,
            payload,
        }
    }

    /// The header describing this frame.
    pub fn header(&self) -> FrameHeader {
        FrameHeader {
            frame_type: self.frame_type,
            flags: self.flags,
            sequence: self.sequence,
            media_time_us: self.media_time_us,
            payload_len: self.payload.len(),
        }
    }

    /// Encoded size in bytes (header plus payload).
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }

    /// Appends the encoded frame to `dst` (a `BytesMut` or `Vec<u8>`), reserving space once.
    ///
    /// Fails with [`ProtocolError::Oversized`] if the payload is over [`MAX_FRAME_PAYLOAD`]
    /// (the peer would reject it); `dst` is then unchanged.
    pub fn encode_into<B: BufMut + Reserve>(&self, dst: &mut B) -> Result<(), ProtocolError> {
        self.check_size()?;
        dst.reserve_bytes(self.encoded_len());
        self.header().put(dst);
        dst.put_slice(&self.payload);
        Ok(())
    }

    /// The encoded frame as a new buffer.
    pub fn encode(&self) -> Result<Bytes, ProtocolError> {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut dst)?;
        Ok(dst.freeze())
    }

    /// Decodes exactly one frame from `input` (e.g. one WebSocket binary message).
    ///
    /// Zero-copy: the payload is a slice of `input`. Fails if `input` is shorter than the
    /// frame its header declares ([`ProtocolError::Truncated`]) or longer
    /// ([`ProtocolError::TrailingBytes`]).
    pub fn decode(input: &Bytes) -> Result<Self, ProtocolError> {
        let header = Self::complete_header(input)?;
        if input.len() > header.frame_len() {
            return Err(ProtocolError::TrailingBytes {
                declared: header.payload_len,
                actual: input.len() - FRAME_HEADER_LEN,
            });
        }
        Ok(Self::from_parts(header, input.slice(FRAME_HEADER_LEN..)))
    }

    /// Decodes exactly one frame from a borrowed slice, copying the payload once.
    pub fn decode_slice(input: &[u8]) -> Result<Self, ProtocolError> {
        let header = Self::complete_header(input)?;
        if input.len() > header.frame_len() {
            return Err(ProtocolError::TrailingBytes {
                declared: header.payload_len,
                actual: input.len() - FRAME_HEADER_LEN,
            });
        }
        Ok(Self::from_parts(
            header,
            Bytes::copy_from_slice(&input[FRAME_HEADER_LEN..]),
        ))
    }

    /// Decodes the first frame of `input` and returns it with the number of bytes it used,
    /// or `Ok(None)` if `input` holds only part of a frame so far. Zero-copy.
    pub fn decode_prefix(input: &Bytes) -> Result<Option<(Self, usize)>, ProtocolError> {
        let Some(header) = FrameHeader::parse(input)? else {
            return Ok(None);
        };
        let len = header.frame_len();
        if input.len() < len {
            return Ok(None);
        }
        let frame = Self::from_parts(header, input.slice(FRAME_HEADER_LEN..len));
        Ok(Some((frame, len)))
    }

    /// Builds a frame from a parsed header and its payload (whose length the caller checked).
    pub(crate) fn from_parts(header: FrameHeader, payload: Bytes) -> Self {
        Self {
            frame_type: header.frame_type,
            flags: header.flags,
            sequence: header.sequence,
            media_time_us: header.media_time_us,
            payload,
        }
    }

    /// The header of a buffer that must hold at least one whole frame.
    fn complete_header(input: &[u8]) -> Result<FrameHeader, ProtocolError> {
        let Some(header) = FrameHeader::parse(input)? else {
            return Err(ProtocolError::Truncated {
                what: "frame header",
                needed: FRAME_HEADER_LEN,
                available: input.len(),
            });
        };
        if input.len() < header.frame_len() {
            return Err(ProtocolError::Truncated {
                what: "frame payload",
                needed: header.payload_len,
                available: input.len() - FRAME_HEADER_LEN,
            });
        }
        Ok(header)
    }

    fn check_size(&self) -> Result<(), ProtocolError> {
        if self.payload.len() > MAX_FRAME_PAYLOAD {
            return Err(ProtocolError::Oversized {
                what: "frame payload",
                actual: self.payload.len(),
                max: MAX_FRAME_PAYLOAD,
            });
        }
        Ok(())
    }

    /// Checks that this frame has the type the caller expects.
    pub(crate) fn expect_type(&self, expected: FrameType) -> Result<(), ProtocolError> {
        if self.frame_type == expected {
            Ok(())
        } else {
            Err(ProtocolError::UnexpectedFrameType {
                expected,
                found: self.frame_type,
            })
        }
    }
}

/// Buffers that can reserve room up front, so encoding a frame grows them at most once.
pub trait Reserve {
    /// Makes room for at least `additional` more bytes.
    fn reserve_bytes(&mut self, additional: usize);
}

impl Reserve for BytesMut {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl Reserve for Vec<u8> {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
}
