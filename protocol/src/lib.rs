//! Wire types and codecs shared by every side of the companion platform (sans-IO).
//!
//! Everything a client (browser, app, load generator) or a gateway node exchanges on a live
//! connection is defined here, once:
//!
//! - [`ServerEvent`] / [`ClientEvent`]: JSON events, internally tagged by a `"type"` field
//!   (`{"type":"message_delta", ...}`), camelCase fields. They travel as WebSocket text
//!   messages, WebRTC data-channel messages, or inside [`FrameType::Event`] frames on QUIC
//!   streams. Chat events live in [`chat`], voice-call events in [`voice`], connection-level
//!   events (hello, heartbeat, error, goodbye) in [`control`].
//! - [`Frame`]: the compact binary frame for audio, visemes and (on QUIC) JSON events, with a
//!   fixed 22-byte header. [`FrameDecoder`] reassembles frames from a byte stream that may
//!   deliver partial frames.
//! - [`ProtocolError`]: the one error type; decoding arbitrary bytes returns one of its
//!   variants and never panics.
//!
//! Versioning is announced by [`PROTOCOL_VERSION`], the WebSocket subprotocol
//! [`WS_SUBPROTOCOL`], the QUIC ALPN [`QUIC_ALPN`] and the frame header's version byte
//! ([`FRAME_VERSION`]). `docs/protocol.md` is the reference page; a test parses every JSON
//! example in it with this crate.
//!
//! The crate does no I/O and has no runtime: callers hand it bytes and get values back.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chat;
pub mod control;
mod error;
mod event;
mod frame;
mod json;
mod secret;
mod stream;
mod version;
pub mod viseme;
pub mod voice;

pub use error::ProtocolError;
pub use event::{ClientEvent, ServerEvent};
pub use frame::{
    FRAME_HEADER_LEN, FRAME_MAGIC, Frame, FrameFlags, FrameHeader, FrameType, Reserve,
};
pub use secret::Secret;
pub use stream::FrameDecoder;
pub use version::{
    DATA_CHANNEL_LABEL, FRAME_VERSION, MAX_EVENT_BYTES, MAX_FRAME_LEN, MAX_FRAME_PAYLOAD,
    PROTOCOL_VERSION, QUIC_ALPN, WS_SUBPROTOCOL,
};
