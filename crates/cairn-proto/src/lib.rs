//! Cairn's gRPC services and messages, generated from `proto/` at build time.
//!
//! Owns: nothing but the generated code. Must not depend on: any Cairn crate.

/// The metadata API (`proto/meta.proto`).
pub mod meta {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cairn.meta.v1");
}

/// Raft between meta-nodes (`proto/raft.proto`).
pub mod raft {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cairn.raft.v1");
}
