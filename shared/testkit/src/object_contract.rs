//! Contract of every [`ObjectStore`], written once and run against each adapter (files under a
//! directory, and S3 on moto): the union of what the filesystem and S3 adapters' tests asserted.
//! Every scenario starts from an empty store.
//!
//! Where the adapters legitimately differ, the scenarios assert neither way and the adapters'
//! own tests do: an object stored without a content type reads back without one from files,
//! with S3's default (`binary/octet-stream`) from S3; files refuse a key that is both an object
//! and a "directory" of objects (`media/a/1` and `media/a/1/x`), S3 keeps both.

use omniline_domain::media::StoredObject;
use omniline_domain::PortError;
use omniline_ports::ObjectStore;

/// Keys every adapter refuses before touching anything: empty, absolute, with `..`, with an
/// empty segment, ending with `/`, with a space or a query.
pub const INVALID_KEYS: [&str; 9] = [
    "",
    "/media/a/1",
    "/etc/passwd",
    "../escape",
    "media/../secrets",
    "media//1",
    "media/a/",
    "media/a b",
    "media/a?x=1",
];

/// Prefixes every adapter refuses for `delete_prefix`: empty, the root, without the final `/`,
/// absolute, with an empty segment or `..`, with a space.
pub const INVALID_PREFIXES: [&str; 9] = [
    "",
    "/",
    "media/a",
    "media/acc-1",
    "/media/",
    "media//",
    "../",
    "media/../",
    "media/a b/",
];

/// The key of [`put_then_get_round_trips`].
pub const KEY: &str = "media/acc-1/468789577898262530";

/// Every byte value, including NUL, CR/LF and invalid UTF-8: 512 bytes.
pub fn binary() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

/// Whether `r` is the refusal of an invalid key or prefix.
pub fn is_invalid_key<T: std::fmt::Debug>(r: &Result<T, PortError>) -> bool {
    matches!(r, Err(PortError::Unavailable(m)) if m.starts_with("invalid object key"))
}

/// Nothing under [`KEY`], then binary bytes with a content type stored there and read back.
/// Returns what `put` answered (adapters check its URI).
///
/// Leaves the object at [`KEY`].
pub async fn put_then_get_round_trips(store: &dyn ObjectStore) -> StoredObject {
    assert_eq!(store.get(KEY).await.unwrap(), None);
    let stored = store.put(KEY, binary(), Some("image/jpeg")).await.unwrap();
    assert_eq!(stored.key, KEY);
    assert_eq!(stored.size, 512);
    assert_eq!(
        store.get(KEY).await.unwrap(),
        Some((binary(), Some("image/jpeg".to_owned())))
    );
    stored
}

/// After [`put_then_get_round_trips`]: the object is deleted; deleting it again, or a key never
/// written, is fine.
pub async fn delete_removes_the_object(store: &dyn ObjectStore) {
    store.delete(KEY).await.unwrap();
    assert_eq!(store.get(KEY).await.unwrap(), None);
    store.delete(KEY).await.unwrap();
    store.delete("media/never/written").await.unwrap();
    assert_eq!(store.get("media/never/written").await.unwrap(), None);
}

/// An overwrite replaces the bytes and the content type; an empty object is an object.
///
/// Leaves `media/acc-1/1` (empty, last stored without a content type) and `media/acc-2/empty`
/// (empty, no content type given).
pub async fn overwrite_replaces_bytes_and_content_type(store: &dyn ObjectStore) {
    let key = "media/acc-1/1";
    store.put(key, binary(), Some("video/mp4")).await.unwrap();
    let stored = store
        .put(key, vec![1, 2, 3], Some("audio/m4a"))
        .await
        .unwrap();
    assert_eq!(stored.size, 3);
    assert_eq!(
        store.get(key).await.unwrap(),
        Some((vec![1, 2, 3], Some("audio/m4a".to_owned())))
    );
    // Without a content type the old one does not linger.
    let stored = store.put(key, Vec::new(), None).await.unwrap();
    assert_eq!(stored.size, 0);
    let (bytes, content_type) = store.get(key).await.unwrap().unwrap();
    assert!(bytes.is_empty());
    assert_ne!(content_type.as_deref(), Some("audio/m4a"));

    // An empty object is an object.
    store
        .put("media/acc-2/empty", Vec::new(), None)
        .await
        .unwrap();
    let (bytes, _) = store.get("media/acc-2/empty").await.unwrap().unwrap();
    assert!(bytes.is_empty());
}

/// Only a stored key is an object: not its "directory", not a key under it.
///
/// Leaves `media/a/1` (`[1]`, `image/png`).
pub async fn a_keys_prefix_is_not_an_object(store: &dyn ObjectStore) {
    store
        .put("media/a/1", vec![1], Some("image/png"))
        .await
        .unwrap();
    assert_eq!(store.get("media/a").await.unwrap(), None);
    assert_eq!(store.get("media/a/1/x").await.unwrap(), None);
    store.delete("media/a/1/x").await.unwrap();
    store.delete("media/a").await.unwrap();
    assert_eq!(
        store.get("media/a/1").await.unwrap(),
        Some((vec![1], Some("image/png".to_owned())))
    );
}

