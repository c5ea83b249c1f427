//! Builds the XDP program in bpf/ and generates its libbpf-rs skeleton into OUT_DIR.
//! Nothing generated is committed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    git_hash();
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// The commit being built, for `unmask_build_info{git_hash}`; "unknown" outside a checkout.
fn git_hash() {
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=UNMASK_GIT_HASH={hash}");
    // Rebuild when HEAD moves. Only existing files: a missing one would rerun every build.
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch.push(Path::new(&dir).join("HEAD"));
    }
    if let (Some(common), Some(head)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        watch.push(Path::new(&common).join(head));
        watch.push(Path::new(&common).join("packed-refs"));
    }
    for p in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
