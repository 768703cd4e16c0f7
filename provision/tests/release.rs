//! The release binary instances boot runs on Amazon Linux 2023: it needs no glibc newer
//! than 2.34 (scripts/release builds it with cargo-zigbuild; scripts/test passes its path).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn the_release_binary_needs_at_most_glibc_2_34() {
    let path = std::env::var("GALLERY_TEST_ARTIFACT").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_ARTIFACT is not set: run the suite with `scripts/test`, which builds the release with scripts/release")
    });
    let out = Command::new("objdump")
        .args(["-T", &path])
        .output()
        .expect("objdump (binutils) reads the binary's dynamic symbols");
    assert!(out.status.success(), "objdump -T {path} failed");
    let symbols = String::from_utf8_lossy(&out.stdout);
    let highest = symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .max_by_key(|v| version_key(v))
        .expect("a dynamically linked binary names glibc versions")
        .to_string();
    assert!(
        version_key(&highest) <= version_key("2.34"),
        "{path} needs glibc {highest}; Amazon Linux 2023 has 2.34"
    );
    // And it is the gallery: it answers --version.
    let v = Command::new(&path).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("gallery "));
}
