//! Caller audio from binary WebSocket frames, sans-IO: Opus packets or PCM s16le of any
//! whole-sample length at 8-48 kHz, mono or stereo, become the 20 ms 48 kHz mono frames a
//! session takes, in a bounded queue the bridge's 20 ms tick pops.
//!
//! The queue is the WebSocket's jitter buffer. TCP delivers in order, so it only has to
//! absorb arrival jitter and bound a client that sends faster than real time: playout starts
//! once [`PREBUFFER_FRAMES`] are queued; past [`MAX_QUEUED_FRAMES`] the oldest frame is
//! dropped (counted), so latency and memory stay bounded. When the queue runs dry the session
//! hears silence (its clock keeps running, so a caller who stops sending ends the turn as a
//! quiet microphone would) and playout waits for the prebuffer again.

use std::collections::VecDeque;

use media::{AudioFrame, Frame48, MediaError, MediaTime, OpusDecoder, StreamResampler};
use protocol::voice::{AudioCodec, AudioFormat};

use super::VoiceError;

/// Frames queued before playout starts (or restarts after running dry): 40 ms.
pub(crate) const PREBUFFER_FRAMES: usize = 2;
/// Most frames queued: 500 ms. Older frames are dropped first.
pub(crate) const MAX_QUEUED_FRAMES: usize = 25;

/// Why one binary audio frame was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AudioInError {
    /// A PCM payload that ends mid-sample.
    #[error(
        "a pcm_s16le audio frame must hold whole samples: {len} bytes is not a multiple of {unit}"
    )]
    PartialSample {
        /// Payload length.
        len: usize,
        /// Bytes per sample (2 per channel).
        unit: usize,
    },
    /// Not a decodable 20 ms Opus packet.
    #[error("not a 20 ms Opus packet: {0}")]
    Opus(MediaError),
}

/// Counters over one session's inbound audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AudioInStats {
    /// 20 ms frames assembled.
    pub(crate) frames: u64,
    /// Frames dropped because the queue was full (the client sent faster than real time).
    pub(crate) dropped: u64,
    /// Ticks that found the queue empty (the session heard silence).
    pub(crate) underruns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playout {
    /// No audio yet: the session gets nothing.
    Idle,
    /// Waiting for the prebuffer; the session hears silence.
    Filling,
    Playing,
}

/// A rate converter to 48 kHz for one of the supported PCM rates.
enum Upsample {
    None,
    From8(StreamResampler<160, 960>),
    From16(StreamResampler<320, 960>),
    From24(StreamResampler<480, 960>),
}

impl Upsample {
    fn new(rate: u32) -> Result<Self, MediaError> {
        Ok(match rate {
            8_000 => Self::From8(StreamResampler::new()?),
            16_000 => Self::From16(StreamResampler::new()?),
            24_000 => Self::From24(StreamResampler::new()?),
            _ => Self::None,
        })
    }

    /// Converts one 20 ms block into `out` (the block lives on the stack: no allocation).
    fn process(&mut self, block: &[f32], out: &mut Frame48) -> Result<(), MediaError> {
        match self {
            Self::None => Frame48::from_f32(48_000, block, MediaTime::ZERO).map(|f| *out = f),
            Self::From8(r) => {
                r.process_into(&AudioFrame::from_f32(8_000, block, MediaTime::ZERO)?, out)
            }
            Self::From16(r) => {
                r.process_into(&AudioFrame::from_f32(16_000, block, MediaTime::ZERO)?, out)
            }
            Self::From24(r) => {
                r.process_into(&AudioFrame::from_f32(24_000, block, MediaTime::ZERO)?, out)
            }
        }
    }
}

enum Decode {
    Opus(OpusDecoder),
    Pcm {
        channels: usize,
        /// Samples per 20 ms at the client's rate.
        block_len: usize,
        /// The 20 ms block being filled (mono, -1..1); its capacity is fixed at start.
        block: Vec<f32>,
        upsample: Box<Upsample>,
    },
}

/// One session's inbound audio. Allocates only in [`AudioIn::new`]: the queue, the block
/// and the resampler are sized for the session once.
pub(crate) struct AudioIn {
    decode: Decode,
    queue: VecDeque<Frame48>,
    scratch: Frame48,
    playout: Playout,
    muted: bool,
    /// Input media time of the next frame handed to the session (one increasing clock).
    next_time: u64,
    stats: AudioInStats,
}

