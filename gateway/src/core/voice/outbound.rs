//! Reply audio, sans-IO: each 20 ms frame from the session becomes one Opus packet as
//! `Bytes`, cut from one reused buffer.

use bytes::{Bytes, BytesMut};
use media::{Frame48, MAX_PACKET, OpusConfig, OpusEncoder};

use super::VoiceError;

/// Packets the buffer has room for before it must take its memory back.
const POOL_PACKETS: usize = 8;

/// Encodes reply frames. The gateway's send path takes owned `Bytes`; they are split off one
/// `BytesMut`, and once the endpoint has dropped the earlier packets `reserve` reclaims the
/// same allocation, so a running call does not allocate per frame.
#[derive(Debug)]
pub(crate) struct Packetizer {
    encoder: OpusEncoder,
    buffer: BytesMut,
}

impl Packetizer {
    pub(crate) fn new(config: &OpusConfig) -> Result<Self, VoiceError> {
        Ok(Self {
            encoder: OpusEncoder::new(config)?,
            buffer: BytesMut::with_capacity(POOL_PACKETS * MAX_PACKET),
        })
    }

    /// One Opus packet for `frame`.
    pub(crate) fn encode(&mut self, frame: &Frame48) -> Result<Bytes, VoiceError> {
        self.buffer.reserve(MAX_PACKET);
        self.buffer.resize(MAX_PACKET, 0);
        match self.encoder.encode(frame, &mut self.buffer) {
            Ok(len) => {
                self.buffer.truncate(len);
                Ok(self.buffer.split().freeze())
            }
            Err(e) => {
                self.buffer.clear();
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::MediaTime;

    #[test]
    fn a_long_reply_reuses_one_buffer_for_every_packet() {
        let mut p = Packetizer::new(&OpusConfig::default()).unwrap();
        let first = p.encode(&Frame48::silence(MediaTime(0))).unwrap();
        let base = first.as_ptr() as usize;
        drop(first);
        let mut decoder = media::OpusDecoder::new().unwrap();
        for i in 1..1_000u64 {
            let mut frame = Frame48::silence(MediaTime(i * 960));
            frame.samples_mut()[(i % 960) as usize] = 0.5;
            let packet = p.encode(&frame).unwrap();
            let at = packet.as_ptr() as usize;
            assert!(
                (base..base + POOL_PACKETS * MAX_PACKET).contains(&at),
                "packet {i} was cut from fresh memory"
            );
            decoder
                .decode(&packet, frame.time())
                .expect("a valid packet");
        }
    }
}
