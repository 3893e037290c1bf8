//! The edges of the data plane: each adapts one transport to the core and knows nothing of
//! its siblings. An edge imports `crate::core` and its own files only; the crate root mounts
//! each edge's routes and hands it what it needs from another (the WebSocket edge takes its
//! voice sessions' call slots from the media endpoint through the core's `CallSlots`).
//!
//! - `webrtc`: WHIP-style signaling and WebRTC termination (one UDP socket for every call);
//! - `ws`: chat and voice over WebSocket (`/v1/chat/ws`);
//! - `quic`: chat over raw QUIC and WebTransport;
//! - `openai`: the OpenAI-compatible HTTP endpoints;
//! - `demo`: the demo and status pages.

pub(crate) mod demo;
pub(crate) mod openai;
pub mod quic;
pub(crate) mod webrtc;
pub(crate) mod ws;
