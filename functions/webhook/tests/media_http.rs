//! The signed media route over a local object store, through HTTP requests (tower `oneshot`).

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use omniline_domain::media::StoredObject;
use omniline_domain::media_links::{link_expiry, media_link, DEFAULT_LINK_LIFETIME};
use omniline_domain::secret::SecretString;
use omniline_domain::PortError;
use omniline_embedded::objects::FsObjectStore;
use omniline_ports::ObjectStore;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tower::ServiceExt;
use webhook::media::{router, MediaState};

const SECRET: &str = "media-signing-secret";
/// 2023-11-14T22:13:20Z, in epoch seconds.
const NOW: i64 = 1_700_000_000;
const IMAGE_KEY: &str = "outbound/acc1/01HXYZ.jpg";
const DAY: i64 = 86_400;

fn jpeg() -> Vec<u8> {
    // A JPEG header followed by every byte value (NUL, CR/LF, invalid UTF-8).
    [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain(0..=255u8)
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<FsObjectStore>,
    /// Epoch milliseconds seen by the route.
    now_ms: Arc<AtomicI64>,
    app: axum::Router,
}

impl Fixture {
    fn set_now(&self, secs: i64) {
        self.now_ms.store(secs * 1000, Ordering::SeqCst);
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsObjectStore::new(dir.path().join("objects")));
    store
        .put(IMAGE_KEY, jpeg(), Some("image/jpeg"))
        .await
        .unwrap();
    let now_ms = Arc::new(AtomicI64::new(NOW * 1000));
    let clock_ms = now_ms.clone();
    let app = router(MediaState {
        objects: store.clone(),
        signing_secret: SecretString::new(SECRET).into(),
        clock: Arc::new(move || clock_ms.load(Ordering::SeqCst)),
    });
    Fixture {
        dir,
        store,
        now_ms,
        app,
    }
}

/// The link's path and query, signed to expire `lifetime_secs` after [`NOW`].
fn link(key: &str, lifetime_secs: i64) -> String {
    let url = media_link(
        "https://api.example.com/",
        key,
        NOW + lifetime_secs,
        &SecretString::new(SECRET),
    )
    .unwrap();
    url.strip_prefix("https://api.example.com")
        .unwrap()
        .to_owned()
}

fn default_link(key: &str) -> String {
    let url = media_link(
        "https://api.example.com",
        key,
        link_expiry(NOW, DEFAULT_LINK_LIFETIME),
        &SecretString::new(SECRET),
    )
    .unwrap();
    url.strip_prefix("https://api.example.com")
        .unwrap()
        .to_owned()
}

/// `(expires, signature)` of a link from [`link`].
fn query_of(link: &str) -> (String, String) {
    let query = link.split_once('?').unwrap().1;
    let (expires, signature) = query.split_once('&').unwrap();
    (
        expires.strip_prefix("expires=").unwrap().to_owned(),
        signature.strip_prefix("signature=").unwrap().to_owned(),
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn request(app: &axum::Router, method: Method, uri: &str) -> Answer {
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    request(app, Method::GET, uri).await
}

fn assert_json_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["error"]["code"], code, "{}", answer.json());
}

#[tokio::test]
async fn a_signed_link_serves_the_bytes_and_content_type() {
    let f = fixture().await;
    let uri = default_link(IMAGE_KEY);
    assert!(
        uri.starts_with(&format!("/media/{IMAGE_KEY}?expires=")),
        "{uri}"
    );
    let answer = get(&f.app, &uri).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, jpeg());
    assert_eq!(answer.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        answer.header("content-length"),
        Some(jpeg().len().to_string().as_str())
    );
    assert_eq!(
        answer.header("cache-control"),
        Some("private, max-age=86400")
    );
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert!(answer.header("content-security-policy").is_some());
}

