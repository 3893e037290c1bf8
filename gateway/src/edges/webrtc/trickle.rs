//! Trickle-ICE SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840) as sent by WHIP
//! clients in `PATCH` requests.

/// Why a fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// A line is not `x=value` SDP syntax.
    #[error("line {line} of the fragment is not SDP (expected `a=...`, `m=...`)")]
    NotSdp {
        /// 1-based line number.
        line: usize,
    },
    /// The fragment carries no candidate, end-of-candidates or ICE credentials.
    #[error("the fragment has no a=candidate, a=end-of-candidates or a=ice-ufrag line")]
    Empty,
}

/// The parts of a fragment the gateway acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrickleFragment {
    /// The caller's ICE user fragment, if the fragment names it.
    pub ufrag: Option<String>,
    /// Candidate attributes without the `a=` prefix (`candidate:1 1 udp ...`).
    pub candidates: Vec<String>,
    /// Whether the caller has no more candidates.
    pub end_of_candidates: bool,
}

/// Parses a fragment. Never panics, whatever the input.
pub fn parse_fragment(body: &str) -> Result<TrickleFragment, FragmentError> {
    let mut frag = TrickleFragment::default();
    let mut meaningful = false;
    for (i, line) in body.lines().map(str::trim_end).enumerate() {
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(FragmentError::NotSdp { line: i + 1 });
        }
        if let Some(c) = line.strip_prefix("a=candidate:") {
            frag.candidates.push(format!("candidate:{c}"));
            meaningful = true;
        } else if line == "a=end-of-candidates" {
            frag.end_of_candidates = true;
            meaningful = true;
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            frag.ufrag.get_or_insert_with(|| u.trim().to_owned());
            meaningful = true;
        }
    }
    if !meaningful {
        return Err(FragmentError::Empty);
    }
    Ok(frag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whip_fragment_yields_its_candidates_and_ufrag() {
        let frag = parse_fragment(
            "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
             m=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
             a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
             a=end-of-candidates\r\n",
        )
        .expect("a valid fragment");
        assert_eq!(frag.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(
            frag.candidates,
            vec!["candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0"]
        );
        assert!(frag.end_of_candidates);
    }

    #[test]
    fn text_that_is_not_a_fragment_is_refused() {
        assert_eq!(
            parse_fragment("hello"),
            Err(FragmentError::NotSdp { line: 1 })
        );
        assert_eq!(parse_fragment("a=mid:0\r\n"), Err(FragmentError::Empty));
        assert_eq!(parse_fragment(""), Err(FragmentError::Empty));
        assert_eq!(
            parse_fragment("a=mid:0\r\n=x"),
            Err(FragmentError::NotSdp { line: 2 })
        );
    }
}
