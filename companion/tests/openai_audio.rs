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
