//! A caller on a bad network: 5 % of packets vanish and the rest arrive jittered and out of
//! order. The jitter buffer and decoder still hand the pipeline one frame every 20 ms, recover
//! or conceal each loss, and count it.

mod common;

use std::time::{Duration, Instant};

use media::{
    Frame48, JitterBuffer, JitterConfig, MAX_PACKET, OpusConfig, OpusDecoder, OpusEncoder, Playout,
};

/// A small deterministic generator so the test hears the same network every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
#[allow(clippy::print_stderr)] // the counters are reported for the record
fn five_percent_loss_with_reordering_gives_continuous_audio_and_counts_the_loss() {
    let (_, samples) = common::read_wav("call-two-turns.48k.wav");
    let frames = common::frames48(&samples, 0);
    let mut encoder = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut out = [0u8; MAX_PACKET];
            let n = encoder.encode(f, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect();
    let n = packets.len();

    // The network: 5 % loss, 30-55 ms delay (so neighbours overtake each other), sequence
    // numbers starting just below the 16-bit wrap.
    let start = Instant::now();
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let first_seq: u16 = 65_500;
    let mut dropped = 0;
    let mut arrivals = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if rng.chance(5) {
            dropped += 1;
            continue;
        }
        let at = start + Duration::from_millis(i as u64 * 20 + 30 + rng.below(26));
        let seq = first_seq.wrapping_add(i as u16);
        arrivals.push((at, seq, (i as u32) * 960, p.clone()));
    }
    arrivals.sort_by_key(|a| a.0);
    let reordered = arrivals
        .windows(2)
        .filter(|w| w[1].1.wrapping_sub(w[0].1) > 1_000)
        .count();
    assert!(reordered > 0, "the network reorders some packets");

    // The receiver: a 20 ms playout clock pulling from the jitter buffer.
    let mut jitter = JitterBuffer::new(JitterConfig::default()).expect("jitter buffer");
    let mut decoder = OpusDecoder::new().expect("decoder");
    let mut clean_decoder = OpusDecoder::new().expect("decoder");
    let mut played: Vec<Frame48> = Vec::new();
    let mut arriving = arrivals.into_iter().peekable();
    let mut tick = start;
    while played.len() < n {
        while let Some(a) = arriving.next_if(|a| a.0 <= tick) {
            jitter
                .push(a.1, a.2, &a.3, a.0)
                .expect("well-formed packet");
        }
        match jitter.pop() {
            Playout::Buffering => {
                assert!(played.is_empty(), "buffering only before playout starts");
            }
            Playout::Packet { payload, time } => {
                played.push(decoder.decode(payload, time).expect("decode"));
            }
            Playout::Recover { next_payload, time } => {
                played.push(decoder.decode_fec(next_payload, time));
            }
            Playout::Conceal { time } => played.push(decoder.conceal(time)),
        }
        tick += Duration::from_millis(20);
        assert!(tick < start + Duration::from_secs(30), "playout stalled");
    }

    let stats = jitter.stats();
    let dstats = decoder.stats();
    eprintln!(
        "{n} packets, {dropped} dropped by the network, {reordered} overtaken: {stats:?} {dstats:?}"
    );
    // Every frame was played exactly once, in order, on a continuous clock.
    for (i, f) in played.iter().enumerate() {
        assert_eq!(
            f.time().0,
            i as u64 * 960,
            "frame {i} is on the media clock"
        );
        assert!(f.samples().iter().all(|s| s.is_finite()));
    }
    // Every loss is counted, and each was filled by FEC or concealment.
    assert!(
        stats.lost >= dropped,
        "lost {} < dropped {dropped}",
        stats.lost
    );
    assert!(stats.lost <= dropped + stats.late, "{stats:?}");
    assert_eq!(
        dstats.fec_recovered + dstats.concealed,
        stats.lost,
        "{dstats:?}"
    );
    assert_eq!(dstats.decoded + stats.lost, n as u64);
    assert!(
        stats.fec_recoverable > 0,
        "some losses were rebuilt from FEC"
    );
    // No holes: where the clean stream has speech, the repaired one is not silent.
    for (i, (p, f)) in packets.iter().zip(&frames).enumerate() {
        let clean = clean_decoder.decode(p, f.time()).expect("decode");
        if clean.rms() > 0.01 {
            assert!(played[i].rms() > 0.001, "frame {i} is a hole in the speech");
        }
    }
}

#[test]
fn garbage_is_rejected_or_concealed_and_counted_never_a_panic() {
    let mut jitter = JitterBuffer::new(JitterConfig::default()).expect("jitter buffer");
    let now = Instant::now();
    assert!(
        jitter.push(1, 0, &[], now).is_err(),
        "an empty payload is malformed"
    );
    assert!(
        jitter.push(2, 960, &[0u8; 2_000], now).is_err(),
        "an oversized payload is malformed"
    );
    assert_eq!(jitter.stats().malformed, 2);

    let mut decoder = OpusDecoder::new().expect("decoder");
    let mut encoder = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
    let mut packet = [0u8; MAX_PACKET];
    let len = encoder
        .encode(&Frame48::silence(media::MediaTime::ZERO), &mut packet)
        .expect("encode");
    // A truncated packet, a packet of a 60 ms frame, random bytes: errors, not panics.
    for bad in [
        &packet[..1],
        &[0xfc, 0xff, 0xff][..],
        &[0x0b, 0x01][..],
        &[0xff; 7][..],
    ] {
        let _ = decoder.decode(bad, media::MediaTime::ZERO);
        let f = decoder.decode_or_conceal(bad, media::MediaTime::ZERO);
        assert!(f.samples().iter().all(|s| s.is_finite()));
    }
    assert!(decoder.stats().corrupt >= 1);
    assert!(
        decoder
            .decode(&packet[..len], media::MediaTime::ZERO)
            .is_ok()
    );

    // A NaN sample and a wrong rate are typed errors.
    let mut samples = [0.0f32; 960];
    samples[17] = f32::NAN;
    assert!(matches!(
        Frame48::from_f32(48_000, &samples, media::MediaTime::ZERO),
        Err(media::MediaError::NonFiniteSample { index: 17 })
    ));
    assert!(matches!(
        Frame48::from_f32(44_100, &[0.0; 960], media::MediaTime::ZERO),
        Err(media::MediaError::WrongSampleRate {
            expected: 48_000,
            got: 44_100
        })
    ));
    assert!(matches!(
        media::Frame16::from_i16(16_000, &[0; 319], media::MediaTime::ZERO),
        Err(media::MediaError::WrongFrameLength { .. })
    ));
}
