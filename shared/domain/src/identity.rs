//! People signed in with OpenID Connect: the ID token an issuer (Cognito, Entra ID, Google
//! Workspace, …) gives the console, verified here with no I/O — the signing keys (the issuer's
//! JWKS) and the time come in as arguments.
//!
//! [`verify`] accepts a token only if it is a compact JWS signed with RS256 by a key of the set
//! (named by its `kid`), issued by the configured issuer (`iss`, exactly), for the configured
//! client (`aud`, or one of its values), not expired (`exp`) and already valid (`nbf`, `iat`),
//! each with [`LEEWAY_SECS`] for clocks apart, and if it names the person by an `email` that the
//! issuer has not said is unverified (`email_verified: false` is refused; issuers that do not
//! send the claim, as Entra ID, are trusted for the address they send). Roles come from a groups
//! claim (`cognito:groups` on Cognito, `groups` or `roles` elsewhere: [`OidcConfig::groups_claim`]):
//! the group names `agent`, `supervisor` and `admin`, any other ignored.
//!
//! Only RS256: the algorithm every issuer above signs ID tokens with. A token naming another
//! algorithm, `none` included, is refused before any key is looked at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// Seconds of clock difference allowed between the issuer and this function.
pub const LEEWAY_SECS: i64 = 60;
/// The groups claim when none is configured: Cognito's.
pub const DEFAULT_GROUPS_CLAIM: &str = "cognito:groups";
/// Longest token accepted (ID tokens are 1–4 KB; a group-heavy Entra token stays far below).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Which issuer and client the tokens must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer identifier (`iss`), e.g. `https://cognito-idp.{region}.amazonaws.com/{poolId}`,
    /// without a trailing slash unless the issuer's own has one.
    pub issuer: String,
    /// The client (application) id the tokens are issued to (`aud`).
    pub client_id: String,
    /// The claim holding the person's groups.
    pub groups_claim: String,
}

impl OidcConfig {
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
        }
    }

    pub fn with_groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = claim.into();
        self
    }
}

/// What a person may do, from their groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    fn from_group(group: &str) -> Option<Self> {
        match group {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A person the issuer vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer's stable id of the person (`sub`).
    pub subject: String,
    /// Lower-cased: how agents are found ([`normalize_email`]).
    pub email: String,
    pub roles: BTreeSet<Role>,
    /// When the token stops being accepted, epoch seconds.
    pub expires_at: i64,
}

impl Identity {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a token is refused. The messages name what is wrong and never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the token is not a signed JWT: {0}")]
    Malformed(&'static str),
    #[error("the token is signed with {0}; only RS256 is accepted")]
    Algorithm(String),
    #[error("the token's signing key is not one of the issuer's keys")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token is for another client")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token names no email address")]
    NoEmail,
    #[error("the issuer says the email address is not verified")]
    EmailNotVerified,
}

/// One key of an issuer's JSON Web Key Set (only what RS256 needs; other members ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Jwk {
    #[serde(default)]
    pub kid: Option<String>,
    pub kty: String,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent, base64url.
    #[serde(default)]
    pub e: Option<String>,
}

/// An issuer's JSON Web Key Set (`jwks_uri`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The RSA signing key named `kid` (a set of one key may omit kids).
    pub fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        let usable = |k: &&Jwk| {
            k.kty == "RSA"
                && k.use_.as_deref().is_none_or(|u| u == "sig")
                && k.alg.as_deref().is_none_or(|a| a == "RS256")
        };
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(usable)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut rsa = self.keys.iter().filter(usable);
                match (rsa.next(), rsa.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

/// Where a browser signs in at the issuer, and where the code it brings back becomes tokens
/// (the issuer's discovery document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcEndpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// Where signing out at the issuer ends its session too, when it has one.
    pub end_session_endpoint: Option<String>,
}

/// An authorization code to exchange (authorization code flow with PKCE, public client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeExchange {
    pub code: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub client_id: String,
}

/// The issuer's answer to a code exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    Issued {
        id_token: String,
    },
    /// The issuer refused the code (`invalid_grant` …: used, expired, another verifier).
    Refused {
        error: String,
    },
}

/// The header's `kid`, once the token is known to be a three-part JWS with `alg: RS256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub kid: Option<String>,
}

/// Whether `token` has the shape of a compact JWS (three base64url parts): what tells an ID
/// token from an agent API token on the same `Authorization` header.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let shaped = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    shaped(parts.next()) && shaped(parts.next()) && shaped(parts.next()) && parts.next().is_none()
}

