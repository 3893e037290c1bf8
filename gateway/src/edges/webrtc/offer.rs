//! Checks an SDP offer before any WebRTC state is built for it, so a bad offer gets a precise
//! reason (and the right HTTP status) instead of a generic negotiation failure.

use str0m::change::SdpOffer;

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The text is not an SDP offer str0m can parse.
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// The offer has no DTLS fingerprint: plain RTP (SDES or unencrypted) is not accepted.
    #[error("the offer has no a=fingerprint line: only DTLS-SRTP is accepted")]
    NoFingerprint,
    /// The offer has no ICE credentials.
    #[error("the offer has no a=ice-ufrag / a=ice-pwd: ICE is required")]
    NoIceCredentials,
    /// No audio section offers Opus at 48 kHz.
    #[error("the offer has no audio section offering opus/48000/2")]
    NoOpus,
}

/// What the gateway learns from an acceptable offer.
#[derive(Debug)]
pub(crate) struct CheckedOffer {
    /// The parsed offer, ready for `accept_offer`.
    pub(crate) offer: SdpOffer,
    /// The caller's ICE user fragment; a trickle fragment with another one is an ICE restart.
    pub(crate) remote_ufrag: String,
    /// `a=mid` of each audio section that offers Opus, in offer order.
    pub(crate) audio_mids: Vec<String>,
}

/// Parses and checks an offer. Never panics, whatever the input.
pub fn check_offer(sdp: &str) -> Result<(), OfferError> {
    check(sdp).map(|_| ())
}

pub(crate) fn check(sdp: &str) -> Result<CheckedOffer, OfferError> {
    if !sdp.starts_with("v=0") {
        return Err(OfferError::Malformed(
            "an SDP description starts with the line v=0".to_owned(),
        ));
    }
    let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| OfferError::Malformed(e.to_string()))?;

    let mut in_audio = false;
    let mut opus = false;
    let mut section_mid: Option<String> = None;
    let mut section_opus = false;
    let mut audio_mids = Vec::new();
    let mut fingerprint = false;
    let mut ufrag = None;
    let mut pwd = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            if let (true, Some(mid)) = (section_opus, section_mid.take()) {
                audio_mids.push(mid);
            }
            in_audio = media.starts_with("audio ");
            section_opus = false;
            section_mid = None;
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            let codec = rtpmap.split_once(' ').map(|(_, c)| c).unwrap_or("");
            if in_audio && codec.to_ascii_lowercase().starts_with("opus/48000") {
                opus = true;
                section_opus = true;
            }
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            section_mid = Some(mid.trim().to_owned());
        } else if line.starts_with("a=fingerprint:") {
            fingerprint = true;
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag.get_or_insert_with(|| u.trim().to_owned());
        } else if line.starts_with("a=ice-pwd:") {
            pwd = true;
        }
    }
    if let (true, Some(mid)) = (section_opus, section_mid.take()) {
        audio_mids.push(mid);
    }
    if !fingerprint {
        return Err(OfferError::NoFingerprint);
    }
    let remote_ufrag = match ufrag {
        Some(u) if pwd && !u.is_empty() => u,
        _ => return Err(OfferError::NoIceCredentials),
    };
    if !opus || audio_mids.is_empty() {
        return Err(OfferError::NoOpus);
    }
    Ok(CheckedOffer {
        offer,
        remote_ufrag,
        audio_mids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM: &str = include_str!("../../../testdata/chromium-156-offer.sdp");

    #[test]
    fn chromiums_voice_offer_is_accepted_with_its_audio_section() {
        let checked = check(CHROMIUM).expect("Chromium's offer is fine");
        assert_eq!(checked.remote_ufrag, "5JT4");
        assert_eq!(checked.audio_mids, vec!["0".to_owned()]);
    }

    #[test]
    fn offers_missing_what_a_call_needs_are_refused_with_the_reason() {
        assert!(matches!(check(""), Err(OfferError::Malformed(_))));
        assert!(matches!(
            check("v=0\r\nbogus"),
            Err(OfferError::Malformed(_))
        ));
        let no_fp: String = CHROMIUM
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(check(&no_fp).unwrap_err(), OfferError::NoFingerprint);
        let no_ice: String = CHROMIUM
            .lines()
            .filter(|l| !l.starts_with("a=ice-pwd"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(check(&no_ice).unwrap_err(), OfferError::NoIceCredentials);
        let no_opus = CHROMIUM.replace("opus/48000/2", "L16/48000/2");
        assert_eq!(check(&no_opus).unwrap_err(), OfferError::NoOpus);
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "v=0",
            "v=0\r\n",
            "v=0\nm=audio",
            "v=0\r\na=rtpmap:",
            "v=0\r\nm=\r\na=mid:",
        ] {
            let _ = check(s);
        }
    }
}
