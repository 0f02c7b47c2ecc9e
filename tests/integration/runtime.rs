//! ONNX Runtime is found without a manual step, and `ORT_DYLIB_PATH` overrides the default.

use std::process::Command;

use crate::common::root;

fn edit_with_env(key: &str, value: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gsmile"))
        .args(["edit", "--image", "assets/scene-01.png", "--instruction", "make it night", "-q", "--out"])
        .arg(out)
        .env(key, value)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn build_time_runtime_is_present() {
    // CI's `cargo test` runs without ORT_DYLIB_PATH: build.rs must have fetched the library.
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        let path = gsmile::runtime::dylib_path().expect("build.rs fetched onnxruntime");
        assert!(path.is_file());
    }
}

#[test]
fn a_second_build_does_not_rerun_the_build_script() {
    // Cargo reruns build.rs (and so recompiles gsmile) when a file it watches is newer than
    // the script's last run, which cargo records as `invoked.timestamp` next to OUT_DIR. The
    // unpacked runtime is watched, so it must be older than that stamp.
    let Some(lib) = gsmile::runtime::dylib_path().ok().filter(|_| std::env::var_os("ORT_DYLIB_PATH").is_none()) else {
        return;
    };
    let stamp = std::path::Path::new(env!("OUT_DIR")).parent().unwrap().join("invoked.timestamp");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap();
    assert!(
        modified(&lib) < modified(&stamp),
        "{} is newer than the build script's last run ({}): every cargo build would rebuild gsmile",
        lib.display(),
        stamp.display()
    );
}

#[test]
fn ort_dylib_path_overrides_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    // A bogus override must be used (and fail) rather than silently falling back.
    let o = edit_with_env("ORT_DYLIB_PATH", &dir.path().join("libmissing.so"), &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("libmissing.so") && err.contains("pip install onnxruntime"),
        "{err}"
    );
    assert!(!out.exists());
    // A working override in another place is used.
    let real = gsmile::runtime::dylib_path().unwrap();
    let moved = dir.path().join("libonnxruntime.so");
    std::fs::copy(&real, &moved).unwrap();
    let o = edit_with_env("ORT_DYLIB_PATH", &moved, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.exists());
}

#[test]
fn a_file_that_is_not_onnx_runtime_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let out = dir.path().join("o.png");
    let o = edit_with_env("ORT_DYLIB_PATH", &fake, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot start ONNX Runtime") && err.contains("libonnxruntime.so"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
