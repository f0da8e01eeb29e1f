//! Compiles `protos/*.proto` with prost. `protoc` comes from the
//! protoc-bin-vendored crate, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let protos = [
        "protos/raftpb.proto",
        "protos/metapb.proto",
        "protos/storagepb.proto",
        "protos/serverpb.proto",
        "protos/cmdpb.proto",
        "protos/clientpb.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // Entry payloads are shared between the log cache, messages and the
    // apply path; `Bytes` makes those copies reference counts.
    config.bytes(["."]);
    // Messages are moved between queues many times a round; a snapshot is
    // rare and its metadata large, so it lives behind a pointer.
    config.boxed(".raftpb.Message.snapshot");
    config.compile_protos(&protos, &["protos"])?;
    Ok(())
}
