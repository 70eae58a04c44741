//! Builds the router's XDP program (router/bpf/corecast_xdp.c) with clang
//! into `$OUT_DIR/corecast_xdp.o`, which the `xdp` backend embeds.
//!
//! Without clang or the libbpf headers (`make deps` installs both: clang,
//! libbpf-dev) the router still builds: the object is left empty, a warning
//! says why, and the `xdp` backend refuses to start with that reason.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/corecast_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CORECAST_BPF_CLANG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("corecast_xdp.o");
    let clang = std::env::var("CORECAST_BPF_CLANG").unwrap_or_else(|_| "clang".to_string());
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new(&clang)
        .args(["-O2", "-g0", "-Wall", "-Werror", "-target", "bpf", &arch_include, "-c", src, "-o"])
        .arg(&out)
        .status();
    let why = match status {
        Ok(s) if s.success() => return,
        Ok(s) => format!("{clang} failed ({s}); are the libbpf headers installed (libbpf-dev)?"),
        Err(e) => format!("cannot run {clang}: {e}"),
    };
    println!("cargo:warning=XDP program not built, the xdp backend will refuse to start: {why}");
    // Try again once they are installed (a path that does not exist counts as changed).
    println!("cargo:rerun-if-changed=/usr/include/bpf/bpf_helpers.h");
    println!("cargo:rerun-if-changed=/usr/bin/{clang}");
    std::fs::write(&out, b"").expect("write empty XDP object");
    println!("cargo:rustc-env=CORECAST_XDP_BUILD_ERROR={why}");
}
