//! Any bytes handed to the Opus decoder as a packet: a typed error or concealment, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::{MediaTime, OpusDecoder};

fuzz_target!(|data: &[u8]| {
    let Ok(mut decoder) = OpusDecoder::new() else { return };
    let t = MediaTime::ZERO;
    let _ = decoder.decode(data, t);
    let f = decoder.decode_or_conceal(data, t);
    assert!(f.samples().iter().all(|s| s.is_finite()));
    let f = decoder.decode_fec(data, t);
    assert!(f.samples().iter().all(|s| s.is_finite()));
    // Split in two packets as well: state carried from a bad packet must not break the next.
    let (a, b) = data.split_at(data.len() / 2);
    let _ = decoder.decode(a, t);
    let _ = decoder.decode(b, t);
});
