//! Secrets read when first needed and re-read periodically.

use omniline_domain::secret::SecretString;
use std::fmt;

type LoadSecret = dyn Fn() -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<SecretString, omniline_domain::PortError>>
                + Send,
        >,
    > + Send
    + Sync;

/// How long a [`LazySecret`] read from a store is used before it is read again: a rotation takes
/// effect within this time on every warm instance (channel secrets are re-read as often).
pub const SECRET_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// A secret read when it is first needed, not at start-up (a Lambda's init makes no network
/// call), then kept for [`SECRET_REFRESH`] and read again. A failed first read is not kept: the
/// next use reads again; a failed re-read keeps the value read before (and tries again later).
#[derive(Clone)]
pub struct LazySecret {
    value: std::sync::Arc<std::sync::RwLock<Option<(SecretString, std::time::Instant)>>>,
    reading: std::sync::Arc<tokio::sync::Mutex<()>>,
    load: Option<std::sync::Arc<LoadSecret>>,
    refresh: std::time::Duration,
}

impl LazySecret {
    /// Read by `load` on first use, and again every [`SECRET_REFRESH`].
    pub fn load<F, Fut>(load: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<SecretString, omniline_domain::PortError>>
            + Send
            + 'static,
    {
        Self {
            value: Default::default(),
            reading: Default::default(),
            load: Some(std::sync::Arc::new(move || Box::pin(load()))),
            refresh: SECRET_REFRESH,
        }
    }

    /// Re-reads every `refresh` instead of [`SECRET_REFRESH`] (at most that).
    pub fn refreshed_every(mut self, refresh: std::time::Duration) -> Self {
        self.refresh = refresh.min(SECRET_REFRESH);
        self
    }

    fn fresh(&self) -> Option<SecretString> {
        let value = self.value.read().ok()?;
        let (secret, read_at) = value.as_ref()?;
        (self.load.is_none() || read_at.elapsed() < self.refresh).then(|| secret.clone())
    }

    /// The secret, reading it the first time and once it is [`SECRET_REFRESH`] old.
    pub async fn get(&self) -> Result<SecretString, omniline_domain::PortError> {
        if let Some(secret) = self.fresh() {
            return Ok(secret);
        }
        let Some(load) = &self.load else {
            return Err(omniline_domain::PortError::Unavailable(
                "secret not loaded".into(),
            ));
        };
        // One read at a time; whoever waited finds it read.
        let _reading = self.reading.lock().await;
        if let Some(secret) = self.fresh() {
            return Ok(secret);
        }
        match load().await {
            Ok(secret) => {
                if let Ok(mut value) = self.value.write() {
                    *value = Some((secret.clone(), std::time::Instant::now()));
                }
                Ok(secret)
            }
            Err(e) => match self.value.write().ok().and_then(|mut value| {
                // Keep serving the last value; try again after a tenth of the period.
                let (secret, read_at) = value.as_mut()?;
                *read_at = std::time::Instant::now()
                    .checked_sub(self.refresh - self.refresh / 10)
                    .unwrap_or(*read_at);
                Some(secret.clone())
            }) {
                Some(previous) => {
                    tracing::warn!(error = %e, "secret not re-read; the one read before is used");
                    Ok(previous)
                }
                None => Err(e),
            },
        }
    }

    /// The secret if [`LazySecret::get`] has read it (possibly due for a re-read).
    pub fn loaded(&self) -> Option<SecretString> {
        let value = self.value.read().ok()?;
        value.as_ref().map(|(secret, _)| secret.clone())
    }
}

impl From<SecretString> for LazySecret {
    fn from(secret: SecretString) -> Self {
        Self {
            value: std::sync::Arc::new(std::sync::RwLock::new(Some((
                secret,
                std::time::Instant::now(),
            )))),
            reading: Default::default(),
            load: None,
            refresh: SECRET_REFRESH,
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
                    Err(omniline_domain::PortError::Unavailable("down".into()))
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

    /// Review 1/7 #9: a rotated admin token or media key never took effect on a warm instance.
    #[tokio::test]
    async fn a_lazy_secret_is_read_again_once_old_and_a_failed_re_read_keeps_the_last_one() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reads = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let lazy = LazySecret::load(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Ok(SecretString::new("first")),
                    1 => Ok(SecretString::new("rotated")),
                    _ => Err(omniline_domain::PortError::Unavailable("down".into())),
                }
            }
        })
        .refreshed_every(std::time::Duration::ZERO);
        assert_eq!(lazy.get().await.unwrap().expose(), "first");
        assert_eq!(lazy.get().await.unwrap().expose(), "rotated");
        assert_eq!(
            lazy.get().await.unwrap().expose(),
            "rotated",
            "kept on failure"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        // The default period: read once, then kept.
        let reads = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let kept = LazySecret::load(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(SecretString::new("k")) }
        });
        for _ in 0..3 {
            assert_eq!(kept.get().await.unwrap().expose(), "k");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn never_printed() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
