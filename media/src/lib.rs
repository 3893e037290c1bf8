//! Audio frames, Opus, resampling, VAD, end of turn, jitter buffer and visemes (sans-IO).
#![forbid(unsafe_code)]
