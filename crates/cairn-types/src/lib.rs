//! Plain, validated data shared by every Cairn layer.
//!
//! Owns: newtypes whose constructors enforce S3's rules (bucket names, object keys), content
//! addresses of chunks, the erasure scheme, and the limits S3 clients rely on.
//!
//! Must not depend on: async runtimes, I/O, RocksDB, tonic or HTTP. Everything here is pure data
//! so that every other crate can use it without pulling in a runtime.

mod bucket;
mod chunk_id;
mod erasure;
mod key;
pub mod limits;

pub use bucket::{BucketName, InvalidBucketName};
pub use chunk_id::ChunkId;
pub use erasure::{ErasureScheme, InvalidErasureScheme};
pub use key::{InvalidObjectKey, ObjectKey};
