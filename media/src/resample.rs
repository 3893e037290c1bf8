//! Streaming 20 ms resamplers (48 -> 16 kHz inbound, 16 -> 48 and 24 -> 48 kHz outbound) over
//! `rubato`'s synchronous FFT resampler, with its delay taken out of the timestamps.
//!
//! `rubato::Fft` with `FixedSync::Both` consumes and produces a fixed number of samples per
//! call, so one 20 ms frame in gives exactly one 20 ms frame out. Its filter delays the signal
//! by [`StreamResampler::delay_samples`] output samples; each output frame is stamped with the
//! media time its samples actually belong to (input time minus that delay), so an event found
//! in 16 kHz audio points at the right place in the 48 kHz stream. The first frames of a stream
//! start "before zero" (they hold the filter's run-in); their stamps saturate at zero.
//!
//! [`RateConverter`](crate::RateConverter) builds on the same two helpers ([`fixed_fft`],
//! [`run_block`]) for rates known only at run time.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;
use crate::time::{CLOCK_RATE, MediaTime};

/// Resamples a stream of `AudioFrame<IN>` into a stream of `AudioFrame<OUT>`.
pub struct StreamResampler<const IN: usize, const OUT: usize> {
    inner: Fft<f32>,
    delay: usize,
}

/// Inbound: WebRTC audio to what the VAD and speech recognisers take.
pub type Resampler48To16 = StreamResampler<960, 320>;
/// Outbound: 16 kHz TTS audio to Opus.
pub type Resampler16To48 = StreamResampler<320, 960>;
/// Outbound: 24 kHz TTS audio to Opus.
pub type Resampler24To48 = StreamResampler<480, 960>;

impl<const IN: usize, const OUT: usize> std::fmt::Debug for StreamResampler<IN, OUT> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("in_rate", &AudioFrame::<IN>::RATE)
            .field("out_rate", &AudioFrame::<OUT>::RATE)
            .field("delay_samples", &self.delay)
            .finish()
    }
}

fn rubato_err(what: &'static str) -> impl FnOnce(String) -> MediaError {
    move |detail| MediaError::Resampler { what, detail }
}

impl<const IN: usize, const OUT: usize> StreamResampler<IN, OUT> {
    /// Builds the resampler; all buffers it will ever need are allocated here.
    pub fn new() -> Result<Self> {
        let inner = fixed_fft(AudioFrame::<IN>::RATE, AudioFrame::<OUT>::RATE, IN, OUT)?;
        let delay = inner.output_delay();
        Ok(Self { inner, delay })
    }

    /// The resampler's delay in output samples.
    #[must_use]
    pub const fn delay_samples(&self) -> usize {
        self.delay
    }

    /// The resampler's delay in media-clock ticks.
    #[must_use]
    pub const fn delay_ticks(&self) -> u64 {
        (self.delay as u64) * (CLOCK_RATE / AudioFrame::<OUT>::RATE) as u64
    }

    /// Resamples one frame. The output is stamped with the media time of its first sample
    /// (the input's time minus the filter delay).
    pub fn process(&mut self, input: &AudioFrame<IN>) -> Result<AudioFrame<OUT>> {
        let mut out = AudioFrame::<OUT>::silence(MediaTime(
            input.time().0.saturating_sub(self.delay_ticks()),
        ));
        self.process_into(input, &mut out)?;
        Ok(out)
    }

    /// As [`Self::process`], writing into an existing frame.
    pub fn process_into(
        &mut self,
        input: &AudioFrame<IN>,
        out: &mut AudioFrame<OUT>,
    ) -> Result<()> {
        out.set_time(MediaTime(input.time().0.saturating_sub(self.delay_ticks())));
        run_block(
            &mut self.inner,
            &input.samples()[..],
            &mut out.samples_mut()[..],
        )
    }

    /// Forgets the stream (for a new call reusing this resampler).
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// An FFT resampler that turns exactly `block_in` samples at `from` Hz into exactly
/// `block_out` at `to` Hz per call (the caller picks 20 ms blocks).
pub(crate) fn fixed_fft(from: u32, to: u32, block_in: usize, block_out: usize) -> Result<Fft<f32>> {
    let inner = Fft::<f32>::new(from as usize, to as usize, block_in, 1, FixedSync::Both)
        .map_err(|e| rubato_err("construction")(e.to_string()))?;
    if inner.input_frames_next() != block_in || inner.output_frames_next() != block_out {
        return Err(MediaError::Resampler {
            what: "construction",
            detail: format!(
                "chunk sizes {}->{} do not match 20 ms frames {block_in}->{block_out}",
                inner.input_frames_next(),
                inner.output_frames_next()
            ),
        });
    }
    Ok(inner)
}

/// Runs one block through a [`fixed_fft`] resampler; `input` and `output` are its block sizes.
pub(crate) fn run_block(inner: &mut Fft<f32>, input: &[f32], output: &mut [f32]) -> Result<()> {
    let (n, m) = (input.len(), output.len());
    let adapter_in = InterleavedSlice::new(input, 1, n)
        .map_err(|e| rubato_err("input buffer")(e.to_string()))?;
    let mut adapter_out = InterleavedSlice::new_mut(output, 1, m)
        .map_err(|e| rubato_err("output buffer")(e.to_string()))?;
    let (_, written) = inner
        .process_into_buffer(&adapter_in, &mut adapter_out, None)
        .map_err(|e| rubato_err("process")(e.to_string()))?;
    debug_assert_eq!(written, m);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 440 Hz tone at `N / 50` Hz, frame `k` of a stream.
    fn tone<const N: usize>(k: u64) -> AudioFrame<N> {
        let rate = AudioFrame::<N>::RATE as f32;
        let mut f =
            AudioFrame::<N>::silence(MediaTime::from_samples(k * N as u64, AudioFrame::<N>::RATE));
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (k as f32 * N as f32 + i as f32) / rate;
            *s = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
        }
        f
    }

    fn check<const IN: usize, const OUT: usize>() {
        let mut r = StreamResampler::<IN, OUT>::new().expect("builds");
        let mut last = AudioFrame::<OUT>::silence(MediaTime::ZERO);
        for k in 0..20 {
            last = r.process(&tone::<IN>(k)).expect("resamples");
        }
        // Level is preserved and the stamp is the input's minus the filter delay.
        assert!(
            (last.rms() - 0.5 / 2f32.sqrt()).abs() < 0.02,
            "rms {}",
            last.rms()
        );
        assert_eq!(last.time().0, tone::<IN>(19).time().0 - r.delay_ticks());
    }

    #[test]
    fn every_direction_turns_one_frame_into_one_frame() {
        check::<960, 320>();
        check::<320, 960>();
        check::<480, 960>();
    }
}
