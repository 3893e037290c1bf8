//! The moderation hook every user chat message passes before it is stored (sans-IO).
//!
//! Built in: a blocked-term list matched on word boundaries (case-insensitive; a term of
//! several words matches those words in a row, whatever spaces or punctuation sit between)
//! and a cap on links per message. This is the hook, not the last word: a provider (a
//! hosted moderation API, a local classifier) belongs behind [`Moderator::check`], whose
//! verdict the chat API already records and enforces.

use serde::{Deserialize, Serialize};

/// The `[control_plane.moderation]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationConfig {
    /// Check user chat messages before they are stored. Default: `true`.
    pub enabled: bool,
    /// Words or phrases a user message may not contain, matched case-insensitively on word
    /// boundaries (`"bad"` does not match `"badge"`). Default: empty.
    pub blocked_terms: Vec<String>,
    /// Most links (`http://`, `https://`, `www.`) one message may carry. Default: `5`.
    pub max_links: u32,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            blocked_terms: Vec::new(),
            max_links: 5,
        }
    }
}

/// Why a message was refused: what the moderation table records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `blocked_term` or `too_many_links`.
    pub category: &'static str,
    /// Which term, or how many links (never the message itself).
    pub detail: String,
}

/// A compiled [`ModerationConfig`].
#[derive(Debug, Clone)]
pub struct Moderator {
    enabled: bool,
    /// Each term as its lowercase words.
    terms: Vec<(String, Vec<String>)>,
    max_links: u32,
}

impl Moderator {
    /// Prepares the checks of `config`.
    pub fn new(config: &ModerationConfig) -> Self {
        let terms = config
            .blocked_terms
            .iter()
            .map(|t| (t.clone(), words(t)))
            .filter(|(_, w)| !w.is_empty())
            .collect();
        Self {
            enabled: config.enabled,
            terms,
            max_links: config.max_links,
        }
    }

    /// Checks one message: `Ok` to store it, or why not.
    pub fn check(&self, text: &str) -> Result<(), Rejection> {
        if !self.enabled {
            return Ok(());
        }
        let links = text
            .split_whitespace()
            .filter(|w| {
                let w = w.to_ascii_lowercase();
                w.contains("http://") || w.contains("https://") || w.starts_with("www.")
            })
            .count();
        if links > self.max_links as usize {
            return Err(Rejection {
                category: "too_many_links",
                detail: format!("{links} links, at most {}", self.max_links),
            });
        }
        let text_words = words(text);
        for (term, term_words) in &self.terms {
            if text_words
                .windows(term_words.len())
                .any(|window| window == term_words.as_slice())
            {
                return Err(Rejection {
                    category: "blocked_term",
                    detail: term.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Lowercase runs of letters, digits and apostrophes: the words a boundary separates.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moderator(terms: &[&str], max_links: u32) -> Moderator {
        Moderator::new(&ModerationConfig {
            enabled: true,
            blocked_terms: terms.iter().map(|t| (*t).to_owned()).collect(),
            max_links,
        })
    }

    #[test]
    fn terms_match_whole_words_in_any_case() {
        let m = moderator(&["bad", "buy followers"], 5);
        assert_eq!(m.check("This is BAD!").unwrap_err().detail, "bad");
        assert!(
            m.check("a badge and a tuba, bad-minton aside").is_err(),
            "bad-minton splits"
        );
        assert!(m.check("a badge and a tuba").is_ok());
        assert_eq!(
            m.check("want to Buy,  followers?").unwrap_err().category,
            "blocked_term"
        );
        assert!(m.check("buy more followers").is_ok());
    }

    #[test]
    fn links_are_capped_and_the_hook_can_be_off() {
        let m = moderator(&[], 1);
        assert!(m.check("see https://a.example").is_ok());
        let r = m
            .check("see https://a.example and www.b.example")
            .unwrap_err();
        assert_eq!(r.category, "too_many_links");
        let off = Moderator::new(&ModerationConfig {
            enabled: false,
            blocked_terms: vec!["bad".into()],
            max_links: 0,
        });
        assert!(off.check("bad http://x").is_ok());
    }
}
