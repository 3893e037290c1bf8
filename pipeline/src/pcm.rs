//! Small PCM helpers: keeping s16le byte streams sample-aligned and writing WAV headers.

use bytes::{Bytes, BytesMut};

/// Re-cuts a byte stream of s16le samples so every chunk holds whole samples.
///
/// HTTP bodies split wherever the network did; a chunk may end in the middle of a sample.
/// The odd byte is carried over to the next chunk.
#[derive(Debug, Default)]
pub struct SampleAligner {
    carry: Option<u8>,
}

impl SampleAligner {
    /// A fresh aligner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the whole samples available after `chunk` (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        match self.carry.take() {
            None if chunk.len().is_multiple_of(2) => chunk,
            None => {
                let keep = chunk.len() - 1;
                self.carry = Some(chunk[keep]);
                chunk.slice(..keep)
            }
            Some(first) => {
                let mut joined = BytesMut::with_capacity(chunk.len() + 1);
                joined.extend_from_slice(&[first]);
                joined.extend_from_slice(&chunk);
                if !joined.len().is_multiple_of(2) {
                    self.carry = joined.last().copied();
                    joined.truncate(joined.len() - 1);
                }
                joined.freeze()
            }
        }
    }

    /// Whether half a sample is left over (the stream ended mid-sample).
    pub fn has_remainder(&self) -> bool {
        self.carry.is_some()
    }
}

/// Encodes samples as s16le bytes.
pub fn samples_to_bytes(samples: &[i16]) -> Bytes {
    let mut out = BytesMut::with_capacity(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.freeze()
}

/// A 44-byte RIFF/WAVE header for mono s16le PCM of `data_len` bytes.
pub fn wav_header(sample_rate: u32, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Reads a mono 16-bit PCM WAV file: `(sample_rate, s16le data)`, or `None` if it is not one.
pub fn parse_wav(bytes: &[u8]) -> Option<(u32, &[u8])> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = bytes.get(pos + 8..(pos + 8).checked_add(len)?.min(bytes.len()))?;
        if id == b"fmt " {
            if body.len() < 16 {
                return None;
            }
            let format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if format != 1 || channels != 1 || bits != 16 {
                return None;
            }
            rate = Some(u32::from_le_bytes(body[4..8].try_into().ok()?));
        } else if id == b"data" {
            return Some((rate?, body));
        }
        pos += 8 + len + (len & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_chunks_come_out_sample_aligned() {
        let mut a = SampleAligner::new();
        let mut out = Vec::new();
        for chunk in [&[1u8, 2, 3][..], &[4], &[5, 6, 7], &[8]] {
            out.extend_from_slice(&a.push(Bytes::copy_from_slice(chunk)));
            assert_eq!(out.len() % 2, 0);
        }
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(!a.has_remainder());
    }

    #[test]
    fn wav_round_trips() {
        let pcm = samples_to_bytes(&[1, -1, 300]);
        let mut file = wav_header(16_000, pcm.len() as u32).to_vec();
        file.extend_from_slice(&pcm);
        let (rate, data) = parse_wav(&file).unwrap();
        assert_eq!(rate, 16_000);
        assert_eq!(data, &pcm[..]);
        assert!(parse_wav(b"RIFF....WAVEjunk").is_none());
    }
}
