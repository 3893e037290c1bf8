//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use pipeline::pcm::parse_wav;
use pipeline::{
    AudioStream, ChatMessage, LlmEvent, LlmRequest, LlmStream, PipelineError, Role, Usage,
};

/// "Hello! What is the weather like today?", 16 kHz mono, from the project's test speech.
pub const HELLO_WAV: &[u8] = include_bytes!("../data/hello.16k.wav");

/// A one-message conversation.
pub fn ask(text: &str) -> LlmRequest {
    LlmRequest::new(vec![
        ChatMessage::new(Role::System, "You are a friendly companion."),
        ChatMessage::new(Role::User, text),
    ])
}

/// The streamed answer: all tokens joined, the token pieces, and the finish usage.
pub struct Answer {
    pub text: String,
    pub tokens: usize,
    pub usage: Option<Usage>,
}

/// Reads a whole LLM stream; the first error ends it.
pub async fn answer(mut stream: LlmStream) -> Result<Answer, PipelineError> {
    let mut text = String::new();
    let mut tokens = 0;
    while let Some(event) = stream.next().await {
        match event? {
            LlmEvent::Token(t) => {
                tokens += 1;
                text.push_str(&t);
            }
            LlmEvent::Finished { usage, .. } => {
                return Ok(Answer {
                    text,
                    tokens,
                    usage,
                });
            }
        }
    }
    panic!("stream ended without Finished or an error; got {text:?}");
}

/// The hello recording as a stream of 20 ms chunks.
pub fn hello_audio() -> AudioStream {
    let (_, pcm) = parse_wav(HELLO_WAV).expect("test wav");
    let chunks: Vec<Bytes> = pcm.chunks(640).map(Bytes::copy_from_slice).collect();
    stream::iter(chunks).boxed()
}
