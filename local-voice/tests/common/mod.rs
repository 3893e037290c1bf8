//! Helpers shared by the tests and the `measure` example: reading the test recordings and
//! scoring transcripts.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

/// The single-utterance recordings in `testdata/` and the words spoken in each.
pub const RECORDINGS: [(&str, &str); 4] = [
    ("hello", "Hello! What is the weather like today?"),
    ("minecraft", "Can you help me build a house in Minecraft?"),
    (
        "story",
        "Tell me a short story about a robot who learns to paint.",
    ),
    ("interrupt", "Wait, stop, I have a different question."),
];

/// Path of a file in the crate's `testdata/` folder.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Samples of a mono 16-bit PCM WAV file (any sample rate; the caller knows which).
pub fn read_wav(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[0..4],
        b"RIFF",
        "{} is not a WAV file",
        path.display()
    );
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert_eq!((channels, bits), (1, 16), "expected mono 16-bit PCM");
        } else if id == b"data" {
            return body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        pos += 8 + len + (len & 1);
    }
    panic!("{} has no data chunk", path.display());
}

/// Lower-case words without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Word accuracy, 1 - (substitutions + deletions + insertions) / reference words, floored
/// at 0: the usual 1 - WER.
pub fn word_accuracy(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    // Levenshtein distance over words.
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    let errors = prev[h.len()] as f64;
    (1.0 - errors / r.len() as f64).max(0.0)
}
