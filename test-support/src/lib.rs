//! What the workspace's tests share, in one place so each piece has one copy:
//!
//! - `control_plane` (feature `control-plane`): a control plane on fresh storage (a new SQLite file, or a new
//!   PostgreSQL schema with its own Redis key prefix), cheap password hashing, the shared
//!   service credential, served on `127.0.0.1:0`; the `both_engines!` macro.
//! - `providers` (feature `providers`): the in-tree mock providers wired as a voice bridge
//!   or as chat providers behind failover.
//! - [`process`]: the `companion` binary as a child process: start it, read the URL it prints,
//!   sign up, SIGTERM, wait with a deadline.
//! - [`redis`]: a `redis-server` of the test's own, to stall, kill and restart.
//! - [`ws`]: the chat WebSocket client: the handshake (`companion.v1` and a bearer token) and
//!   its `hello`.
//! - [`browser`]: the browser tests' set-up: checks for Chromium and playwright, the re-run
//!   inside a network namespace with a veth pair, the node driver's JSON report.
//! - [`webrtc`]: a str0m peer that offers what Chromium offers for a voice call, fallible
//!   ([`webrtc::Peer`], used by the load generator) or recording and panicking
//!   ([`webrtc::RecordingPeer`], used by tests).
//!
//! Tests only: production crates never depend on this crate. The load generator
//! (`loadtest/voice-calls`) takes it as a normal dependency without default features, for
//! the WebRTC peer only.
//!
//! Helpers panic with a message on failure (they run in tests), except [`webrtc::Peer`],
//! which the load generator drives and which returns errors.

#[cfg(feature = "control-plane")]
pub mod control_plane;

#[cfg(feature = "providers")]
pub mod providers;

pub mod browser;
pub mod process;
pub mod redis;
pub mod webrtc;
pub mod ws;
