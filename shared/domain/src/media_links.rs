//! Long-lived signed links to media in object storage, for LINE to fetch outbound images, video
//! and audio — possibly days after the message was sent.
//!
//! A link is `{base_url}/media/{key}?expires={expires_at}&signature={sig}` where `expires_at` is
//! in epoch seconds and `sig` is base64url without padding of HMAC-SHA256 under the signing secret
//! over `"{key}\n{expires_at}"`. Keys pass [`check_key`] (`[A-Za-z0-9/._-]`, no empty, `.` or
//! `..` segment), so they need no percent-encoding and cannot contain the `\n` separator.
//!
//! Verification is pure (the caller passes the time), compares MACs in constant time
//! (`Mac::verify_slice`), checks the signature before the expiry (so only a genuine link is ever
//! reported expired) and never panics. A link is valid while `now < expires_at`.
//!
//! An empty secret signs nothing: [`media_link`] refuses it and [`verify_media_link`] refuses
//! every link under it.

use crate::media::check_key;
use crate::secret::SecretString;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// How long a link stays valid by default: 30 days (LINE may fetch media days after sending; at
/// least 14 days are needed).
pub const DEFAULT_LINK_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Characters in a signature: 32 MAC bytes in base64url without padding.
pub const SIGNATURE_LEN: usize = 43;

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Genuine, but `now >= expires_at`.
    #[error("media link expired")]
    Expired,
    /// The signature does not match the key and expiry (or the secret is empty).
    #[error("media link signature does not match")]
    BadSignature,
    /// The key is not a valid object key, or the signature is not base64url of a 32-byte MAC
    /// (from [`media_link`]: the key is invalid or the secret empty).
    #[error("malformed media link")]
    Malformed,
}

/// `now_secs + lifetime` in epoch seconds, saturating.
pub fn link_expiry(now_secs: i64, lifetime: Duration) -> i64 {
    now_secs.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX))
}