/// Every [`INVALID_KEYS`] is refused by `put`, `get` and `delete`, every [`INVALID_PREFIXES`]
/// by `delete_prefix`, before anything is touched (adapters check that nothing was).
pub async fn invalid_keys_and_prefixes_are_refused(store: &dyn ObjectStore) {
    for bad in INVALID_KEYS {
        assert!(
            is_invalid_key(&store.put(bad, vec![1], None).await),
            "put {bad:?}"
        );
        assert!(is_invalid_key(&store.get(bad).await), "get {bad:?}");
        assert!(is_invalid_key(&store.delete(bad).await), "delete {bad:?}");
    }
    for bad in INVALID_PREFIXES {
        assert!(
            is_invalid_key(&store.delete_prefix(bad).await),
            "delete_prefix {bad:?}"
        );
    }
}

/// A refused prefix deletes nothing.
///
/// Leaves `media/a/1` and `media/acc-1/1`.
pub async fn a_refused_prefix_deletes_nothing(store: &dyn ObjectStore) {
    store.put("media/a/1", vec![1], None).await.unwrap();
    store
        .put("media/acc-1/1", vec![2], Some("image/png"))
        .await
        .unwrap();
    for bad in INVALID_PREFIXES {
        assert!(
            is_invalid_key(&store.delete_prefix(bad).await),
            "delete_prefix {bad:?}"
        );
    }
    assert_eq!(store.get("media/a/1").await.unwrap().unwrap().0, vec![1]);
    assert_eq!(
        store.get("media/acc-1/1").await.unwrap(),
        Some((vec![2], Some("image/png".to_owned())))
    );
}

/// The prefix [`delete_prefix_removes_one_prefix_only`] deletes.
pub const PREFIX: &str = "media/acc-1/";
/// Objects beside [`PREFIX`] whose keys start with its text: they stay.
pub const PREFIX_NEIGHBOURS: [&str; 4] = [
    "media/acc-10/1",
    "media/acc-2/1",
    "media/acc-1x",
    "media/acc-1-x",
];
/// The object [`the_prefix_takes_objects_again`] stores under [`PREFIX`].
pub const PUT_AFTER_PREFIX_DELETE: &str = "media/acc-1/after";

/// `delete_prefix` removes every object under [`PREFIX`] (`many` numbered ones, one in a
/// sub-"directory", one without a content type) and counts them; the neighbours stay whole;
/// again, a prefix never written, or a prefix that is an object: 0.
///
/// Leaves [`PREFIX_NEIGHBOURS`].
pub async fn delete_prefix_removes_one_prefix_only(store: &dyn ObjectStore, many: usize) {
    let numbered: Vec<String> = (0..many).map(|i| format!("{PREFIX}{i:04}")).collect();
    for key in &numbered {
        store.put(key, vec![1], Some("image/png")).await.unwrap();
    }
    store
        .put(&format!("{PREFIX}sub/x"), vec![1], Some("image/png"))
        .await
        .unwrap();
    store
        .put(&format!("{PREFIX}plain"), vec![4], None)
        .await
        .unwrap();
    for key in PREFIX_NEIGHBOURS {
        store.put(key, vec![9], Some("text/plain")).await.unwrap();
    }

    assert_eq!(store.delete_prefix(PREFIX).await.unwrap(), many as u64 + 2);
    let gone = [
        numbered.first().cloned(),
        numbered.last().cloned(),
        Some(format!("{PREFIX}sub/x")),
        Some(format!("{PREFIX}plain")),
    ];
    for key in gone.into_iter().flatten() {
        assert_eq!(store.get(&key).await.unwrap(), None, "{key}");
    }
    for key in PREFIX_NEIGHBOURS {
        assert_eq!(
            store.get(key).await.unwrap(),
            Some((vec![9], Some("text/plain".to_owned()))),
            "{key}"
        );
    }

    // Nothing more under the prefix, never anything, or a prefix that is an object: 0.
    assert_eq!(store.delete_prefix(PREFIX).await.unwrap(), 0);
    assert_eq!(store.delete_prefix("media/none/").await.unwrap(), 0);
    assert_eq!(store.delete_prefix("media/acc-2/1/").await.unwrap(), 0);
    assert!(store.get("media/acc-2/1").await.unwrap().is_some());
}

/// After [`delete_prefix_removes_one_prefix_only`]: the store works on under the prefix.
///
/// Leaves [`PREFIX_NEIGHBOURS`] and [`PUT_AFTER_PREFIX_DELETE`].
pub async fn the_prefix_takes_objects_again(store: &dyn ObjectStore) {
    store
        .put(PUT_AFTER_PREFIX_DELETE, vec![5], Some("image/png"))
        .await
        .unwrap();
    assert_eq!(
        store.get(PUT_AFTER_PREFIX_DELETE).await.unwrap(),
        Some((vec![5], Some("image/png".to_owned())))
    );
}
