//! The voice-call load generator: N concurrent WebRTC callers (str0m, one socket and task per
//! call) place WHIP calls to a gateway (or, with `--transport ws`, WebSocket voice sessions), each playing a WAV as its microphone in real time, and
//! measure per turn the time from the end of the caller's speech to the first audible reply
//! packet, how fast a barge-in silences the companion, packet loss, and the gateway process's
//! CPU and memory. `main.rs` is the command line; `--spawn` starts the gateway itself.
//!
//! Layout: [`script`] (the WAV, its Opus frames and turns), `test_support::webrtc::Peer` (the sans-IO
//! WebRTC client, shared with the gateway's tests), [`call`] (one call's tokio shell), [`ws_call`] (the same over WebSocket), [`run`] (many calls, sampling), [`analysis`],
//! [`stats`] and [`report`] (numbers, sans-IO), [`procstat`] (/proc), [`spawn`].

pub mod analysis;
pub mod call;
pub mod procstat;
pub mod report;
pub mod run;
pub mod script;
pub mod spawn;
pub mod stats;
pub mod ws_call;
