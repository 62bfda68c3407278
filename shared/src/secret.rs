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

type LoadSecret = dyn Fn() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<SecretString, crate::ports::PortError>> + Send>,
    > + Send
    + Sync;

/// A secret read when it is first needed, not at start-up (a Lambda's init makes no network
/// call), then kept. A failed read is not kept: the next use reads again.
#[derive(Clone)]
pub struct LazySecret {
    cell: std::sync::Arc<tokio::sync::OnceCell<SecretString>>,
    load: Option<std::sync::Arc<LoadSecret>>,
}

impl LazySecret {
    /// Read by `load` on first use.
    pub fn load<F, Fut>(load: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<SecretString, crate::ports::PortError>>
            + Send
            + 'static,
    {
        Self {
            cell: std::sync::Arc::new(tokio::sync::OnceCell::new()),
            load: Some(std::sync::Arc::new(move || Box::pin(load()))),
        }
    }

    /// The secret, reading it the first time.
    pub async fn get(&self) -> Result<&SecretString, crate::ports::PortError> {
        self.cell
            .get_or_try_init(|| async {
                match &self.load {
                    Some(load) => load().await,
                    None => Err(crate::ports::PortError::Unavailable(
                        "secret not loaded".into(),
                    )),
                }
            })
            .await
    }

    /// The secret if [`LazySecret::get`] has read it.
    pub fn loaded(&self) -> Option<&SecretString> {
        self.cell.get()
    }
}

impl From<SecretString> for LazySecret {
    fn from(secret: SecretString) -> Self {
        Self {
            cell: std::sync::Arc::new(tokio::sync::OnceCell::new_with(Some(secret))),
            load: None,
        }
    }
}

impl fmt::Debug for LazySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LazySecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lazy_secret_is_read_on_first_use_once_and_again_after_a_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reads = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let lazy = LazySecret::load(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(crate::ports::PortError::Unavailable("down".into()))
                } else {
                    Ok(SecretString::new("s3cret"))
                }
            }
        });
        assert_eq!(reads.load(Ordering::SeqCst), 0, "nothing read before use");
        assert!(lazy.loaded().is_none());
        assert!(lazy.get().await.is_err());
        assert_eq!(lazy.get().await.unwrap().expose(), "s3cret");
        assert_eq!(lazy.clone().get().await.unwrap().expose(), "s3cret");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(lazy.loaded().unwrap().expose(), "s3cret");
        assert!(!format!("{lazy:?}").contains("s3cret"));
        let ready = LazySecret::from(SecretString::new("x"));
        assert_eq!(ready.loaded().unwrap().expose(), "x");
    }

    #[test]
    fn never_printed() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