impl std::fmt::Debug for AudioIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioIn")
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AudioIn {
    /// Audio in `format` (already validated: see `AudioFormat::validate`).
    pub(crate) fn new(format: AudioFormat) -> Result<Self, VoiceError> {
        let decode = match format.codec {
            // Opus decodes to 48 kHz mono whatever was encoded (a stereo stream is downmixed
            // by the decoder).
            AudioCodec::Opus => Decode::Opus(OpusDecoder::new()?),
            AudioCodec::PcmS16le => {
                let block_len = format.sample_rate as usize / 50;
                Decode::Pcm {
                    channels: usize::from(format.channels.max(1)),
                    block_len,
                    block: Vec::with_capacity(block_len),
                    upsample: Box::new(Upsample::new(format.sample_rate)?),
                }
            }
        };
        Ok(Self {
            decode,
            queue: VecDeque::with_capacity(MAX_QUEUED_FRAMES),
            scratch: Frame48::silence(MediaTime::ZERO),
            playout: Playout::Idle,
            muted: false,
            next_time: 0,
            stats: AudioInStats::default(),
        })
    }

    /// Takes one binary frame's payload. PCM may end anywhere between samples (frames are
    /// cut wherever the 20 ms boundaries fall); an empty payload (a bare `END_OF_SEGMENT`
    /// marker) is accepted and adds nothing.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Result<(), AudioInError> {
        if payload.is_empty() {
            return Ok(());
        }
        match &mut self.decode {
            Decode::Opus(decoder) => {
                let frame = decoder
                    .decode(payload, MediaTime::ZERO)
                    .map_err(AudioInError::Opus)?;
                Self::enqueue_into(&mut self.queue, &mut self.stats, &frame);
            }
            Decode::Pcm {
                channels,
                block_len,
                block,
                upsample,
            } => {
                let unit = 2 * *channels;
                if !payload.len().is_multiple_of(unit) {
                    return Err(AudioInError::PartialSample {
                        len: payload.len(),
                        unit,
                    });
                }
                let scale = 1.0 / (32_768.0 * *channels as f32);
                for sample in payload.chunks_exact(unit) {
                    // Stereo is downmixed: the mean of the channels.
                    let sum: i32 = sample
                        .chunks_exact(2)
                        .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                        .sum();
                    block.push(sum as f32 * scale);
                    if block.len() == *block_len {
                        let converted = upsample.process(block, &mut self.scratch);
                        block.clear();
                        // Finite input always converts; a resampler fault loses one frame.
                        if converted.is_ok() {
                            Self::enqueue_into(&mut self.queue, &mut self.stats, &self.scratch);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn enqueue_into(queue: &mut VecDeque<Frame48>, stats: &mut AudioInStats, frame: &Frame48) {
        stats.frames += 1;
        if queue.len() >= MAX_QUEUED_FRAMES {
            queue.pop_front();
            stats.dropped += 1;
        }
        queue.push_back(*frame);
    }

    /// While muted the session hears silence (its clocks keep running, no turn can start).
    pub(crate) fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The frame for this 20 ms slot: queued audio, silence while the queue refills, or
    /// `None` before the client's first audio.
    pub(crate) fn next_frame(&mut self) -> Option<Frame48> {
        if self.playout == Playout::Idle && !self.queue.is_empty() {
            self.playout = Playout::Filling;
        }
        if self.playout == Playout::Filling && self.queue.len() >= PREBUFFER_FRAMES {
            self.playout = Playout::Playing;
        }
        let time = MediaTime(self.next_time);
        let mut frame = match self.playout {
            Playout::Idle => return None,
            Playout::Filling => Frame48::silence(time),
            Playout::Playing => self.queue.pop_front().unwrap_or_else(|| {
                self.stats.underruns += 1;
                self.playout = Playout::Filling;
                Frame48::silence(time)
            }),
        };
        self.next_time += Frame48::LEN as u64;
        if self.muted {
            frame = Frame48::silence(time);
        }
        frame.set_time(time);
        Some(frame)
    }

    pub(crate) fn stats(&self) -> AudioInStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(format: AudioFormat) -> AudioIn {
        AudioIn::new(format).unwrap()
    }

    fn format(codec: AudioCodec, sample_rate: u32, channels: u8) -> AudioFormat {
        AudioFormat {
            codec,
            sample_rate,
            channels,
        }
    }

    /// `ms` of a 440 Hz tone at `rate`, s16le, each sample repeated on `channels`.
    fn tone(rate: u32, channels: u8, ms: u32) -> Vec<u8> {
        let n = rate * ms / 1000;
        let mut out = Vec::new();
        for i in 0..n {
            let t = i as f32 / rate as f32;
            let s = ((t * 440.0 * std::f32::consts::TAU).sin() * 10_000.0) as i16;
            for _ in 0..channels {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        out
    }

    #[test]
    fn pcm_in_odd_sized_pieces_becomes_whole_48k_frames_on_one_clock() {
        let mut input = pcm(format(AudioCodec::PcmS16le, 16_000, 2));
        let bytes = tone(16_000, 2, 200);
        // Pieces of 7 stereo samples: nothing lines up with a 20 ms boundary.
        for piece in bytes.chunks(7 * 4) {
            input.push(piece).unwrap();
        }
        assert_eq!(input.stats().frames, 10);
        let frames: Vec<_> = std::iter::from_fn(|| input.next_frame()).take(10).collect();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.time(), MediaTime(i as u64 * 960));
        }
        // The resampler's run-in is quiet; the rest carries the tone (stereo downmixed to
        // the same level, not doubled).
        for f in &frames[2..] {
            let rms = f.rms();
            assert!((0.15..0.25).contains(&rms), "rms {rms}");
        }
        assert_eq!(input.stats().underruns, 0);
    }

    #[test]
    fn a_payload_ending_mid_sample_is_refused() {
        let mut input = pcm(format(AudioCodec::PcmS16le, 24_000, 2));
        let e = input.push(&[0; 6]).unwrap_err();
        assert!(matches!(e, AudioInError::PartialSample { len: 6, unit: 4 }));
        assert!(e.to_string().contains("whole samples"));
        input.push(&[]).unwrap();
        assert_eq!(input.stats().frames, 0);
        let mut opus = pcm(format(AudioCodec::Opus, 48_000, 1));
        assert!(matches!(
            opus.push(b"not opus at all"),
            Err(AudioInError::Opus(_))
        ));
    }

    #[test]
    fn a_client_faster_than_real_time_is_bounded_and_counted() {
        let mut input = pcm(format(AudioCodec::PcmS16le, 48_000, 1));
        let capacity = input.queue.capacity();
        let second = tone(48_000, 1, 1000);
        for _ in 0..5 {
            input.push(&second).unwrap();
        }
        assert_eq!(input.stats().frames, 250);
        assert_eq!(input.queue.len(), MAX_QUEUED_FRAMES);
        assert_eq!(input.stats().dropped, 250 - MAX_QUEUED_FRAMES as u64);
        // The per-frame path reuses what `new` sized: the queue never grew.
        assert_eq!(input.queue.capacity(), capacity);
    }

    #[test]
    fn playout_waits_for_the_prebuffer_and_fills_gaps_with_silence() {
        let mut input = pcm(format(AudioCodec::PcmS16le, 8_000, 1));
        assert!(input.next_frame().is_none(), "no audio yet");
        input.push(&tone(8_000, 1, 20)).unwrap();
        assert!(
            input.next_frame().is_some_and(|f| f.rms() == 0.0),
            "filling"
        );
        input.push(&tone(8_000, 1, 20)).unwrap();
        assert!(input.next_frame().is_some(), "playing");
        assert!(input.next_frame().is_some());
        assert_eq!(input.next_frame().map(|f| f.rms()), Some(0.0), "ran dry");
        assert_eq!(input.stats().underruns, 1);
        input.push(&tone(8_000, 1, 40)).unwrap();
        input.set_muted(true);
        let muted = input.next_frame().unwrap();
        assert_eq!(muted.rms(), 0.0);
        assert_eq!(muted.time(), MediaTime(4 * 960), "the clock never steps");
    }

    #[test]
    fn opus_packets_decode_to_frames() {
        let mut enc = media::OpusEncoder::new(&media::OpusConfig::default()).unwrap();
        let mut input = pcm(format(AudioCodec::Opus, 48_000, 2));
        let mut buf = [0u8; media::MAX_PACKET];
        let bytes = tone(48_000, 1, 100);
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        for chunk in samples.chunks_exact(960) {
            let frame = Frame48::from_i16(48_000, chunk, MediaTime::ZERO).unwrap();
            let n = enc.encode(&frame, &mut buf).unwrap();
            input.push(&buf[..n]).unwrap();
        }
        assert_eq!(input.stats().frames, 5);
        let last = std::iter::from_fn(|| input.next_frame())
            .take(5)
            .last()
            .unwrap();
        assert!(last.rms() > 0.1, "rms {}", last.rms());
    }
}
