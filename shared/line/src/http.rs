//! What the LINE client and the bot hook share on reqwest.

/// The `User-Agent` of every call omniline makes.
pub(crate) const USER_AGENT: &str = concat!("omniline/", env!("CARGO_PKG_VERSION"));

/// The body of `response` if it holds at most `max` bytes; `Ok(None)` as soon as it announces or
/// grows larger (a chunked body announces nothing, so it is counted anyway).
pub(crate) async fn body_at_most(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let announced = response.content_length().unwrap_or(0);
    if announced > max as u64 {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > max - bytes.len() {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}
