#!/usr/bin/env bash
# One command for the voice-call load numbers: builds the release binaries, then runs
# voice-calls --spawn (it starts mock-providers and a companion gateway on 127.0.0.1 with
# development tokens and SQLite in a temporary folder, measures, and stops them).
#
#   loadtest/voice-calls/run.sh --calls 10
#   loadtest/voice-calls/run.sh --calls 10 --wav media/testdata/call-barge-in.48k.wav
#   loadtest/voice-calls/run.sh --calls 50 --total 1000 --duration 4 --tail 2.5 --json
#
# Default recording: media/testdata/call-two-turns.48k.wav. Extra arguments go to voice-calls
# (see `voice-calls --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export COMPANION_DEPS_DIR="${COMPANION_DEPS_DIR:-$root/.deps}"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p companion -p pipeline -p voice-calls \
    --bin companion --bin mock-providers --bin voice-calls >&2
wav=(--wav media/testdata/call-two-turns.48k.wav)
for a in "$@"; do
    if [[ "$a" == "--wav" ]]; then wav=(); fi
done
exec "$target/release/voice-calls" --spawn "${wav[@]}" "$@"
