//! The mock language model's deterministic answer.
//!
//! The answer depends on the prompt (it quotes the user's last words) and is several
//! sentences long with commas, an abbreviation and a decimal number, so sentence chunking
//! and failover continuation are exercised on realistic text.

/// The full answer to `user_text`.
pub fn reply_for(user_text: &str) -> String {
    let words: Vec<&str> = user_text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let tail = if words.is_empty() {
        "nothing at all".to_owned()
    } else {
        words[words.len().saturating_sub(6)..].join(" ")
    };
    format!(
        "You said \"{tail}\", and I heard every word. Let me think about that for a moment. \
         Dr. Rivera once told me that 3.14 is a fine number to remember, e.g. when baking pies. \
         Anyway, {tail} sounds like a wonderful topic to explore together. \
         What would you like to talk about next?"
    )
}

/// Splits text into model-like tokens: each word with its leading space.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The text a mock model streams for a request: the whole reply, or, when the request
/// resumes a cut answer with `prefix`, only what follows it.
pub fn continuation(user_text: &str, prefix: Option<&str>) -> String {
    let full = reply_for(user_text);
    match prefix.map(str::trim_end).filter(|p| !p.is_empty()) {
        Some(p) if full.starts_with(p) => full[p.len()..].to_owned(),
        _ => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_quotes_the_user_and_tokens_rebuild_it() {
        let r = reply_for("Can you tell me about the moon landing?");
        assert!(r.contains("\"tell me about the moon landing\""), "{r}");
        assert_eq!(tokenize(&r).concat(), r);
        assert!(tokenize(&r).len() > 40);
    }

    #[test]
    fn a_continuation_is_the_rest_of_the_same_reply() {
        let full = reply_for("hi there");
        let cut = &full[..30];
        assert_eq!(
            format!("{cut}{}", continuation("hi there", Some(cut))),
            full
        );
        assert_eq!(
            format!("{}{}", cut.trim_end(), continuation("hi there", Some(cut))),
            full.replacen(cut, cut.trim_end(), 1)
        );
    }
}