#[tokio::test]
async fn the_signing_key_is_read_on_the_first_request_and_a_failed_read_is_a_503() {
    use std::sync::atomic::AtomicUsize;
    let f = fixture().await;
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = reads.clone();
    let app = router(MediaState {
        objects: f.store.clone(),
        signing_secret: omniline_ports::LazySecret::load(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(omniline_domain::PortError::Unavailable(
                        "secrets down".into(),
                    ))
                } else {
                    Ok(SecretString::new(SECRET))
                }
            }
        }),
        clock: Arc::new(|| NOW * 1000),
    });
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "nothing read before a request"
    );
    let uri = default_link(IMAGE_KEY);
    let answer = get(&app, &uri).await;
    assert_json_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(get(&app, &uri).await.status, StatusCode::OK);
    assert_eq!(get(&app, &uri).await.status, StatusCode::OK);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "read again after the failure, then kept"
    );
}

#[tokio::test]
async fn the_link_still_works_two_weeks_later() {
    let f = fixture().await;
    let uri = default_link(IMAGE_KEY);
    f.set_now(NOW + 14 * DAY);
    assert_eq!(get(&f.app, &uri).await.status, StatusCode::OK);
    f.set_now(NOW + 30 * DAY - 1);
    assert_eq!(get(&f.app, &uri).await.status, StatusCode::OK);
    f.set_now(NOW + 30 * DAY);
    assert_json_error(&get(&f.app, &uri).await, StatusCode::GONE, "link_expired");
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let f = fixture().await;
    let answer = request(&f.app, Method::HEAD, &default_link(IMAGE_KEY)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        answer.header("cache-control"),
        Some("private, max-age=86400")
    );
}

