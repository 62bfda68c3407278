//! `X-Line-Signature`: base64 of HMAC-SHA256 over the raw request body, keyed by the channel secret.
//!
//! Verification decodes the header and compares MACs in constant time (`Mac::verify_slice`), and
//! runs before the body is parsed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. Callers answer every variant the same way (401): the distinction
/// exists for logs and tests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header is not valid base64 of a 32-byte MAC")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// A channel secret keyed into HMAC-SHA256 once, for verifying many bodies.
#[derive(Clone)]
pub struct SignatureKey(HmacSha256);

impl std::fmt::Debug for SignatureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureKey([redacted])")
    }
}

impl SignatureKey {
    pub fn new(channel_secret: &[u8]) -> Self {
        Self(mac(channel_secret, b""))
    }

    /// [`verify_signature`] with this key.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
        let expected = decode_signature(signature)?;
        let mut mac = self.0.clone();
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// The signature LINE would send for `body` under `channel_secret`.
pub fn sign(channel_secret: &[u8], body: &[u8]) -> String {
    BASE64.encode(mac(channel_secret, body).finalize().into_bytes())
}

/// Checks `signature` (the `X-Line-Signature` header value) against `body`, in constant time.
pub fn verify_signature(
    channel_secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let expected = decode_signature(signature)?;
    mac(channel_secret, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The 32 MAC bytes of an `X-Line-Signature` header.
fn decode_signature(signature: Option<&str>) -> Result<[u8; 32], SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?.trim();
    if signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    // A SHA-256 MAC is 32 bytes: 44 base64 characters with padding. Decode into a fixed buffer so
    // an oversized header costs nothing.
    let mut decoded = [0u8; 33];
    let n = BASE64
        .decode_slice(signature.as_bytes(), &mut decoded)
        .map_err(|_| SignatureError::Malformed)?;
    if n != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut expected = [0u8; 32];
    expected.copy_from_slice(&decoded[..32]);
    Ok(expected)
}

fn mac(channel_secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(channel_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac_key(),
    };
    mac.update(body);
    mac
}

#[cold]
fn unreachable_hmac_key() -> ! {
    // `Hmac<Sha256>` implements `KeyInit` for every key length; this is never reached.
    panic!("HMAC-SHA256 rejected a key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_SECRET: &str = "8c570fa6dd201bb328f1c1eac23a96d8";
    const VECTOR_BODY: &str = r#"{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}"#;
    const VECTOR_SIGNATURE: &str = "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=";

    #[test]
    fn line_published_vector_signs_and_verifies() {
        assert_eq!(
            sign(VECTOR_SECRET.as_bytes(), VECTOR_BODY.as_bytes()),
            VECTOR_SIGNATURE
        );
        assert_eq!(
            verify_signature(
                VECTOR_SECRET.as_bytes(),
                VECTOR_BODY.as_bytes(),
                Some(VECTOR_SIGNATURE)
            ),
            Ok(())
        );
    }

    #[test]
    fn raw_bytes_are_signed_not_reserialised_json() {
        // Bodies LINE sends with escapes, emoji, newlines and CRLF: any normalisation breaks them.
        let bodies: [&[u8]; 5] = [
            "{\"destination\":\"U1\",\"events\":[{\"type\":\"message\",\"message\":{\"type\":\"text\",\"text\":\"Thanks 🙏 😀\"}}]}".as_bytes(),
            br#"{"destination":"U1","events":[{"message":{"text":"line1\nline2"}}]}"#,
            br#"{"destination":"U1","events":[{"message":{"text":"back\\slash \"quoted\""}}]}"#,
            br#"{"destination":"U1","events":[{"message":{"text":"\uD83E\uDD14 escaped surrogate"}}]}"#,
            b"{\"destination\":\"U1\",\r\n\"events\":[]}\r\n",
        ];
        for body in bodies {
            let sig = sign(VECTOR_SECRET.as_bytes(), body);
            assert_eq!(
                verify_signature(VECTOR_SECRET.as_bytes(), body, Some(&sig)),
                Ok(())
            );
            // The same JSON re-serialised (escapes resolved, whitespace dropped) must not verify.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                let reserialised = serde_json::to_vec(&v).unwrap_or_default();
                if reserialised != body {
                    assert_eq!(
                        verify_signature(VECTOR_SECRET.as_bytes(), &reserialised, Some(&sig)),
                        Err(SignatureError::Mismatch)
                    );
                }
            }
        }
    }

    #[test]
    fn a_flipped_body_byte_fails() {
        let mut body = VECTOR_BODY.as_bytes().to_vec();
        body[10] ^= 0x01;
        assert_eq!(
            verify_signature(VECTOR_SECRET.as_bytes(), &body, Some(VECTOR_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_signature_character_fails() {
        for i in 0..43 {
            let mut sig: Vec<char> = VECTOR_SIGNATURE.chars().collect();
            sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
            let sig: String = sig.into_iter().collect();
            assert!(
                verify_signature(VECTOR_SECRET.as_bytes(), VECTOR_BODY.as_bytes(), Some(&sig))
                    .is_err(),
                "changed character {i} still verified"
            );
        }
    }

    #[test]
    fn missing_empty_and_malformed_headers_fail() {
        let (s, b) = (VECTOR_SECRET.as_bytes(), VECTOR_BODY.as_bytes());
        assert_eq!(verify_signature(s, b, None), Err(SignatureError::Missing));
        assert_eq!(
            verify_signature(s, b, Some("")),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(s, b, Some("not base64!")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(s, b, Some("AAAA")),
            Err(SignatureError::Malformed)
        );
        let long = "A".repeat(4096);
        assert_eq!(
            verify_signature(s, b, Some(&long)),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_different_secret_fails() {
        assert_eq!(
            verify_signature(
                b"another-secret",
                VECTOR_BODY.as_bytes(),
                Some(VECTOR_SIGNATURE)
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_prekeyed_signature_key_verifies_like_the_function() {
        let key = SignatureKey::new(VECTOR_SECRET.as_bytes());
        assert_eq!(
            key.verify(VECTOR_BODY.as_bytes(), Some(VECTOR_SIGNATURE)),
            Ok(())
        );
        assert_eq!(
            key.verify(VECTOR_BODY.as_bytes(), Some(VECTOR_SIGNATURE)),
            Ok(()),
            "reusable"
        );
        assert_eq!(
            key.verify(b"{}", Some(VECTOR_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(key.verify(b"{}", None), Err(SignatureError::Missing));
        assert!(!format!("{key:?}").contains(VECTOR_SECRET));
    }

    proptest! {
        #[test]
        fn prekeyed_and_direct_verification_agree(secret in proptest::collection::vec(any::<u8>(), 1..64),
                                                   body in proptest::collection::vec(any::<u8>(), 0..512),
                                                   tamper in any::<bool>()) {
            let mut sig = sign(&secret, &body);
            if tamper { sig = sign(b"other", &body); }
            prop_assert_eq!(SignatureKey::new(&secret).verify(&body, Some(&sig)), verify_signature(&secret, &body, Some(&sig)));
        }

        #[test]
        fn verify_of_sign_holds(secret in proptest::collection::vec(any::<u8>(), 1..64),
                                body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let sig = sign(&secret, &body);
            prop_assert_eq!(verify_signature(&secret, &body, Some(&sig)), Ok(()));
        }

        #[test]
        fn any_single_bit_change_in_body_fails(body in proptest::collection::vec(any::<u8>(), 1..1024),
                                               bit in any::<usize>()) {
            let secret = VECTOR_SECRET.as_bytes();
            let sig = sign(secret, &body);
            let mut changed = body.clone();
            let bit = bit % (changed.len() * 8);
            changed[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(verify_signature(secret, &changed, Some(&sig)), Err(SignatureError::Mismatch));
        }

        #[test]
        fn any_single_bit_change_in_mac_fails(body in proptest::collection::vec(any::<u8>(), 0..512),
                                              bit in 0usize..256) {
            let secret = VECTOR_SECRET.as_bytes();
            let mut mac = BASE64.decode(sign(secret, &body)).unwrap_or_default();
            mac[bit / 8] ^= 1 << (bit % 8);
            let sig = BASE64.encode(&mac);
            prop_assert_eq!(verify_signature(secret, &body, Some(&sig)), Err(SignatureError::Mismatch));
        }

        #[test]
        fn arbitrary_headers_and_bodies_never_panic(header in ".{0,100}",
                                                    body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = verify_signature(VECTOR_SECRET.as_bytes(), &body, Some(&header));
        }
    }
}
