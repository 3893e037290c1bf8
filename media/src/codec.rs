//! Opus encode and decode: 48 kHz mono, 20 ms packets, in-band FEC and loss concealment.

use crate::error::{MediaError, Result};
use crate::frame::Frame48;
use crate::time::MediaTime;

/// Largest Opus packet (RFC 6716 §3.2.1); size output buffers with this.
pub const MAX_PACKET: usize = 1275;

/// Encoder settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpusConfig {
    /// Target bitrate in bits per second. Default 32 000: clear wideband speech with room for
    /// FEC. Allowed 6 000..=510 000.
    pub bitrate_bps: i32,
    /// Encoder complexity 0..=10. Default 5; lower it under load (0 costs about half of 5).
    pub complexity: i32,
    /// Put a low-bitrate copy of each frame in the next packet so a single loss can be
    /// recovered by the receiver. Default `true`.
    pub inband_fec: bool,
    /// Loss the encoder should expect, in percent, which sizes the FEC data. Default 5.
    pub expected_loss_percent: i32,
    /// Discontinuous transmission: send almost nothing during silence. Default `false`
    /// (a receiver must then treat gaps as silence, not loss).
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: 32_000,
            complexity: 5,
            inband_fec: true,
            expected_loss_percent: 5,
            dtx: false,
        }
    }
}

impl OpusConfig {
    fn validate(&self) -> Result<()> {
        if !(6_000..=510_000).contains(&self.bitrate_bps) {
            return Err(MediaError::InvalidConfig {
                key: "bitrate_bps",
                reason: "must be 6000..=510000",
            });
        }
        if !(0..=10).contains(&self.complexity) {
            return Err(MediaError::InvalidConfig {
                key: "complexity",
                reason: "must be 0..=10",
            });
        }
        if !(0..=100).contains(&self.expected_loss_percent) {
            return Err(MediaError::InvalidConfig {
                key: "expected_loss_percent",
                reason: "must be 0..=100",
            });
        }
        Ok(())
    }
}

fn opus_err(what: &'static str) -> impl FnOnce(opus::Error) -> MediaError {
    move |source| MediaError::Opus { what, source }
}

/// Encodes 48 kHz mono 20 ms frames to Opus packets.
pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// A VoIP-tuned encoder with `config` applied.
    pub fn new(config: &OpusConfig) -> Result<Self> {
        config.validate()?;
        let mut inner = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err("create encoder"))?;
        inner
            .set_bitrate(opus::Bitrate::Bits(config.bitrate_bps))
            .map_err(opus_err("set bitrate"))?;
        inner
            .set_complexity(config.complexity)
            .map_err(opus_err("set complexity"))?;
        inner
            .set_inband_fec(config.inband_fec)
            .map_err(opus_err("set inband fec"))?;
        inner
            .set_packet_loss_perc(config.expected_loss_percent)
            .map_err(opus_err("set packet loss"))?;
        inner.set_dtx(config.dtx).map_err(opus_err("set dtx"))?;
        Ok(Self { inner })
    }

    /// Changes complexity on a live call (for example when the node is loaded).
    pub fn set_complexity(&mut self, complexity: i32) -> Result<()> {
        if !(0..=10).contains(&complexity) {
            return Err(MediaError::InvalidConfig {
                key: "complexity",
                reason: "must be 0..=10",
            });
        }
        self.inner
            .set_complexity(complexity)
            .map_err(opus_err("set complexity"))
    }

    /// Encodes one frame into `out` (size it [`MAX_PACKET`]) and returns the packet length.
    /// Non-finite samples are encoded as silence (a cleaned copy is made on the stack).
    pub fn encode(&mut self, frame: &Frame48, out: &mut [u8]) -> Result<usize> {
        if frame.samples().iter().all(|s| s.is_finite()) {
            return self
                .inner
                .encode_float(frame.samples(), out)
                .map_err(opus_err("encode"));
        }
        let mut clean = *frame;
        clean.conceal_non_finite();
        self.inner
            .encode_float(clean.samples(), out)
            .map_err(opus_err("encode"))
    }
}

