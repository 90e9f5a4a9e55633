//! Cairn's gRPC services and messages, generated from `proto/` at build time.
//!
//! Owns: the generated code, and the cluster-secret check every service puts in front of
//! itself ([`auth`]). Must not depend on: any Cairn crate.

pub mod auth;

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

/// The shard API of a storage node (`proto/shard.proto`).
pub mod shard {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("cairn.shard.v1");
}
