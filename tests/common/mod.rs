//! Helpers shared by the integration tests: run the real binary on the shipped bundles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where `onnx/` and `assets/` live.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under the repository root.
pub fn repo(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Runs `gsmile` with `args` from the repository root.
pub fn gsmile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gsmile")).args(args).current_dir(root()).output().expect("run gsmile")
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copies a shipped bundle, subfolders included, into `dest` so a test can break it.
pub fn copy_bundle(name: &str, dest: &Path) -> PathBuf {
    fn copy_tree(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap().flatten() {
            if e.path().is_dir() {
                copy_tree(&e.path(), &dst.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
    }
    let dst = dest.join(name);
    copy_tree(&repo(&format!("onnx/{name}")), &dst);
    dst
}

/// Replaces `from` by `to` in a bundle's manifest, failing if `from` is absent.
pub fn edit_manifest(bundle: &Path, from: &str, to: &str) {
    let p = bundle.join("bundle.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "manifest lacks {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// An asset's object mask as a boolean grid `[y][x]`.
pub fn mask(scene: &str, object: &str) -> Vec<Vec<bool>> {
    let img = image::open(repo(&format!("assets/{scene}-masks/{object}.png"))).unwrap().to_luma8();
    (0..img.height()).map(|y| (0..img.width()).map(|x| img.get_pixel(x, y)[0] > 127).collect()).collect()
}
