//! The crate's one error type.

use crate::control::ErrorCode;
use crate::frame::FrameType;

/// Everything that can be wrong with bytes received from a peer, or with a value about to be
/// sent to one.
///
/// Decoding never panics: any input gives either a value or one of these. Messages say what
/// the peer sent and what was expected, so a log line is enough to find the bug. Errors are
/// `Clone` so a [`FrameDecoder`](crate::FrameDecoder) can repeat the error that broke its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame payload or JSON event is larger than the protocol allows.
    #[error("{what} is {actual} bytes, over the {max}-byte limit")]
    Oversized {
        /// What was too large: `"frame payload"` or `"event"`.
        what: &'static str,
        /// Its size in bytes.
        actual: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The input ended before the frame (or frame part) it started was complete.
    #[error("truncated {what}: need {needed} bytes, only {available} present")]
    Truncated {
        /// What was cut short: `"frame header"`, `"frame payload"`, `"viseme payload"`.
        what: &'static str,
        /// Bytes needed to complete it.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// A frame (one WebSocket message) carried bytes after the payload its header declared.
    #[error("frame declares a {declared}-byte payload but {actual} bytes follow the header")]
    TrailingBytes {
        /// Payload length from the header.
        declared: usize,
        /// Bytes actually following the header.
        actual: usize,
    },
    /// A frame does not start with the frame magic: the peer is not speaking this protocol,
    /// or a stream lost sync. Names the first wrong byte, which is the same however the
    /// bytes were split into chunks.
    #[error(
        "bad frame magic: byte {offset} is 0x{found:02x}, expected 0x{expected:02x} (frames start with \"CP\")"
    )]
    BadMagic {
        /// Offset of the first wrong byte (0 or 1).
        offset: usize,
        /// The byte found there.
        found: u8,
        /// The byte [`FRAME_MAGIC`](crate::FRAME_MAGIC) has there.
        expected: u8,
    },
    /// The frame header's version byte is not one this build speaks.
    #[error("unsupported frame version {found}, this build speaks version {supported}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build speaks, [`FRAME_VERSION`](crate::FRAME_VERSION).
        supported: u8,
    },
    /// The frame header names a frame type this build does not know.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    /// A frame of one type was handed to code expecting another (e.g. audio to the event
    /// decoder).
    #[error("expected frame type {expected:?}, got {found:?}")]
    UnexpectedFrameType {
        /// The frame type the caller wanted.
        expected: FrameType,
        /// The frame type it got.
        found: FrameType,
    },
    /// The bytes are not JSON (syntax error or early end), or not UTF-8.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// The JSON is an object without a string `"type"` field, or not an object at all.
    #[error("not an event: {message}")]
    NotAnEvent {
        /// What was found instead.
        message: String,
    },
    /// The `"type"` names no event this build knows in this direction.
    #[error("unknown event type \"{0}\"")]
    UnknownEventType(String),
    /// The event type is known but its fields do not match it (missing field, wrong JSON type,
    /// unknown enum value).
    #[error("malformed \"{event_type}\" event: {message}")]
    InvalidEvent {
        /// The event's `"type"`.
        event_type: String,
        /// serde_json's description, naming the field.
        message: String,
    },
    /// A field parsed but its value breaks a rule of the protocol (empty id, weight out of
    /// range, unsupported sample rate...).
    #[error("\"{event_type}\" event: field `{field}` {reason}")]
    InvalidField {
        /// The event's `"type"` (or `"viseme payload"` for binary visemes).
        event_type: &'static str,
        /// The JSON field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Longest event-type name repeated back in an error: the name comes from the peer and could
/// be most of a 128 KiB message.
const MAX_NAME_IN_ERROR: usize = 64;

impl ProtocolError {
    /// The stable code to send back in an `error` event when a peer's input fails to decode:
    /// `payload_too_large` for size violations, `unsupported_version` for a newer frame
    /// version, `bad_request` for everything else.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Oversized { .. } => ErrorCode::PayloadTooLarge,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::BadRequest,
        }
    }

    /// [`ProtocolError::UnknownEventType`] with the peer's name cut to a log-safe length.
    pub(crate) fn unknown_event_type(name: &str) -> Self {
        Self::UnknownEventType(truncate_chars(name, MAX_NAME_IN_ERROR))
    }

    /// [`ProtocolError::InvalidEvent`] with the event type cut to a log-safe length.
    pub(crate) fn invalid_event(event_type: &str, message: String) -> Self {
        Self::InvalidEvent {
            event_type: truncate_chars(event_type, MAX_NAME_IN_ERROR),
            message,
        }
    }
}

/// `s` cut to at most `max` characters, with an ellipsis if anything was cut.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}
