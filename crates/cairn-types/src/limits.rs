//! Limits that AWS S3 enforces and that Cairn enforces the same way.

/// Longest object key, in bytes of UTF-8 (AWS: 1024).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest total size of user metadata (`x-amz-meta-*` names and values), in bytes (AWS: 2 KiB).
pub const MAX_USER_METADATA_BYTES: usize = 2048;
/// Smallest part number of a multipart upload.
pub const MIN_PART_NUMBER: i32 = 1;
/// Largest part number of a multipart upload.
pub const MAX_PART_NUMBER: i32 = 10_000;
/// Smallest size of every part but the last (AWS: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest size of one part or one single PUT (AWS: 5 GiB).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Most keys one DeleteObjects request may name.
pub const MAX_DELETE_KEYS: usize = 1000;
/// Most keys one list page returns.
pub const MAX_LIST_KEYS: usize = 1000;
