//! PagerDuty's webhook signatures: `X-PagerDuty-Signature` lists `v1=` HMAC-SHA256s of the raw
//! body, one per secret during a rotation. The work a request can cause is bounded by the
//! settings, not by the request: at most [`MAX_SIGNATURES`] candidates, each exactly `v1=` and
//! 64 hex digits (anything else is refused before any MAC), and one MAC per configured secret.

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Candidate signatures read from one request.
pub const MAX_SIGNATURES: usize = 10;

/// Whether one of `secrets` signed `body` as the header says; false for a malformed header.
pub fn signed(secrets: &[SecretString], header: &str, body: &[u8]) -> bool {
    let Some(candidates) = candidates(header) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()) else {
            return false;
        };
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        // Every candidate is compared, in constant time, so timing tells nothing.
        candidates.iter().fold(false, |found, candidate| {
            found
                | bool::from(subtle::ConstantTimeEq::ct_eq(
                    expected.as_slice(),
                    candidate.as_slice(),
                ))
        })
    })
}

/// The candidates: each exactly `v1=` and 64 hex digits, at most [`MAX_SIGNATURES`]; None
/// for anything else.
fn candidates(header: &str) -> Option<Vec<[u8; 32]>> {
    let mut candidates = Vec::new();
    for entry in header.split(',') {
        if candidates.len() == MAX_SIGNATURES {
            return None;
        }
        let hex = entry.trim().strip_prefix("v1=")?;
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        candidates.push(bytes);
    }
    Some(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_ten_candidates_or_a_malformed_one_is_refused_whole() {
        let one = format!("v1={}", "ab".repeat(32));
        assert_eq!(candidates(&one).map(|c| c.len()), Some(1));
        assert_eq!(
            candidates(&vec![one.clone(); 10].join(",")).map(|c| c.len()),
            Some(10)
        );
        assert!(candidates(&vec![one.clone(); 11].join(",")).is_none());
        for bad in [
            "",
            "v1=ab",
            "v0=00",
            &format!("{one},x"),
            &format!("v1={}", "zz".repeat(32)),
        ] {
            assert!(candidates(bad).is_none(), "{bad}");
        }
    }
}
