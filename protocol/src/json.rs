//! JSON encoding and decoding of events, with size limits and typed errors.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ProtocolError;
use crate::event::{ClientEvent, ServerEvent};
use crate::frame::{FRAME_HEADER_LEN, Frame, FrameFlags, FrameHeader, FrameType};
use crate::version::MAX_EVENT_BYTES;

/// Parses one event of type `T` whose known `"type"` names are `known`.
fn decode<T: DeserializeOwned>(bytes: &[u8], known: &[&str]) -> Result<T, ProtocolError> {
    // Size first: an oversized message is rejected without being parsed.
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(ProtocolError::Oversized {
            what: "event",
            actual: bytes.len(),
            max: MAX_EVENT_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|error| classify(bytes, known, &error))
}

/// Turns a serde error into the precise [`ProtocolError`]. Runs only on the error path: a
/// second, shallow parse that reads just the `"type"` field tells an unknown event type from
/// a malformed known one.
fn classify(bytes: &[u8], known: &[&str], error: &serde_json::Error) -> ProtocolError {
    if !matches!(error.classify(), Category::Data) {
        // Syntax error, early end or bad UTF-8: not JSON at all.
        return ProtocolError::InvalidJson {
            message: error.to_string(),
        };
    }

    #[derive(serde::Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow, default)]
        event_type: Option<Cow<'a, str>>,
    }

    match serde_json::from_slice::<TypeOnly<'_>>(bytes) {
        Ok(TypeOnly {
            event_type: Some(name),
        }) => {
            if known.contains(&name.as_ref()) {
                ProtocolError::invalid_event(&name, error.to_string())
            } else {
                ProtocolError::unknown_event_type(&name)
            }
        }
        Ok(TypeOnly { event_type: None }) => ProtocolError::NotAnEvent {
            message: "the object has no \"type\" field".to_owned(),
        },
        // Not an object, or "type" is not a string.
        Err(_) => ProtocolError::NotAnEvent {
            message: error.to_string(),
        },
    }
}

/// Appends `event` as JSON to `dst`, undoing the append if it exceeds [`MAX_EVENT_BYTES`].
fn encode_into(event: &impl Serialize, dst: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = dst.len();
    // Serialising these types cannot fail: every map key is a string and there are no
    // custom serialisers. Map the impossible error to InvalidJson rather than panic.
    let written = serde_json::to_writer(&mut *dst, event);
    let len = dst.len() - start;
    if let Err(error) = written {
        dst.truncate(start);
        return Err(ProtocolError::InvalidJson {
            message: error.to_string(),
        });
    }
    if len > MAX_EVENT_BYTES {
        dst.truncate(start);
        return Err(ProtocolError::Oversized {
            what: "event",
            actual: len,
            max: MAX_EVENT_BYTES,
        });
    }
    Ok(())
}

/// Appends `event` as a [`FrameType::Event`] frame to `dst`: header, then JSON written in
/// place, then the length patched in. No intermediate buffer.
fn encode_frame_into(
    event: &impl Serialize,
    sequence: u32,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let start = dst.len();
    let header = FrameHeader {
        frame_type: FrameType::Event,
        flags: FrameFlags::NONE,
        sequence,
        media_time_us: 0,
        payload_len: 0,
    };
    Frame::from_parts(header, bytes::Bytes::new()).encode_into(dst)?;
    let written = serde_json::to_writer(dst.writer(), event);
    // `dst.writer()` borrowed dst mutably only for the call above.
    let len = dst.len() - start - FRAME_HEADER_LEN;
    if let Err(error) = written {
        dst.truncate(start);
        return Err(ProtocolError::InvalidJson {
            message: error.to_string(),
        });
    }
    if len > MAX_EVENT_BYTES {
        dst.truncate(start);
        return Err(ProtocolError::Oversized {
            what: "event",
            actual: len,
            max: MAX_EVENT_BYTES,
        });
    }
    // MAX_EVENT_BYTES fits in u32.
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    dst[start + FRAME_HEADER_LEN - 4..start + FRAME_HEADER_LEN].copy_from_slice(&len);
    Ok(())
}

/// The JSON methods, identical for both directions.
macro_rules! json_codec {
    ($event:ident) => {
        impl $event {
            /// Decodes one event from JSON bytes (a WebSocket text message, a data-channel
            /// message, an event frame's payload).
            ///
            /// Checks the size before parsing, then the event's rules
            /// ([`validate`](Self::validate)). Unknown fields are ignored; an unknown `"type"`
            /// is [`ProtocolError::UnknownEventType`].
            pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
                let event: Self = decode(bytes, Self::TYPES)?;
                event.validate()?;
                Ok(event)
            }

            /// Decodes one event from a JSON string.
            pub fn from_json_str(text: &str) -> Result<Self, ProtocolError> {
                Self::from_json(text.as_bytes())
            }

            /// Encodes the event as a JSON string (for a WebSocket text message).
            pub fn to_json(&self) -> Result<String, ProtocolError> {
                let mut buf = Vec::new();
                self.encode_json_into(&mut buf)?;
                // serde_json writes UTF-8 only.
                String::from_utf8(buf).map_err(|error| ProtocolError::InvalidJson {
                    message: error.to_string(),
                })
            }

            /// Appends the event as JSON to `dst`, so a sender can reuse one buffer.
            ///
            /// Fails with [`ProtocolError::Oversized`] over [`MAX_EVENT_BYTES`] or a rule
            /// error from [`validate`](Self::validate); `dst` is then unchanged.
            pub fn encode_json_into(&self, dst: &mut Vec<u8>) -> Result<(), ProtocolError> {
                self.validate()?;
                encode_into(self, dst)
            }

            /// Appends the event as a [`FrameType::Event`] frame (for QUIC streams) to `dst`.
            pub fn encode_frame_into(
                &self,
                sequence: u32,
                dst: &mut BytesMut,
            ) -> Result<(), ProtocolError> {
                self.validate()?;
                encode_frame_into(self, sequence, dst)
            }

            /// The event as a [`FrameType::Event`] frame.
            pub fn to_frame(&self, sequence: u32) -> Result<Frame, ProtocolError> {
                let mut buf = Vec::new();
                self.encode_json_into(&mut buf)?;
                Ok(Frame {
                    frame_type: FrameType::Event,
                    flags: FrameFlags::NONE,
                    sequence,
                    media_time_us: 0,
                    payload: buf.into(),
                })
            }

            /// Decodes the event carried by a [`FrameType::Event`] frame.
            pub fn from_frame(frame: &Frame) -> Result<Self, ProtocolError> {
                frame.expect_type(FrameType::Event)?;
                Self::from_json(&frame.payload)
            }
        }
    };
}

json_codec!(ServerEvent);
json_codec!(ClientEvent);
