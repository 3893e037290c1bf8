//! Streaming STT -> LLM -> TTS voice pipeline with provider failover.
#![forbid(unsafe_code)]
