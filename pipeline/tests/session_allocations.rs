//! Once the companion is answering, a call allocates nothing per 20 ms: a counting global
//! allocator watches the session core take an inbound frame (resample, VAD, end of turn,
//! pre-roll) and release an outbound audio frame with its viseme.
//!
//! The VAD model is a stand-in (the Silero call is covered by media's own allocation test),
//! and the provider streams are not involved: their network buffers belong to the clients.

// A global allocator is the only way to observe every heap allocation, and implementing
// `GlobalAlloc` is `unsafe` by definition; the impl only forwards to `System` and bumps a
// thread-local counter.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::vad::{CONTEXT, STATE_LEN, WINDOW};
use media::{Frame48, MediaTime, SpeechModel};
use pipeline::session::{Action, SessionConfig, SessionCore, SessionOutput};
use pipeline::{LlmEvent, SttEvent, TtsChunk};

thread_local! {
    static COUNTED: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every method forwards to `System` unchanged; the counter is a const-initialised
// thread-local (touching it never allocates), so the allocator cannot recurse.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNTED.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        COUNTED.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNTED.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Anything louder than a whisper is speech.
struct Loudness;

impl SpeechModel for Loudness {
    fn speech_probability(
        &mut self,
        window: &[f32; CONTEXT + WINDOW],
        _state: &mut [f32; STATE_LEN],
    ) -> media::Result<f32> {
        Ok(if media::frame::rms(&window[CONTEXT..]) > 0.05 {
            0.95
        } else {
            0.0
        })
    }
}

#[test]
fn a_call_that_is_answering_allocates_nothing_per_frame() {
    let t0 = Instant::now();
    let mut core = SessionCore::new(SessionConfig::default(), Loudness, None, t0).unwrap();
    let mut n = 0u64;
    let outputs = Cell::new(0usize);
    let mut step = |core: &mut SessionCore<Loudness>, loud: bool| {
        let mut f = Frame48::silence(MediaTime(n * 960));
        if loud {
            for (i, s) in f.samples_mut().iter_mut().enumerate() {
                *s = 0.3 * (i as f32 * 0.06).sin();
            }
        }
        n += 1;
        let now = t0 + Duration::from_millis(20 * n);
        core.handle_audio(&f, now);
        core.handle_timeout(now);
        while let Some(a) = core.poll_action() {
            if matches!(a, Action::Output(SessionOutput::Audio(_))) {
                outputs.set(outputs.get() + 1);
            }
        }
        now
    };
    // The caller asks something; the answer's audio (3 s) arrives.
    for _ in 0..30 {
        step(&mut core, true);
    }
    let mut now = t0;
    for _ in 0..40 {
        now = step(&mut core, false);
    }
    core.handle_stt(Ok(SttEvent::Final("tell me a story".into())), now);
    core.handle_llm(Ok(LlmEvent::Token("Once upon a time.".into())), now);
    core.handle_llm_end(now);
    let pcm: Vec<u8> = (0..72_000)
        .flat_map(|i| (((i as f32 * 0.1).sin() * 8_000.0) as i16).to_le_bytes())
        .collect();
    let chunk = TtsChunk {
        pcm: Bytes::from(pcm),
        sample_rate: 24_000,
        timings: Vec::new(),
    };
    core.handle_tts(&chunk, now);
    core.handle_tts_end(now);
    // Warm up, then count 50 frames (one second) of steady playout.
    for _ in 0..10 {
        step(&mut core, false);
    }
    let before = COUNTED.with(Cell::get);
    let played_before = outputs.get();
    for _ in 0..50 {
        step(&mut core, false);
    }
    let allocations = COUNTED.with(Cell::get) - before;
    assert_eq!(
        outputs.get() - played_before,
        50,
        "one audio frame out per frame in"
    );
    assert_eq!(allocations, 0, "allocations in 50 frames of a playing call");
}
