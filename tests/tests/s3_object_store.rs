//! [`S3ObjectStore`] over the real S3 protocol, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`): the ObjectStore contract
//! (omniline_testkit::object_contract, as the filesystem adapter's tests run it), each followed
//! by S3's own checks (URIs, the bucket's listing, a missing bucket); plus key checks that must
//! fail before any request (against a wiremock server that expects none).
//!
//! The moto tests are ignored by a bare `cargo test`; the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use omniline_aws::s3::S3ObjectStore;
use omniline_domain::PortError;
use omniline_ports::ObjectStore;
use omniline_testkit::object_contract as contract;
use omniline_tests::{bucket, endpoint, sdk_config};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A store on a new bucket, and the bucket's name.
async fn store() -> (S3ObjectStore, aws_config::SdkConfig, String) {
    let config = sdk_config(&endpoint()).await;
    let bucket = bucket(&config).await;
    (S3ObjectStore::new(&config, &bucket, true), config, bucket)
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_object_store_round_trips_overwrites_and_deletes() {
    let (store, _, bucket) = store().await;
    let stored = contract::put_then_get_round_trips(&store).await;
    assert_eq!(stored.uri, format!("s3://{bucket}/{}", contract::KEY));
    contract::delete_removes_the_object(&store).await;
    contract::overwrite_replaces_bytes_and_content_type(&store).await;
}

/// Unlike files, S3 keeps an object and objects under its key as a prefix side by side.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_a_key_can_be_an_object_and_a_prefix() {
    let (store, _, _) = store().await;
    contract::a_keys_prefix_is_not_an_object(&store).await;
    store.put("media/a/1/x", vec![2], None).await.unwrap();
    assert_eq!(
        store.get("media/a/1").await.unwrap(),
        Some((vec![1], Some("image/png".to_owned())))
    );
    assert_eq!(store.get("media/a/1/x").await.unwrap().unwrap().0, vec![2]);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_errors_are_errors_and_invalid_keys_are_refused() {
    let (store, config, bucket) = store().await;
    contract::invalid_keys_and_prefixes_are_refused(&store).await;
    contract::a_refused_prefix_deletes_nothing(&store).await;

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

/// More than one ListObjectsV2 page and one DeleteObjects call (1000 each); beside the prefix,
/// also an object named as the prefix without its `/` (files cannot hold it beside the
/// directory); afterwards, the bucket holds exactly the neighbours and the object put since.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn s3_delete_prefix_removes_one_prefix_only() {
    let (store, config, bucket) = store().await;
    store.put("media/acc-1", vec![9], None).await.unwrap();
    contract::delete_prefix_removes_one_prefix_only(&store, 1005).await;
    contract::the_prefix_takes_objects_again(&store).await;
    let left = omniline_tests::s3_client(&config)
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut left: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    left.sort();
    let mut expected = contract::PREFIX_NEIGHBOURS.to_vec();
    expected.extend(["media/acc-1", contract::PUT_AFTER_PREFIX_DELETE]);
    expected.sort();
    assert_eq!(left, expected);

    // A missing bucket is an error.
    let missing = S3ObjectStore::new(&config, format!("{bucket}-missing"), true);
    assert!(matches!(
        missing.delete_prefix(contract::PREFIX).await,
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
    contract::invalid_keys_and_prefixes_are_refused(&store).await;
    // `expect(0)` is verified when the server drops.
}
