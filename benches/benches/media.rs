//! Per-20 ms-frame cost of every media stage and of the whole inbound and outbound chains of
//! one call, on the test recordings. `benches/README.md` has the numbers and the command.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use media::viseme::AudioVisemeEstimator;
use media::{
    Frame16, Frame24, Frame48, JitterBuffer, JitterConfig, MAX_PACKET, MediaTime, OpusConfig,
    OpusDecoder, OpusEncoder, Playout, Resampler16To48, Resampler24To48, Resampler48To16,
    RuntimePaths, SileroModel, TurnConfig, TurnDetector, Vad, VadConfig,
};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches sits in the workspace root")
}

/// "Hello! What is the weather like today?" as 20 ms frames at 48 kHz.
fn speech48() -> Vec<Frame48> {
    let path = workspace_root().join("media/testdata/hello.48k.wav");
    let mut reader = hound::WavReader::open(path).expect("media/testdata/hello.48k.wav");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("wav sample"))
        .collect();
    samples
        .chunks_exact(960)
        .enumerate()
        .map(|(i, c)| {
            Frame48::from_i16(48_000, c, MediaTime::from_samples(i as u64 * 960, 48_000))
                .expect("frame")
        })
        .collect()
}

fn speech16(frames: &[Frame48]) -> Vec<Frame16> {
    let mut r = Resampler48To16::new().expect("resampler");
    frames
        .iter()
        .map(|f| r.process(f).expect("resample"))
        .collect()
}

fn speech24(frames: &[Frame48]) -> Vec<Frame24> {
    frames
        .iter()
        .map(|f| {
            let mut out = Frame24::silence(MediaTime::ZERO);
            for (o, s) in out
                .samples_mut()
                .iter_mut()
                .zip(f.samples().iter().step_by(2))
            {
                *o = *s;
            }
            out
        })
        .collect()
}

fn packets(frames: &[Frame48]) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
    frames
        .iter()
        .map(|f| {
            let mut out = [0u8; MAX_PACKET];
            let n = enc.encode(f, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect()
}

fn model() -> SileroModel {
    SileroModel::load(&RuntimePaths::from_env_or(workspace_root()))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Cycles through a recording, one frame per iteration.
struct Cycle<'a, T> {
    items: &'a [T],
    i: usize,
}

impl<'a, T> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        Self { items, i: 0 }
    }
    fn next(&mut self) -> (usize, &'a T) {
        let i = self.i;
        self.i = (self.i + 1) % self.items.len();
        (i, &self.items[i])
    }
}

fn stages(c: &mut Criterion) {
    let frames48 = speech48();
    let frames16 = speech16(&frames48);
    let frames24 = speech24(&frames48);
    let packets = packets(&frames48);
    let silero = model();
    let mut g = c.benchmark_group("stage_per_20ms_frame");

    g.bench_function("opus_decode", |b| {
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut it = Cycle::new(&packets);
        b.iter(|| {
            let (i, p) = it.next();
            black_box(dec.decode(p, MediaTime(i as u64 * 960)).expect("decode"))
        });
    });
    for complexity in [0, 5] {
        g.bench_function(format!("opus_encode_complexity_{complexity}"), |b| {
            let mut enc = OpusEncoder::new(&OpusConfig {
                complexity,
                ..OpusConfig::default()
            })
            .expect("encoder");
            let mut out = [0u8; MAX_PACKET];
            let mut it = Cycle::new(&frames48);
            b.iter(|| black_box(enc.encode(it.next().1, &mut out).expect("encode")));
        });
    }
    g.bench_function("resample_48k_to_16k", |b| {
        let mut r = Resampler48To16::new().expect("resampler");
        let mut it = Cycle::new(&frames48);
        b.iter(|| black_box(r.process(it.next().1).expect("resample")));
    });
    g.bench_function("resample_24k_to_48k", |b| {
        let mut r = Resampler24To48::new().expect("resampler");
        let mut it = Cycle::new(&frames24);
        b.iter(|| black_box(r.process(it.next().1).expect("resample")));
    });
    g.bench_function("resample_16k_to_48k", |b| {
        let mut r = Resampler16To48::new().expect("resampler");
        let mut it = Cycle::new(&frames16);
        b.iter(|| black_box(r.process(it.next().1).expect("resample")));
    });
    g.bench_function("vad_speech_model_runs", |b| {
        // Gate off: the model runs on every 512-sample window (0.625 runs per frame).
        let mut vad = Vad::new(
            silero.for_call().expect("call tensors"),
            VadConfig {
                energy_gate_dbfs: -200.0,
                ..VadConfig::default()
            },
        );
        let mut it = Cycle::new(&frames16);
        b.iter(|| black_box(vad.process(it.next().1).expect("vad")));
    });
    g.bench_function("vad_silence_gated", |b| {
        let mut vad = Vad::new(
            silero.for_call().expect("call tensors"),
            VadConfig::default(),
        );
        let silence = Frame16::silence(MediaTime::ZERO);
        b.iter(|| black_box(vad.process(&silence).expect("vad")));
    });
    g.bench_function("end_of_turn", |b| {
        let mut turns = TurnDetector::new(TurnConfig::default()).expect("config");
        let mut t = 0u64;
        b.iter(|| {
            t += 960;
            let p = if (t / 960) % 100 < 60 { 0.9 } else { 0.1 };
            black_box(turns.on_frame(p, MediaTime(t), MediaTime(t + 960)))
        });
    });
    g.bench_function("jitter_push_pop", |b| {
        let mut jb = JitterBuffer::new(JitterConfig::default()).expect("jitter");
        let start = Instant::now();
        let mut seq = 0u16;
        b.iter(|| {
            let now = start + Duration::from_millis(u64::from(seq) * 20);
            jb.push(
                seq,
                u32::from(seq) * 960,
                &packets[usize::from(seq) % packets.len()],
                now,
            )
            .expect("push");
            seq = seq.wrapping_add(1);
            black_box(matches!(jb.pop(), Playout::Packet { .. }))
        });
    });
    g.bench_function("visemes_from_audio", |b| {
        let mut est = AudioVisemeEstimator::new();
        let mut it = Cycle::new(&frames48);
        b.iter(|| black_box(est.process(it.next().1)));
    });
    g.finish();
}

