//! The openraft type configuration of the metadata group. openraft is an alpha pinned to an
//! exact version; this crate and `cairn-meta-node` are the only places that name its types.

use cairn_meta::{Command, Response};

/// Id of a metadata node.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Types of the metadata Raft group: commands in, responses out, u64 node ids.
    pub TypeConfig:
        D = Command,
        R = Response,
);