/// The signed link to `key`, valid until `expires_at` (epoch seconds). A trailing `/` on
/// `base_url` is dropped. Fails with [`LinkError::Malformed`] if `key` does not pass
/// [`check_key`] or `secret` is empty.
pub fn media_link(
    base_url: &str,
    key: &str,
    expires_at: i64,
    secret: &SecretString,
) -> Result<String, LinkError> {
    let key = check_key(key).map_err(|_| LinkError::Malformed)?;
    let mac = mac(secret, key, expires_at).ok_or(LinkError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let base = base_url.trim_end_matches('/');
    Ok(format!(
        "{base}/media/{key}?expires={expires_at}&signature={signature}"
    ))
}

/// The object key a [`media_link`] names (`{base}/media/{key}?…`), if it is a valid key: the
/// inverse of [`media_link`], for finding what a stored link points at (erasure).
pub fn key_of_link(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("/media/")?;
    let key = rest.split(['?', '#']).next()?;
    check_key(key).ok()
}

/// Checks a link's `key`, `expires_at` and `signature` (the query value) at `now_secs` (epoch
/// seconds): [`LinkError::Malformed`] for an invalid key or a signature that is not base64url of
/// 32 bytes, then [`LinkError::BadSignature`], then [`LinkError::Expired`].
pub fn verify_media_link(
    key: &str,
    expires_at: i64,
    signature: &str,
    secret: &SecretString,
    now_secs: i64,
) -> Result<(), LinkError> {
    let key = check_key(key).map_err(|_| LinkError::Malformed)?;
    if signature.len() != SIGNATURE_LEN {
        return Err(LinkError::Malformed);
    }
    // 43 characters decode to 32 bytes; the engine's estimate asks for 33. The no-padding engine
    // refuses padding and non-zero trailing bits, so each MAC has exactly one spelling.
    let mut given = [0u8; 33];
    let n = URL_SAFE_NO_PAD
        .decode_slice(signature.as_bytes(), &mut given)
        .map_err(|_| LinkError::Malformed)?;
    if n != 32 {
        return Err(LinkError::Malformed);
    }
    mac(secret, key, expires_at)
        .ok_or(LinkError::BadSignature)?
        .verify_slice(&given[..32])
        .map_err(|_| LinkError::BadSignature)?;
    if now_secs >= expires_at {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// The MAC over `"{key}\n{expires_at}"`; `None` for an empty secret.
fn mac(secret: &SecretString, key: &str, expires_at: i64) -> Option<HmacSha256> {
    let secret = secret.expose().as_bytes();
    if secret.is_empty() {
        return None;
    }
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(key.as_bytes());
    mac.update(b"\n");
    mac.update(expires_at.to_string().as_bytes());
    Some(mac)
}

/// Where the router keeps a customer's message content: `media/{accountId}/{messageId}`, for ids
/// safe in a key (`None` otherwise). The one definition: erasure and purge find media by it.
pub fn inbound_media_key(account_id: &str, message_id: &str) -> Option<String> {
    (key_safe(account_id) && key_safe(message_id))
        .then(|| format!("{INBOUND_MEDIA_PREFIX}{account_id}/{message_id}"))
}

/// The prefix of every inbound media key.
pub const INBOUND_MEDIA_PREFIX: &str = "media/";

/// The prefix of one account's inbound media (for a purge), if the id is safe in a key.
pub fn inbound_media_prefix(account_id: &str) -> Option<String> {
    key_safe(account_id).then(|| format!("{INBOUND_MEDIA_PREFIX}{account_id}/"))
}

fn key_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_links_key_is_read_back_only_when_valid() {
        let secret = SecretString::new("k");
        let link = media_link("https://x.example/", "agent-media/ag1/f.png", 9, &secret).unwrap();
        assert_eq!(key_of_link(&link), Some("agent-media/ag1/f.png"));
        assert_eq!(key_of_link("https://x.example/media/a/../b?x"), None);
        assert_eq!(key_of_link("https://cdn.example/photo.jpg"), None);
    }

    #[test]
    fn inbound_media_keys_are_made_in_one_place_for_safe_ids_only() {
        assert_eq!(
            inbound_media_key("acc-1", "468789577898262530").as_deref(),
            Some("media/acc-1/468789577898262530")
        );
        assert_eq!(
            inbound_media_prefix("acc-1").as_deref(),
            Some("media/acc-1/")
        );
        for (account, message) in [("acc/1", "1"), ("acc", "../x"), ("", "1"), ("acc", "")] {
            assert_eq!(
                inbound_media_key(account, message),
                None,
                "{account} {message}"
            );
        }
        assert_eq!(inbound_media_prefix("a/b"), None);
    }
    use proptest::prelude::*;

    const BASE: &str = "https://api.example.com";
    const KEY: &str = "outbound/acc-1/01HXYZ.jpg";
    const NOW: i64 = 1_700_000_000;

    fn secret() -> SecretString {
        SecretString::new("media-signing-secret")
    }

    /// The link's `(key, expires, signature)`.
    fn parts(link: &str) -> (String, i64, String) {
        let rest = link.strip_prefix(&format!("{BASE}/media/")).unwrap();
        let (key, query) = rest.split_once('?').unwrap();
        let (expires, signature) = query.split_once('&').unwrap();
        (
            key.to_owned(),
            expires.strip_prefix("expires=").unwrap().parse().unwrap(),
            signature.strip_prefix("signature=").unwrap().to_owned(),
        )
    }

    fn link(key: &str, expires_at: i64) -> (String, i64, String) {
        parts(&media_link(BASE, key, expires_at, &secret()).unwrap())
    }

    #[test]
    fn default_lifetime_is_at_least_14_days() {
        assert!(DEFAULT_LINK_LIFETIME >= Duration::from_secs(14 * 24 * 60 * 60));
        assert_eq!(
            link_expiry(NOW, DEFAULT_LINK_LIFETIME),
            NOW + 30 * 24 * 60 * 60
        );
        assert_eq!(link_expiry(i64::MAX - 1, DEFAULT_LINK_LIFETIME), i64::MAX);
        assert_eq!(link_expiry(NOW, Duration::MAX), i64::MAX);
    }

    #[test]
    fn the_link_has_the_documented_shape() {
        let expires = link_expiry(NOW, DEFAULT_LINK_LIFETIME);
        let url = media_link(BASE, KEY, expires, &secret()).unwrap();
        let mut mac = HmacSha256::new_from_slice(b"media-signing-secret").unwrap();
        mac.update(format!("{KEY}\n{expires}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            url,
            format!("{BASE}/media/{KEY}?expires={expires}&signature={sig}")
        );
        assert_eq!(sig.len(), SIGNATURE_LEN);
        // A trailing slash on the base is not doubled.
        assert_eq!(
            media_link(&format!("{BASE}/"), KEY, expires, &secret()).unwrap(),
            url
        );
    }

    #[test]
    fn round_trip() {
        for key in [KEY, "media/acc-1/468789577898262530", "a"] {
            let (k, expires, sig) = link(key, NOW + 60);
            assert_eq!(k, key);
            assert_eq!(verify_media_link(&k, expires, &sig, &secret(), NOW), Ok(()));
            assert_eq!(
                verify_media_link(&k, expires, &sig, &secret(), NOW + 59),
                Ok(())
            );
        }
    }

    #[test]
    fn a_changed_key_expiry_secret_or_signature_fails() {
        let (key, expires, sig) = link(KEY, NOW + 60);
        let s = secret();
        assert_eq!(
            verify_media_link("outbound/acc-1/01HXYZ.jpeg", expires, &sig, &s, NOW),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_media_link("outbound/acc-2/01HXYZ.jpg", expires, &sig, &s, NOW),
            Err(LinkError::BadSignature)
        );
        // Extending the expiry (or shortening it) breaks the signature.
        for other in [expires + 1, expires - 1, expires + 86_400 * 365, i64::MAX] {
            assert_eq!(
                verify_media_link(&key, other, &sig, &s, NOW),
                Err(LinkError::BadSignature)
            );
        }
        assert_eq!(
            verify_media_link(&key, expires, &sig, &SecretString::new("other"), NOW),
            Err(LinkError::BadSignature)
        );
        // Every single-character change is refused (most as a mismatch; a change of the last
        // character's unused bits as malformed).
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..sig.len() {
            for c in alphabet
                .chars()
                .filter(|&c| c != char::from(sig.as_bytes()[i]))
            {
                let mut changed = sig.clone().into_bytes();
                changed[i] = c as u8;
                let changed = String::from_utf8(changed).unwrap();
                assert!(
                    verify_media_link(&key, expires, &changed, &s, NOW).is_err(),
                    "{changed} verified"
                );
            }
        }
        let mut changed = sig.clone().into_bytes();
        changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify_media_link(&key, expires, &String::from_utf8(changed).unwrap(), &s, NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn an_expired_link_fails() {
        let (key, expires, sig) = link(KEY, NOW);
        assert_eq!(
            verify_media_link(&key, expires, &sig, &secret(), NOW),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify_media_link(&key, expires, &sig, &secret(), NOW + 86_400 * 40),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify_media_link(&key, expires, &sig, &secret(), NOW - 1),
            Ok(())
        );
        // A forged link is a bad signature, expired or not.
        assert_eq!(
            verify_media_link(&key, expires - 10, &sig, &secret(), NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn malformed_signatures_and_keys_fail() {
        let (key, expires, sig) = link(KEY, NOW + 60);
        let s = secret();
        let padded = format!("{sig}=");
        let standard = URL_SAFE_NO_PAD
            .decode(&sig)
            .map(|mac| base64::engine::general_purpose::STANDARD.encode(mac))
            .unwrap();
        let long = "A".repeat(4096);
        for bad in [
            "",
            "not base64!",
            "AAAA",
            &sig[..42],
            &padded,
            &standard,
            &long,
            "+++++++++++++++++++++++++++++++++++++++++++",
            "ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ",
        ] {
            assert_eq!(
                verify_media_link(&key, expires, bad, &s, NOW),
                Err(LinkError::Malformed),
                "{bad:?}"
            );
        }
        for bad_key in [
            "",
            "/outbound/a.jpg",
            "media/../secret",
            "media/a b",
            "a\n1",
        ] {
            assert_eq!(
                verify_media_link(bad_key, expires, &sig, &s, NOW),
                Err(LinkError::Malformed),
                "{bad_key:?}"
            );
            assert_eq!(
                media_link(BASE, bad_key, expires, &s),
                Err(LinkError::Malformed)
            );
        }
    }

    #[test]
    fn an_empty_secret_signs_and_verifies_nothing() {
        let empty = SecretString::new("");
        assert_eq!(
            media_link(BASE, KEY, NOW + 60, &empty),
            Err(LinkError::Malformed)
        );
        // The MAC an empty key would give.
        let mut mac = HmacSha256::new_from_slice(b"").unwrap();
        mac.update(format!("{KEY}\n{}", NOW + 60).as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify_media_link(KEY, NOW + 60, &sig, &empty, NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn negative_and_extreme_expiries_round_trip() {
        for expires in [i64::MIN, -1, 0, i64::MAX] {
            let (key, e, sig) = link(KEY, expires);
            assert_eq!(e, expires);
            let result = verify_media_link(&key, e, &sig, &secret(), 0);
            if expires > 0 {
                assert_eq!(result, Ok(()));
            } else {
                assert_eq!(result, Err(LinkError::Expired));
            }
        }
    }

    proptest! {
        #[test]
        fn any_valid_key_and_expiry_round_trip(key in "[A-Za-z0-9_-]{1,20}(/[A-Za-z0-9._-]{0,20}[A-Za-z0-9_-]){0,10}",
                                               expires in any::<i64>(),
                                               now in any::<i64>()) {
            let (k, e, sig) = link(&key, expires);
            prop_assert_eq!(&k, &key);
            let expected = if now < expires { Ok(()) } else { Err(LinkError::Expired) };
            prop_assert_eq!(verify_media_link(&k, e, &sig, &secret(), now), expected);
        }

        #[test]
        fn arbitrary_input_never_panics(key in ".{0,600}",
                                        expires in any::<i64>(),
                                        signature in ".{0,100}",
                                        secret in ".{0,40}",
                                        now in any::<i64>(),
                                        base in ".{0,40}") {
            let secret = SecretString::new(secret);
            let _ = verify_media_link(&key, expires, &signature, &secret, now);
            let _ = media_link(&base, &key, expires, &secret);
        }

        #[test]
        fn arbitrary_signatures_of_the_right_length_do_not_verify(signature in "[A-Za-z0-9_-]{43}") {
            let (key, expires, sig) = link(KEY, NOW + 60);
            prop_assume!(signature != sig);
            prop_assert!(verify_media_link(&key, expires, &signature, &secret(), NOW).is_err());
        }
    }
}
