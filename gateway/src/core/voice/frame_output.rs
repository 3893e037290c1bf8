//! Reply audio and visemes as binary WebSocket frames, sans-IO: each 20 ms 48 kHz frame from
//! the session becomes one `audio` frame in the client's output format (an Opus packet, or
//! PCM s16le at the requested rate, stereo as duplicated mono), stamped with the frame's time
//! on the output media clock, with per-type sequence numbers and the segment flags.
//!
//! Flags: after a reply's last frame (`audio_ended`) or a cut (`interrupted`) an empty audio
//! frame with `END_OF_SEGMENT` follows, stamped at the end of the last frame sent; the first
//! audio frame after a cut, or after frames were dropped for a slow reader, carries
//! `DISCONTINUITY`.
//!
//! Every frame is cut from one reused buffer (as `outbound.rs` does for Opus): once the
//! socket writer has dropped the earlier frames, `reserve` takes the same memory back, so a
//! running session does not allocate per frame.

use bytes::{BufMut as _, Bytes, BytesMut};
use media::{AudioFrame, Frame48, MAX_PACKET, OpusConfig, StreamResampler};
use protocol::{
    FRAME_HEADER_LEN, Frame, FrameFlags, FrameType,
    viseme::{VisemeFrame, quantize_weight},
    voice::{AudioCodec, AudioFormat},
};

use super::{VoiceError, outbound::Packetizer};

/// Frames the buffers have room for before they must take their memory back.
const POOL_FRAMES: usize = 16;

/// A 48 kHz frame converted to a lower rate, in a buffer kept for the session.
struct Down<const N: usize> {
    resampler: StreamResampler<960, N>,
    out: AudioFrame<N>,
}

impl<const N: usize> Down<N> {
    fn new() -> Result<Box<Self>, VoiceError> {
        Ok(Box::new(Self {
            resampler: StreamResampler::new()?,
            out: AudioFrame::silence(media::MediaTime::ZERO),
        }))
    }

    fn process(&mut self, frame: &Frame48) -> Result<&[f32], VoiceError> {
        self.resampler.process_into(frame, &mut self.out)?;
        Ok(self.out.samples())
    }
}

enum Downsample {
    None,
    To8(Box<Down<160>>),
    To16(Box<Down<320>>),
    To24(Box<Down<480>>),
}

impl Downsample {
    fn process<'a>(&'a mut self, frame: &'a Frame48) -> Result<&'a [f32], VoiceError> {
        match self {
            Self::None => Ok(frame.samples()),
            Self::To8(d) => d.process(frame),
            Self::To16(d) => d.process(frame),
            Self::To24(d) => d.process(frame),
        }
    }

    /// Forgets the previous reply's tail (a new segment starts clean).
    fn reset(&mut self) {
        match self {
            Self::None => {}
            Self::To8(d) => d.resampler.reset(),
            Self::To16(d) => d.resampler.reset(),
            Self::To24(d) => d.resampler.reset(),
        }
    }
}

enum Encode {
    Opus(Packetizer),
    Pcm {
        channels: usize,
        downsample: Downsample,
        /// PCM payloads are cut from here.
        payloads: BytesMut,
    },
}

/// One session's outgoing media frames.
pub(crate) struct AudioOut {
    encode: Encode,
    /// Encoded frames (header + payload) are cut from here.
    frames: BytesMut,
    audio_sequence: u32,
    viseme_sequence: u32,
    /// The next audio frame carries `DISCONTINUITY`.
    discontinuity: bool,
    /// Audio went out since the last `END_OF_SEGMENT`.
    in_segment: bool,
    /// Output media time just after the last audio frame sent, in µs.
    end_us: u64,
}

impl std::fmt::Debug for AudioOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioOut")
            .field("audio_sequence", &self.audio_sequence)
            .field("viseme_sequence", &self.viseme_sequence)
            .finish_non_exhaustive()
    }
}

/// Microseconds of a 48 kHz media time.
fn micros(time: media::MediaTime) -> u64 {
    time.0 * 1_000_000 / u64::from(media::CLOCK_RATE)
}

