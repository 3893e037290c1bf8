//! The media clock: one tick per sample at 48 kHz, the RTP clock rate of Opus.
//!
//! 48 kHz is a common multiple of every rate the crate handles (16 kHz = 3 ticks a sample,
//! 24 kHz = 2 ticks), so a timestamp is sample-accurate at any of them and frames of different
//! rates (inbound 16 kHz VAD frames, outbound 48 kHz audio, viseme frames) share one clock.

use std::time::Duration;

/// Ticks of the media clock per second.
pub const CLOCK_RATE: u32 = 48_000;

/// A point on a call's media clock, in 48 kHz ticks since the stream's first sample.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct MediaTime(pub u64);

impl MediaTime {
    /// The start of the stream.
    pub const ZERO: Self = Self(0);

    /// The time of sample `index` of a stream at `rate` Hz (`rate` must divide 48 000).
    #[must_use]
    pub const fn from_samples(index: u64, rate: u32) -> Self {
        Self(index * (CLOCK_RATE / rate) as u64)
    }

    /// The sample index at `rate` Hz (rounded down).
    #[must_use]
    pub const fn samples_at(self, rate: u32) -> u64 {
        self.0 / (CLOCK_RATE / rate) as u64
    }

    /// Time since the stream's start.
    #[must_use]
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0 * 1_000_000_000 / u64::from(CLOCK_RATE))
    }

    /// Seconds since the stream's start (for logs and tests).
    #[must_use]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / f64::from(CLOCK_RATE)
    }

    /// This time moved later by `d` (rounded down to a tick).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0 + duration_to_ticks(d))
    }

    /// This time moved earlier by `d`, stopping at zero.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_to_ticks(d)))
    }
}

/// Whole ticks in `d`.
#[must_use]
pub fn duration_to_ticks(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000) as u64
}
