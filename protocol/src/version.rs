//! Version identifiers and size limits: the numbers both ends must agree on.

/// The protocol version this crate speaks.
///
/// Within one version, changes are additive only: new optional fields (receivers ignore fields
/// they do not know) and new event types (receivers get
/// [`ProtocolError::UnknownEventType`](crate::ProtocolError::UnknownEventType) and should skip
/// the event, not drop the connection). Anything else bumps this number together with
/// [`WS_SUBPROTOCOL`], [`QUIC_ALPN`] and [`FRAME_VERSION`].
pub const PROTOCOL_VERSION: u16 = 1;

/// WebSocket subprotocol (`Sec-WebSocket-Protocol`) a client offers and the gateway echoes.
///
/// Also used as the `protocol` of the WebRTC data channel.
pub const WS_SUBPROTOCOL: &str = "companion.v1";

/// QUIC ALPN protocol id for raw QUIC connections (WebTransport sessions negotiate `h3`
/// instead and carry the same streams inside the session).
pub const QUIC_ALPN: &[u8] = b"companion/1";

/// Label of the WebRTC data channel that carries JSON events during a voice call.
pub const DATA_CHANNEL_LABEL: &str = "events";

/// Version byte in every binary frame header. Equal to the low byte of [`PROTOCOL_VERSION`]
/// because a frame-layout change is a protocol-version change.
pub const FRAME_VERSION: u8 = 1;

/// Largest JSON event, in bytes of its UTF-8 encoding, that encoders produce and decoders
/// accept. Decoders check this before parsing, so an oversized message costs nothing.
///
/// 128 KiB holds a complete long assistant message in a `message_complete` event.
pub const MAX_EVENT_BYTES: usize = 128 * 1024;

/// Largest binary frame payload. Equal to [`MAX_EVENT_BYTES`] so every event fits in one
/// [`FrameType::Event`](crate::FrameType::Event) frame; audio frames are far smaller
/// (20 ms of Opus is ~40-400 bytes, of 48 kHz PCM 1,920 bytes per channel).
pub const MAX_FRAME_PAYLOAD: usize = MAX_EVENT_BYTES;

/// Largest complete binary frame (header plus payload): the most a [`FrameDecoder`](crate::FrameDecoder)
/// ever buffers for one partial frame.
pub const MAX_FRAME_LEN: usize = crate::frame::FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD;
