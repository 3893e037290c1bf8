//! Speech-to-text providers.

mod deepgram;
mod openai;

pub use deepgram::DeepgramStt;
pub use openai::OpenAiStt;