/// Reads the header (algorithm checked): which key to look for.
pub fn header(token: &str) -> Result<TokenHeader, IdentityError> {
    let (header, _, _) = split(token)?;
    let header: Value = decode_json(header, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(IdentityError::Algorithm(if alg.is_empty() {
            "no algorithm".into()
        } else {
            alg.chars().take(16).collect()
        }));
    }
    if header.get("crit").is_some() {
        return Err(IdentityError::Malformed("critical header extensions"));
    }
    Ok(TokenHeader {
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Verifies `token` against `keys` and `config` at `now_secs` (see the module documentation).
pub fn verify(
    token: &str,
    keys: &JwkSet,
    config: &OidcConfig,
    now_secs: i64,
) -> Result<Identity, IdentityError> {
    let TokenHeader { kid } = header(token)?;
    let key = keys.find(kid.as_deref()).ok_or(IdentityError::UnknownKey)?;
    let (head, payload, signature) = split(token)?;
    let n = key
        .n
        .as_deref()
        .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
        .ok_or(IdentityError::UnknownKey)?;
    let e = key
        .e
        .as_deref()
        .and_then(|e| URL_SAFE_NO_PAD.decode(e).ok())
        .ok_or(IdentityError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| IdentityError::Malformed("signature is not base64url"))?;
    let signed = &token[..head.len() + 1 + payload.len()];
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .map_err(|_| IdentityError::Signature)?;
    let claims: Value = decode_json(payload, "payload")?;
    identity(&claims, config, now_secs)
}

/// The checks on verified claims.
fn identity(claims: &Value, config: &OidcConfig, now: i64) -> Result<Identity, IdentityError> {
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(IdentityError::Issuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.client_id,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str() == Some(config.client_id.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(IdentityError::Audience);
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as i64);
    let expires_at = time("exp").ok_or(IdentityError::Malformed("no exp claim"))?;
    if expires_at + LEEWAY_SECS <= now {
        return Err(IdentityError::Expired);
    }
    for name in ["nbf", "iat"] {
        if time(name).is_some_and(|t| t - LEEWAY_SECS > now) {
            return Err(IdentityError::NotYetValid);
        }
    }
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(normalize_email)
        .filter(|e| e.contains('@'))
        .ok_or(IdentityError::NoEmail)?;
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(v)) => *v,
        // Cognito has sent it as a string.
        Some(Value::String(v)) => v != "false",
        _ => true,
    };
    if !verified {
        return Err(IdentityError::EmailNotVerified);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(IdentityError::Malformed("no sub claim"))?
        .to_owned();
    let roles = match claims.get(config.groups_claim.as_str()) {
        Some(Value::Array(groups)) => groups
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Role::from_group)
            .collect(),
        Some(Value::String(groups)) => groups
            .split([' ', ','])
            .filter_map(Role::from_group)
            .collect(),
        _ => BTreeSet::new(),
    };
    Ok(Identity {
        subject,
        email,
        roles,
        expires_at,
    })
}

/// The form agents are found by: trimmed, lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn split(token: &str) -> Result<(&str, &str, &str), IdentityError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(IdentityError::Malformed("too long"));
    }
    if !looks_like_jwt(token) {
        return Err(IdentityError::Malformed("not three base64url parts"));
    }
    let mut parts = token.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s)) => Ok((h, p, s)),
        _ => Err(IdentityError::Malformed("not three base64url parts")),
    }
}

