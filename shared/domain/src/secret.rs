//! A string that never prints: `Debug` and `Display` show `[redacted]`, and it is not `Serialize`.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: call only where it is used (signing, an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret: their SHA-256 digests compared in constant time, so
    /// neither the content nor the length of the secret shows in the time taken.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let expected: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&expected))
    }
}

#[cfg(test)]
mod matches_tests {
    use super::*;

    #[test]
    fn a_secret_matches_itself_only() {
        let secret = SecretString::new("s3cret-token");
        assert!(secret.matches("s3cret-token"));
        for other in ["", "s3cret-toke", "s3cret-token0", "S3CRET-TOKEN"] {
            assert!(!secret.matches(other), "{other:?}");
        }
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
