//! Mono s16 audio from any rate to any other, streamed (TTS audio to 24 kHz, and an uploaded
//! WAV to the recognisers' 16 kHz, read in fixed pieces): 16-bit samples in and out of
//! [`media::RateConverter`], which does the resampling.

use bytes::Bytes;
use media::RateConverter;

use super::wav::Wav;

/// Why a rate pair cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample {from} Hz audio: {reason}")]
pub(crate) struct ResampleError {
    from: u32,
    reason: String,
}

/// A streaming converter from one rate to another, 16-bit samples in and out.
#[derive(Debug)]
pub(crate) struct Resample(RateConverter);

fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl Resample {
    /// A converter from `from` Hz to `to` Hz; both must be multiples of 50 Hz (a whole
    /// 20 ms block), at most 192 kHz.
    pub(crate) fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        RateConverter::new(from, to)
            .map(Self)
            .map_err(|e| ResampleError {
                from,
                reason: e.to_string(),
            })
    }

    /// The input rate.
    pub(crate) fn input_rate(&self) -> u32 {
        self.0.input_rate()
    }

    /// Converts `samples`, appending what is ready to `sink`.
    pub(crate) fn push(&mut self, samples: &[i16], sink: &mut Vec<i16>) {
        // A block the filter refuses comes out as silence (the converter keeps the length);
        // that is a better answer to a rubato bug than failing the request.
        let _ = self
            .0
            .push_i16(samples, &mut |s| sink.extend(s.iter().map(|&s| to_i16(s))));
    }

    /// Ends the stream: the audio still inside the filter comes out, trimmed so the output
    /// lasts exactly as long as the input.
    pub(crate) fn finish(&mut self, sink: &mut Vec<i16>) {
        let _ = self
            .0
            .finish(&mut |s| sink.extend(s.iter().map(|&s| to_i16(s))));
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

    #[test]
    fn an_upload_comes_out_in_whole_chunks_of_the_right_total_length() {
        // The converter's level and timing are media's to test; here only the cutting.
        let input = vec![1_000i16; 8_240];
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
