//! Viseme (lipsync) data: the JSON [`VisemeFrame`] and its binary frame payload.
//!
//! A viseme frame says which mouth shape to show at a media time of the outgoing audio, so a
//! client renders it when that audio sample plays, not when the message arrives. Viseme ids
//! follow the 15-viseme Oculus/MPEG-4 set (`0` = silence, `1` = PP, `2` = FF, `3` = TH,
//! `4` = DD, `5` = kk, `6` = CH, `7` = SS, `8` = nn, `9` = RR, `10` = aa, `11` = E, `12` = ih,
//! `13` = oh, `14` = ou); optional `weights` give a blend over that set in the same order.
//!
//! Binary payload of a [`FrameType::Viseme`](crate::FrameType::Viseme) frame (the media time is
//! the frame header's timestamp):
//!
//! | offset | size | field                                         |
//! |-------:|-----:|-----------------------------------------------|
//! | 0      | 1    | viseme id                                     |
//! | 1      | 1    | weight count `n` (0 = no blend, id only)      |
//! | 2      | n    | weights, each `round(w * 255)` for `w` in 0..=1 |

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::frame::{Frame, FrameFlags, FrameType};

/// Number of visemes in the id set; ids are `0..VISEME_COUNT`.
pub const VISEME_COUNT: u8 = 15;

/// Most weights one viseme frame may carry (one per viseme in the set).
pub const MAX_VISEME_WEIGHTS: usize = VISEME_COUNT as usize;

/// One mouth shape stamped with the media time of the outgoing audio it belongs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisemeFrame {
    /// Media time of the outgoing audio, microseconds on the session's output media clock
    /// (the same clock as audio frame timestamps).
    pub media_time_us: u64,
    /// Dominant viseme, `0..VISEME_COUNT`.
    pub viseme_id: u8,
    /// Optional blend weights in `0.0..=1.0`, indexed by viseme id; empty (omitted in JSON)
    /// when only the dominant id is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<f32>,
}

impl VisemeFrame {
    /// Checks the id and weights against the protocol's rules.
    pub fn validate(&self, event_type: &'static str) -> Result<(), ProtocolError> {
        if self.viseme_id >= VISEME_COUNT {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "visemeId",
                reason: format!("is {}, must be below {VISEME_COUNT}", self.viseme_id),
            });
        }
        if self.weights.len() > MAX_VISEME_WEIGHTS {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "weights",
                reason: format!(
                    "has {} entries, at most {MAX_VISEME_WEIGHTS} allowed",
                    self.weights.len()
                ),
            });
        }
        if let Some(bad) = self
            .weights
            .iter()
            .find(|w| !(w.is_finite() && (0.0..=1.0).contains(*w)))
        {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "weights",
                reason: format!("contains {bad}, weights must be within 0..=1"),
            });
        }
        Ok(())
    }

    /// This viseme as a binary [`FrameType::Viseme`] frame (weights quantised to 1/255).
    pub fn to_frame(&self, sequence: u32) -> Result<Frame, ProtocolError> {
        self.validate("viseme payload")?;
        let mut payload = BytesMut::with_capacity(2 + self.weights.len());
        payload.put_u8(self.viseme_id);
        // validate() bounds the count by MAX_VISEME_WEIGHTS (15).
        payload.put_u8(u8::try_from(self.weights.len()).unwrap_or(u8::MAX));
        for &w in &self.weights {
            payload.put_u8(quantize_weight(w));
        }
        Ok(Frame {
            frame_type: FrameType::Viseme,
            flags: FrameFlags::NONE,
            sequence,
            media_time_us: self.media_time_us,
            payload: payload.freeze(),
        })
    }

    /// Reads a binary [`FrameType::Viseme`] frame.
    pub fn from_frame(frame: &Frame) -> Result<Self, ProtocolError> {
        frame.expect_type(FrameType::Viseme)?;
        let view = VisemePayload::parse(&frame.payload)?;
        Ok(Self {
            media_time_us: frame.media_time_us,
            viseme_id: view.viseme_id,
            weights: view.weights().collect(),
        })
    }
}

/// A borrowed view of a binary viseme payload, read without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisemePayload<'a> {
    /// Dominant viseme id, checked to be below [`VISEME_COUNT`].
    pub viseme_id: u8,
    /// Quantised weights, `0..=255` for `0.0..=1.0`.
    pub quantized_weights: &'a [u8],
}

impl<'a> VisemePayload<'a> {
    /// Parses a viseme frame payload.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        let [viseme_id, count, rest @ ..] = payload else {
            return Err(ProtocolError::Truncated {
                what: "viseme payload",
                needed: 2,
                available: payload.len(),
            });
        };
        let count = usize::from(*count);
        check_shape(*viseme_id, count)?;
        if rest.len() < count {
            return Err(ProtocolError::Truncated {
                what: "viseme payload",
                needed: 2 + count,
                available: payload.len(),
            });
        }
        if rest.len() > count {
            return Err(ProtocolError::TrailingBytes {
                declared: 2 + count,
                actual: payload.len(),
            });
        }
        Ok(Self {
            viseme_id: *viseme_id,
            quantized_weights: rest,
        })
    }

    /// The weights as `0.0..=1.0`.
    pub fn weights(&self) -> impl Iterator<Item = f32> + 'a {
        self.quantized_weights.iter().map(|&q| dequantize_weight(q))
    }

    /// Encodes a payload from already-quantised weights into `dst` (no intermediate buffer).
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        check_shape(self.viseme_id, self.quantized_weights.len())?;
        dst.reserve(2 + self.quantized_weights.len());
        dst.put_u8(self.viseme_id);
        dst.put_u8(u8::try_from(self.quantized_weights.len()).unwrap_or(u8::MAX));
        dst.put_slice(self.quantized_weights);
        Ok(())
    }

    /// The payload as a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, ProtocolError> {
        let mut dst = BytesMut::new();
        self.encode_into(&mut dst)?;
        Ok(dst.freeze())
    }
}

/// Checks a binary viseme's id and weight count.
fn check_shape(viseme_id: u8, count: usize) -> Result<(), ProtocolError> {
    if viseme_id >= VISEME_COUNT {
        return Err(ProtocolError::InvalidField {
            event_type: "viseme payload",
            field: "visemeId",
            reason: format!("is {viseme_id}, must be below {VISEME_COUNT}"),
        });
    }
    if count > MAX_VISEME_WEIGHTS {
        return Err(ProtocolError::InvalidField {
            event_type: "viseme payload",
            field: "weights",
            reason: format!("has {count} entries, at most {MAX_VISEME_WEIGHTS} allowed"),
        });
    }
    Ok(())
}

/// A weight in `0.0..=1.0` as one byte (out-of-range values clamp).
pub fn quantize_weight(weight: f32) -> u8 {
    // Clamped to 0..=255 first, so the cast cannot truncate; NaN maps to 0.
    let scaled = (weight * 255.0).round().clamp(0.0, 255.0);
    if scaled.is_nan() { 0 } else { scaled as u8 }
}

/// One quantised byte back to a weight in `0.0..=1.0`.
pub fn dequantize_weight(quantized: u8) -> f32 {
    f32::from(quantized) / 255.0
}
