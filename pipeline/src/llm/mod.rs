//! Language-model providers.

mod anthropic;
mod openai;

pub use anthropic::AnthropicChat;
pub use openai::{CONTINUE_INSTRUCTION, OpenAiChat};
