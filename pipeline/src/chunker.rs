//! Sentence chunking of a token stream into speakable pieces (sans-IO).
//!
//! Tokens go in as the model streams them; chunks come out as soon as they are complete, so
//! TTS can start on the first clause while the model is still writing. Rules:
//! - hard breaks after `.` `?` `!` `…` (and newlines) when followed by whitespace — so `3.14`
//!   and `e.g.` mid-word never break — except after common abbreviations (`Dr.`, `e.g.`) and
//!   single-letter initials;
//! - soft breaks after `,` `;` `:` once the chunk has enough words;
//! - the first chunk breaks at the first safe point after `first_chunk_min_words` words, so
//!   speech starts early;
//! - a chunk that grows past `max_words` without punctuation breaks at a space;
//! - [`SentenceChunker::finish`] flushes the rest.

use std::collections::VecDeque;

/// Chunking thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkerConfig {
    /// Words needed before a soft break may end the first chunk. Default 4.
    pub first_chunk_min_words: usize,
    /// Words needed before a soft break may end a later chunk. Default 8.
    pub soft_break_min_words: usize,
    /// Words after which the first chunk breaks at a space even without punctuation. Default 12.
    pub first_chunk_max_words: usize,
    /// Words after which a later chunk breaks at a space. Default 40.
    pub max_words: usize,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        Self {
            first_chunk_min_words: 4,
            soft_break_min_words: 8,
            first_chunk_max_words: 12,
            max_words: 40,
        }
    }
}

/// Abbreviations (lower case, without the final dot) after which a `.` does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "approx", "no",
    "fig", "mt", "ca", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k",
];

/// Splits a token stream into speakable chunks.
#[derive(Debug, Clone)]
pub struct SentenceChunker {
    config: ChunkerConfig,
    buf: String,
    /// Byte offset in `buf` up to which break candidates were already rejected.
    scanned: usize,
    emitted: usize,
    ready: VecDeque<String>,
}

impl Default for SentenceChunker {
    fn default() -> Self {
        Self::new(ChunkerConfig::default())
    }
}

impl SentenceChunker {
    /// A chunker with these thresholds.
    pub fn new(config: ChunkerConfig) -> Self {
        Self {
            config,
            buf: String::new(),
            scanned: 0,
            emitted: 0,
            ready: VecDeque::new(),
        }
    }

    /// Adds the next token delta.
    pub fn push(&mut self, delta: &str) {
        self.buf.push_str(delta);
        self.split();
    }

    /// The next complete chunk, if any.
    pub fn pop(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    /// The stream ended: everything left, as a last chunk.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let rest = rest.trim();
        if rest.is_empty() {
            return self.ready.pop_front();
        }
        self.emitted += 1;
        self.ready.push_back(rest.to_owned());
        self.ready.pop_front()
    }

