//! Conversions between the shard store's types and their protobuf messages.

use cairn_proto::shard::{self as pb, failure::Kind};
use cairn_shard_store::{ShardKey, ShardStoreError};
use cairn_types::ChunkId;

/// The reason a `Corrupt` error from a node carries (the node's own reason is in its log).
pub const CORRUPT_ON_NODE: &str = "checksum mismatch on the storage node";
/// The reason of a `Corrupt` error for bytes damaged between the node and here.
pub const CORRUPT_IN_TRANSFER: &str = "checksum mismatch after transfer";

pub fn key_to_pb(k: ShardKey) -> pb::ShardKey {
    pb::ShardKey {
        chunk: bytes::Bytes::copy_from_slice(&k.chunk.0),
        index: u32::from(k.index),
    }
}

/// The key a message names, or why it names none.
pub fn key_from_pb(k: Option<&pb::ShardKey>) -> Result<ShardKey, String> {
    let k = k.ok_or("no shard key")?;
    let chunk: [u8; 32] = k
        .chunk
        .as_ref()
        .try_into()
        .map_err(|_| format!("a chunk id has 32 bytes, not {}", k.chunk.len()))?;
    let index = u8::try_from(k.index).map_err(|_| format!("shard index {} out of range", k.index))?;
    Ok(ShardKey {
        chunk: ChunkId(chunk),
        index,
    })
}

pub fn failure(e: &ShardStoreError) -> pb::Failure {
    let kind = match e {
        ShardStoreError::Io(_) | ShardStoreError::Unavailable(_) => Kind::Io,
        ShardStoreError::Corrupt { .. } => Kind::Corrupt,
        ShardStoreError::TooLarge(_) => Kind::TooLarge,
        ShardStoreError::OutOfService(_) => Kind::OutOfService,
        ShardStoreError::Closed => Kind::Closed,
        ShardStoreError::Refused(_) => Kind::Refused,
    };
    pb::Failure {
        kind: kind as i32,
        message: e.to_string(),
    }
}

pub fn refused(message: impl Into<String>) -> pb::Failure {
    pb::Failure {
        kind: Kind::Refused as i32,
        message: message.into(),
    }
}

/// The error a node's `Failure` stands for; `key` is the shard the call was about.
pub fn from_failure(f: pb::Failure, key: Option<ShardKey>) -> ShardStoreError {
    match Kind::try_from(f.kind) {
        Ok(Kind::Corrupt) => match key {
            Some(k) => ShardStoreError::Corrupt {
                chunk: k.chunk,
                index: k.index,
                reason: CORRUPT_ON_NODE,
            },
            None => ShardStoreError::Io(std::io::Error::other(f.message)),
        },
        Ok(Kind::TooLarge) => ShardStoreError::TooLarge(0),
        Ok(Kind::OutOfService) => ShardStoreError::OutOfService(f.message),
        Ok(Kind::Closed) => ShardStoreError::Closed,
        Ok(Kind::Refused) => ShardStoreError::Refused(f.message),
        Ok(Kind::Io) | Err(_) => ShardStoreError::Io(std::io::Error::other(f.message)),
    }
}

/// The error a failed call stands for: the node refused it as such, or could not be reached
/// or did not answer in time (then it may or may not have happened).
pub fn from_status(s: tonic::Status) -> ShardStoreError {
    match s.code() {
        tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied
        | tonic::Code::InvalidArgument
        | tonic::Code::Unimplemented => ShardStoreError::Refused(format!("{:?}: {}", s.code(), s.message())),
        code => ShardStoreError::Unavailable(format!("{code:?}: {}", s.message())),
    }
}
