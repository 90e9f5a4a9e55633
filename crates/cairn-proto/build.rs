//! Generates the gRPC code from `proto/` with a vendored `protoc`: a fresh machine needs none.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC to find the compiler.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let meta = root.join("meta.proto");
    println!("cargo:rerun-if-changed={}", meta.display());
    tonic_prost_build::configure().compile_protos(&[meta], &[root])?;
    Ok(())
}
