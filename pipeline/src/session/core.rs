//! The session's sans-IO core: turn-taking, barge-in, conversation memory, chunking, playout
//! and latency records. It is fed input frames, provider events and `now`; it answers with
//! [`Action`]s for the async shell (open or cancel a provider stream, send audio to STT, put
//! something on the output channel) and with the instant it next wants to run
//! ([`SessionCore::poll_timeout`]). No clock, socket or runtime inside.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::viseme::{AudioVisemeEstimator, Viseme};
use media::{
    Frame16, Frame48, MediaTime, RateConverter, Resampler48To16, SpeechModel, TurnDetector,
    TurnEvent, Vad,
};
use protocol::ServerEvent;
use protocol::voice::{
    AudioEdge, Interrupted, ResponseStarted, SpeechEdge, TextDelta, Transcript, TurnMetrics,
};

use super::config::SessionConfig;
use super::heard::Spoken;
use super::playout::Playout;
use super::visemes;
use super::{OUT_RATE, SessionOutput};
use crate::PipelineError;
use crate::chunker::SentenceChunker;
use crate::latency::{LatencyMetrics, Mark, TurnLatency};
use crate::provider::{ChatMessage, LlmEvent, LlmRequest, Role, SttEvent, TtsChunk, TtsRequest};

/// What the shell must do for the core.
#[derive(Debug)]
#[non_exhaustive]
// Audio frames travel by value (see `SessionOutput`).
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Open a speech-to-text stream; [`Action::SttAudio`] items follow.
    SttStart,
    /// 16 kHz s16le audio for the open STT stream.
    SttAudio(Bytes),
    /// The utterance is over: end the STT audio stream (keep reading its events).
    SttEnd,
    /// Drop the STT stream.
    SttCancel,
    /// Start a language-model answer (replacing any running one).
    LlmStart(LlmRequest),
    /// Drop the language-model stream.
    LlmCancel,
    /// Synthesise one chunk (the previous TTS stream has ended or was cancelled).
    TtsStart(TtsRequest),
    /// Drop the TTS stream.
    TtsCancel,
    /// Hand this to the transport.
    Output(SessionOutput),
}

/// The user's turn while it is heard and transcribed.
#[derive(Debug)]
struct UserTurn {
    id: u64,
    speech_start: Instant,
    latency: TurnLatency,
    /// Audio is still streaming to STT.
    listening: bool,
}

/// The companion's answer to one turn.
#[derive(Debug)]
struct Reply {
    id: u64,
    speech_start: Instant,
    latency: TurnLatency,
    text: String,
    chunker: SentenceChunker,
    /// Byte ranges of chunks waiting for TTS.
    pending: VecDeque<(usize, usize)>,
    search_from: usize,
    llm_done: bool,
    tts_busy: bool,
    resampler: Option<RateConverter>,
    /// Where the current segment starts in the reply's 48 kHz audio, and how many input
    /// samples (at `resampler.input_rate()`) it has so far.
    segment_start: u64,
    segment_samples: u64,
    spoken: Spoken,
    playout: Playout,
    /// Timed visemes waiting for their frame: (sample in the reply, viseme).
    visemes: VecDeque<(u64, Viseme)>,
    timed_visemes: bool,
    audio_started: bool,
}

impl Reply {
    fn segment_end(&self) -> u64 {
        let rate = self
            .resampler
            .as_ref()
            .map_or(OUT_RATE, RateConverter::input_rate);
        self.segment_start + self.segment_samples * u64::from(OUT_RATE) / u64::from(rate)
    }
}

/// One call's pipeline state.
pub struct SessionCore<M> {
    config: SessionConfig,
    vad: Vad<M>,
    turns: TurnDetector,
    down: Resampler48To16,
    frame16: Frame16,
    pcm16: [i16; 320],
    preroll: VecDeque<i16>,
    preroll_cap: usize,
    stt_bytes: BytesMut,
    started: Instant,
    last_now: Instant,
    last_end: MediaTime,
    turn_id: u64,
    user: Option<UserTurn>,
    reply: Option<Reply>,
    history: VecDeque<ChatMessage>,
    out_floor: MediaTime,
    estimator: AudioVisemeEstimator,
    metrics: Option<LatencyMetrics>,
    actions: VecDeque<Action>,
}

