//! TTS audio at any rate (24 kHz from OpenAI/ElevenLabs, 22,050 Hz from espeak-ng, ...) to the
//! 48 kHz output stream.
//!
//! media's resamplers are typed per rate pair; TTS providers choose their rate at run time,
//! so this one wraps `rubato::Fft` for any rate that holds a whole number of samples per
//! 20 ms (`rate / 50`), which gives exactly 960 output samples per input block. The filter's
//! delay is skipped at the start and flushed at the end, so output sample `k` belongs to
//! input time `k / 48000` exactly: the heard-text and viseme bookkeeping can use time.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::PipelineError;

/// Output rate of a session.
pub(crate) const OUT_RATE: u32 = 48_000;
const OUT_BLOCK: usize = 960;

fn err(detail: impl std::fmt::Display) -> PipelineError {
    PipelineError::InvalidRequest(format!("resampling TTS audio: {detail}"))
}

/// A streaming s16le -> 48 kHz f32 converter for one reply.
pub(crate) struct ToOutputRate {
    rate: u32,
    inner: Option<Fft<f32>>,
    block: Vec<f32>,
    out: Vec<f32>,
    /// Output samples still to drop (the filter's run-in).
    skip: usize,
    /// Input samples taken so far and output samples given out so far.
    taken: u64,
    given: u64,
    /// A byte of a sample split across network chunks.
    odd: Option<u8>,
}

impl std::fmt::Debug for ToOutputRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToOutputRate")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl ToOutputRate {
    /// A converter from `rate` Hz; fails for rates without a whole 20 ms block.
    pub(crate) fn new(rate: u32) -> Result<Self, PipelineError> {
        if rate == 0 || !rate.is_multiple_of(50) || rate > 192_000 {
            return Err(err(format!(
                "sample rate {rate} Hz is not supported (it must be a multiple of 50 Hz, at most 192 kHz)"
            )));
        }
        let block = (rate / 50) as usize;
        let inner = if rate == OUT_RATE {
            None
        } else {
            let fft = Fft::<f32>::new(rate as usize, OUT_RATE as usize, block, 1, FixedSync::Both)
                .map_err(err)?;
            if fft.input_frames_next() != block || fft.output_frames_next() != OUT_BLOCK {
                return Err(err(format!(
                    "{rate} Hz gives blocks of {} -> {}, not {block} -> {OUT_BLOCK}",
                    fft.input_frames_next(),
                    fft.output_frames_next()
                )));
            }
            Some(fft)
        };
        let skip = inner.as_ref().map_or(0, Resampler::output_delay);
        Ok(Self {
            rate,
            inner,
            block: Vec::with_capacity(block),
            out: vec![0.0; OUT_BLOCK],
            skip,
            taken: 0,
            given: 0,
            odd: None,
        })
    }

    /// The input rate.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Converts `pcm` (s16le); 48 kHz samples go to `sink` as they become ready.
    pub(crate) fn push(
        &mut self,
        pcm: &[u8],
        sink: &mut impl FnMut(&[f32]),
    ) -> Result<(), PipelineError> {
        let mut rest = pcm;
        if let Some(lo) = self.odd.take()
            && let Some((&hi, tail)) = rest.split_first()
        {
            self.sample(f32::from(i16::from_le_bytes([lo, hi])) / 32768.0, sink)?;
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        for b in &mut pairs {
            self.sample(f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0, sink)?;
        }
        if let [lo] = pairs.remainder() {
            self.odd = Some(*lo);
        }
        Ok(())
    }

    fn sample(&mut self, s: f32, sink: &mut impl FnMut(&[f32])) -> Result<(), PipelineError> {
        self.taken += 1;
        if self.inner.is_none() {
            self.given += 1;
            sink(&[s]);
            return Ok(());
        }
        self.block.push(s);
        if self.block.len() == self.block.capacity() {
            self.run(sink)?;
        }
        Ok(())
    }

    fn run(&mut self, sink: &mut impl FnMut(&[f32])) -> Result<(), PipelineError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let n = self.block.capacity();
        let input = InterleavedSlice::new(&self.block[..], 1, n).map_err(err)?;
        let mut output = InterleavedSlice::new_mut(&mut self.out[..], 1, OUT_BLOCK).map_err(err)?;
        inner
            .process_into_buffer(&input, &mut output, None)
            .map_err(err)?;
        self.block.clear();
        let skip = self.skip.min(OUT_BLOCK);
        self.skip -= skip;
        // While streaming, the filter delay keeps the output behind the input, so nothing
        // needs trimming until `finish`.
        let out = &self.out[skip..];
        self.given += out.len() as u64;
        sink(out);
        Ok(())
    }

    /// Ends the stream: the audio still inside the filter comes out, trimmed so the output
    /// lasts exactly as long as the input.
    pub(crate) fn finish(&mut self, sink: &mut impl FnMut(&[f32])) -> Result<(), PipelineError> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = self.taken * u64::from(OUT_RATE) / u64::from(self.rate);
        let mut guard = 0;
        while self.given < expected && guard < 64 {
            guard += 1;
            let missing = self.block.capacity() - self.block.len();
            self.block.extend(std::iter::repeat_n(0.0, missing));
            let Some(inner) = self.inner.as_mut() else {
                break;
            };
            let n = self.block.capacity();
            let input = InterleavedSlice::new(&self.block[..], 1, n).map_err(err)?;
            let mut output =
                InterleavedSlice::new_mut(&mut self.out[..], 1, OUT_BLOCK).map_err(err)?;
            inner
                .process_into_buffer(&input, &mut output, None)
                .map_err(err)?;
            self.block.clear();
            let skip = self.skip.min(OUT_BLOCK);
            self.skip -= skip;
            let room = (expected - self.given) as usize;
            let end = OUT_BLOCK.min(skip + room);
            let out = &self.out[skip..end];
            self.given += out.len() as u64;
            sink(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f64) -> Vec<u8> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f64 / f64::from(rate);
                (((t * 440.0 * std::f64::consts::TAU).sin() * 16_000.0) as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn any_tts_rate_becomes_48k_of_the_same_length_and_level() {
        for rate in [16_000, 22_050, 24_000, 44_100, 48_000] {
            let pcm = tone(rate, 0.5);
            let mut r = ToOutputRate::new(rate).expect("supported rate");
            let mut out = Vec::new();
            // Odd-sized network chunks split samples in half.
            for piece in pcm.chunks(777) {
                r.push(piece, &mut |s| out.extend_from_slice(s))
                    .expect("push");
            }
            r.finish(&mut |s| out.extend_from_slice(s)).expect("finish");
            assert_eq!(out.len(), 24_000, "{rate} Hz");
            let mid = &out[4_800..19_200];
            let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
            assert!((rms - 0.3453).abs() < 0.02, "{rate} Hz: rms {rms}");
        }
    }

    #[test]
    fn a_rate_without_whole_20ms_blocks_is_a_typed_error() {
        assert!(matches!(
            ToOutputRate::new(11_025),
            Err(PipelineError::InvalidRequest(_))
        ));
    }
}
