//! The code is formatted with the repository's `rustfmt.toml` (`cargo fmt` fixes it).

use std::process::Command;

#[test]
fn code_is_rustfmt_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let Ok(out) = Command::new("cargo").args(["fmt", "--all", "--check"]).current_dir(root).output() else {
        eprintln!("skipped: cargo fmt is not available");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("not installed") || stderr.contains("no such command") {
        eprintln!("skipped: rustfmt is not installed ({stderr})");
        return;
    }
    assert!(
        out.status.success(),
        "run `cargo fmt`; these files are not formatted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
