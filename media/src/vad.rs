//! Voice activity detection: an energy gate in front of Silero VAD v5.
//!
//! The model ([`SileroModel`]) is loaded once per process and shared by every call: it is a
//! cheap handle around one ONNX session (ONNX Runtime's `run` needs exclusive access, so calls
//! take turns on a mutex for the ~0.1-0.2 ms a window costs). Everything that belongs to one
//! call lives in that call's [`Vad`] and [`SileroCall`]: the model's recurrent state, the
//! 64-sample context, the partly filled window, and preallocated input/output tensors (so a
//! model run allocates nothing on the Rust side; ONNX Runtime's C++ internals use their own
//! allocator, which a Rust allocator cannot see). The model runs on 512-sample windows (32 ms at 16 kHz) with
//! the previous window's last 64 samples prepended, exactly as the reference wrapper does.
//!
//! The energy gate skips the model for windows quieter than
//! [`VadConfig::energy_gate_dbfs`]: silence costs a sum of squares instead of an inference,
//! which is most of a call's time (the CPU budget is ~100 calls per core).

use crate::error::{MediaError, Result};
use crate::frame::{Frame16, rms, to_dbfs};

/// New samples per model window at 16 kHz.
pub const WINDOW: usize = 512;
/// Samples of the previous window prepended to each window.
pub const CONTEXT: usize = 64;
/// Size of the recurrent state tensor `[2, 1, 128]`.
pub const STATE_LEN: usize = 2 * 128;

/// Something that turns a 16 kHz window into a speech probability. [`SileroModel`] is the real
/// one; the trait lets callers share, batch or instrument it.
pub trait SpeechModel {
    /// Probability (0..1) that `window` (64 context + 512 new samples at 16 kHz) holds speech.
    /// `state` is the call's recurrent state, read and updated in place.
    fn speech_probability(
        &mut self,
        window: &[f32; CONTEXT + WINDOW],
        state: &mut [f32; STATE_LEN],
    ) -> Result<f32>;
}

/// VAD settings for one call.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Windows quieter than this (RMS, dBFS) are classified as silence without running the
    /// model. Default -50 dBFS: below any speech in the test recordings (speech is measured
    /// at > -45 dBFS), far above digital silence (-96). Set to -200 to run the model always.
    pub energy_gate_dbfs: f32,
    /// After this many gated windows in a row the model's recurrent state is cleared, as if a
    /// fresh stream started after the silence. Default 10 (320 ms).
    pub reset_state_after_gated_windows: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            energy_gate_dbfs: -50.0,
            reset_state_after_gated_windows: 10,
        }
    }
}

/// Counters for one call's VAD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VadStats {
    /// 512-sample windows completed.
    pub windows: u64,
    /// Windows the model actually ran on.
    pub model_runs: u64,
    /// Windows the energy gate classified as silence.
    pub gated: u64,
    /// NaN or infinite input samples, replaced by silence before they reached the model.
    pub non_finite_samples: u64,
}

/// One call's voice activity detector.
#[derive(Debug)]
pub struct Vad<M> {
    model: M,
    config: VadConfig,
    state: [f32; STATE_LEN],
    window: [f32; CONTEXT + WINDOW],
    filled: usize,
    probability: f32,
    gated_run: u32,
    stats: VadStats,
}

impl<M: SpeechModel> Vad<M> {
    /// A detector for a new call using `model` (typically a clone of a shared [`SileroModel`]).
    pub fn new(model: M, config: VadConfig) -> Self {
        Self {
            model,
            config,
            state: [0.0; STATE_LEN],
            window: [0.0; CONTEXT + WINDOW],
            filled: 0,
            probability: 0.0,
            gated_run: 0,
            stats: VadStats::default(),
        }
    }

    /// Counters so far.
    #[must_use]
    pub const fn stats(&self) -> VadStats {
        self.stats
    }

    /// The model, for callers that instrument it.
    pub const fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Feeds one 20 ms frame and returns the speech probability of the most recent complete
    /// window (a window completes every 32 ms, so some frames repeat the last value).
    pub fn process(&mut self, frame: &Frame16) -> Result<f32> {
        let mut rest: &[f32] = frame.samples();
        while !rest.is_empty() {
            let take = rest.len().min(WINDOW - self.filled);
            let start = CONTEXT + self.filled;
            for (w, s) in self.window[start..start + take]
                .iter_mut()
                .zip(&rest[..take])
            {
                // A NaN would poison the model's recurrent state for the rest of the call.
                *w = if s.is_finite() {
                    *s
                } else {
                    self.stats.non_finite_samples += 1;
                    0.0
                };
            }
            self.filled += take;
            rest = &rest[take..];
            if self.filled == WINDOW {
                self.run_window()?;
                self.filled = 0;
            }
        }
        Ok(self.probability)
    }