impl AudioOut {
    /// Frames in `format` (already validated), Opus encoded with `opus`.
    pub(crate) fn new(format: AudioFormat, opus: &OpusConfig) -> Result<Self, VoiceError> {
        let (encode, payload_max) = match format.codec {
            // A mono Opus stream plays on a stereo decoder as duplicated mono.
            AudioCodec::Opus => (Encode::Opus(Packetizer::new(opus)?), MAX_PACKET),
            AudioCodec::PcmS16le => {
                let channels = usize::from(format.channels.max(1));
                let downsample = match format.sample_rate {
                    8_000 => Downsample::To8(Down::new()?),
                    16_000 => Downsample::To16(Down::new()?),
                    24_000 => Downsample::To24(Down::new()?),
                    _ => Downsample::None,
                };
                let payload_max = format.sample_rate as usize / 50 * 2 * channels;
                let payloads = BytesMut::with_capacity(POOL_FRAMES * payload_max);
                let pcm = Encode::Pcm {
                    channels,
                    downsample,
                    payloads,
                };
                (pcm, payload_max)
            }
        };
        Ok(Self {
            encode,
            frames: BytesMut::with_capacity(POOL_FRAMES * (FRAME_HEADER_LEN + payload_max)),
            audio_sequence: 0,
            viseme_sequence: 0,
            discontinuity: false,
            in_segment: false,
            end_us: 0,
        })
    }

    /// One binary audio frame for `frame`.
    pub(crate) fn audio(&mut self, frame: &Frame48) -> Result<Bytes, VoiceError> {
        let payload = match &mut self.encode {
            Encode::Opus(packetizer) => packetizer.encode(frame)?,
            Encode::Pcm {
                channels,
                downsample,
                payloads,
            } => {
                let samples = downsample.process(frame)?;
                payloads.reserve(samples.len() * 2 * *channels);
                for &s in samples {
                    let v = (s.clamp(-1.0, 1.0) * 32_767.0) as i16;
                    for _ in 0..*channels {
                        payloads.put_i16_le(v);
                    }
                }
                payloads.split().freeze()
            }
        };
        let mut flags = FrameFlags::NONE;
        if std::mem::take(&mut self.discontinuity) {
            flags = flags.with(FrameFlags::DISCONTINUITY);
        }
        let media_time_us = micros(frame.time());
        let out = Frame {
            frame_type: FrameType::Audio,
            flags,
            sequence: self.audio_sequence,
            media_time_us,
            payload,
        };
        self.audio_sequence = self.audio_sequence.wrapping_add(1);
        self.in_segment = true;
        self.end_us = micros(frame.end_time());
        self.encode_frame(&out)
    }

    /// The empty `END_OF_SEGMENT` frame closing the reply's audio, if any went out; after a
    /// `cut` the next audio frame carries `DISCONTINUITY`.
    pub(crate) fn end_segment(&mut self, cut: bool) -> Option<Result<Bytes, VoiceError>> {
        self.discontinuity |= cut;
        if !std::mem::take(&mut self.in_segment) {
            return None;
        }
        if let Encode::Pcm { downsample, .. } = &mut self.encode {
            downsample.reset();
        }
        let end = Frame {
            frame_type: FrameType::Audio,
            flags: FrameFlags::END_OF_SEGMENT,
            sequence: self.audio_sequence,
            media_time_us: self.end_us,
            payload: Bytes::new(),
        };
        self.audio_sequence = self.audio_sequence.wrapping_add(1);
        Some(self.encode_frame(&end))
    }

    /// An audio frame could not be queued (slow reader): the next one says the clock jumped.
    pub(crate) fn frame_dropped(&mut self) {
        self.discontinuity = true;
    }

    /// One binary viseme frame.
    pub(crate) fn viseme(&mut self, viseme: &VisemeFrame) -> Result<Bytes, VoiceError> {
        viseme.validate("viseme")?;
        // Header and payload are written in place: no intermediate payload buffer.
        let len = FRAME_HEADER_LEN + 2 + viseme.weights.len();
        self.frames.reserve(len);
        self.frames.put_slice(&protocol::FRAME_MAGIC);
        self.frames.put_u8(protocol::FRAME_VERSION);
        self.frames.put_u8(FrameType::Viseme.as_byte());
        self.frames.put_u16(FrameFlags::NONE.0);
        self.frames.put_u32(self.viseme_sequence);
        self.frames.put_u64(viseme.media_time_us);
        self.frames.put_u32((2 + viseme.weights.len()) as u32);
        self.frames.put_u8(viseme.viseme_id);
        self.frames.put_u8(viseme.weights.len() as u8);
        for &w in &viseme.weights {
            self.frames.put_u8(quantize_weight(w));
        }
        self.viseme_sequence = self.viseme_sequence.wrapping_add(1);
        Ok(self.frames.split().freeze())
    }

