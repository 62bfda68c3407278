//! Contract of every [`SecretStore`], written once and run against each adapter (SQLite, and
//! Secrets Manager on moto): the union of what the SQLite and AWS adapters' tests asserted.

use omniline_domain::secret::SecretString;
use omniline_ports::SecretStore;

async fn value(store: &dyn SecretStore, name: &str) -> Option<String> {
    store
        .get(name)
        .await
        .unwrap()
        .map(|s| s.expose().to_owned())
}

/// A secret is created, replaced, read and deleted (twice: deleting a missing secret is fine);
/// secrets are separate by name.
///
/// Leaves `accounts/y` (`{"v":"y"}`) only.
pub async fn creates_replaces_reads_and_deletes(store: &dyn SecretStore) {
    assert_eq!(value(store, "accounts/x").await, None);
    store
        .put("accounts/x", &SecretString::new("{\"v\":1}"))
        .await
        .unwrap();
    store
        .put("accounts/y", &SecretString::new("{\"v\":\"y\"}"))
        .await
        .unwrap();
    assert_eq!(
        value(store, "accounts/x").await.as_deref(),
        Some("{\"v\":1}")
    );
    store
        .put("accounts/x", &SecretString::new("{\"v\":2}"))
        .await
        .unwrap();
    assert_eq!(
        value(store, "accounts/x").await.as_deref(),
        Some("{\"v\":2}")
    );
    assert_eq!(
        value(store, "accounts/y").await.as_deref(),
        Some("{\"v\":\"y\"}")
    );
    store.delete("accounts/x").await.unwrap();
    store.delete("accounts/x").await.unwrap();
    store.delete("accounts/never").await.unwrap();
    assert_eq!(value(store, "accounts/x").await, None);
    assert_eq!(
        value(store, "accounts/y").await.as_deref(),
        Some("{\"v\":\"y\"}")
    );
}
