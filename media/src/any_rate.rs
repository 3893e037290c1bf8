//! Mono audio from any rate to any other, streamed in pieces of any size: TTS audio at
//! whatever rate the provider chose, an uploaded recording at whatever rate the file has.
//!
//! [`StreamResampler`](crate::StreamResampler) is typed per pair of 20 ms frames; here the
//! rates are known only at run time, so the input is gathered into 20 ms blocks (`rate / 50`
//! samples, hence rates that are multiples of 50 Hz) and each block gives exactly one block
//! out. The filter's run-in is skipped at the start and its tail flushed by
//! [`RateConverter::finish`], so output sample `k` belongs to input time `k / to` exactly and
//! the output lasts exactly as long as the input: callers can keep time by sample counts.
//! All buffers are allocated by [`RateConverter::new`]; pushing audio allocates nothing.

use rubato::{Fft, Resampler};

use crate::error::{MediaError, Result};
use crate::resample::{fixed_fft, run_block};

/// The highest rate [`RateConverter`] takes, in or out.
pub const MAX_RATE: u32 = 192_000;

/// How many blocks of silence [`RateConverter::finish`] feeds at most to flush the filter (its
/// delay is well under one block; the bound only keeps a broken filter from looping forever).
const MAX_FLUSH_BLOCKS: u32 = 64;

/// A streaming converter from one sample rate to another (mono).
pub struct RateConverter {
    from: u32,
    to: u32,
    /// `None` when the rates are equal: samples pass straight through.
    inner: Option<Fft<f32>>,
    /// Input samples per block (20 ms at `from`).
    block_len: usize,
    block: Vec<f32>,
    out: Vec<f32>,
    /// Output samples still to drop (the filter's run-in).
    skip: usize,
    /// Input samples taken and output samples given out so far.
    taken: u64,
    given: u64,
    /// The first byte of an s16le sample split across two pushes.
    odd: Option<u8>,
}

impl std::fmt::Debug for RateConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateConverter")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn from_i16(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

impl RateConverter {
    /// A converter from `from` Hz to `to` Hz. Both must be multiples of 50 Hz (a whole 20 ms
    /// block), at most [`MAX_RATE`]; anything else is [`MediaError::Resampler`].
    pub fn new(from: u32, to: u32) -> Result<Self> {
        for rate in [from, to] {
            if rate == 0 || !rate.is_multiple_of(50) || rate > MAX_RATE {
                return Err(MediaError::Resampler {
                    what: "construction",
                    detail: format!(
                        "{rate} Hz is not supported (a multiple of 50 Hz up to 192 kHz)"
                    ),
                });
            }
        }
        let (block_len, out_len) = ((from / 50) as usize, (to / 50) as usize);
        let inner = if from == to {
            None
        } else {
            Some(fixed_fft(from, to, block_len, out_len)?)
        };
        let skip = inner.as_ref().map_or(0, Resampler::output_delay);
        Ok(Self {
            from,
            to,
            inner,
            block_len,
            block: Vec::with_capacity(block_len),
            out: vec![0.0; out_len],
            skip,
            taken: 0,
            given: 0,
            odd: None,
        })
    }

    /// The input rate.
    #[must_use]
    pub const fn input_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    #[must_use]
    pub const fn output_rate(&self) -> u32 {
        self.to
    }

    /// Converts `samples` (full scale ±1.0); output goes to `sink` as it becomes ready.
    ///
    /// A block the filter refuses comes out as silence, so the output keeps its length and
    /// timing; the first such error is returned once the whole input is taken.
    pub fn push(&mut self, samples: &[f32], sink: &mut impl FnMut(&[f32])) -> Result<()> {
        self.push_iter(samples.iter().copied(), sink)
    }

    /// As [`Self::push`], for 16-bit samples.
    pub fn push_i16(&mut self, samples: &[i16], sink: &mut impl FnMut(&[f32])) -> Result<()> {
        self.push_iter(samples.iter().map(|&s| from_i16(s)), sink)
    }

    /// As [`Self::push`], for s16le bytes as they come off the network: a sample split
    /// between two pushes is joined.
    pub fn push_s16le(&mut self, bytes: &[u8], sink: &mut impl FnMut(&[f32])) -> Result<()> {
        let mut rest = bytes;
        let mut joined = None;
        if let Some(lo) = self.odd.take() {
            match rest.split_first() {
                Some((&hi, tail)) => {
                    joined = Some(i16::from_le_bytes([lo, hi]));
                    rest = tail;
                }
                None => {
                    self.odd = Some(lo);
                    return Ok(());
                }
            }
        }
        let pairs = rest.chunks_exact(2);
        if let [lo] = pairs.remainder() {
            self.odd = Some(*lo);
        }
        let samples = joined
            .into_iter()
            .chain(pairs.map(|b| i16::from_le_bytes([b[0], b[1]])));
        self.push_iter(samples.map(from_i16), sink)
    }