    fn encode_frame(&mut self, frame: &Frame) -> Result<Bytes, VoiceError> {
        frame.encode_into(&mut self.frames)?;
        Ok(self.frames.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::MediaTime;

    fn out(codec: AudioCodec, sample_rate: u32, channels: u8) -> AudioOut {
        let format = AudioFormat {
            codec,
            sample_rate,
            channels,
        };
        AudioOut::new(format, &OpusConfig::default()).unwrap()
    }

    fn tone(i: u64) -> Frame48 {
        let mut f = Frame48::silence(MediaTime(i * 960));
        for (n, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (i * 960 + n as u64) as f32 / 48_000.0;
            *s = (t * 440.0 * std::f32::consts::TAU).sin() * 0.3;
        }
        f
    }

    #[test]
    fn pcm_frames_carry_the_rate_and_channels_asked_for() {
        let mut o = out(AudioCodec::PcmS16le, 24_000, 2);
        let mut frames = Vec::new();
        for i in 0..5 {
            let bytes = o.audio(&tone(i)).unwrap();
            frames.push(Frame::decode(&bytes).unwrap());
        }
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.frame_type, FrameType::Audio);
            assert_eq!(f.sequence, i as u32);
            assert_eq!(f.media_time_us, i as u64 * 20_000);
            assert_eq!(f.flags, FrameFlags::NONE);
            assert_eq!(f.payload.len(), 480 * 2 * 2);
            // Stereo is duplicated mono.
            for pair in f.payload.chunks_exact(4) {
                assert_eq!(pair[..2], pair[2..]);
            }
        }
        let last = &frames[4].payload;
        let rms = (last
            .chunks_exact(4)
            .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])).powi(2))
            .sum::<f64>()
            / 480.0)
            .sqrt();
        assert!(rms > 5_000.0, "rms {rms}");
    }

    #[test]
    fn a_reply_ends_with_end_of_segment_and_a_cut_makes_a_discontinuity() {
        let mut o = out(AudioCodec::Opus, 48_000, 1);
        assert!(o.end_segment(false).is_none(), "no audio, no segment");
        o.audio(&tone(0)).unwrap();
        o.audio(&tone(1)).unwrap();
        let end = Frame::decode(&o.end_segment(false).unwrap().unwrap()).unwrap();
        assert_eq!(end.flags, FrameFlags::END_OF_SEGMENT);
        assert_eq!((end.sequence, end.media_time_us), (2, 40_000));
        assert!(end.payload.is_empty());
        let next = Frame::decode(&o.audio(&tone(50)).unwrap()).unwrap();
        assert_eq!(next.flags, FrameFlags::NONE, "a played-out reply is no cut");

        let cut = Frame::decode(&o.end_segment(true).unwrap().unwrap()).unwrap();
        assert_eq!(cut.flags, FrameFlags::END_OF_SEGMENT);
        let after = Frame::decode(&o.audio(&tone(80)).unwrap()).unwrap();
        assert_eq!(after.flags, FrameFlags::DISCONTINUITY);
        assert_eq!((after.sequence, after.media_time_us), (5, 80 * 20_000));
        o.frame_dropped();
        let flagged = Frame::decode(&o.audio(&tone(82)).unwrap()).unwrap();
        assert!(flagged.flags.contains(FrameFlags::DISCONTINUITY));

        let v = VisemeFrame {
            media_time_us: 1_640_000,
            viseme_id: 7,
            weights: vec![0.0, 1.0],
        };
        let decoded = Frame::decode(&o.viseme(&v).unwrap()).unwrap();
        assert_eq!(
            (decoded.frame_type, decoded.sequence),
            (FrameType::Viseme, 0)
        );
        assert_eq!(VisemeFrame::from_frame(&decoded).unwrap(), v);
        assert_eq!(Frame::decode(&o.viseme(&v).unwrap()).unwrap().sequence, 1);
    }

    /// The per-frame path reuses its buffers: a long reply's frames are all cut from the
    /// memory `new` allocated (as long as the writer keeps up and drops them).
    #[test]
    fn a_long_reply_reuses_the_same_buffers() {
        for (codec, rate, channels) in [
            (AudioCodec::PcmS16le, 16_000, 1),
            (AudioCodec::PcmS16le, 48_000, 2),
            (AudioCodec::Opus, 48_000, 1),
        ] {
            let mut o = out(codec, rate, channels);
            let pool = o.frames.capacity();
            let first = o.audio(&tone(0)).unwrap();
            let base = first.as_ptr() as usize;
            drop(first);
            for i in 1..1_000u64 {
                let frame = o.audio(&tone(i)).unwrap();
                let at = frame.as_ptr() as usize;
                assert!(
                    (base..base + pool).contains(&at),
                    "{codec:?} frame {i} was cut from fresh memory"
                );
            }
        }
    }
}
