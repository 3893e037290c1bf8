//! Caller audio, sans-IO: Opus packets go into the jitter buffer as they arrive; once per
//! 20 ms the playout clock asks for the next 48 kHz frame, decoded from the packet, rebuilt
//! from the next packet's FEC data, or concealed.

use std::time::Instant;

use media::{Frame48, JitterBuffer, JitterConfig, JitterStats, OpusDecoder, Playout};

use crate::core::voice::VoiceError;

/// The inbound half of one call's media: jitter buffer plus Opus decoder. Allocates only in
/// [`Inbound::new`].
#[derive(Debug)]
pub(crate) struct Inbound {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    muted: bool,
    /// Input media time of the next frame handed to the session. The session wants one
    /// increasing clock, while the jitter buffer's clock starts at the first packet and may
    /// step on discards, so the bridge keeps its own.
    next_time: u64,
    malformed: u64,
}

impl Inbound {
    pub(crate) fn new(config: &JitterConfig) -> Result<Self, VoiceError> {
        Ok(Self {
            jitter: JitterBuffer::new(config.clone())?,
            decoder: OpusDecoder::new()?,
            muted: false,
            next_time: 0,
            malformed: 0,
        })
    }

    /// Stores one arriving packet. Malformed packets are counted and dropped: the network
    /// decides what arrives, so a bad packet is never an error for the call.
    pub(crate) fn push(&mut self, seq: u16, rtp_timestamp: u32, payload: &[u8], now: Instant) {
        if self.jitter.push(seq, rtp_timestamp, payload, now).is_err() {
            self.malformed += 1;
        }
    }

    /// While muted the session hears silence (its clocks keep running, no turn can start).
    pub(crate) fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The frame for this 20 ms slot, or `None` while the buffer is still filling at the
    /// start of the stream.
    pub(crate) fn next_frame(&mut self) -> Option<Frame48> {
        let time = media::MediaTime(self.next_time);
        let frame = match self.jitter.pop() {
            Playout::Buffering => return None,
            Playout::Packet { payload, .. } => self.decoder.decode_or_conceal(payload, time),
            Playout::Recover { next_payload, .. } => self.decoder.decode_fec(next_payload, time),
            Playout::Conceal { .. } => self.decoder.conceal(time),
        };
        self.next_time += Frame48::LEN as u64;
        Some(if self.muted {
            Frame48::silence(time)
        } else {
            frame
        })
    }

    pub(crate) fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    pub(crate) fn decoder_stats(&self) -> media::DecoderStats {
        self.decoder.stats()
    }

    pub(crate) fn malformed(&self) -> u64 {
        self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{MediaTime, OpusConfig, OpusEncoder};

    fn tone(i: u64) -> Frame48 {
        let mut f = Frame48::silence(MediaTime(i * 960));
        for (n, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (i * 960 + n as u64) as f32 / 48_000.0;
            *s = (t * 440.0 * std::f32::consts::TAU).sin() * 0.3;
        }
        f
    }

    #[test]
    fn a_lost_packet_is_rebuilt_and_the_clock_never_steps() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).unwrap();
        let mut inbound = Inbound::new(&JitterConfig::default()).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; media::MAX_PACKET];
        let mut frames = Vec::new();
        // Packets arrive every 20 ms (packet 4 never does); the playout clock ticks with them.
        for i in 0..12u16 {
            let n = enc.encode(&tone(u64::from(i)), &mut buf).unwrap();
            let now = start + std::time::Duration::from_millis(20 * u64::from(i));
            if i != 4 {
                inbound.push(i, u32::from(i) * 960, &buf[..n], now);
            }
            frames.extend(inbound.next_frame());
        }
        inbound.push(20, 0, &[], start); // empty: malformed, dropped
        assert!(frames.len() >= 8, "{} frames played", frames.len());
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.time(), MediaTime(i as u64 * 960));
            assert!(f.rms() > 0.01, "frame {i} is not silent");
        }
        assert_eq!(inbound.malformed(), 1);
        assert_eq!(inbound.decoder_stats().fec_recovered, 1);
        assert_eq!(inbound.jitter_stats().lost, 1);

        inbound.set_muted(true);
        let muted = inbound.next_frame().expect("a packet is still buffered");
        assert_eq!(muted.rms(), 0.0);
    }
}
