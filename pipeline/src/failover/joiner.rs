//! Joining a resumed answer onto what was already said (sans-IO).
//!
//! When a provider breaks off mid-answer, the next provider is asked to continue. Models do
//! not always obey: some restate the whole answer, some repeat the last few words. The
//! joiner holds the start of the continuation just long enough to see which, strips the
//! repeat, and fixes the whitespace at the seam.

/// How much continuation text is enough to decide there is no repeat.
const DECIDE_AFTER_CHARS: usize = 24;
/// Shortest tail repeat that is stripped; shorter matches are likely coincidence.
const MIN_OVERLAP_CHARS: usize = 6;

/// Strips repeated text from the start of a continuation.
#[derive(Debug, Clone)]
pub struct ContinuationJoiner {
    said: String,
    held: String,
    decided: bool,
}

impl ContinuationJoiner {
    /// A joiner for a continuation of `already_said`.
    pub fn new(already_said: &str) -> Self {
        Self {
            said: already_said.to_owned(),
            held: String::new(),
            decided: false,
        }
    }

    /// Feeds the next token of the continuation; returns text ready to pass on.
    pub fn push(&mut self, token: &str) -> Option<String> {
        if self.decided {
            return Some(token.to_owned()).filter(|t| !t.is_empty());
        }
        self.held.push_str(token);
        let said = self.said.trim_end();
        let held = self.held.trim_start();
        let restating = !held.is_empty() && held.len() < said.len() && said.starts_with(held);
        if held.is_empty() || restating || held.len() < DECIDE_AFTER_CHARS {
            return None;
        }
        self.decide()
    }

    /// The continuation ended; returns whatever was still held.
    pub fn finish(&mut self) -> Option<String> {
        if self.decided {
            return None;
        }
        self.decide()
    }

    fn decide(&mut self) -> Option<String> {
        self.decided = true;
        let held = std::mem::take(&mut self.held);
        let said = self.said.trim_end();
        let trimmed = held.trim_start();
        let rest: &str = if !said.is_empty() && trimmed.starts_with(said) {
            &trimmed[said.len()..]
        } else {
            let overlap = (MIN_OVERLAP_CHARS..=trimmed.len().min(said.len()))
                .rev()
                .filter(|&k| trimmed.is_char_boundary(k))
                .find(|&k| said.ends_with(&trimmed[..k]));
            match overlap {
                Some(k) => &trimmed[k..],
                None => &held,
            }
        };
        let said_ends_space = self.said.ends_with(char::is_whitespace);
        let mut out = if said_ends_space {
            rest.trim_start().to_owned()
        } else {
            rest.to_owned()
        };
        // "...said." + "Next" needs a space; "Hel" + "lo" must not get one.
        let ends_clause = said.ends_with(['.', ',', '!', '?', ';', ':']);
        if !said_ends_space && ends_clause && out.starts_with(char::is_alphanumeric) {
            out.insert(0, ' ');
        }
        Some(out).filter(|o| !o.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(said: &str, tokens: &[&str]) -> String {
        let mut j = ContinuationJoiner::new(said);
        let mut out = said.to_owned();
        for t in tokens {
            if let Some(piece) = j.push(t) {
                out.push_str(&piece);
            }
        }
        if let Some(piece) = j.finish() {
            out.push_str(&piece);
        }
        out
    }

    #[test]
    fn an_obedient_continuation_passes_through() {
        assert_eq!(
            join(
                "The weather today is",
                &[" sunny", " with", " a light breeze", " from the west."]
            ),
            "The weather today is sunny with a light breeze from the west."
        );
    }

    #[test]
    fn a_full_restatement_is_stripped() {
        assert_eq!(
            join(
                "The weather today",
                &["The weather", " today", " is sunny", " and warm."]
            ),
            "The weather today is sunny and warm."
        );
    }

    #[test]
    fn a_repeated_tail_is_stripped() {
        assert_eq!(
            join(
                "I went to the market and bought",
                &["and bought", " some apples", " and pears for the pie."]
            ),
            "I went to the market and bought some apples and pears for the pie."
        );
    }

    #[test]
    fn the_seam_gets_exactly_one_space() {
        assert_eq!(
            join(
                "First sentence. ",
                &[" Second one is here and it is long enough."]
            ),
            "First sentence. Second one is here and it is long enough."
        );
        assert_eq!(
            join("First sentence.", &["Second one."]),
            "First sentence. Second one."
        );
    }
}
