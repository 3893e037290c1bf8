//! Builds a small trigram language model (ARPA text) and a matching pronunciation dictionary
//! from a corpus of example sentences.
//!
//! PocketSphinx's stock model knows 134k words and general-English statistics, which on the
//! service's synthetic test speech gets about a third of the words right. A model that only
//! knows the few hundred words of companion chat leaves the decoder far fewer wrong paths
//! and needs a tenth of the memory, while (unlike a grammar) still accepting sentences
//! nobody wrote down. Everything here is plain text in, plain text out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::Error;

/// The in-tree companion-chat corpus the default recogniser's language model is built from.
pub const COMPANION_CORPUS: &str = include_str!("../models/companion-corpus.txt");

/// Absolute discount subtracted from every seen n-gram count (interpolated absolute
/// discounting); 0.7 suits a corpus where most n-grams are seen once or twice.
pub const DEFAULT_DISCOUNT: f64 = 0.7;

const BOS: &str = "<s>";
const EOS: &str = "</s>";

/// Splits a corpus into sentences of lower-case words.
///
/// One sentence per line, further split at `.`, `!` and `?`; `#` starts a comment line.
/// Words are runs of letters and apostrophes (inner apostrophes only: "what's", "i'm").
pub fn sentences(corpus: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in corpus.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for part in line.split(['.', '!', '?']) {
            let words: Vec<String> = part
                .split(|c: char| !(c.is_alphabetic() || c == '\''))
                .map(|w| w.trim_matches('\''))
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            if !words.is_empty() {
                out.push(words);
            }
        }
    }
    out
}

/// Every distinct word of the sentences.
pub fn vocabulary(sentences: &[Vec<String>]) -> BTreeSet<String> {
    sentences.iter().flatten().cloned().collect()
}

/// Writes an ARPA trigram model of `sentences` with interpolated absolute discounting.
///
/// For an interpolated model the ARPA back-off weight of a context is exactly the mass the
/// discount freed, `discount * distinct_followers / count`, so no renormalising pass is
/// needed. Output is deterministic (sorted n-grams).
pub fn build_arpa(sentences: &[Vec<String>], discount: f64) -> Result<String, Error> {
    if sentences.is_empty() {
        return Err(Error::BadCorpus("it holds no words".to_owned()));
    }
    if !(0.0..1.0).contains(&discount) || discount == 0.0 {
        return Err(Error::BadCorpus(format!(
            "discount {discount} is outside (0, 1)"
        )));
    }
    let mut uni: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bi: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut tri: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for sentence in sentences {
        let mut padded = Vec::with_capacity(sentence.len() + 2);
        padded.push(BOS);
        padded.extend(sentence.iter().map(String::as_str));
        padded.push(EOS);
        for w in &padded[1..] {
            *uni.entry(w).or_default() += 1;
        }
        for pair in padded.windows(2) {
            *bi.entry((pair[0], pair[1])).or_default() += 1;
        }
        for triple in padded.windows(3) {
            *tri.entry((triple[0], triple[1], triple[2])).or_default() += 1;
        }
    }
    let total: u64 = uni.values().sum();

    // Per context: (total count of what follows, number of distinct followers).
    let mut bi_ctx: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (&(u, _), &c) in &bi {
        let e = bi_ctx.entry(u).or_default();
        e.0 += c;
        e.1 += 1;
    }
    let mut tri_ctx: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (&(u, v, _), &c) in &tri {
        let e = tri_ctx.entry((u, v)).or_default();
        e.0 += c;
        e.1 += 1;
    }
    let gamma = |(count, distinct): (u64, u64)| discount * distinct as f64 / count as f64;
    let p1 = |w: &str| uni.get(w).map_or(0.0, |&c| c as f64 / total as f64);
    let bow1 = |u: &str| bi_ctx.get(u).map_or(1.0, |&ctx| gamma(ctx));
    let p2 = |u: &str, v: &str| match (bi.get(&(u, v)), bi_ctx.get(u)) {
        (Some(&c), Some(&ctx)) => (c as f64 - discount) / ctx.0 as f64 + gamma(ctx) * p1(v),
        _ => bow1(u) * p1(v),
    };

    let mut arpa = String::new();
    let n1 = uni.len() + 1; // + <s>
    let _ = write!(
        arpa,
        "\\data\\\nngram 1={n1}\nngram 2={}\nngram 3={}\n\n\\1-grams:\n",
        bi.len(),
        tri.len()
    );
    // <s> is never predicted; by convention its probability is 10^-99.
    let _ = writeln!(arpa, "-99.000000 {BOS} {:.6}", bow1(BOS).log10());
    for &w in uni.keys() {
        if w == EOS {
            let _ = writeln!(arpa, "{:.6} {w}", p1(w).log10());
        } else {
            let _ = writeln!(arpa, "{:.6} {w} {:.6}", p1(w).log10(), bow1(w).log10());
        }
    }
    arpa.push_str("\n\\2-grams:\n");
    for &(u, v) in bi.keys() {
        let p = p2(u, v).log10();
        match tri_ctx.get(&(u, v)) {
            Some(&ctx) => {
                let _ = writeln!(arpa, "{p:.6} {u} {v} {:.6}", gamma(ctx).log10());
            }
            None => {
                let _ = writeln!(arpa, "{p:.6} {u} {v}");
            }
        }
    }
    arpa.push_str("\n\\3-grams:\n");
    for (&(u, v, w), &c) in &tri {
        let ctx = tri_ctx[&(u, v)];
        let p = (c as f64 - discount) / ctx.0 as f64 + gamma(ctx) * p2(v, w);
        let _ = writeln!(arpa, "{:.6} {u} {v} {w}", p.log10());
    }
    arpa.push_str("\n\\end\\\n");
    Ok(arpa)
}