    fn push_iter(
        &mut self,
        samples: impl Iterator<Item = f32>,
        sink: &mut impl FnMut(&[f32]),
    ) -> Result<()> {
        let mut result = Ok(());
        for s in samples {
            self.taken += 1;
            self.block.push(s);
            if self.block.len() == self.block_len {
                result = result.and(self.run(sink, u64::MAX));
            }
        }
        if self.inner.is_none() && !self.block.is_empty() {
            // Passing through: nothing to wait for.
            result = result.and(self.run(sink, u64::MAX));
        }
        result
    }

    /// Converts the block gathered so far, giving out at most `limit` output samples in all.
    fn run(&mut self, sink: &mut impl FnMut(&[f32]), limit: u64) -> Result<()> {
        let Some(inner) = self.inner.as_mut() else {
            self.given += self.block.len() as u64;
            sink(&self.block);
            self.block.clear();
            return Ok(());
        };
        let result = run_block(inner, &self.block, &mut self.out);
        if result.is_err() {
            self.out.fill(0.0);
        }
        self.block.clear();
        let m = self.out.len();
        let skip = self.skip.min(m);
        self.skip -= skip;
        let room = usize::try_from(limit.saturating_sub(self.given)).unwrap_or(usize::MAX);
        let end = m.min(skip.saturating_add(room)).max(skip);
        let out = &self.out[skip..end];
        self.given += out.len() as u64;
        if !out.is_empty() {
            sink(out);
        }
        result
    }

    /// Ends the stream: the audio still inside the filter comes out, trimmed so the output
    /// lasts exactly as long as the input.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[f32])) -> Result<()> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = self.taken * u64::from(self.to) / u64::from(self.from);
        let mut result = Ok(());
        let mut blocks = 0;
        while self.given < expected && blocks < MAX_FLUSH_BLOCKS {
            blocks += 1;
            self.block.resize(self.block_len, 0.0);
            result = result.and(self.run(sink, expected));
        }
        result
    }
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

    fn rms(s: &[f32]) -> f64 {
        (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn any_rate_keeps_its_length_and_level_when_streamed_in_odd_pieces() {
        for (from, to) in [
            (16_000, 48_000),
            (22_050, 48_000),
            (24_000, 48_000),
            (44_100, 48_000),
            (48_000, 48_000),
            (24_000, 24_000),
            (22_050, 24_000),
            (48_000, 16_000),
            (44_100, 16_000),
            (8_000, 16_000),
        ] {
            let input = tone(from, 0.5);
            let level = rms(&input.iter().map(|&s| from_i16(s)).collect::<Vec<_>>());
            let bytes: Vec<u8> = input.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut r = RateConverter::new(from, to).expect("supported rate");
            let mut out = Vec::new();
            // Odd-sized network chunks split samples in half.
            for piece in bytes.chunks(777) {
                r.push_s16le(piece, &mut |s| out.extend_from_slice(s))
                    .expect("push");
            }
            r.finish(&mut |s| out.extend_from_slice(s)).expect("finish");
            assert_eq!(
                out.len() as u64,
                input.len() as u64 * u64::from(to) / u64::from(from),
                "{from}->{to}"
            );
            let mid = rms(&out[out.len() / 4..out.len() * 3 / 4]);
            assert!(
                (level - mid).abs() / level < 0.05,
                "{from}->{to}: level {level} -> {mid}"
            );
        }
    }

    #[test]
    fn i16_and_byte_input_convert_alike() {
        let input = tone(22_050, 0.2);
        let bytes: Vec<u8> = input.iter().flat_map(|s| s.to_le_bytes()).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut r = RateConverter::new(22_050, 48_000).expect("supported rate");
        r.push_i16(&input, &mut |s| a.extend_from_slice(s))
            .expect("push");
        r.finish(&mut |s| a.extend_from_slice(s)).expect("finish");
        let mut r = RateConverter::new(22_050, 48_000).expect("supported rate");
        r.push_s16le(&bytes, &mut |s| b.extend_from_slice(s))
            .expect("push");
        r.finish(&mut |s| b.extend_from_slice(s)).expect("finish");
        assert_eq!(a, b);
    }

    #[test]
    fn a_rate_without_whole_20_ms_blocks_is_a_typed_error() {
        for (from, to) in [(11_025, 48_000), (0, 16_000), (16_000, 200_000)] {
            assert!(
                matches!(
                    RateConverter::new(from, to),
                    Err(MediaError::Resampler { .. })
                ),
                "{from}->{to}"
            );
        }
    }
}
