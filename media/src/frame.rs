//! 20 ms audio frames as fixed-size arrays, so a running call allocates nothing per frame.
//!
//! The sample rate is part of the type: `AudioFrame<N>` holds `N` samples and `N = rate / 50`,
//! so [`Frame48`], [`Frame24`] and [`Frame16`] cannot be mixed up, and a stage that wants
//! 16 kHz audio simply takes a `Frame16`. Samples are `f32` in `[-1, 1]`; conversions to and
//! from `i16` (what Opus and WAV files carry) are provided.

use crate::error::{MediaError, Result};
use crate::time::MediaTime;

/// Frame duration in milliseconds; every frame in the crate is this long.
pub const FRAME_MS: u32 = 20;

/// One 20 ms mono frame of `N` samples (`N = rate / 50`), stamped with the media time of its
/// first sample.
#[derive(Clone, Copy, PartialEq)]
pub struct AudioFrame<const N: usize> {
    samples: [f32; N],
    time: MediaTime,
}

/// A 20 ms frame at 48 kHz (Opus, WebRTC).
pub type Frame48 = AudioFrame<960>;
/// A 20 ms frame at 24 kHz (a common TTS output rate).
pub type Frame24 = AudioFrame<480>;
/// A 20 ms frame at 16 kHz (VAD and speech recognisers).
pub type Frame16 = AudioFrame<320>;

impl<const N: usize> std::fmt::Debug for AudioFrame<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFrame")
            .field("rate", &Self::RATE)
            .field("time", &self.time)
            .field("rms", &self.rms())
            .finish()
    }
}

impl<const N: usize> AudioFrame<N> {
    /// Sample rate of this frame type in Hz.
    pub const RATE: u32 = (N as u32) * (1000 / FRAME_MS);
    /// Samples in one frame.
    pub const LEN: usize = N;

    /// A frame of digital silence.
    #[must_use]
    pub const fn silence(time: MediaTime) -> Self {
        Self {
            samples: [0.0; N],
            time,
        }
    }

    /// Wraps samples that are already known to be finite (the output of our own stages).
    #[must_use]
    pub const fn from_array(samples: [f32; N], time: MediaTime) -> Self {
        Self { samples, time }
    }

    /// Builds a frame from `f32` samples taken at `rate` Hz, checking rate, length and that
    /// every sample is finite.
    pub fn from_f32(rate: u32, samples: &[f32], time: MediaTime) -> Result<Self> {
        Self::check_shape(rate, samples.len())?;
        if let Some(index) = samples.iter().position(|s| !s.is_finite()) {
            return Err(MediaError::NonFiniteSample { index });
        }
        let mut frame = Self::silence(time);
        frame.samples.copy_from_slice(samples);
        Ok(frame)
    }

    /// Builds a frame from 16-bit PCM taken at `rate` Hz.
    pub fn from_i16(rate: u32, samples: &[i16], time: MediaTime) -> Result<Self> {
        Self::check_shape(rate, samples.len())?;
        let mut frame = Self::silence(time);
        for (out, s) in frame.samples.iter_mut().zip(samples) {
            *out = f32::from(*s) / 32768.0;
        }
        Ok(frame)
    }

    fn check_shape(rate: u32, len: usize) -> Result<()> {
        if rate != Self::RATE {
            return Err(MediaError::WrongSampleRate {
                expected: Self::RATE,
                got: rate,
            });
        }
        if len != N {
            return Err(MediaError::WrongFrameLength {
                rate,
                expected: N,
                got: len,
            });
        }
        Ok(())
    }

    /// Writes the frame as 16-bit PCM (clamped).
    pub fn write_i16(&self, out: &mut [i16; N]) {
        for (o, s) in out.iter_mut().zip(&self.samples) {
            *o = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// Replaces NaN/infinite samples by silence and clamps the rest to `[-1, 1]`; returns how
    /// many samples were replaced so the caller can count them.
    pub fn conceal_non_finite(&mut self) -> usize {
        let mut bad = 0;
        for s in &mut self.samples {
            if s.is_finite() {
                *s = s.clamp(-1.0, 1.0);
            } else {
                *s = 0.0;
                bad += 1;
            }
        }
        bad
    }

    /// The samples.
    #[must_use]
    pub const fn samples(&self) -> &[f32; N] {
        &self.samples
    }

    /// The samples, for stages that write a frame in place.
    pub const fn samples_mut(&mut self) -> &mut [f32; N] {
        &mut self.samples
    }

    /// Media time of the first sample.
    #[must_use]
    pub const fn time(&self) -> MediaTime {
        self.time
    }

    /// Restamps the frame.
    pub const fn set_time(&mut self, time: MediaTime) {
        self.time = time;
    }

    /// Media time just after the last sample (the next frame's start).
    #[must_use]
    pub const fn end_time(&self) -> MediaTime {
        MediaTime(self.time.0 + (N as u64) * (crate::time::CLOCK_RATE / Self::RATE) as u64)
    }

    /// Root-mean-square level (linear, full scale = 1).
    #[must_use]
    pub fn rms(&self) -> f32 {
        rms(&self.samples)
    }
}

/// Root-mean-square of a block of samples.
#[must_use]
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f32 = samples.iter().map(|s| s * s).sum();
    (sum / samples.len() as f32).sqrt()
}

/// A linear level in dBFS (silence gives -inf).
#[must_use]
pub fn to_dbfs(level: f32) -> f32 {
    20.0 * level.log10()
}
