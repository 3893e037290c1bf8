//! A running call allocates nothing per 20 ms frame: a counting global allocator watches the
//! steady-state inbound chain (jitter buffer -> decode -> resample -> VAD -> end of turn) and
//! the outbound chain (resample -> encode -> visemes), and TTS audio at a rate known only at
//! run time going through a [`RateConverter`].
//!
//! The Silero call (`SileroCall::speech_probability`: input copy, `Session::run` with
//! preallocated outputs, output read) is counted apart so a regression there is named
//! separately; it must be zero too. What no Rust allocator can see is ONNX Runtime's C++ side
//! (its own arena and `new`/`malloc` inside the runtime library): that is outside this count.

// A global allocator is the only way to observe every heap allocation, and implementing
// `GlobalAlloc` is `unsafe` by definition; the impl only forwards to `System` and bumps
// thread-local counters.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use media::viseme::AudioVisemeEstimator;
use media::{
    Frame24, JitterBuffer, JitterConfig, MAX_PACKET, MediaTime, OpusConfig, OpusDecoder,
    OpusEncoder, Playout, RateConverter, Resampler24To48, Resampler48To16, SileroCall, SpeechModel,
    TurnConfig, TurnDetector, Vad, VadConfig,
};

thread_local! {
    static COUNTED: Cell<u64> = const { Cell::new(0) };
    static IN_MODEL: Cell<u64> = const { Cell::new(0) };
    static MODEL_DEPTH: Cell<u32> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every method forwards to `System` unchanged; the counters are const-initialised
// thread-locals (touching them never allocates), so the allocator cannot recurse.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    let _ = MODEL_DEPTH.try_with(|d| {
        if d.get() > 0 {
            let _ = IN_MODEL.try_with(|c| c.set(c.get() + 1));
        } else {
            let _ = COUNTED.try_with(|c| c.set(c.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn counted() -> u64 {
    COUNTED.with(Cell::get)
}

fn in_model() -> u64 {
    IN_MODEL.with(Cell::get)
}

/// Silero with its `run` call (ONNX Runtime's code) counted apart from ours.
struct ModelCountedApart(SileroCall);

impl SpeechModel for ModelCountedApart {
    fn speech_probability(
        &mut self,
        window: &[f32; 576],
        state: &mut [f32; 256],
    ) -> media::Result<f32> {
        MODEL_DEPTH.with(|d| d.set(d.get() + 1));
        let p = self.0.speech_probability(window, state);
        MODEL_DEPTH.with(|d| d.set(d.get() - 1));
        p
    }
}

#[test]
fn tts_audio_at_any_rate_converts_without_allocating() {
    // Set-up (allowed to allocate): one second of 22,050 Hz audio, the converter.
    let bytes: Vec<u8> = (0..22_050i32)
        .flat_map(|i| (((i % 100) - 50) as i16 * 300).to_le_bytes())
        .collect();
    let mut converter = RateConverter::new(22_050, 48_000).expect("converter");
    let mut out = 0usize;
    let mut sink = |s: &[f32]| out += s.len();

    let before = counted();
    // Network-sized pieces that split samples, then the filter's tail.
    for piece in bytes.chunks(777) {
        converter.push_s16le(piece, &mut sink).expect("push");
    }
    converter.finish(&mut sink).expect("finish");
    let allocations = counted() - before;

    assert_eq!(out, 48_000, "one second in, one second out");
    assert_eq!(allocations, 0, "converting allocated {allocations} times");
}

#[test]
#[allow(clippy::print_stderr)] // the counts are reported for the record
fn a_running_call_allocates_nothing_per_frame() {
    // Set-up (allowed to allocate): a speech recording as Opus packets, and one call's chain.
    let (_, samples) = common::read_wav("hello.48k.wav");
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
    let mut jitter = JitterBuffer::new(JitterConfig::default()).expect("jitter");
    let mut decoder = OpusDecoder::new().expect("decoder");
    let mut down = Resampler48To16::new().expect("resampler");
    let mut vad = Vad::new(
        ModelCountedApart(common::silero_call()),
        VadConfig::default(),
    );
    let mut turns = TurnDetector::new(TurnConfig::default()).expect("turn config");
    let mut up = Resampler24To48::new().expect("resampler");
    let mut visemes = AudioVisemeEstimator::new();
    let start = Instant::now();

    let warm_up = 20;
    let mut before = (0, 0, 0);
    let mut packet_out = [0u8; MAX_PACKET];
    for (i, packet) in packets.iter().enumerate() {
        if i == warm_up {
            before = (counted(), in_model(), vad.stats().model_runs);
        }
        let now = start + Duration::from_millis(i as u64 * 20);
        // Inbound: one packet in, one frame through to the turn detector. Every third frame
        // goes missing so FEC and concealment are on the measured path too.
        if i % 3 != 1 {
            jitter
                .push(i as u16, i as u32 * 960, packet, now)
                .expect("push");
        }
        let frame = match jitter.pop() {
            Playout::Buffering => continue,
            Playout::Packet { payload, time } => decoder.decode(payload, time).expect("decode"),
            Playout::Recover { next_payload, time } => decoder.decode_fec(next_payload, time),
            Playout::Conceal { time } => decoder.conceal(time),
        };
        let frame16 = down.process(&frame).expect("resample");
        let p = vad.process(&frame16).expect("vad");
        let _event = turns.on_frame(p, frame16.time(), frame16.end_time());

        // Outbound: a 24 kHz TTS frame (here: the caller's audio decimated) to Opus + visemes.
        let mut tts = Frame24::silence(MediaTime::from_samples(i as u64 * 480, 24_000));
        for (o, s) in tts
            .samples_mut()
            .iter_mut()
            .zip(frame.samples().iter().step_by(2))
        {
            *o = *s;
        }
        let out48 = up.process(&tts).expect("resample");
        let len = encoder.encode(&out48, &mut packet_out).expect("encode");
        assert!(len > 0);
        let _viseme = visemes.process(&out48);
    }
    let frames_measured = (packets.len() - warm_up) as u64;
    let ours = counted() - before.0;
    let onnx = in_model() - before.1;
    let runs = vad.stats().model_runs - before.2;
    assert!(
        runs > 20,
        "the model really ran on the speech ({runs} windows)"
    );
    assert_eq!(
        ours, 0,
        "our code allocated {ours} times in {frames_measured} frames"
    );
    // The model call with its preallocated tensors (see the module docs).
    eprintln!(
        "{frames_measured} frames, {runs} model runs: {ours} allocations outside the model call, {onnx} inside"
    );
    assert_eq!(
        onnx, 0,
        "running the model allocated {onnx} times in {runs} runs"
    );
}
