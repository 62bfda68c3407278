//! `GET /media/{*key}?expires=…&signature=…`: media in object storage behind long-lived signed
//! links (see [`omniline_domain::media_links`]), for LINE to fetch outbound images, video and audio —
//! possibly days after the message was sent. `HEAD` answers the same without a body.
//!
//! - 200: the object's bytes with its content type (or `application/octet-stream`);
//! - 400: missing or unparsable query, invalid key, or a signature that is not base64url of
//!   32 bytes;
//! - 403: the signature does not match the key and expiry;
//! - 410 (`"link_expired"`): a genuine link past its expiry;
//! - 404: a genuine link to no object;
//! - 503: the object store failed.
//!
//! Every error is a JSON body from [`error_response`]. The signature and the secret are never
//! logged. The object is read whole into memory: this suits LINE's image and audio sizes, but an
//! API Gateway + Lambda response is limited to about 6 MB.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use omniline_domain::media_links::{verify_media_link, LinkError};
use omniline_domain::PortError;
use omniline_ports::LazySecret;
use omniline_ports::ObjectStore;
use omniline_runtime::http::{error_response, unavailable};
use serde::Deserialize;
use std::sync::Arc;

pub use omniline_domain::clock::Clock;

/// What the media route needs.
#[derive(Clone)]
pub struct MediaState {
    pub objects: Arc<dyn ObjectStore>,
    /// The secret links are signed with ([`omniline_domain::media_links::media_link`]), read on the
    /// first request.
    pub signing_secret: LazySecret,
    /// Epoch milliseconds.
    pub clock: Clock,
}

pub use omniline_domain::clock::system_clock;

/// The media route (`GET` and `HEAD /media/{*key}`).
pub fn router(state: MediaState) -> Router {
    Router::new()
        .route("/media/{*key}", get(serve_media))
        .with_state(Arc::new(state))
}

#[derive(Deserialize)]
struct LinkQuery {
    expires: i64,
    signature: String,
}

const CACHE: HeaderValue = HeaderValue::from_static("private, max-age=86400");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
/// Stored content types are not ours to trust: never let one run as a page on this origin.
const SANDBOX: HeaderValue = HeaderValue::from_static("default-src 'none'; sandbox");

async fn serve_media(
    State(state): State<Arc<MediaState>>,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let (Ok(Path(key)), Ok(Query(query))) = (key, query) else {
        return malformed();
    };
    let now_secs = (state.clock)().div_euclid(1000);
    let secret = match state.signing_secret.get().await {
        Ok(secret) => secret,
        Err(e) => {
            return unavailable(
                "media signing key",
                e,
                "media links cannot be checked now; try again later",
            )
        }
    };
    match verify_media_link(&key, query.expires, &query.signature, &secret, now_secs) {
        Ok(()) => {}
        Err(LinkError::Malformed) => return malformed(),
        Err(LinkError::BadSignature) => {
            tracing::debug!(key = %key, "media link refused: bad signature");
            return error_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "media link signature does not match",
            );
        }
        Err(LinkError::Expired) => {
            tracing::debug!(key = %key, expires = query.expires, "media link refused: expired");
            return error_response(StatusCode::GONE, "link_expired", "media link has expired");
        }
    }
    match state.objects.get(&key).await {
        Ok(Some((bytes, content_type))) => {
            let content_type = content_type
                .and_then(|t| HeaderValue::from_str(&t).ok())
                .unwrap_or(OCTET_STREAM);
            let mut response = Body::from(bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, content_type);
            headers.insert(CACHE_CONTROL, CACHE);
            headers.insert("x-content-type-options", NOSNIFF);
            headers.insert(CONTENT_SECURITY_POLICY, SANDBOX);
            response
        }
        Ok(None) => not_found(),
        // A key this store cannot hold (e.g. `….content-type` in the local store) holds nothing.
        Err(PortError::Unavailable(message)) if message.starts_with("invalid object key") => {
            not_found()
        }
        Err(e) => {
            tracing::warn!(key = %key, "media object could not be read: {e}");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "media storage is unavailable; try again later",
            )
        }
    }
}

fn malformed() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_media_link",
        "expected /media/{key}?expires={epoch seconds}&signature={signature}",
    )
}

fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such media")
}