    fn run_window(&mut self) -> Result<()> {
        self.stats.windows += 1;
        let level = to_dbfs(rms(&self.window[CONTEXT..]));
        if level < self.config.energy_gate_dbfs {
            self.stats.gated += 1;
            self.probability = 0.0;
            self.gated_run = self.gated_run.saturating_add(1);
            if self.gated_run == self.config.reset_state_after_gated_windows {
                self.state = [0.0; STATE_LEN];
            }
        } else {
            self.gated_run = 0;
            self.stats.model_runs += 1;
            let p = self
                .model
                .speech_probability(&self.window, &mut self.state)?;
            self.probability = if p.is_finite() {
                p.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        // The last 64 samples become the next window's context.
        self.window.copy_within(WINDOW.., 0);
        Ok(())
    }
}

/// Silero VAD v5 on ONNX Runtime: one session shared by every call (clone the handle).
#[derive(Clone)]
pub struct SileroModel {
    session: std::sync::Arc<std::sync::Mutex<ort::session::Session>>,
}

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroModel").finish_non_exhaustive()
    }
}

fn onnx(what: &'static str) -> impl FnOnce(String) -> MediaError {
    move |detail| MediaError::Onnx { what, detail }
}

/// ONNX Runtime allows one environment per process and loads its library once, so the first
/// model load creates it and later loads (more models, tests) reuse it.
static ENVIRONMENT: std::sync::Mutex<Option<ort::environment::Environment>> =
    std::sync::Mutex::new(None);

fn environment(paths: &crate::deps::RuntimePaths) -> Result<ort::environment::Environment> {
    let mut slot = ENVIRONMENT.lock().map_err(|_| MediaError::VadPoisoned)?;
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let env = ort::init_from(&paths.onnx_runtime)
        .map_err(|e| onnx("load library")(e.to_string()))?
        .with_name("media-vad")
        .build()
        .map_err(|e| onnx("create environment")(e.to_string()))?;
    *slot = Some(env.clone());
    Ok(env)
}

impl SileroModel {
    /// Loads ONNX Runtime from `paths.onnx_runtime` and the model from `paths.model`.
    /// Fails with [`MediaError::MissingRuntimeFile`] (which says to run `scripts/bootstrap`)
    /// when either file is missing. Nothing is ever downloaded.
    pub fn load(paths: &crate::deps::RuntimePaths) -> Result<Self> {
        paths.check()?;
        let env = environment(paths)?;
        // One thread per run: the call's own thread does the work, and no thread pool spins
        // between windows (2 cores serve many calls).
        let session = ort::session::Session::builder(&env)
            .map_err(|e| onnx("session builder")(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| onnx("set intra threads")(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| onnx("set inter threads")(e.to_string()))?
            .commit_from_file(&paths.model)
            .map_err(|e| onnx("load model")(e.to_string()))?;
        Ok(Self {
            session: std::sync::Arc::new(std::sync::Mutex::new(session)),
        })
    }
}

impl SileroModel {
    /// The per-call half: this call's input, state and output tensors, allocated once here so
    /// that running the model allocates nothing on our side (ONNX Runtime reads the inputs
    /// and writes the outputs in place).
    pub fn for_call(&self) -> Result<SileroCall> {
        use ort::session::{OutputSelector, RunOptions};
        use ort::value::Tensor;
        let wrap = |e: ort::Error| onnx("allocate call tensors")(e.to_string());
        let input =
            Tensor::from_array(([1usize, CONTEXT + WINDOW], vec![0.0f32; CONTEXT + WINDOW]))
                .map_err(wrap)?;
        let state =
            Tensor::from_array(([2usize, 1, 128], vec![0.0f32; STATE_LEN])).map_err(wrap)?;
        let sample_rate = Tensor::from_array(((), vec![16_000i64])).map_err(wrap)?;
        let probability = Tensor::from_array(([1usize, 1], vec![0.0f32])).map_err(wrap)?;
        let new_state =
            Tensor::from_array(([2usize, 1, 128], vec![0.0f32; STATE_LEN])).map_err(wrap)?;
        let outputs = OutputSelector::default()
            .preallocate("output", probability)
            .preallocate("stateN", new_state);
        let options = RunOptions::new().map_err(wrap)?.with_outputs(outputs);
        Ok(SileroCall {
            session: self.session.clone(),
            input,
            state,
            sample_rate,
            options,
        })
    }
}

/// One call's use of the shared [`SileroModel`]: its own preallocated tensors.
pub struct SileroCall {
    session: std::sync::Arc<std::sync::Mutex<ort::session::Session>>,
    input: ort::value::Tensor<f32>,
    state: ort::value::Tensor<f32>,
    sample_rate: ort::value::Tensor<i64>,
    options: ort::session::RunOptions<ort::session::HasSelectedOutputs>,
}

impl std::fmt::Debug for SileroCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroCall").finish_non_exhaustive()
    }
}