/// Decoder counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Packets decoded normally.
    pub decoded: u64,
    /// Lost frames rebuilt from the FEC data of the following packet.
    pub fec_recovered: u64,
    /// Lost frames filled by packet-loss concealment.
    pub concealed: u64,
    /// Packets that were malformed or rejected by libopus (each was concealed instead).
    pub corrupt: u64,
}

/// Decodes 20 ms Opus packets to 48 kHz mono frames, with FEC and concealment for losses.
pub struct OpusDecoder {
    inner: opus::Decoder,
    stats: DecoderStats,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A 48 kHz mono decoder.
    pub fn new() -> Result<Self> {
        let inner =
            opus::Decoder::new(48_000, opus::Channels::Mono).map_err(opus_err("create decoder"))?;
        Ok(Self {
            inner,
            stats: DecoderStats::default(),
        })
    }

    /// Counters so far.
    #[must_use]
    pub const fn stats(&self) -> DecoderStats {
        self.stats
    }

    fn check_packet(packet: &[u8]) -> Result<()> {
        if packet.is_empty() || packet.len() > MAX_PACKET {
            return Err(MediaError::MalformedPacket { len: packet.len() });
        }
        let samples =
            opus::packet::get_nb_samples(packet, 48_000).map_err(opus_err("read packet header"))?;
        if samples != Frame48::LEN {
            return Err(MediaError::WrongPacketDuration { samples });
        }
        Ok(())
    }

    /// Decodes one 20 ms packet into a frame stamped `time`.
    pub fn decode(&mut self, packet: &[u8], time: MediaTime) -> Result<Frame48> {
        Self::check_packet(packet)?;
        let mut frame = Frame48::silence(time);
        let n = self
            .inner
            .decode_float(packet, frame.samples_mut(), false)
            .map_err(opus_err("decode"))?;
        if n != Frame48::LEN {
            return Err(MediaError::WrongPacketDuration { samples: n });
        }
        frame.conceal_non_finite();
        self.stats.decoded += 1;
        Ok(frame)
    }

    /// Decodes `packet`, or conceals the frame (and counts it corrupt) when the packet is bad:
    /// what a call does with whatever the network hands it.
    pub fn decode_or_conceal(&mut self, packet: &[u8], time: MediaTime) -> Frame48 {
        match self.decode(packet, time) {
            Ok(frame) => frame,
            Err(_) => {
                self.stats.corrupt += 1;
                self.conceal(time)
            }
        }
    }

    /// Rebuilds the lost frame just before `next_packet` from that packet's in-band FEC data
    /// (libopus falls back to concealment if the packet carries none).
    pub fn decode_fec(&mut self, next_packet: &[u8], time: MediaTime) -> Frame48 {
        if Self::check_packet(next_packet).is_err() {
            self.stats.corrupt += 1;
            return self.conceal(time);
        }
        let mut frame = Frame48::silence(time);
        match self
            .inner
            .decode_float(next_packet, frame.samples_mut(), true)
        {
            Ok(n) if n == Frame48::LEN => {
                frame.conceal_non_finite();
                self.stats.fec_recovered += 1;
                frame
            }
            _ => self.conceal(time),
        }
    }

    /// Packet-loss concealment: extrapolates one frame from the decoder's history.
    pub fn conceal(&mut self, time: MediaTime) -> Frame48 {
        let mut frame = Frame48::silence(time);
        // An empty packet asks libopus for PLC; should it fail, silence is the safe fill.
        if self
            .inner
            .decode_float(&[], frame.samples_mut(), false)
            .is_err()
        {
            frame = Frame48::silence(time);
        }
        frame.conceal_non_finite();
        self.stats.concealed += 1;
        frame
    }
}
