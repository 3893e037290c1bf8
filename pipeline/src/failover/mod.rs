//! Ordered failover with health tracking and circuit breakers.
//!
//! [`FailoverPolicy`] is the sans-IO core (time passed in); one loop (`stage.rs`) tries a
//! stage's providers in order against it, and [`FailoverLlm`], [`FailoverStt`] and
//! [`FailoverTts`] are the async shells that plug their stage into it: first-token /
//! first-audio deadlines, and, for the language model, resuming a cut answer on the next
//! provider without repeating what was already said ([`ContinuationJoiner`]).

mod build;
mod joiner;
mod llm;
mod policy;
mod stage;
mod stt;
mod timed;
mod tts;

pub use build::{build_llm, build_stt, build_tts};
pub use joiner::ContinuationJoiner;
pub use llm::FailoverLlm;
pub use policy::{Admission, FailoverPolicy, ProviderState};
pub use stt::FailoverStt;
pub use tts::FailoverTts;
