//! A deterministic white-noise floor mixed into the recogniser's input (see
//! [`super::RecognizerConfig::noise_floor_dbfs`]).

/// Adds uniform white noise of a fixed RMS level to PCM, reusing one buffer.
#[derive(Debug)]
pub(super) struct NoiseFloor {
    /// Half-width of the uniform distribution, in sample units (RMS * sqrt(3)).
    half_width: f32,
    state: u32,
    buffer: Vec<i16>,
}

/// Fixed seed: the same audio always gives the same transcript.
const SEED: u32 = 0x9E37_79B9;

impl NoiseFloor {
    pub(super) fn new(rms_dbfs: f32) -> Self {
        let rms = 32_768.0 * 10f32.powf(rms_dbfs / 20.0);
        Self {
            half_width: rms * 3f32.sqrt(),
            state: SEED,
            buffer: Vec::new(),
        }
    }

    /// Starts the noise sequence over, so each utterance is decoded the same way.
    pub(super) fn reset(&mut self) {
        self.state = SEED;
    }

    /// `pcm` plus noise, in a buffer owned by `self` (grown once, then reused).
    pub(super) fn apply(&mut self, pcm: &[i16]) -> &[i16] {
        self.buffer.clear();
        self.buffer.reserve(pcm.len());
        for &sample in pcm {
            // xorshift32: cheap, and plenty random for a noise floor.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            let unit = self.state as f32 / u32::MAX as f32 * 2.0 - 1.0;
            let noisy = f32::from(sample) + unit * self.half_width;
            // `as` saturates at the i16 range, which is the clipping we want.
            self.buffer.push(noisy.round() as i16);
        }
        &self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_the_requested_level_and_repeats_after_reset() {
        let mut floor = NoiseFloor::new(-50.0);
        let silence = vec![0i16; 16_000];
        let first = floor.apply(&silence).to_vec();
        let rms = (first.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 16_000.0).sqrt();
        let dbfs = 20.0 * (rms / 32_768.0).log10();
        assert!((dbfs + 50.0).abs() < 0.5, "{dbfs} dBFS");
        floor.reset();
        assert_eq!(floor.apply(&silence), first.as_slice());
    }
}