fn decode_json(part: &str, what: &'static str) -> Result<Value, IdentityError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        IdentityError::Malformed(if what == "header" {
            "header is not base64url"
        } else {
            "payload is not base64url"
        })
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(IdentityError::Malformed(if what == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    include!("../tests/fixtures/oidc_signer.rs");

    struct Signer(TestSigner);

    impl Signer {
        fn test_key() -> Self {
            Self(TestSigner::from_pkcs8_base64(include_str!(
                "../tests/fixtures/oidc-test-key.pk8.b64"
            )))
        }

        fn jwk(&self, kid: &str) -> Jwk {
            serde_json::from_value(self.0.jwk(kid)).unwrap()
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            self.0.sign(header, claims)
        }
    }

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://issuer.example/pool";

    fn config() -> OidcConfig {
        OidcConfig::new(ISSUER, "console-client")
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": "console-client", "sub": "u-1",
            "email": "Aiko@Example.COM", "email_verified": true,
            "iat": NOW - 10, "exp": NOW + 3600,
            "cognito:groups": ["agent", "admin", "other"],
        })
    }

    fn header(kid: &str) -> Value {
        json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
    }

    fn keys(signer: &Signer) -> JwkSet {
        JwkSet {
            keys: vec![signer.jwk("k1")],
        }
    }

    #[test]
    fn a_valid_token_names_the_person_and_roles() {
        let signer = Signer::test_key();
        let token = signer.sign(&header("k1"), &claims());
        let id = verify(&token, &keys(&signer), &config(), NOW).unwrap();
        assert_eq!(id.email, "aiko@example.com");
        assert_eq!(id.subject, "u-1");
        assert_eq!(
            id.roles,
            BTreeSet::from([Role::Agent, Role::Admin]),
            "unknown groups ignored"
        );
        assert_eq!(id.expires_at, NOW + 3600);
        assert!(looks_like_jwt(&token));
        assert!(!looks_like_jwt("oma_abc.def"));
        assert!(!looks_like_jwt("a.b.c.d"));
    }

    #[test]
    fn each_claim_is_checked() {
        let signer = Signer::test_key();
        let keys = keys(&signer);
        let refused = |change: &dyn Fn(&mut Value), now: i64| {
            let mut c = claims();
            change(&mut c);
            verify(&signer.sign(&header("k1"), &c), &keys, &config(), now).unwrap_err()
        };
        assert_eq!(
            refused(&|c| c["iss"] = json!("https://evil.example"), NOW),
            IdentityError::Issuer
        );
        assert_eq!(
            refused(&|c| c["aud"] = json!("other-client"), NOW),
            IdentityError::Audience
        );
        assert_eq!(
            refused(&|c| c["aud"] = json!(["a", "b"]), NOW),
            IdentityError::Audience
        );
        assert_eq!(
            refused(&|_| {}, NOW + 3600 + LEEWAY_SECS),
            IdentityError::Expired
        );
        assert_eq!(
            refused(&|c| c["nbf"] = json!(NOW + 600), NOW),
            IdentityError::NotYetValid
        );
        assert_eq!(
            refused(&|c| c["email_verified"] = json!(false), NOW),
            IdentityError::EmailNotVerified
        );
        assert_eq!(
            refused(
                &|c| {
                    c.as_object_mut().unwrap().remove("email");
                },
                NOW
            ),
            IdentityError::NoEmail
        );
        assert_eq!(
            refused(
                &|c| {
                    c.as_object_mut().unwrap().remove("exp");
                },
                NOW
            ),
            IdentityError::Malformed("no exp claim")
        );
        // Within the leeway, an expired token still passes; an audience list with ours passes.
        let mut c = claims();
        c["aud"] = json!(["x", "console-client"]);
        c.as_object_mut().unwrap().remove("email_verified");
        let token = signer.sign(&header("k1"), &c);
        assert!(verify(&token, &keys, &config(), NOW + 3600 + LEEWAY_SECS - 1).is_ok());
    }

    #[test]
    fn signature_key_and_algorithm_are_checked() {
        let signer = Signer::test_key();
        let keys = keys(&signer);
        let token = signer.sign(&header("k1"), &claims());
        // A payload changed after signing.
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged["cognito:groups"] = json!(["admin"]);
        forged["email"] = json!("boss@example.com");
        let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&parts.join("."), &keys, &config(), NOW).unwrap_err(),
            IdentityError::Signature
        );
        // Unknown kid; alg none and HS256 refused before any key.
        let other = signer.sign(&header("k2"), &claims());
        assert_eq!(
            verify(&other, &keys, &config(), NOW).unwrap_err(),
            IdentityError::UnknownKey
        );
        for alg in ["none", "HS256", "RS512"] {
            let h = json!({"alg": alg, "kid": "k1"});
            let token = signer.sign(&h, &claims());
            assert_eq!(
                verify(&token, &keys, &config(), NOW).unwrap_err(),
                IdentityError::Algorithm(alg.into())
            );
        }
        assert!(matches!(
            verify("abc", &keys, &config(), NOW),
            Err(IdentityError::Malformed(_))
        ));
        assert!(matches!(
            verify("e30.e30.", &keys, &config(), NOW),
            Err(IdentityError::Malformed(_))
        ));
        // A set of one key may be used without a kid.
        let no_kid = signer.sign(&json!({"alg": "RS256"}), &claims());
        assert!(verify(&no_kid, &keys, &config(), NOW).is_ok());
    }

    #[test]
    fn groups_come_from_the_configured_claim() {
        let signer = Signer::test_key();
        let mut c = claims();
        c["groups"] = json!("supervisor agent");
        let token = signer.sign(&header("k1"), &c);
        let config = config().with_groups_claim("groups");
        let id = verify(&token, &keys(&signer), &config, NOW).unwrap();
        assert_eq!(id.roles, BTreeSet::from([Role::Agent, Role::Supervisor]));
    }

    #[test]
    fn jwks_parse_as_issuers_publish_them() {
        let set: JwkSet = serde_json::from_value(json!({"keys": [
            {"kid": "a", "kty": "RSA", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kid": "b", "kty": "EC", "crv": "P-256", "x": "..", "y": ".."},
            {"kid": "c", "kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]}))
        .unwrap();
        assert!(set.find(Some("a")).is_some());
        assert!(set.find(Some("b")).is_none(), "not RSA");
        assert!(set.find(Some("c")).is_none(), "an encryption key");
        assert!(set.find(None).is_some(), "one usable key");
    }
}
