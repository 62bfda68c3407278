//! [`ObjectStore`] in an S3 bucket.

use async_trait::async_trait;
use aws_config::SdkConfig;
use omniline_domain::media::*;
use omniline_domain::PortError;
use omniline_ports::ObjectStore;

// ---------------------------------------------------------------------------------------------
// S3

/// [`ObjectStore`] in an S3 bucket (`PutObject`, `GetObject`, `DeleteObject`; `ListObjectsV2`
/// and `DeleteObjects` for a prefix).
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ObjectStore {
    /// `force_path_style` addresses `endpoint/bucket/key` instead of `bucket.endpoint/key`:
    /// needed for moto and most S3-compatible local servers.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>, force_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(force_path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn s3_error<E: std::error::Error + 'static>(what: &str, key: &str, err: E) -> PortError {
    // DisplayErrorContext prints the service code and message, hidden by the SDK's Display.
    PortError::Unavailable(format!(
        "S3 {what} {key:?}: {}",
        aws_sdk_s3::error::DisplayErrorContext(&err)
    ))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<StoredObject, PortError> {
        let key = check_key(key)?;
        let size = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .set_content_type(content_type.map(str::to_owned))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", key, e))?;
        Ok(StoredObject {
            key: key.to_owned(),
            uri: format!("s3://{}/{key}", self.bucket),
            size,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, PortError> {
        let key = check_key(key)?;
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", key, e)),
        };
        let content_type = output.content_type().map(str::to_owned);
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| s3_error("GetObject body", key, e))?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, content_type)))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        let key = check_key(key)?;
        // S3 answers 204 whether or not the key existed.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", key, e))?;
        Ok(())
    }

    /// Lists every key under `prefix` (`ListObjectsV2`, paginated), then deletes them with
    /// `DeleteObjects`, 1000 a call; a key S3 reports as not deleted is an error.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, PortError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let prefix = check_prefix(prefix)?;
        // Listed in full first: deleting while paginating could shift what the next page holds.
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
        }
        let mut removed = 0;
        for chunk in keys.chunks(S3_DELETE_BATCH) {
            let objects = chunk
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .build()
                        .map_err(|e| s3_error("DeleteObjects", key, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| s3_error("DeleteObjects", prefix, e))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObjects", prefix, e))?;
            // DeleteObjects answers 200 even when keys fail: check `Errors`.
            if let Some(first) = output.errors().first() {
                return Err(PortError::Unavailable(format!(
                    "S3 DeleteObjects {prefix:?}: {} of {} keys not deleted, first {:?}: {} {}",
                    output.errors().len(),
                    chunk.len(),
                    first.key().unwrap_or_default(),
                    first.code().unwrap_or_default(),
                    first.message().unwrap_or_default()
                )));
            }
            removed += chunk.len() as u64;
        }
        Ok(removed)
    }
}

/// `DeleteObjects` takes at most 1000 keys.
const S3_DELETE_BATCH: usize = 1000;
