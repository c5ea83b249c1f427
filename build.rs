//! Builds the XDP program in bpf/ and generates its libbpf-rs skeleton into OUT_DIR.
//! Nothing generated is committed.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SOURCE: &str = "bpf/unmask.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    // Debian keeps asm/types.h under the multiarch include directory, which clang's BPF target
    // does not search on its own.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(SOURCE)
        .clang_args([multiarch.as_str(), "-Ibpf", "-O2", "-g", "-Wall", "-Werror"])
        .build_and_generate(out.join("unmask.skel.rs"))
        .unwrap_or_else(|e| {
            panic!("building {SOURCE} failed (is clang installed? run scripts/deps.sh): {e:#}")
        });
    println!("cargo:rerun-if-changed=bpf");
}
