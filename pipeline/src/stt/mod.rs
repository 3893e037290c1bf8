//! Speech-to-text providers: vendors over HTTP/WebSocket and the offline PocketSphinx
//! fallback.

mod deepgram;
mod local;
mod openai;

pub use deepgram::DeepgramStt;
pub use local::{LOCAL_STT_NAME, LocalStt};
pub use openai::OpenAiStt;
