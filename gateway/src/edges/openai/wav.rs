//! RIFF/WAVE, the one container the audio endpoints read and write: 16-bit PCM, any channel
//! count (mixed down to mono) on the way in; mono 16-bit on the way out. Reading parses the
//! header without allocating and trusts no length it claims: the data is what arrived.
//! A parse error is a value saying what was wrong, never a panic.

/// Why an upload is not audio we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WavError {
    /// Not a RIFF/WAVE file at all (MP3, FLAC, text, ...).
    #[error("the file is not a WAV file (only WAV audio is supported)")]
    NotWav,
    /// A WAV file this decoder does not handle.
    #[error("unsupported WAV encoding: {0}")]
    Unsupported(String),
    /// A WAV file that is cut short or inconsistent.
    #[error("malformed WAV file: {0}")]
    Malformed(&'static str),
}

/// Decoded audio: mono samples at `rate`.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) rate: u32,
    pub(crate) samples: Vec<i16>,
}

/// What a WAV header says, checked against the bytes that really arrived: `data` is the part
/// of the upload the data chunk covers, never more than was received, whatever the header
/// claims. Reading this allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wav<'a> {
    pub(crate) rate: u32,
    pub(crate) channels: u16,
    pub(crate) data: &'a [u8],
}

impl Wav<'_> {
    /// Whole sample frames present (a trailing partial frame is ignored).
    pub(crate) fn frames(&self) -> usize {
        self.data.len() / (2 * usize::from(self.channels))
    }

    /// How long the audio that arrived lasts, in seconds.
    pub(crate) fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.rate)
    }

    /// The audio as mono, in pieces of at most `frames` frames mixed into `buf` (reused, so
    /// memory stays at one piece whatever the file's size).
    pub(crate) fn for_each_mono(
        &self,
        frames: usize,
        buf: &mut Vec<i16>,
        mut f: impl FnMut(&[i16]),
    ) {
        let frame = 2 * usize::from(self.channels);
        for piece in self.data.chunks(frames.max(1) * frame) {
            buf.clear();
            mix_down_into(piece, self.channels, buf);
            if !buf.is_empty() {
                f(buf);
            }
        }
    }
}

const PCM: u16 = 1;
const EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a 16-bit PCM WAV file's header and finds its data, without decoding or allocating.
pub(crate) fn parse(bytes: &[u8]) -> Result<Wav<'_>, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut pos = 12usize;
    let mut format = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(bytes, pos + 4).ok_or(WavError::Malformed("chunk header"))? as usize;
        let start = pos + 8;
        // Streamed WAV files say 0xFFFFFFFF (or too much) for the data size: read what is there.
        let end = start.saturating_add(len).min(bytes.len());
        let body = &bytes[start..end];
        if id == b"fmt " {
            format = Some(read_format(body)?);
        } else if id == b"data" {
            let (rate, channels) =
                format.ok_or(WavError::Malformed("data before the fmt chunk"))?;
            return Ok(Wav {
                rate,
                channels,
                data: body,
            });
        }
        pos = start.saturating_add(len).saturating_add(len & 1);
    }
    Err(WavError::Malformed(if format.is_some() {
        "no data chunk"
    } else {
        "no fmt chunk"
    }))
}

/// Decodes a 16-bit PCM WAV file, mixing its channels down to mono.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, WavError> {
    let wav = parse(bytes)?;
    let mut samples = Vec::new();
    mix_down_into(wav.data, wav.channels, &mut samples);
    Ok(Decoded {
        rate: wav.rate,
        samples,
    })
}

fn read_format(body: &[u8]) -> Result<(u32, u16), WavError> {
    let short = WavError::Malformed("fmt chunk too short");
    let mut tag = u16_at(body, 0).ok_or(short.clone())?;
    let channels = u16_at(body, 2).ok_or(short.clone())?;
    let rate = u32_at(body, 4).ok_or(short.clone())?;
    let bits = u16_at(body, 14).ok_or(short)?;
    if tag == EXTENSIBLE {
        // The sub-format GUID starts with the plain format tag.
        tag = u16_at(body, 24).ok_or(WavError::Malformed("extensible fmt chunk too short"))?;
    }
    if tag != PCM {
        return Err(WavError::Unsupported(format!(
            "format tag {tag:#06x}; only integer PCM is read"
        )));
    }
    if bits != 16 {
        return Err(WavError::Unsupported(format!(
            "{bits}-bit samples; only 16-bit PCM is read"
        )));
    }
    if channels == 0 || channels > 8 {
        return Err(WavError::Unsupported(format!("{channels} channels")));
    }
    if rate == 0 {
        return Err(WavError::Malformed("sample rate 0"));
    }
    Ok((rate, channels))
}

fn mix_down_into(data: &[u8], channels: u16, out: &mut Vec<i16>) {
    let frame = 2 * usize::from(channels);
    out.extend(data.chunks_exact(frame).map(|f| {
        let sum: i32 = f
            .chunks_exact(2)
            .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
            .sum();
        (sum / i32::from(channels)) as i16
    }));
}

/// The header of a mono 16-bit WAV stream whose length is not known yet: both sizes are
/// 0xFFFFFFFF, the convention streaming TTS services use (readers take data to the end).
pub(crate) fn streaming_header(rate: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&PCM.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, bits: u16, tag: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&16_000u32.to_le_bytes());
        v.extend_from_slice(&(16_000 * 2 * u32::from(channels)).to_le_bytes());
        v.extend_from_slice(&(2 * channels).to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00"); // an odd chunk with its pad byte
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn stereo_is_mixed_down_past_other_chunks() {
        let data: Vec<u8> = [100i16, 300, -50, -150]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let decoded = decode(&wav(2, 16, PCM, &data)).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                rate: 16_000,
                samples: vec![200, -100]
            }
        );
    }

    #[test]
    fn what_is_not_16_bit_pcm_wav_says_why() {
        assert_eq!(decode(b"ID3\x04 an mp3 file"), Err(WavError::NotWav));
        assert!(matches!(
            decode(&wav(1, 24, PCM, &[0; 6])),
            Err(WavError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&wav(1, 16, 3, &[0; 8])),
            Err(WavError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&wav(0, 16, PCM, &[])),
            Err(WavError::Unsupported(_))
        ));
        let full = wav(1, 16, PCM, &[1, 0, 2, 0]);
        for cut in 12..full.len() - 4 {
            // Cut anywhere before the data: an error, never a panic.
            let _ = decode(&full[..cut]);
        }
    }

    #[test]
    fn a_header_claiming_more_data_than_arrived_covers_only_what_arrived() {
        let mut file = wav(2, 16, PCM, &[1, 0, 3, 0, 5, 0, 7, 0, 9]);
        let at = file.len() - 9 - 4;
        file[at..at + 4].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        let audio = parse(&file).unwrap();
        assert_eq!(audio.data.len(), 9);
        assert_eq!(audio.frames(), 2, "the odd trailing byte is no frame");
        let mut pieces = Vec::new();
        let mut buf = Vec::new();
        audio.for_each_mono(1, &mut buf, |s| pieces.extend_from_slice(s));
        assert_eq!(pieces, [2, 6]);
    }

    #[test]
    fn a_streaming_header_reads_back_to_the_end_of_the_data() {
        let mut file = streaming_header(24_000).to_vec();
        file.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
        let decoded = decode(&file).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                rate: 24_000,
                samples: vec![1, 2, 3]
            }
        );
    }
}
