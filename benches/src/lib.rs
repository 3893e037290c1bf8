//! Criterion benchmarks for the media and pipeline hot paths; see `benches/README.md`.