    /// Drops everything buffered (barge-in): the next token starts a new answer.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.emitted = 0;
        self.ready.clear();
    }

    fn split(&mut self) {
        while let Some(end) = self.find_break() {
            let chunk: String = self.buf.drain(..end).collect();
            self.scanned = 0;
            let chunk = chunk.trim();
            if !chunk.is_empty() {
                self.emitted += 1;
                self.ready.push_back(chunk.to_owned());
            }
        }
    }

    /// Byte offset just after the first break in `buf`, if one is certain yet.
    fn find_break(&mut self) -> Option<usize> {
        let first = self.emitted == 0;
        let (soft_min, max_words) = if first {
            (
                self.config.first_chunk_min_words,
                self.config.first_chunk_max_words,
            )
        } else {
            (self.config.soft_break_min_words, self.config.max_words)
        };
        let buf = self.buf.as_str();
        let mut words = count_words(&buf[..self.scanned]);
        let mut prev_space =
            buf[..self.scanned].ends_with(char::is_whitespace) || self.scanned == 0;
        for (i, c) in buf[self.scanned..].char_indices() {
            let i = i + self.scanned;
            let after = i + c.len_utf8();
            let is_space = c.is_whitespace();
            if !is_space && prev_space {
                words += 1;
            }
            prev_space = is_space;
            let next = buf[after..].chars().next();
            if c == '\n' && words > 0 {
                return Some(after);
            }
            let hard = matches!(c, '.' | '?' | '!' | '…');
            let soft = matches!(c, ',' | ';' | ':');
            if !(hard || soft || (is_space && words >= max_words)) {
                continue;
            }
            if is_space {
                return Some(i);
            }
            // Closing quotes and brackets belong to the chunk they close.
            let tail: usize = buf[after..]
                .chars()
                .take_while(|ch| {
                    matches!(
                        ch,
                        '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '.' | '!' | '?' | '…'
                    )
                })
                .map(char::len_utf8)
                .sum();
            let end = after + tail;
            match buf[end..].chars().next() {
                // A clause comma after a word ("today,") is certain now; waiting for the next
                // token would delay the first audio by a whole token interval.
                None if soft
                    && words >= soft_min
                    && buf[..i].ends_with(|p: char| p.is_alphabetic() || "\"'”’)".contains(p)) =>
                {
                    return Some(end);
                }
                // Not decidable yet: "3." may become "3.14". Wait for the next token.
                None => {
                    self.scanned = i;
                    return None;
                }
                Some(ch) if !ch.is_whitespace() => continue,
                Some(_) => {}
            }
            let _ = next;
            if hard && !(c == '.' && is_abbreviation(&buf[..i])) {
                return Some(end);
            }
            if soft && words >= soft_min {
                return Some(end);
            }
        }
        self.scanned = buf.len();
        None
    }
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Whether the word right before a `.` is an abbreviation or an initial.
fn is_abbreviation(before_dot: &str) -> bool {
    let word = before_dot.rsplit(char::is_whitespace).next().unwrap_or("");
    let word = word.trim_start_matches(['"', '\'', '(', '[', '“', '‘']);
    if word.is_empty() {
        return false;
    }
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return c.is_uppercase(); // an initial: "J. R. R. Tolkien"
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams `text` in tokens of a few characters, as a model would, collecting chunks.
    fn chunk_stream(tokens: &[&str]) -> Vec<String> {
        let mut c = SentenceChunker::default();
        let mut out = Vec::new();
        for t in tokens {
            c.push(t);
            while let Some(chunk) = c.pop() {
                out.push(chunk);
            }
        }
        while let Some(chunk) = c.finish() {
            out.push(chunk);
        }
        out
    }

    fn tokenize(text: &str) -> Vec<String> {
        // Split before each space like a BPE tokenizer, and split long words in two.
        let mut tokens = Vec::new();
        for (i, word) in text.split(' ').enumerate() {
            let word = if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            };
            let mid = word
                .char_indices()
                .nth(word.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            tokens.push(word[..mid].to_owned());
            tokens.push(word[mid..].to_owned());
        }
        tokens
    }

    fn chunks_of(text: &str) -> Vec<String> {
        let tokens = tokenize(text);
        chunk_stream(&tokens.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn the_first_chunk_is_a_short_clause_then_whole_sentences() {
        let chunks = chunks_of(
            "Well, I think that sounds lovely, honestly. We could go to the park tomorrow afternoon, \
             if the weather holds up and nobody is busy. What do you think?",
        );
        assert_eq!(
            chunks,
            [
                "Well, I think that sounds lovely,",
                "honestly.",
                "We could go to the park tomorrow afternoon,",
                "if the weather holds up and nobody is busy.",
                "What do you think?"
            ]
        );
    }

    #[test]
    fn numbers_and_abbreviations_do_not_break_sentences() {
        let chunks =
            chunks_of("Dr. Smith says pi is 3.14 today, e.g. in class. It costs $1,000.50 now.");
        assert_eq!(
            chunks,
            [
                "Dr. Smith says pi is 3.14 today,",
                "e.g. in class.",
                "It costs $1,000.50 now."
            ]
        );
    }

    #[test]
    fn a_clause_comma_goes_out_without_waiting_for_the_next_token() {
        let mut c = SentenceChunker::default();
        c.push("Well, I think that sounds lovely,");
        assert_eq!(
            c.pop().as_deref(),
            Some("Well, I think that sounds lovely,")
        );
        c.push(" it costs 1,");
        assert_eq!(c.pop(), None, "1, may be 1,000");
    }

    #[test]
    fn a_short_exclamation_goes_out_at_once() {
        let mut c = SentenceChunker::default();
        c.push("Hi!");
        assert_eq!(c.pop(), None, "could still be 'Hi!!' or a quote");
        c.push(" How");
        assert_eq!(c.pop().as_deref(), Some("Hi!"));
    }

    #[test]
    fn a_split_decimal_waits_for_the_next_token() {
        assert_eq!(
            chunk_stream(&["It is 3", ".", "14 exactly", ". Yes."]),
            ["It is 3.14 exactly.", "Yes."]
        );
    }

    #[test]
    fn quotes_ellipses_and_newlines() {
        assert_eq!(
            chunks_of("She said \"go away.\" Then… silence. A list:\n- one\n- two"),
            [
                "She said \"go away.\"",
                "Then…",
                "silence.",
                "A list:",
                "- one",
                "- two"
            ]
        );
    }

    #[test]
    fn a_long_unpunctuated_opening_still_starts_speech_early() {
        let chunks = chunks_of(
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
        );
        assert_eq!(
            chunks[0],
            "one two three four five six seven eight nine ten eleven twelve"
        );
        assert_eq!(chunks[1], "thirteen fourteen");
    }

    #[test]
    fn finish_flushes_and_reset_forgets() {
        let mut c = SentenceChunker::default();
        c.push("no punctuation at the end");
        assert_eq!(c.finish().as_deref(), Some("no punctuation at the end"));
        assert_eq!(c.finish(), None);
        c.push("half a");
        c.reset();
        c.push("Fresh start.");
        assert_eq!(c.finish().as_deref(), Some("Fresh start."));
    }
}
