//! What a use case keeps of what it read, per key, with the time each value was stored: channel
//! secrets (the webhook), channel access tokens, the settings and compiled rules (the router).
//! The caller decides how old a value may be. A poisoned lock is an empty cache: the value is
//! read again.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Cache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    /// The value kept under `key`, and how long ago it was stored.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<(V, Duration)>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().ok()?;
        let (value, stored) = entries.get(key)?;
        Some((value.clone(), stored.elapsed()))
    }

    /// The value kept under `key` if it was stored less than `ttl` ago.
    pub(crate) fn fresh<Q>(&self, key: &Q, ttl: Duration) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get(key)
            .and_then(|(value, age)| (age < ttl).then_some(value))
    }

    /// Keeps `value` under `key`, stored now.
    pub(crate) fn insert(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (value, Instant::now()));
        }
    }

    /// Drops what is kept under `key`.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_per_key_with_their_age() {
        let cache: Cache<String, u32> = Cache::default();
        assert_eq!(cache.get("a"), None);
        cache.insert("a".into(), 1);
        let (value, age) = cache.get("a").unwrap();
        assert_eq!(value, 1);
        assert!(age < Duration::from_secs(60));
        assert_eq!(cache.fresh("a", Duration::from_secs(60)), Some(1));
        assert_eq!(cache.fresh("a", Duration::ZERO), None);
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
    }
}
