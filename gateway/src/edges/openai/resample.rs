//! Mono s16 audio from any rate to any other, streamed (TTS audio to 24 kHz, and an uploaded
//! WAV to the recognisers' 16 kHz, read in fixed pieces).
//!
//! media's resamplers are typed per rate pair (48 <-> 16, 24 -> 48); here the input rate is
//! whatever a provider or an upload has, so this wraps `rubato::Fft` for any rate holding a
//! whole number of samples per 20 ms. The filter's run-in is skipped and its tail flushed, so
//! the output lasts exactly as long as the input.

use bytes::Bytes;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::wav::Wav;

/// Why a rate pair cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample {from} Hz audio: {reason}")]
pub(crate) struct ResampleError {
    from: u32,
    reason: String,
}

/// A streaming converter from one rate to another.
pub(crate) struct Resample {
    from: u32,
    to: u32,
    inner: Option<Fft<f32>>,
    block: Vec<f32>,
    out: Vec<f32>,
    /// Output samples still to drop (the filter's run-in).
    skip: usize,
    taken: u64,
    given: u64,
}

impl std::fmt::Debug for Resample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resample")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl Resample {
    /// A converter from `from` Hz to `to` Hz; both must be multiples of 50 Hz (a whole
    /// 20 ms block), at most 192 kHz.
    pub(crate) fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let bad = |reason: String| ResampleError { from, reason };
        for rate in [from, to] {
            if rate == 0 || !rate.is_multiple_of(50) || rate > 192_000 {
                return Err(bad(format!(
                    "{rate} Hz is not supported (a multiple of 50 Hz up to 192 kHz)"
                )));
            }
        }
        let (block_in, block_out) = ((from / 50) as usize, (to / 50) as usize);
        let inner = if from == to {
            None
        } else {
            let fft = Fft::<f32>::new(from as usize, to as usize, block_in, 1, FixedSync::Both)
                .map_err(|e| bad(e.to_string()))?;
            if fft.input_frames_next() != block_in || fft.output_frames_next() != block_out {
                return Err(bad(format!(
                    "blocks of {} -> {}, not {block_in} -> {block_out}",
                    fft.input_frames_next(),
                    fft.output_frames_next()
                )));
            }
            Some(fft)
        };
        let skip = inner.as_ref().map_or(0, Resampler::output_delay);
        Ok(Self {
            from,
            to,
            inner,
            block: Vec::with_capacity(block_in),
            out: vec![0.0; block_out],
            skip,
            taken: 0,
            given: 0,
        })
    }

    /// The input rate.
    pub(crate) fn input_rate(&self) -> u32 {
        self.from
    }

    /// Converts `samples`, appending what is ready to `sink`.
    pub(crate) fn push(&mut self, samples: &[i16], sink: &mut Vec<i16>) {
        if self.inner.is_none() {
            self.taken += samples.len() as u64;
            self.given += samples.len() as u64;
            sink.extend_from_slice(samples);
            return;
        }
        for &s in samples {
            self.taken += 1;
            self.block.push(f32::from(s) / 32768.0);
            if self.block.len() == self.block.capacity() {
                self.run(sink, u64::MAX);
            }
        }
    }

    fn run(&mut self, sink: &mut Vec<i16>, limit: u64) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let n = self.block.capacity();
        let m = self.out.len();
        let processed = InterleavedSlice::new(&self.block[..], 1, n).and_then(|input| {
            InterleavedSlice::new_mut(&mut self.out[..], 1, m).map(|output| (input, output))
        });
        // The buffers are sized by construction; a failure here would be a rubato bug, and
        // silence is a better answer to it than a panic.
        let ok = match processed {
            Ok((input, mut output)) => inner.process_into_buffer(&input, &mut output, None).is_ok(),
            Err(_) => false,
        };
        if !ok {
            self.out.fill(0.0);
        }
        self.block.clear();
        let skip = self.skip.min(m);
        self.skip -= skip;
        let room = usize::try_from(limit.saturating_sub(self.given)).unwrap_or(usize::MAX);
        let end = m.min(skip.saturating_add(room));
        let out = &self.out[skip..end.max(skip)];
        self.given += out.len() as u64;
        sink.extend(out.iter().map(|&s| to_i16(s)));
    }

    /// Ends the stream: the audio still inside the filter comes out, trimmed so the output
    /// lasts exactly as long as the input.
    pub(crate) fn finish(&mut self, sink: &mut Vec<i16>) {
        if self.inner.is_none() {
            return;
        }
        let expected = self.taken * u64::from(self.to) / u64::from(self.from);
        let mut guard = 0;
        while self.given < expected && guard < 64 {
            guard += 1;
            let missing = self.block.capacity() - self.block.len();
            self.block.extend(std::iter::repeat_n(0.0, missing));
            self.run(sink, expected);
        }
    }
}

