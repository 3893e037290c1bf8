//! Finds the system speech libraries with pkg-config and links them, failing with a message
//! that names the Debian package to install instead of an opaque linker error.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    link("pocketsphinx", "libpocketsphinx-dev libsphinxbase-dev");
    if std::env::var_os("CARGO_FEATURE_ESPEAK").is_some() {
        link("espeak-ng", "libespeak-ng-dev");
    }
}

/// Emits the link flags pkg-config gives for `module`, or stops the build saying what to install.
fn link(module: &str, packages: &str) {
    let output = Command::new("pkg-config")
        .args(["--libs", module])
        .output()
        .unwrap_or_else(|e| {
            panic!("local-voice: cannot run pkg-config ({e}); install `pkg-config {packages}` (scripts/bootstrap does)")
        });
    if !output.status.success() {
        panic!(
            "local-voice: pkg-config does not know `{module}`; install the Debian packages `{packages}` \
             (scripts/bootstrap does)"
        );
    }
    let flags = String::from_utf8_lossy(&output.stdout);
    for flag in flags.split_whitespace() {
        if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
}
