use cairn_meta::MetaError;

/// Result of [`crate::Store`] operations.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, in terms a client of an object store understands. The S3 gateway maps each
/// variant to one S3 error code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such bucket.
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// No such object.
    #[error("the specified key does not exist")]
    NoSuchKey,
    /// No such multipart upload.
    #[error("the specified multipart upload does not exist")]
    NoSuchUpload,
    /// Bucket name taken by another owner.
    #[error("the requested bucket name is not available")]
    BucketAlreadyExists,
    /// The caller already owns this bucket.
    #[error("you already own this bucket")]
    BucketAlreadyOwnedByYou,
    /// The bucket still has objects or uploads.
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// A precondition did not hold.
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    /// A listed part is missing or its ETag differs.
    #[error("part {0} could not be found or its ETag does not match")]
    InvalidPart(u32),
    /// Parts were not listed in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("part {0} is smaller than the minimum allowed size")]
    EntityTooSmall(u32),
    /// The access key exists already.
    #[error("the access key exists already")]
    KeyExists,
    /// No such access key.
    #[error("no such access key")]
    NoSuchAccessKey,
    /// The storage class asked for is not one the store has.
    #[error("the storage class {0:?} is not valid")]
    InvalidStorageClass(String),
    /// The cluster map holds no storage node of that id.
    #[error("no such storage node")]
    NoSuchStorageNode,
    /// The request body ended early or failed to arrive.
    #[error("request body: {0}")]
    Body(String),
    /// The object is larger than allowed.
    #[error("object of {0} bytes exceeds the maximum allowed size")]
    TooLarge(u64),
    /// The request is malformed in a way the S3 layer should have caught (an embedding
    /// application's misuse of the API, e.g. committing inline data as a part).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The source of a copy was replaced while it was being copied: read it again (checking
    /// the copy conditions again) and retry.
    #[error("the copy source changed during the copy")]
    SourceChanged,
    /// The metadata or a storage node is not reachable now; retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Data could not be read or written (too many shards lost, disk failures).
    #[error("storage failure: {0}")]
    Storage(String),
}

impl Error {
    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        match e.clone() {
            MetaError::NoSuchBucket => Error::NoSuchBucket,
            MetaError::BucketAlreadyExists => Error::BucketAlreadyExists,
            MetaError::BucketAlreadyOwnedByYou => Error::BucketAlreadyOwnedByYou,
            MetaError::BucketNotEmpty => Error::BucketNotEmpty,
            MetaError::NoSuchKey => Error::NoSuchKey,
            MetaError::PreconditionFailed => Error::PreconditionFailed,
            MetaError::NoSuchUpload => Error::NoSuchUpload,
            MetaError::InvalidPart(n) => Error::InvalidPart(n),
            MetaError::InvalidPartOrder => Error::InvalidPartOrder,
            MetaError::EntityTooSmall(n) => Error::EntityTooSmall(n),
            MetaError::KeyExists => Error::KeyExists,
            MetaError::NoSuchAccessKey => Error::NoSuchAccessKey,
            MetaError::ChunksGone(ids) => {
                Error::Unavailable(format!("{} chunks were collected during the upload", ids.len()))
            }
            MetaError::Invalid(e) => Error::Invalid(e.to_string()),
            MetaError::CorruptRecord(s) => Error::Storage(format!("undecodable metadata record: {s}")),
            MetaError::SourceChanged => Error::SourceChanged,
            MetaError::VersionIdInUse => Error::Invalid(e.to_string()),
            MetaError::Store(s) => Error::Storage(s),
            MetaError::NotCurrentPass(_) => Error::Unavailable(e.to_string()),
            MetaError::NoSuchStorageNode => Error::NoSuchStorageNode,
        }
    }
}

impl From<cairn_meta_client::MetaClientError> for Error {
    fn from(e: cairn_meta_client::MetaClientError) -> Self {
        use cairn_meta_client::MetaClientError as E;
        match e {
            E::Unavailable(_) | E::NotLeader { .. } => Error::Unavailable(e.to_string()),
            E::Meta(m) => m.into(),
            E::Refused(_) => Error::Storage(e.to_string()),
        }
    }
}

impl From<cairn_shard_store::ShardStoreError> for Error {
    fn from(e: cairn_shard_store::ShardStoreError) -> Self {
        use cairn_shard_store::ShardStoreError as E;
        match e {
            E::Unavailable(_) => Error::Unavailable(e.to_string()),
            _ => Error::Storage(e.to_string()),
        }
    }
}
