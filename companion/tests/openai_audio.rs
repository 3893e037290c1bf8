//! An OpenAI client speaks and listens through the product: `/v1/audio/speech` streams the TTS
//! chain's audio as 24 kHz WAV or PCM, `/v1/audio/transcriptions` runs an uploaded WAV through
//! the STT chain; both spend voice seconds, and malformed or hostile uploads are typed errors.

mod openai_support;

use openai_support::{HELLO_WAV, Options, Stack, expect_error};
use pipeline::mock::SECONDS_PER_CHAR;
use serde_json::{Value, json};

const SENTENCE: &str = "Hello there, how are you today?";

/// A multipart/form-data body, built by hand as clients send it.
#[derive(Default)]
struct Form {
    body: Vec<u8>,
}

const BOUNDARY: &str = "----openai-test-boundary-7MA4YWxk";

impl Form {
    fn new() -> Self {
        Self::default()
    }

    fn text(mut self, name: &str, value: &str) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
        self
    }

    fn part(mut self, name: &str, file: &[u8]) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"hello.wav\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(file);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body
    }
}

async fn transcribe(stack: &Stack, token: &str, form: Form) -> reqwest::Response {
    stack
        .http
        .post(format!("{}/v1/audio/transcriptions", stack.gateway))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form.finish())
        .send()
        .await
        .expect("POST /v1/audio/transcriptions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_streams_24k_wav_and_pcm_and_spends_the_seconds_spoken() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("speaker").await;
    let expected_secs = SENTENCE.chars().count() as f64 * SECONDS_PER_CHAR;

    let request =
        json!({"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": "wav"});
    let response = stack.post_json(&token, "audio/speech", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    let wav = response.bytes().await.unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    let secs = (wav.len() - 44) as f64 / 48_000.0;
    assert!(
        (secs - expected_secs).abs() < 0.1,
        "{secs} s of audio, expected {expected_secs}"
    );
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(
        samples.iter().any(|&s| s.unsigned_abs() > 1000),
        "audible, not silence"
    );

    let mut pcm_request = request.clone();
    pcm_request["response_format"] = json!("pcm");
    let pcm = stack.post_json(&token, "audio/speech", &pcm_request).await;
    assert_eq!(pcm.status(), 200);
    let pcm = pcm.bytes().await.unwrap();
    assert_eq!(
        pcm.len(),
        wav.len() - 44,
        "the same samples without the header"
    );

    let spent = stack.settled_usage(&token, "voice_seconds").await;
    assert_eq!(
        spent,
        2 * expected_secs.ceil() as u64,
        "whole seconds per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_refuses_what_it_cannot_do_with_a_400_naming_the_field() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("picky").await;
    for (patch, param) in [
        (json!({"response_format": "mp3"}), "response_format"),
        (json!({"response_format": "opus"}), "response_format"),
        (json!({"speed": 2.0}), "speed"),
        (json!({"input": ""}), "input"),
        (json!({"input": "x".repeat(5000)}), "input"),
    ] {
        let mut request = json!({"model": "tts-1", "input": SENTENCE, "voice": "alloy"});
        for (k, v) in patch.as_object().unwrap() {
            request[k] = v.clone();
        }
        let response = stack.post_json(&token, "audio/speech", &request).await;
        assert_eq!(response.status(), 400, "{patch}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    let no_key = stack
        .http
        .post(format!("{}/v1/audio/speech", stack.gateway))
        .json(&json!({"model": "tts-1", "input": SENTENCE, "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    expect_error(no_key, 401, "invalid_api_key").await;
    assert_eq!(stack.usage(&token, "voice_seconds").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_upload_is_transcribed_in_every_response_format() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("listener").await;
    let heard = "what is the weather like today"; // the mock recogniser's answer

    let form = Form::new()
        .text("model", "whisper-1")
        .part("file", HELLO_WAV);
    let response = transcribe(&stack, &token, form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"text": heard}));

    let form = Form::new()
        .text("model", "whisper-1")
        .text("language", "en")
        .text("response_format", "verbose_json")
        .part("file", HELLO_WAV);
    let body: Value = transcribe(&stack, &token, form).await.json().await.unwrap();
    assert_eq!(body["text"], heard);
    assert_eq!(body["language"], "en");
    let duration = body["duration"].as_f64().unwrap();
    assert!((duration - 2.81).abs() < 0.01, "{duration}");

    let form = Form::new()
        .text("model", "whisper-1")
        .text("response_format", "text")
        .part("file", HELLO_WAV);
    let text = transcribe(&stack, &token, form).await.text().await.unwrap();
    assert_eq!(text.trim(), heard);

    assert_eq!(
        stack.settled_usage(&token, "voice_seconds").await,
        3 * 3,
        "2.81 s is 3 s, thrice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_are_typed_errors_and_spend_nothing() {
    let stack = Stack::start(Options {
        max_audio_bytes: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    let token = stack.signup("hostile").await;

    let no_file = Form::new().text("model", "whisper-1");
    let error = expect_error(
        transcribe(&stack, &token, no_file).await,
        400,
        "invalid_value",
    )
    .await;
    assert_eq!(error["param"], "file");

    let mp3 = Form::new()
        .text("model", "whisper-1")
        .part("file", b"ID3\x04\x00 not a wav");
    expect_error(
        transcribe(&stack, &token, mp3).await,
        415,
        "unsupported_media_type",
    )
    .await;

    let mut eight_bit = HELLO_WAV[..4096].to_vec();
    eight_bit[34] = 8; // bits per sample
    let form = Form::new()
        .text("model", "whisper-1")
        .part("file", &eight_bit);
    expect_error(
        transcribe(&stack, &token, form).await,
        415,
        "unsupported_media_type",
    )
    .await;

    let truncated = Form::new()
        .text("model", "whisper-1")
        .part("file", &HELLO_WAV[..30]);
    expect_error(
        transcribe(&stack, &token, truncated).await,
        400,
        "invalid_audio",
    )
    .await;

    let huge = Form::new()
        .text("model", "whisper-1")
        .part("file", HELLO_WAV);
    // The gateway answers 413 before reading the whole body and closes the connection; a
    // pooled client could otherwise hand that closing connection to the next request.
    let refused = stack
        .http
        .post(format!("{}/v1/audio/transcriptions", stack.gateway))
        .bearer_auth(&token)
        .header("connection", "close")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(huge.finish())
        .send()
        .await
        .expect("POST /v1/audio/transcriptions");
    expect_error(refused, 413, "request_too_large").await;

    let not_multipart = stack
        .http
        .post(format!("{}/v1/audio/transcriptions", stack.gateway))
        .bearer_auth(&token)
        .json(&json!({"file": "hello.wav"}))
        .send()
        .await
        .unwrap();
    expect_error(not_multipart, 415, "unsupported_media_type").await;

    let broken = stack
        .http
        .post(format!("{}/v1/audio/transcriptions", stack.gateway))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    expect_error(broken, 400, "invalid_multipart").await;

    let srt = Form::new()
        .text("model", "whisper-1")
        .text("response_format", "srt")
        .part("file", &HELLO_WAV[..8192]);
    expect_error(
        transcribe(&stack, &token, srt).await,
        400,
        "unsupported_response_format",
    )
    .await;

    assert_eq!(stack.usage(&token, "voice_seconds").await, (0, 0));
    assert_eq!(
        stack
            .mock
            .requests(pipeline::mock::Endpoint::Transcriptions),
        0
    );
}

/// A mono 16-bit WAV header saying `rate` and `claimed` data bytes, followed by `data`.
fn wav_claiming(rate: u32, claimed: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44 + data.len());
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.saturating_mul(2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&claimed.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// The process's peak resident memory so far (`VmHWM`), in KiB. nextest runs each test in its
/// own process, so the gateway serving the test is the only other thing in it.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Spends every voice second of the free tier (5 minutes) directly at the control plane.
async fn spend_all_voice_seconds(stack: &Stack, token: &str) {
    stack.spend(token, "voice_seconds", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_mib_upload_claiming_50_hz_is_refused_before_any_big_allocation() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("fifty-hertz").await;
    // At 50 Hz these 25 MiB are 3.6 hours of audio, ~8 GB once resampled to 16 kHz.
    let data = vec![0x55u8; 25 * 1024 * 1024 - 4096];
    let file = wav_claiming(50, data.len() as u32, &data);
    drop(data);
    let form = Form::new().text("model", "whisper-1").part("file", &file);
    drop(file);
    let before = peak_rss_kib();
    let started = std::time::Instant::now();
    let response = transcribe(&stack, &token, form).await;
    let error = expect_error(response, 400, "unsupported_sample_rate").await;
    let took = started.elapsed();
    assert_eq!(error["param"], "file");
    assert!(
        error["message"].as_str().unwrap().contains("50 Hz"),
        "{error}"
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    let grew_mib = (peak_rss_kib() - before) / 1024;
    // The upload itself is buffered (25 MiB, a copy or two while it is parsed); nothing
    // proportional to what the header claims.
    assert!(grew_mib < 200, "peak RSS grew by {grew_mib} MiB");
    assert_eq!(stack.usage(&token, "voice_seconds").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_claiming_gigabytes_over_a_short_body_is_read_for_what_arrived() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("liar").await;
    let mut file = HELLO_WAV.to_vec();
    let data_len = file
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 4;
    file[data_len..data_len + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let form = Form::new()
        .text("model", "whisper-1")
        .text("response_format", "verbose_json")
        .part("file", &file);
    let response = transcribe(&stack, &token, form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let duration = body["duration"].as_f64().unwrap();
    assert!((duration - 2.81).abs() < 0.01, "{duration}");
    assert_eq!(stack.settled_usage(&token, "voice_seconds").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_upload_is_refused_before_any_quota_is_spent() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("long-talker").await;
    // 601 s of 8 kHz silence (9.6 MB): over the 600 s default cap, inside the byte cap.
    let data = vec![0u8; 601 * 8_000 * 2];
    let file = wav_claiming(8_000, data.len() as u32, &data);
    let form = Form::new().text("model", "whisper-1").part("file", &file);
    let error = expect_error(
        transcribe(&stack, &token, form).await,
        400,
        "audio_too_long",
    )
    .await;
    assert_eq!(error["param"], "file");
    assert_eq!(stack.usage(&token, "voice_seconds").await, (0, 0));
    assert_eq!(
        stack
            .mock
            .requests(pipeline::mock::Endpoint::Transcriptions),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_no_voice_seconds_left_is_refused_without_decoding() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("broke").await;
    spend_all_voice_seconds(&stack, &token).await;
    // 270 s of 48 kHz noise, 25 MiB: seconds of decoding and resampling in a debug build,
    // which a caller with nothing left must not be able to make the gateway do.
    let data: Vec<u8> = (0..270 * 48_000u32)
        .flat_map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) as i16).to_le_bytes())
        .collect();
    let file = wav_claiming(48_000, data.len() as u32, &data);
    drop(data);
    let form = Form::new().text("model", "whisper-1").part("file", &file);
    drop(file);
    let started = std::time::Instant::now();
    let response = transcribe(&stack, &token, form).await;
    let took = started.elapsed();
    expect_error(response, 429, "insufficient_quota").await;
    assert!(
        took < std::time::Duration::from_millis(1500),
        "refused in {took:?}: the upload was decoded first"
    );
    assert_eq!(stack.usage(&token, "voice_seconds").await, (0, 300));
    assert_eq!(
        stack
            .mock
            .requests(pipeline::mock::Endpoint::Transcriptions),
        0
    );
}