fn chains(c: &mut Criterion) {
    let frames48 = speech48();
    let frames24 = speech24(&frames48);
    let packets = packets(&frames48);
    let silero = model();
    let mut g = c.benchmark_group("chain_per_20ms_frame");

    // Jitter buffer -> decode -> 48k->16k -> VAD (gate on, speech recording) -> end of turn.
    let inbound = |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
                   name: &str,
                   silent: bool| {
        g.bench_function(name, |b| {
            let mut jb = JitterBuffer::new(JitterConfig::default()).expect("jitter");
            let mut dec = OpusDecoder::new().expect("decoder");
            let mut down = Resampler48To16::new().expect("resampler");
            let mut vad = Vad::new(
                silero.for_call().expect("call tensors"),
                VadConfig::default(),
            );
            let mut turns = TurnDetector::new(TurnConfig::default()).expect("config");
            let silent_packets = self::packets(&vec![Frame48::silence(MediaTime::ZERO); 8]);
            let source = if silent { &silent_packets } else { &packets };
            let start = Instant::now();
            let mut seq = 0u16;
            b.iter(|| {
                let now = start + Duration::from_millis(u64::from(seq) * 20);
                let p = &source[usize::from(seq) % source.len()];
                jb.push(seq, u32::from(seq) * 960, p, now).expect("push");
                seq = seq.wrapping_add(1);
                let frame = match jb.pop() {
                    Playout::Buffering => return None,
                    Playout::Packet { payload, time } => dec.decode(payload, time).expect("decode"),
                    Playout::Recover { next_payload, time } => dec.decode_fec(next_payload, time),
                    Playout::Conceal { time } => dec.conceal(time),
                };
                let f16 = down.process(&frame).expect("resample");
                let prob = vad.process(&f16).expect("vad");
                black_box(turns.on_frame(prob, f16.time(), f16.end_time()))
            });
        });
    };
    inbound(&mut g, "inbound_speech", false);
    inbound(&mut g, "inbound_silence", true);

    // 24 kHz TTS audio -> 24k->48k -> Opus (complexity 5 and 0) -> audio visemes.
    for complexity in [5, 0] {
        g.bench_function(format!("outbound_complexity_{complexity}"), |b| {
            let mut up = Resampler24To48::new().expect("resampler");
            let mut enc = OpusEncoder::new(&OpusConfig {
                complexity,
                ..OpusConfig::default()
            })
            .expect("encoder");
            let mut est = AudioVisemeEstimator::new();
            let mut out = [0u8; MAX_PACKET];
            let mut it = Cycle::new(&frames24);
            b.iter(|| {
                let f48 = up.process(it.next().1).expect("resample");
                let n = enc.encode(&f48, &mut out).expect("encode");
                black_box((n, est.process(&f48)))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, stages, chains);
criterion_main!(benches);