/// Converts an uploaded recording to mono s16le at `to` Hz, as pieces of `chunk` samples (the
/// last may be shorter). The input is read in fixed pieces and the converter's output is cut
/// as it comes, so what is allocated follows the bytes that arrived (and the output's own
/// length), never a size the header claims.
pub(crate) fn resample_wav(
    wav: &Wav<'_>,
    to: u32,
    chunk: usize,
) -> Result<Vec<Bytes>, ResampleError> {
    /// Input frames mixed down per step.
    const PIECE: usize = 4096;
    let chunk = chunk.max(1);
    let mut r = Resample::new(wav.rate, to)?;
    let mut mono = Vec::with_capacity(PIECE);
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut cut = |pending: &mut Vec<i16>, all: bool| {
        let whole = if all {
            pending.len()
        } else {
            pending.len() / chunk * chunk
        };
        for c in pending[..whole].chunks(chunk) {
            let bytes: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
            out.push(Bytes::from(bytes));
        }
        pending.drain(..whole);
    };
    wav.for_each_mono(PIECE, &mut mono, |samples| {
        r.push(samples, &mut pending);
        cut(&mut pending, false);
    });
    r.finish(&mut pending);
    cut(&mut pending, true);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                ((t * 440.0 * std::f64::consts::TAU).sin() * 16_000.0) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn any_rate_keeps_its_length_and_level_when_streamed_in_odd_pieces() {
        for (from, to) in [
            (22_050, 24_000),
            (48_000, 16_000),
            (44_100, 16_000),
            (24_000, 24_000),
            (8_000, 16_000),
        ] {
            let input = tone(from, 0.5);
            let mut r = Resample::new(from, to).unwrap();
            let mut out = Vec::new();
            for piece in input.chunks(333) {
                r.push(piece, &mut out);
            }
            r.finish(&mut out);
            assert_eq!(
                out.len() as u64,
                input.len() as u64 * u64::from(to) / u64::from(from),
                "{from}->{to}"
            );
            let (a, b) = (rms(&input), rms(&out[out.len() / 4..out.len() * 3 / 4]));
            assert!((a - b).abs() / a < 0.05, "{from}->{to}: level {a} -> {b}");
        }
    }

    #[test]
    fn an_upload_comes_out_in_whole_chunks_of_the_right_total_length() {
        let input = tone(8_000, 1.03);
        let data: Vec<u8> = input.iter().flat_map(|s| s.to_le_bytes()).collect();
        let wav = Wav {
            rate: 8_000,
            channels: 1,
            data: &data,
        };
        let chunks = resample_wav(&wav, 16_000, 1_600).unwrap();
        let total: usize = chunks.iter().map(|c| c.len() / 2).sum();
        assert_eq!(total, input.len() * 2);
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 3_200));
    }

    #[test]
    fn a_rate_without_whole_20_ms_blocks_is_refused() {
        assert!(Resample::new(11_025, 16_000).is_err());
        assert!(Resample::new(0, 16_000).is_err());
    }
}