/// Keeps the entries of a CMU-format pronunciation dictionary (`word PH ON EMES`, alternates
/// as `word(2) ...`) whose word is in `vocabulary`. Fails naming the words it has no
/// pronunciation for, since the decoder could never recognise them.
pub fn restrict_dictionary(
    full_dictionary: &str,
    vocabulary: &BTreeSet<String>,
) -> Result<String, Error> {
    let mut out = String::new();
    let mut found = BTreeSet::new();
    for line in full_dictionary.lines() {
        let Some((head, _)) = line.split_once(' ') else {
            continue;
        };
        let word = head.split_once('(').map_or(head, |(w, _)| w);
        if vocabulary.contains(word) {
            out.push_str(line);
            out.push('\n');
            found.insert(word);
        }
    }
    let missing: Vec<&str> = vocabulary
        .iter()
        .map(String::as_str)
        .filter(|w| !found.contains(w))
        .collect();
    if !missing.is_empty() {
        return Err(Error::BadCorpus(format!(
            "no pronunciation for: {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_lines_split_into_lower_case_sentences() {
        let s = sentences("# comment\nHello! What's up?\n\n  'Quoted' words, commas.\n");
        assert_eq!(
            s,
            vec![
                vec!["hello"],
                vec!["what's", "up"],
                vec!["quoted", "words", "commas"]
            ]
        );
    }

    /// An ARPA file as maps from n-gram to (log10 prob, log10 back-off).
    fn parse(arpa: &str) -> BTreeMap<Vec<String>, (f64, f64)> {
        let mut grams = BTreeMap::new();
        let mut order = 0;
        for line in arpa.lines() {
            if let Some(n) = line
                .strip_prefix('\\')
                .and_then(|l| l.strip_suffix("-grams:"))
            {
                order = n.parse().unwrap();
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            if order == 0 || fields.len() < order + 1 {
                continue;
            }
            let words = fields[1..=order].iter().map(|w| (*w).to_owned()).collect();
            let bow = fields.get(order + 1).map_or(0.0, |b| b.parse().unwrap());
            grams.insert(words, (fields[0].parse().unwrap(), bow));
        }
        grams
    }

    /// P(w | history) by the ARPA back-off rule.
    fn prob(grams: &BTreeMap<Vec<String>, (f64, f64)>, history: &[String], w: &str) -> f64 {
        let mut gram = history.to_vec();
        gram.push(w.to_owned());
        if let Some((p, _)) = grams.get(&gram) {
            return 10f64.powf(*p);
        }
        let bow = grams.get(history).map_or(0.0, |(_, b)| *b);
        10f64.powf(bow) * prob(grams, &history[1..], w)
    }

    #[test]
    fn arpa_probabilities_of_each_context_sum_to_one() {
        let s = sentences("the cat sat\nthe cat ran\nthe dog sat\na dog ran");
        let arpa = build_arpa(&s, DEFAULT_DISCOUNT).unwrap();
        assert!(arpa.starts_with("\\data\\\nngram 1=8\n"), "{arpa}");
        let grams = parse(&arpa);
        let vocab: Vec<String> = grams
            .keys()
            .filter(|g| g.len() == 1 && g[0] != BOS)
            .map(|g| g[0].clone())
            .collect();
        // Every history the model knows: nothing, each word, each bigram with a back-off.
        let mut histories: Vec<Vec<String>> = vec![Vec::new()];
        histories.extend(
            grams
                .keys()
                .filter(|g| g.len() < 3 && g.last().unwrap() != EOS)
                .cloned(),
        );
        for history in histories {
            let total: f64 = vocab.iter().map(|w| prob(&grams, &history, w)).sum();
            assert!(
                (total - 1.0).abs() < 1e-4,
                "P(. | {history:?}) sums to {total}"
            );
        }
    }

    #[test]
    fn dictionary_keeps_alternates_and_names_missing_words() {
        let dict = "cat K AE T\ndog D AO G\ndog(2) D AA G\nzebra Z IY B R AH\n";
        let vocab: BTreeSet<String> = ["cat", "dog"].map(String::from).into();
        assert_eq!(
            restrict_dictionary(dict, &vocab).unwrap(),
            "cat K AE T\ndog D AO G\ndog(2) D AA G\n"
        );
        let vocab: BTreeSet<String> = ["cat", "gnu"].map(String::from).into();
        let err = restrict_dictionary(dict, &vocab).unwrap_err().to_string();
        assert!(err.contains("gnu"), "{err}");
    }
}
