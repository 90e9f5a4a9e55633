//! Who is asking (SigV4 secret lookup) and whether they may (bucket ownership).

use cairn::Store;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

use crate::error::to_s3;

/// The root access key and secret: full access to every bucket.
#[derive(Clone)]
pub struct RootCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Finds the secret of an access key: the root's, or one stored in the metadata.
pub struct CairnAuth {
    store: Store,
    root: RootCredentials,
}

impl CairnAuth {
    /// Authentication against `store`'s keys and `root`.
    pub fn new(store: Store, root: RootCredentials) -> Self {
        Self { store, root }
    }
}

#[async_trait::async_trait]
impl S3Auth for CairnAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root.access_key {
            return Ok(SecretKey::from(self.root.secret_key.as_str()));
        }
        match self.store.key(access_key).await.map_err(to_s3)? {
            Some(k) => Ok(SecretKey::from(k.secret_key.as_str())),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// Authorisation: anonymous requests are denied; root may do anything; any other key has full
/// access to the buckets it owns and none to others.
pub struct CairnAccess {
    store: Store,
    root_access_key: String,
    region: String,
}

impl CairnAccess {
    /// Access checks against `store`'s bucket owners, for requests signed for `region`.
    pub fn new(store: Store, root_access_key: String, region: String) -> Self {
        Self {
            store,
            root_access_key,
            region,
        }
    }
}

/// The region of a SigV4 credential scope (`AK/DATE/REGION/s3/aws4_request`), from the
/// Authorization header or the presigned `X-Amz-Credential` query parameter.
fn signed_region(headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
    let scope = |cred: &str| crate::screen::scope_of(cred).map(|(region, _)| region.to_string());
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let cred = auth.split("Credential=").nth(1)?.split(',').next()?;
        return scope(cred.trim());
    }
    let query = uri.query()?;
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?;
    let cred = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    scope(&cred)
}

#[async_trait::async_trait]
impl S3Access for CairnAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "anonymous access is not allowed"));
        };
        if let Some(region) = signed_region(cx.headers(), cx.uri()) {
            if region != self.region {
                return Err(s3_error!(
                    AuthorizationHeaderMalformed,
                    "the authorization header is malformed; the region '{region}' is wrong; expecting '{}'",
                    self.region
                ));
            }
        }
        if creds.access_key == self.root_access_key {
            return Ok(());
        }
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket.to_string(),
        };
        let access_key = creds.access_key.clone();
        match self.store.bucket_for_access(&bucket).await {
            Ok(b) if b.owner != access_key => Err(s3_error!(AccessDenied)),
            Ok(_) | Err(cairn::Error::NoSuchBucket) => Ok(()),
            Err(e) => Err(to_s3(e)),
        }
    }
}

/// The bucket a write goes to, checked for `access_key` now. The write must be made with the
/// returned guard, so it lands only in this very bucket: if the bucket is deleted and
/// re-created under another owner before the commit, the commit answers `NoSuchBucket`.
pub(crate) async fn writable_bucket(
    s3: &crate::CairnS3,
    access_key: &str,
    bucket: &str,
) -> S3Result<cairn::BucketGuard> {
    let guard = s3.store.bucket_guard(bucket).await.map_err(to_s3)?;
    if access_key == s3.settings.root.access_key || guard.owner() == access_key {
        Ok(guard)
    } else {
        Err(s3_error!(AccessDenied))
    }
}

/// Whether `access_key` may use `bucket` (for the source of a copy, which the path check does
/// not see).
pub(crate) async fn may_access(s3: &crate::CairnS3, access_key: &str, bucket: &str) -> S3Result<()> {
    if access_key == s3.settings.root.access_key {
        return Ok(());
    }
    let b = s3.store.bucket_for_access(bucket).await.map_err(to_s3)?;
    if b.owner == access_key {
        Ok(())
    } else {
        Err(s3_error!(AccessDenied))
    }
}