impl SpeechModel for SileroCall {
    fn speech_probability(
        &mut self,
        window: &[f32; CONTEXT + WINDOW],
        state: &mut [f32; STATE_LEN],
    ) -> Result<f32> {
        self.input.extract_tensor_mut().1.copy_from_slice(window);
        self.state.extract_tensor_mut().1.copy_from_slice(state);
        let mut session = self.session.lock().map_err(|_| MediaError::VadPoisoned)?;
        let outputs = session
            .run_with_options(
                ort::inputs![&self.input, &self.state, &self.sample_rate],
                &self.options,
            )
            .map_err(|e| onnx("run")(e.to_string()))?;
        let (_, prob) = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(|e| onnx("read output")(e.to_string()))?;
        let (_, new_state) = outputs["stateN"]
            .try_extract_tensor::<f32>()
            .map_err(|e| onnx("read state")(e.to_string()))?;
        if new_state.len() != STATE_LEN || prob.is_empty() {
            return Err(MediaError::Onnx {
                what: "read output",
                detail: "unexpected output shape".into(),
            });
        }
        state.copy_from_slice(new_state);
        Ok(prob[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MediaTime;

    /// A stand-in model that records what it was given, to test the windowing around it.
    struct Recorder {
        runs: usize,
        last_window: [f32; CONTEXT + WINDOW],
    }

    impl SpeechModel for Recorder {
        fn speech_probability(
            &mut self,
            window: &[f32; CONTEXT + WINDOW],
            state: &mut [f32; STATE_LEN],
        ) -> Result<f32> {
            self.runs += 1;
            self.last_window = *window;
            state[0] += 1.0;
            Ok(if window.iter().all(|s| s.is_finite()) {
                0.9
            } else {
                f32::NAN
            })
        }
    }

    fn loud(i: usize) -> Frame16 {
        let mut f = Frame16::silence(MediaTime::from_samples(i as u64 * 320, 16_000));
        for (k, s) in f.samples_mut().iter_mut().enumerate() {
            *s = ((i * 320 + k) as f32 * 0.01).sin() * 0.5;
        }
        f
    }

    #[test]
    fn windows_of_512_carry_64_samples_of_context() {
        let mut vad = Vad::new(
            Recorder {
                runs: 0,
                last_window: [0.0; CONTEXT + WINDOW],
            },
            VadConfig::default(),
        );
        let frames: Vec<_> = (0..8).map(loud).collect();
        for f in &frames {
            let _ = vad.process(f).expect("runs");
        }
        // 8 frames = 2560 samples = 5 windows; the 5th covers samples 2048..2560.
        assert_eq!(vad.model_mut().runs, 5);
        let all: Vec<f32> = frames
            .iter()
            .flat_map(|f| f.samples().iter().copied())
            .collect();
        assert_eq!(&vad.model_mut().last_window[..], &all[2048 - CONTEXT..2560]);
    }

    #[test]
    fn silence_skips_the_model_and_nan_never_reaches_it() {
        let mut vad = Vad::new(
            Recorder {
                runs: 0,
                last_window: [0.0; CONTEXT + WINDOW],
            },
            VadConfig::default(),
        );
        for i in 0..16 {
            assert_eq!(
                vad.process(&Frame16::silence(MediaTime::from_samples(i * 320, 16_000)))
                    .expect("ok"),
                0.0
            );
        }
        assert_eq!((vad.stats().model_runs, vad.stats().gated), (0, 10));
        let mut bad = loud(0);
        bad.samples_mut()[3] = f32::NAN;
        for _ in 0..2 {
            let p = vad.process(&bad).expect("ok");
            assert!(p.is_finite());
        }
        assert_eq!(vad.stats().non_finite_samples, 2);
        assert!(vad.model_mut().last_window.iter().all(|s| s.is_finite()));
    }
}
