//! Generates the gRPC code from `proto/` with a vendored `protoc`: a fresh machine needs none.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC to find the compiler.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // Read at run time, not with `env!`: a build script compiled for one checkout is reused by
    // cargo for another sharing the target directory.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos = [
        root.join("meta.proto"),
        root.join("raft.proto"),
        root.join("shard.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    // Shards travel as `Bytes`: a received piece is handed on without a copy.
    tonic_prost_build::configure()
        .bytes(".cairn.shard.v1")
        .compile_protos(&protos, &[root])?;
    Ok(())
}
