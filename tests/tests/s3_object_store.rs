//! [`S3ObjectStore`] over the real S3 protocol, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`), plus key checks that must fail
//! before any request (against a wiremock server that expects none).
//!
//! The moto tests are ignored by a bare `cargo test`; the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use omniline_aws::s3::S3ObjectStore;
use omniline_domain::PortError;
use omniline_ports::ObjectStore;
use omniline_tests::{bucket, endpoint, sdk_config};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn binary() -> Vec<u8> {
    // Every byte value, including NUL, CR/LF and invalid UTF-8.
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

fn is_invalid_key<T: std::fmt::Debug>(r: &Result<T, PortError>) -> bool {
    matches!(r, Err(PortError::Unavailable(m)) if m.starts_with("invalid object key"))
}

const INVALID_KEYS: [&str; 7] = [
    "",
    "/media/a/1",
    "media/../secrets",
    "media//1",
    "media/a/",
    "media/a b",
    "media/a?x=1",
];

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_object_store_round_trips_overwrites_and_deletes() {
    let config = sdk_config(&endpoint()).await;
    let bucket = bucket(&config).await;
    let store = S3ObjectStore::new(&config, &bucket, true);
    let key = "media/acc-1/468789577898262530";

    assert_eq!(store.get(key).await.unwrap(), None);

    let stored = store.put(key, binary(), Some("image/jpeg")).await.unwrap();
    assert_eq!(stored.key, key);
    assert_eq!(stored.uri, format!("s3://{bucket}/{key}"));
    assert_eq!(stored.size, 512);
    assert_eq!(
        store.get(key).await.unwrap(),
        Some((binary(), Some("image/jpeg".to_owned())))
    );

    // Overwrite.
    let stored = store
        .put(key, vec![1, 2, 3], Some("audio/m4a"))
        .await
        .unwrap();
    assert_eq!(stored.size, 3);
    assert_eq!(
        store.get(key).await.unwrap(),
        Some((vec![1, 2, 3], Some("audio/m4a".to_owned())))
    );

    // An empty object is an object.
    store
        .put("media/acc-1/empty", Vec::new(), None)
        .await
        .unwrap();
    let (bytes, _) = store.get("media/acc-1/empty").await.unwrap().unwrap();
    assert!(bytes.is_empty());

    // Delete, then delete again: both fine.
    store.delete(key).await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), None);
    store.delete(key).await.unwrap();
    store.delete("media/never/written").await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_errors_are_errors_and_invalid_keys_are_refused() {
    let config = sdk_config(&endpoint()).await;
    let bucket = bucket(&config).await;
    let store = S3ObjectStore::new(&config, &bucket, true);
    for bad in INVALID_KEYS {
        assert!(
            is_invalid_key(&store.put(bad, vec![1], None).await),
            "{bad:?}"
        );
        assert!(is_invalid_key(&store.get(bad).await), "{bad:?}");
        assert!(is_invalid_key(&store.delete(bad).await), "{bad:?}");
    }

    // A missing bucket is an error, not an absent object.
    let missing = S3ObjectStore::new(&config, format!("{bucket}-missing"), true);
    assert!(matches!(
        missing.get("media/a/1").await,
        Err(PortError::Unavailable(_))
    ));
    assert!(matches!(
        missing.put("media/a/1", vec![1], None).await,
        Err(PortError::Unavailable(_))
    ));
}

const INVALID_PREFIXES: [&str; 7] = [
    "",
    "/",
    "media/acc-1",
    "/media/",
    "media//",
    "media/../",
    "media/a b/",
];

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_delete_prefix_removes_one_prefix_only() {
    let config = sdk_config(&endpoint()).await;
    let bucket = bucket(&config).await;
    let store = S3ObjectStore::new(&config, &bucket, true);
    // More than one ListObjectsV2 page and one DeleteObjects call (1000 each).
    let keys: Vec<String> = (0..1005)
        .map(|i| format!("media/acc-1/{i:04}"))
        .chain(["media/acc-1/sub/x".to_owned()])
        .collect();
    for key in &keys {
        store.put(key, vec![1], Some("image/png")).await.unwrap();
    }
    let neighbours = [
        "media/acc-10/1",
        "media/acc-2/1",
        "media/acc-1",
        "media/acc-1x",
    ];
    for key in neighbours {
        store.put(key, vec![9], None).await.unwrap();
    }

    assert_eq!(store.delete_prefix("media/acc-1/").await.unwrap(), 1006);
    for key in ["media/acc-1/0000", "media/acc-1/1004", "media/acc-1/sub/x"] {
        assert_eq!(store.get(key).await.unwrap(), None, "{key}");
    }
    let left = omniline_tests::s3_client(&config)
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut left: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    left.sort();
    let mut expected = neighbours.to_vec();
    expected.sort();
    assert_eq!(left, expected);

    // Nothing more under the prefix, or never anything: 0.
    assert_eq!(store.delete_prefix("media/acc-1/").await.unwrap(), 0);
    assert_eq!(store.delete_prefix("media/none/").await.unwrap(), 0);

    // A missing bucket is an error.
    let missing = S3ObjectStore::new(&config, format!("{bucket}-missing"), true);
    assert!(matches!(
        missing.delete_prefix("media/acc-1/").await,
        Err(PortError::Unavailable(_))
    ));
}

#[tokio::test]
async fn invalid_keys_make_no_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let config = sdk_config(&server.uri()).await;
    let store = S3ObjectStore::new(&config, "omniline-media", true);
    for bad in INVALID_KEYS {
        assert!(
            is_invalid_key(&store.put(bad, vec![1], None).await),
            "{bad:?}"
        );
        assert!(is_invalid_key(&store.get(bad).await), "{bad:?}");
        assert!(is_invalid_key(&store.delete(bad).await), "{bad:?}");
    }
    for bad in INVALID_PREFIXES {
        assert!(is_invalid_key(&store.delete_prefix(bad).await), "{bad:?}");
    }
    // `expect(0)` is verified when the server drops.
}
