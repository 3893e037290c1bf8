//! Stripe webhook signatures (sans-IO): `Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=HEX...]`,
//! each `v1` an HMAC-SHA256 of `"{t}.{raw body}"` keyed with the endpoint's signing secret, as
//! Stripe documents it. Time is passed in.

use aws_lc_rs::hmac;
use protocol::Secret;

/// Why a delivery's signature was refused. The message is safe to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is missing, has no `t=` timestamp, or no `v1=` signature.
    #[error("Stripe-Signature header is missing or malformed")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replayed delivery).
    #[error("Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches any configured secret.
    #[error("no Stripe-Signature v1 signature matches")]
    Mismatch,
}

/// Checks `header` against `payload` with every secret in `secrets`; returns the signed
/// timestamp. `tolerance` bounds `|now - t|` in seconds (Stripe's libraries only refuse old
/// timestamps; a future one beyond the tolerance is refused here too).
pub fn verify(
    header: &str,
    payload: &[u8],
    secrets: &[Secret],
    now: i64,
    tolerance: i64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // Two timestamps would let one of them be chosen by whoever added it.
            "t" if timestamp.is_some() => return Err(SignatureError::Malformed),
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            // Other schemes (`v0` is Stripe's test scheme) are ignored, as Stripe's libraries do.
            "v1" => {
                if let Some(bytes) = unhex(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Checked before the MACs: a stale delivery is refused whatever it carries.
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    let signed = signed_payload(t, payload);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        for sig in &signatures {
            // `hmac::verify` compares in constant time.
            if hmac::verify(&key, &signed, sig).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `Stripe-Signature` header Stripe would send for `payload` at `t` with `secret` (tests,
/// and the test helpers of other crates).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signed_payload(t, payload));
    format!("t={t},v1={}", crate::db::hex(tag.as_ref()))
}

fn signed_payload(t: i64, payload: &[u8]) -> Vec<u8> {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    signed
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_of_some_length";

    #[test]
    fn a_signature_stripe_documents_verifies_and_a_changed_body_does_not() {
        let body = br#"{"id":"evt_1","type":"invoice.payment_succeeded"}"#;
        let header = sign(body, SECRET, 1_700_000_000);
        let secrets = [Secret::new(SECRET)];
        assert_eq!(
            verify(&header, body, &secrets, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        let forged = br#"{"id":"evt_1","type":"invoice.payment_failed"}"#;
        assert_eq!(
            verify(&header, forged, &secrets, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, body, &secrets, 1_700_000_301, 300),
            Err(SignatureError::Stale)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,t=2,v1=00"] {
            assert_eq!(
                verify(bad, body, &secrets, 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_v1_with_any_secret_verifies_so_secrets_can_be_rolled() {
        let body = b"{}";
        let old = sign(body, "whsec_old_secret_0123456789", 10);
        let new = sign(body, "whsec_new_secret_0123456789", 10);
        // Stripe sends one v1 per active secret while a secret is rolled.
        let both = format!("{},v1={}", new, old.split("v1=").nth(1).unwrap_or(""));
        let secrets = [
            Secret::new("whsec_unrelated_0123456789"),
            Secret::new("whsec_old_secret_0123456789"),
        ];
        assert_eq!(verify(&both, body, &secrets, 10, 300), Ok(10));
        assert_eq!(verify(&old, body, &secrets, 10, 300), Ok(10));
        assert_eq!(
            verify(&new, body, &secrets, 10, 300),
            Err(SignatureError::Mismatch)
        );
    }
}
