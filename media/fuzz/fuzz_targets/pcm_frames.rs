//! Any bytes as PCM (f32 with NaNs and infinities, or i16) at any claimed rate: frame
//! construction errors are typed, concealment removes non-finite samples, and the resampler,
//! encoder, turn detector and viseme estimator accept whatever frames result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::viseme::AudioVisemeEstimator;
use media::{Frame48, MAX_PACKET, MediaTime, OpusConfig, OpusEncoder, Resampler48To16, TurnConfig, TurnDetector};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let rate = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let samples: Vec<f32> = data[4..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let pcm: Vec<i16> = data[4..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let _ = Frame48::from_f32(rate, &samples, MediaTime::ZERO);
    let _ = Frame48::from_i16(rate, &pcm, MediaTime::ZERO);

    // Whatever arrives, padded into frames and concealed, must flow through the chain.
    let (Ok(mut down), Ok(mut enc), Ok(mut turns)) = (
        Resampler48To16::new(),
        OpusEncoder::new(&OpusConfig::default()),
        TurnDetector::new(TurnConfig::default()),
    ) else {
        return;
    };
    let mut est = AudioVisemeEstimator::new();
    let mut out = [0u8; MAX_PACKET];
    for (i, chunk) in samples.chunks(960).enumerate() {
        let mut frame = Frame48::silence(MediaTime(i as u64 * 960));
        frame.samples_mut()[..chunk.len()].copy_from_slice(chunk);
        frame.conceal_non_finite();
        assert!(frame.samples().iter().all(|s| s.is_finite() && s.abs() <= 1.0));
        let Ok(f16) = down.process(&frame) else { return };
        assert!(f16.samples().iter().all(|s| s.is_finite()));
        let _ = enc.encode(&frame, &mut out);
        let v = est.process(&frame);
        assert!(v.openness.is_finite());
        let p = chunk.first().copied().unwrap_or(0.0);
        let _ = turns.on_frame(p, f16.time(), f16.end_time());
    }
});