impl<M> std::fmt::Debug for SessionCore<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCore")
            .field("turn_id", &self.turn_id)
            .field("user", &self.user.as_ref().map(|u| u.id))
            .field("reply", &self.reply.as_ref().map(|r| r.id))
            .finish_non_exhaustive()
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(media_err)`
fn media_err(e: media::MediaError) -> PipelineError {
    PipelineError::Config {
        key: "session".into(),
        message: e.to_string(),
    }
}

fn us(t: MediaTime) -> u64 {
    u64::try_from(t.as_duration().as_micros()).unwrap_or(u64::MAX)
}

fn ms_after(from: Instant, at: Option<Instant>) -> Option<u32> {
    at.map(|t| u32::try_from(t.saturating_duration_since(from).as_millis()).unwrap_or(u32::MAX))
}

impl<M: SpeechModel> SessionCore<M> {
    /// A session that starts at `now`, listening with `model` (a per-call Silero handle).
    pub fn new(
        config: SessionConfig,
        model: M,
        metrics: Option<LatencyMetrics>,
        now: Instant,
    ) -> Result<Self, PipelineError> {
        let turns = TurnDetector::new(config.turn.clone()).map_err(media_err)?;
        let down = Resampler48To16::new().map_err(media_err)?;
        let preroll_cap = (config.turn.pre_roll_ms as usize + 100) * 16;
        Ok(Self {
            vad: Vad::new(model, config.vad.clone()),
            turns,
            down,
            frame16: Frame16::silence(MediaTime::ZERO),
            pcm16: [0; 320],
            preroll: VecDeque::with_capacity(preroll_cap),
            preroll_cap,
            stt_bytes: BytesMut::with_capacity(64 * 1024),
            started: now,
            last_now: now,
            last_end: MediaTime::ZERO,
            turn_id: 0,
            user: None,
            reply: None,
            history: VecDeque::new(),
            out_floor: MediaTime::ZERO,
            estimator: AudioVisemeEstimator::new(),
            metrics,
            actions: VecDeque::new(),
            config,
        })
    }

    /// The conversation so far: the persona prompt, then user and assistant messages (an
    /// interrupted answer is stored as the part the caller heard).
    pub fn history(&self) -> Vec<ChatMessage> {
        std::iter::once(ChatMessage::new(Role::System, self.config.persona.clone()))
            .chain(self.history.iter().cloned())
            .collect()
    }

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] must run next (the next output frame's slot); `None`
    /// while nothing is playing, so a silent call never wakes up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.reply.as_ref().and_then(|r| r.playout.next_due())
    }

    /// Whether the shell should read more TTS audio now (false while enough is queued).
    pub fn wants_tts_audio(&self) -> bool {
        let cap = self.config.max_buffered_audio_ms as usize * (OUT_RATE as usize / 1000);
        self.reply.as_ref().is_none_or(|r| r.playout.queued() < cap)
    }

    fn out(&mut self, o: SessionOutput) {
        self.actions.push_back(Action::Output(o));
    }

    fn event(&mut self, e: ServerEvent) {
        self.out(SessionOutput::Event(e));
    }

    /// The session's media time at `now`.
    fn clock(&self, now: Instant) -> MediaTime {
        MediaTime::ZERO.plus(now.saturating_duration_since(self.started))
    }

    /// The wall time at which input media time `t` was heard (input arrives in real time).
    fn instant_of(&self, t: MediaTime) -> Instant {
        let back = Duration::from_nanos(
            self.last_end.0.saturating_sub(t.0) * 1_000_000_000 / u64::from(OUT_RATE),
        );
        self.last_now.checked_sub(back).unwrap_or(self.last_now)
    }

    /// Feeds one inbound 20 ms 48 kHz frame (decoded by the transport), stamped on the input
    /// media clock.
    pub fn handle_audio(&mut self, frame: &Frame48, now: Instant) {
        if let Err(error) = self.down.process_into(frame, &mut self.frame16) {
            tracing::warn!(%error, "inbound resampling failed; frame skipped");
            return;
        }
        self.last_now = now;
        self.last_end = self.frame16.end_time();
        self.frame16.write_i16(&mut self.pcm16);
        let overflow = (self.preroll.len() + 320).saturating_sub(self.preroll_cap);
        self.preroll.drain(..overflow.min(self.preroll.len()));
        self.preroll.extend(self.pcm16.iter().copied());
        if self.user.as_ref().is_some_and(|u| u.listening) {
            self.send_stt_audio(320);
        }
        let p = match self.vad.process(&self.frame16) {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "VAD failed; frame counted as silence");
                0.0
            }
        };
        let (start, end) = (self.frame16.time(), self.frame16.end_time());
        match self.turns.on_frame(p, start, end) {
            Some(TurnEvent::SpeechStart { at, audio_from }) => self.speech_start(at, audio_from),
            Some(TurnEvent::TurnEnd { end, .. }) => self.turn_end(end, now),
            _ => {}
        }
        self.release(now);
    }

    /// The last `n` samples of the pre-roll buffer to STT.
    fn send_stt_audio(&mut self, n: usize) {
        let n = n.min(self.preroll.len());
        // One reserved buffer split per item: no allocation per frame once it has warmed up
        // (split-off parts are reclaimed when STT drops them).
        self.stt_bytes.reserve(n * 2);
        for s in self.preroll.range(self.preroll.len() - n..) {
            self.stt_bytes.extend_from_slice(&s.to_le_bytes());
        }
        let audio = self.stt_bytes.split().freeze();
        self.actions.push_back(Action::SttAudio(audio));
    }

    fn speech_start(&mut self, at: MediaTime, audio_from: MediaTime) {
        let now = self.last_now;
        if self.reply.is_some() {
            self.barge_in(now);
        }
        if self.user.take().is_some() {
            // A new utterance replaces one still being transcribed.
            self.actions.push_back(Action::SttCancel);
        }
        self.turn_id += 1;
        let speech_start = self.instant_of(at);
        self.user = Some(UserTurn {
            id: self.turn_id,
            speech_start,
            latency: TurnLatency::new(),
            listening: true,
        });
        self.event(ServerEvent::SpeechStarted(SpeechEdge {
            turn_id: self.turn_id,
            media_time_us: us(at),
        }));
        self.actions.push_back(Action::SttStart);
        let back = self.last_end.0.saturating_sub(audio_from.0) / 3;
        self.send_stt_audio(usize::try_from(back).unwrap_or(usize::MAX));
    }

    fn turn_end(&mut self, end: MediaTime, now: Instant) {
        let speech_end = self.instant_of(end);
        let Some(user) = self.user.as_mut().filter(|u| u.listening) else {
            return;
        };
        user.listening = false;
        user.latency.mark(Mark::SpeechEnd, speech_end);
        user.latency.mark(Mark::EndOfTurn, now);
        let id = user.id;
        self.event(ServerEvent::SpeechStopped(SpeechEdge {
            turn_id: id,
            media_time_us: us(end),
        }));
        self.actions.push_back(Action::SttEnd);
    }

    /// An item of the STT stream.
    pub fn handle_stt(&mut self, event: Result<SttEvent, PipelineError>, now: Instant) {
        let Some(id) = self.user.as_ref().map(|u| u.id) else {
            return;
        };
        match event {
            Ok(SttEvent::Partial(text)) => {
                self.event(ServerEvent::TranscriptPartial(Transcript {
                    turn_id: id,
                    text,
                }));
            }
            Ok(SttEvent::Final(text)) => {
                if self.user.as_ref().is_some_and(|u| u.listening) {
                    // A final for part of the utterance while the caller still talks; the
                    // one that counts comes after the audio ends.
                    return;
                }
                let Some(mut user) = self.user.take() else {
                    return;
                };
                self.actions.push_back(Action::SttCancel);
                user.latency.mark(Mark::SttFinal, now);
                let text = text.trim().to_owned();
                self.event(ServerEvent::TranscriptFinal(Transcript {
                    turn_id: id,
                    text: text.clone(),
                }));
                if text.is_empty() {
                    return;
                }
                self.start_reply(user, text);
            }
            Err(error) => {
                tracing::warn!(%error, turn = id, "speech recognition failed; turn dropped");
                self.user = None;
                self.actions.push_back(Action::SttCancel);
            }
        }
    }

    /// The STT stream ended without a final transcript.
    pub fn handle_stt_end(&mut self) {
        if self.user.as_ref().is_some_and(|u| !u.listening) {
            tracing::warn!("speech recognition ended without a transcript; turn dropped");
            self.user = None;
        }
    }

    fn remember(&mut self, message: ChatMessage) {
        self.history.push_back(message);
        while self.history.len() > self.config.max_history_messages {
            self.history.pop_front();
        }
    }

    fn start_reply(&mut self, user: UserTurn, text: String) {
        self.remember(ChatMessage::new(Role::User, text));
        let request = LlmRequest::new(self.history());
        self.actions.push_back(Action::LlmStart(request));
        self.event(ServerEvent::ResponseStarted(ResponseStarted {
            turn_id: user.id,
            message_id: format!("turn-{}", user.id),
        }));
        self.reply = Some(Reply {
            id: user.id,
            speech_start: user.speech_start,
            latency: user.latency,
            text: String::new(),
            chunker: SentenceChunker::default(),
            pending: VecDeque::new(),
            search_from: 0,
            llm_done: false,
            tts_busy: false,
            resampler: None,
            segment_start: 0,
            segment_samples: 0,
            spoken: Spoken::default(),
            // One second to start with; it grows up to `max_buffered_audio_ms` on long answers.
            playout: Playout::new(48_000, self.out_floor),
            visemes: VecDeque::new(),
            timed_visemes: false,
            audio_started: false,
        });
    }

    /// An item of the language-model stream.
    pub fn handle_llm(&mut self, event: Result<LlmEvent, PipelineError>, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        match event {
            Ok(LlmEvent::Token(token)) => {
                reply.latency.mark(Mark::LlmFirstToken, now);
                reply.text.push_str(&token);
                reply.chunker.push(&token);
                let id = reply.id;
                self.take_chunks();
                self.event(ServerEvent::TextDelta(TextDelta {
                    turn_id: id,
                    delta: token,
                }));
            }
            Ok(LlmEvent::Finished { .. }) => self.llm_done(),
            Err(error) => {
                tracing::warn!(%error, "language model failed; speaking what arrived");
                self.llm_done();
            }
        }
        self.next_tts(now);
    }

    /// The language-model stream ended (after `Finished`, or cut without it).
    pub fn handle_llm_end(&mut self, now: Instant) {
        if self.reply.as_ref().is_some_and(|r| !r.llm_done) {
            self.llm_done();
            self.next_tts(now);
        }
    }

    fn llm_done(&mut self) {
        if let Some(reply) = self.reply.as_mut() {
            reply.llm_done = true;
            while let Some(chunk) = reply.chunker.finish() {
                queue_chunk(reply, &chunk);
            }
        }
    }

    fn take_chunks(&mut self) {
        if let Some(reply) = self.reply.as_mut() {
            while let Some(chunk) = reply.chunker.pop() {
                queue_chunk(reply, &chunk);
            }
        }
    }

    /// Starts TTS for the next chunk if none is running; ends the reply's audio when all
    /// is said.
    fn next_tts(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.tts_busy {
            return;
        }
        if let Some((start, end)) = reply.pending.pop_front() {
            reply.latency.mark(Mark::FirstSentence, now);
            reply.segment_start = reply.segment_end();
            reply.segment_samples = 0;
            reply.spoken.begin(start, end, reply.segment_start);
            reply.tts_busy = true;
            let request = TtsRequest::new(&reply.text[start..end]);
            self.actions.push_back(Action::TtsStart(request));
        } else if reply.llm_done {
            if let Some(mut r) = reply.resampler.take() {
                let playout = &mut reply.playout;
                if let Err(error) = r.finish(&mut |s| playout.push(s)) {
                    tracing::warn!(%error, "flushing TTS audio failed");
                }
            }
            reply.playout.finish();
            self.release(now);
        }
    }

    /// A piece of synthesised audio for the current chunk.
    pub fn handle_tts(&mut self, chunk: &TtsChunk, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if !reply.tts_busy {
            return;
        }
        reply.latency.mark(Mark::TtsFirstAudio, now);
        if reply.resampler.as_ref().map(RateConverter::input_rate) != Some(chunk.sample_rate) {
            let so_far = reply.segment_end();
            if let Some(mut old) = reply.resampler.take() {
                let playout = &mut reply.playout;
                let _ = old.finish(&mut |s| playout.push(s));
            }
            // The segment so far was counted at the old rate; restart its count here.
            reply.segment_start = so_far;
            reply.segment_samples = 0;
            match RateConverter::new(chunk.sample_rate, OUT_RATE) {
                Ok(r) => reply.resampler = Some(r),
                Err(error) => {
                    tracing::warn!(%error, "TTS audio dropped");
                    return;
                }
            }
        }
        let base = reply.segment_start;
        reply.spoken.timings(&reply.text, &chunk.timings);
        if self.config.visemes {
            for t in &chunk.timings {
                if let Some(v) = visemes::from_timing(t) {
                    reply.timed_visemes = true;
                    let at = base + (t.start.as_nanos() * 48 / 1_000_000) as u64;
                    reply.visemes.push_back((at, v));
                }
            }
        }
        if let Some(r) = reply.resampler.as_mut() {
            let playout = &mut reply.playout;
            if let Err(error) = r.push_s16le(&chunk.pcm, &mut |s| playout.push(s)) {
                tracing::warn!(%error, "TTS audio dropped");
            }
        }
        reply.segment_samples += chunk.sample_count() as u64;
        self.release(now);
    }

    /// The current chunk's TTS stream ended (completely, or with an error already logged).
    pub fn handle_tts_end(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if !reply.tts_busy {
            return;
        }
        reply.tts_busy = false;
        let end = reply.segment_end();
        reply.spoken.end(end);
        reply.segment_start = end;
        reply.segment_samples = 0;
        self.next_tts(now);
    }

    /// Time passed: releases output frames whose slot has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release(now);
    }

    fn release(&mut self, now: Instant) {
        let clock = self.clock(now);
        loop {
            let Some(reply) = self.reply.as_mut() else {
                return;
            };
            let played_before = reply.playout.played();
            let Some(frame) = reply.playout.pop_due(now, clock) else {
                break;
            };
            let id = reply.id;
            if !reply.audio_started {
                reply.audio_started = true;
                reply.latency.mark(Mark::FirstAudioOut, now);
                let (speech_start, latency) = (reply.speech_start, reply.latency.clone());
                self.event(ServerEvent::AudioStarted(AudioEdge {
                    turn_id: id,
                    media_time_us: us(frame.time()),
                }));
                // Every mark is in once the first frame is out: report the turn now rather
                // than after a long answer (or its interruption).
                self.metrics_for(id, speech_start, &latency);
            }
            self.visemes_for(&frame, played_before);
            self.out(SessionOutput::Audio(frame));
        }
        if self.reply.as_ref().is_some_and(|r| r.playout.done()) {
            self.finish_reply();
        }
    }

    fn visemes_for(&mut self, frame: &Frame48, played_before: u64) {
        if !self.config.visemes {
            return;
        }
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let frame_end = played_before + 960;
        if reply.timed_visemes {
            let mut last = None;
            while let Some(&(at, v)) = reply.visemes.front() {
                if at >= frame_end {
                    break;
                }
                reply.visemes.pop_front();
                if last == Some(v) {
                    continue;
                }
                last = Some(v);
                let t = MediaTime(frame.time().0 + at.saturating_sub(played_before));
                self.actions
                    .push_back(Action::Output(SessionOutput::Viseme(visemes::frame(
                        v,
                        us(t),
                    ))));
            }
        } else {
            let v = visemes::from_audio(&self.estimator.process(frame));
            self.out(SessionOutput::Viseme(visemes::frame(v, us(frame.time()))));
        }
    }

    fn finish_reply(&mut self) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let end = reply.playout.position();
        self.out_floor = end;
        if reply.audio_started {
            self.event(ServerEvent::AudioEnded(AudioEdge {
                turn_id: reply.id,
                media_time_us: us(end),
            }));
        }
        let text = reply.text.trim();
        if !text.is_empty() {
            self.remember(ChatMessage::new(Role::Assistant, text));
        }
        if !reply.audio_started {
            self.metrics_for(reply.id, reply.speech_start, &reply.latency);
        }
    }

    /// The caller asked the companion to stop (the client's `interrupt` control): the
    /// reply being produced or played ends exactly as if the caller had talked over it
    /// (audio stops, LLM and TTS are cancelled, `interrupted` reports the heard text, and
    /// the conversation keeps only that). A user turn still being heard or transcribed is
    /// left alone: it is the caller's, not the answer. Returns whether a reply was cut.
    pub fn interrupt(&mut self, now: Instant) -> bool {
        let cut = self.reply.is_some();
        self.barge_in(now);
        cut
    }

    /// The caller started talking over the reply (or sent `interrupt`): stop audio now,
    /// cancel the providers, and remember only what was heard.
    fn barge_in(&mut self, now: Instant) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let _ = now;
        self.actions.push_back(Action::LlmCancel);
        self.actions.push_back(Action::TtsCancel);
        let heard = reply
            .spoken
            .heard(&reply.text, reply.playout.played())
            .to_owned();
        let at = reply.playout.position();
        self.out_floor = at;
        self.event(ServerEvent::Interrupted(Interrupted {
            turn_id: reply.id,
            heard_text: heard.clone(),
            media_time_us: us(at),
        }));
        if !heard.is_empty() {
            self.remember(ChatMessage::new(Role::Assistant, heard));
        }
        if !reply.audio_started {
            self.metrics_for(reply.id, reply.speech_start, &reply.latency);
        }
    }

    fn metrics_for(&mut self, id: u64, speech_start: Instant, t: &TurnLatency) {
        if let Some(m) = &self.metrics {
            m.observe(t);
        }
        let at = |m| ms_after(speech_start, t.at(m));
        let latency = protocol::voice::TurnLatency {
            speech_end_ms: at(Mark::SpeechEnd),
            end_of_turn_ms: at(Mark::EndOfTurn),
            stt_final_ms: at(Mark::SttFinal),
            llm_first_token_ms: at(Mark::LlmFirstToken),
            first_sentence_ms: at(Mark::FirstSentence),
            tts_first_audio_ms: at(Mark::TtsFirstAudio),
            first_audio_out_ms: at(Mark::FirstAudioOut),
        };
        self.event(ServerEvent::TurnMetrics(TurnMetrics {
            turn_id: id,
            latency,
        }));
    }
}

/// Finds a chunk (trimmed by the chunker) in the reply text and queues its byte range.
fn queue_chunk(reply: &mut Reply, chunk: &str) {
    let from = reply.search_from.min(reply.text.len());
    let start = reply.text[from..].find(chunk).map_or(from, |i| from + i);
    let end = (start + chunk.len()).min(reply.text.len());
    reply.search_from = end;
    if end > start {
        reply.pending.push_back((start, end));
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
