//! Dev-time generator of engine/src/graph/proto/onnx.rs (see README.md): protox compiles
//! onnx.proto in pure Rust, prost-build writes the message structs.
#![allow(clippy::unwrap_used)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (proto_dir, out_dir) = (&args[1], &args[2]);
    let fds = protox::compile([format!("{proto_dir}/onnx.proto")], [proto_dir]).unwrap();
    let mut cfg = prost_build::Config::new();
    // Proto comments would become rustdoc (and doctests); the .proto next to the output keeps them.
    cfg.disable_comments(["."]);
    cfg.out_dir(out_dir);
    cfg.compile_fds(fds).unwrap();
}
