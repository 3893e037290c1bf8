//! Any sequence of RTP packets (sequence numbers, timestamps, payloads, arrival times) and
//! playout ticks: the jitter buffer never panics and stays bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media::{JitterBuffer, JitterConfig, Playout};

fuzz_target!(|data: &[u8]| {
    let Ok(mut jb) = JitterBuffer::new(JitterConfig { capacity: 16, min_delay_frames: 1, max_delay_frames: 6 })
    else {
        return;
    };
    let start = Instant::now();
    let mut now = start;
    let mut rest = data;
    // Each record: op(1) seq(2) ts(4) delay(1) len(1) payload(len).
    while rest.len() >= 9 {
        let op = rest[0];
        let seq = u16::from_le_bytes([rest[1], rest[2]]);
        let ts = u32::from_le_bytes([rest[3], rest[4], rest[5], rest[6]]);
        now += Duration::from_millis(u64::from(rest[7]));
        let len = usize::from(rest[8]).min(rest.len() - 9);
        let payload = &rest[9..9 + len];
        rest = &rest[9 + len..];
        if op & 1 == 0 {
            let _ = jb.push(seq, ts, payload, now);
        }
        if op & 2 == 0 {
            match jb.pop() {
                Playout::Packet { payload, .. } | Playout::Recover { next_payload: payload, .. } => {
                    assert!(!payload.is_empty());
                }
                Playout::Conceal { .. } | Playout::Buffering => {}
            }
        }
        assert!(jb.stats().depth <= 16);
    }
});
