//! `cairn`: one binary for every role and the admin commands.

mod admin;
mod config;
mod credentials;
mod grpc_role;
mod keys;
mod meta_node;
mod server;
mod storage_node;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cairn", version, about = "Cairn: a distributed, S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role (metadata, storage, S3 gateway) in one process.
    Server(config::ServerArgs),
    /// Run a metadata node: the Raft group's state, served over gRPC to gateways.
    MetaNode(meta_node::MetaNodeArgs),
    /// Run a storage node: its disks, served over gRPC to gateways.
    StorageNode(storage_node::StorageNodeArgs),
    /// Run an S3 gateway: metadata on meta-nodes (`--meta`), shards on storage nodes
    /// (`--storage`) or on disks of its own.
    Gateway(GatewayArgs),
    /// Administer the metadata group (form it, see its state).
    Meta {
        #[command(subcommand)]
        command: meta_node::MetaCommand,
    },
    /// Manage access keys of a running server.
    Key {
        #[command(subcommand)]
        command: keys::KeyCommand,
        #[command(flatten)]
        admin: keys::AdminArgs,
    },
    /// Observe a running server's background work.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        admin: keys::AdminArgs,
    },
}

#[derive(clap::Args)]
struct GatewayArgs {
    /// Addresses of the meta-nodes (host:port,...): any of them, the gateway finds the leader
    #[arg(long, value_name = "ADDR,...")]
    meta: String,
    /// Addresses of the storage nodes (host:port,...) whose disks hold the shards, in a fixed
    /// order (placement follows it; the gateway refuses to start if it changed). Without it,
    /// the gateway keeps shards on `--disks` disks of its own
    #[arg(long, value_name = "ADDR,...", conflicts_with = "cluster")]
    storage: Option<String>,
    /// Place shards by the cluster map in the metadata: on every storage node that registered
    /// itself (`cairn storage-node --meta`), weighted by capacity, spread over nodes and zones
    #[arg(long)]
    cluster: bool,
    /// With `--cluster`: the erasure scheme of new chunks, DATA+PARITY (the cluster needs at
    /// least DATA+PARITY disks; one per node while there are enough nodes)
    #[arg(long, value_name = "K+M", default_value = "4+2", requires = "cluster")]
    erasure: String,
    #[command(flatten)]
    server: config::ServerArgs,
}

fn main() -> anyhow::Result<()> {
    // Before any thread exists: malloc recycles chunk-sized buffers (see cairn_chunk::alloc).
    cairn_chunk::tune_allocator();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server::run(args, server::Metadata::InProcess)),
        Command::MetaNode(args) => rt.block_on(meta_node::run(args)),
        Command::Meta { command } => rt.block_on(meta_node::admin(command)),
        Command::StorageNode(args) => rt.block_on(storage_node::run(args)),
        Command::Gateway(args) => rt.block_on(server::run(
            args.server,
            server::Metadata::Remote {
                meta: args.meta,
                storage: match (args.storage, args.cluster) {
                    (Some(list), _) => server::Shards::Listed(list),
                    (None, true) => server::Shards::Cluster(args.erasure),
                    (None, false) => server::Shards::Own,
                },
            },
        )),
        Command::Key { command, admin } => rt.block_on(keys::run(command, admin)),
        Command::Admin { command, admin } => rt.block_on(admin::run(command, admin)),
    }
}