#[tokio::test]
async fn without_a_stored_content_type_it_is_octet_stream() {
    let f = fixture().await;
    let key = "media/acc1/468789577898262530";
    f.store.put(key, vec![1, 2, 3], None).await.unwrap();
    let answer = get(&f.app, &default_link(key)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, vec![1, 2, 3]);
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn a_tampered_signature_is_forbidden() {
    let f = fixture().await;
    let uri = default_link(IMAGE_KEY);
    let (expires, signature) = query_of(&uri);
    let mut tampered = signature.clone().into_bytes();
    tampered[5] = if tampered[5] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let answer = get(
        &f.app,
        &format!("/media/{IMAGE_KEY}?expires={expires}&signature={tampered}"),
    )
    .await;
    assert_json_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    // The refusal does not echo the signature.
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(!text.contains(&tampered) && !text.contains(&signature));

    // Extending the expiry breaks the signature too.
    let later: i64 = expires.parse::<i64>().unwrap() + 365 * DAY;
    let answer = get(
        &f.app,
        &format!("/media/{IMAGE_KEY}?expires={later}&signature={signature}"),
    )
    .await;
    assert_json_error(&answer, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn a_signature_for_another_key_is_forbidden() {
    let f = fixture().await;
    let other = "outbound/acc2/secret.jpg";
    f.store
        .put(other, b"private".to_vec(), Some("image/jpeg"))
        .await
        .unwrap();
    let (expires, signature) = query_of(&default_link(IMAGE_KEY));
    let answer = get(
        &f.app,
        &format!("/media/{other}?expires={expires}&signature={signature}"),
    )
    .await;
    assert_json_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert!(!answer.body.windows(7).any(|w| w == b"private"));
}

#[tokio::test]
async fn a_link_signed_with_another_secret_is_forbidden() {
    let f = fixture().await;
    let url = media_link("", IMAGE_KEY, NOW + DAY, &SecretString::new("someone-else")).unwrap();
    assert_json_error(&get(&f.app, &url).await, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn an_expired_link_is_gone() {
    let f = fixture().await;
    let uri = link(IMAGE_KEY, 60);
    assert_eq!(get(&f.app, &uri).await.status, StatusCode::OK);
    f.set_now(NOW + 60);
    assert_json_error(&get(&f.app, &uri).await, StatusCode::GONE, "link_expired");
    // Already expired when signed.
    f.set_now(NOW);
    assert_json_error(
        &get(&f.app, &link(IMAGE_KEY, -1)).await,
        StatusCode::GONE,
        "link_expired",
    );
}

#[tokio::test]
async fn a_genuine_link_to_a_missing_object_is_not_found() {
    let f = fixture().await;
    let key = "outbound/acc1/never-written.jpg";
    assert_json_error(
        &get(&f.app, &default_link(key)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Deleted after the link was sent.
    let uri = default_link(IMAGE_KEY);
    f.store.delete(IMAGE_KEY).await.unwrap();
    assert_json_error(&get(&f.app, &uri).await, StatusCode::NOT_FOUND, "not_found");
    // A key the local store cannot hold.
    assert_json_error(
        &get(&f.app, &default_link("outbound/acc1/x.content-type")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn malformed_queries_are_bad_requests() {
    let f = fixture().await;
    let (expires, signature) = query_of(&default_link(IMAGE_KEY));
    let base = format!("/media/{IMAGE_KEY}");
    for uri in [
        base.clone(),
        format!("{base}?"),
        format!("{base}?expires={expires}"),
        format!("{base}?signature={signature}"),
        format!("{base}?expires=soon&signature={signature}"),
        format!("{base}?expires=&signature={signature}"),
        format!("{base}?expires=99999999999999999999999&signature={signature}"),
        format!("{base}?expires={expires}&signature="),
        format!("{base}?expires={expires}&signature=not%20base64"),
        format!("{base}?expires={expires}&signature={signature}="),
        format!("{base}?expires={expires}&signature={}", &signature[..40]),
        format!("{base}?expires={expires}&expires={expires}&signature={signature}"),
        format!("{base}?expires={expires}&signature={}", "A".repeat(5000)),
    ] {
        assert_json_error(
            &get(&f.app, &uri).await,
            StatusCode::BAD_REQUEST,
            "invalid_media_link",
        );
    }
}

#[tokio::test]
async fn path_traversal_is_never_served() {
    let f = fixture().await;
    std::fs::write(f.dir.path().join("secret"), b"top secret").unwrap();
    std::fs::create_dir_all(f.dir.path().join("objects/outbound")).unwrap();
    let (expires, signature) = query_of(&default_link(IMAGE_KEY));
    let query = format!("?expires={expires}&signature={signature}");
    for path in [
        "/media/../secret",
        "/media/..%2Fsecret",
        "/media/%2e%2e/secret",
        "/media/outbound/../../secret",
        "/media/outbound/..%2F..%2Fsecret",
        "/media/outbound/%2E%2E/%2E%2E/secret",
        "/media//secret",
        "/media/%2Fetc%2Fpasswd",
        "/media/outbound/acc1/./01HXYZ.jpg",
        "/media/outbound%5Cacc1%5C01HXYZ.jpg",
        "/media/outbound/acc1/01HXYZ.jpg%00",
    ] {
        let answer = get(&f.app, &format!("{path}{query}")).await;
        // Refused by the key check before any signature or storage is consulted.
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            !answer.body.windows(10).any(|w| w == b"top secret"),
            "{path}"
        );
    }
    // The canonical path still works.
    assert_eq!(
        get(&f.app, &format!("/media/{IMAGE_KEY}{query}"))
            .await
            .status,
        StatusCode::OK
    );
}

struct BrokenStore;

#[async_trait]
impl ObjectStore for BrokenStore {
    async fn put(&self, _: &str, _: Vec<u8>, _: Option<&str>) -> Result<StoredObject, PortError> {
        Err(PortError::Unavailable("S3 PutObject: timeout".into()))
    }
    async fn get(&self, _: &str) -> Result<Option<(Vec<u8>, Option<String>)>, PortError> {
        Err(PortError::Unavailable("S3 GetObject: timeout".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), PortError> {
        Err(PortError::Unavailable("S3 DeleteObject: timeout".into()))
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, PortError> {
        Err(PortError::Unavailable("S3 DeleteObjects: timeout".into()))
    }
}

#[tokio::test]
async fn a_store_failure_is_unavailable() {
    let app = router(MediaState {
        objects: Arc::new(BrokenStore),
        signing_secret: SecretString::new(SECRET).into(),
        clock: Arc::new(|| NOW * 1000),
    });
    let answer = get(&app, &default_link(IMAGE_KEY)).await;
    assert_json_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(!String::from_utf8_lossy(&answer.body).contains("timeout"));
}

#[tokio::test]
async fn the_system_clock_is_in_milliseconds() {
    let now_ms = (webhook::media::system_clock())();
    // Between 2023 and 2100.
    assert!(
        (NOW * 1000..4_102_444_800_000).contains(&now_ms),
        "{now_ms}"
    );
}
