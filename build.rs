//! Fetches ONNX Runtime for `ort`'s `load-dynamic` feature, so a fresh machine needs no manual step.
//!
//! ONNX Runtime is not on crates.io, but PyPI's `onnxruntime` wheel carries `libonnxruntime.so`.
//! This script runs `python3 -m pip download` once into `<target>/onnxruntime-<version>/`,
//! unpacks the shared library from the wheel (a zip) and records its path in the
//! `GSMILE_ORT_DYLIB` compile-time variable. At run time `ORT_DYLIB_PATH` overrides it.
//! A failed download is a warning, not a build error: the binary then explains what to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORT_VERSION: &str = "1.31.1";

/// The modification time given to the unpacked library (2001-09-09), older than any build.
fn unpacked_stamp() -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000)
}

/// The PyPI package that carries the runtime: the CUDA build with the `cuda` feature.
fn package() -> &'static str {
    if env::var_os("CARGO_FEATURE_CUDA").is_some() { "onnxruntime-gpu" } else { "onnxruntime" }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GSMILE_SKIP_ORT_DOWNLOAD");
    println!("cargo:rerun-if-env-changed=PYTHON");

    if env::var_os("GSMILE_SKIP_ORT_DOWNLOAD").is_some() {
        println!("cargo:rustc-env=GSMILE_ORT_DYLIB=");
        return;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; share the runtime across profiles.
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let dest = target_dir.join(format!("{}-{ORT_VERSION}", package()));
    match fetch(&dest) {
        Ok(lib) => {
            // Cargo reruns this script when a watched file is newer than the script's last
            // run. The library unpacked here is stamped with the time of unpacking, which is
            // after the run began, so gsmile would rebuild on every build. An old fixed stamp
            // keeps it fresh; a library replaced by hand is newer again and reruns the script.
            let _ = std::fs::File::options().write(true).open(&lib).and_then(|f| f.set_modified(unpacked_stamp()));
            println!("cargo:rerun-if-changed={}", lib.display());
            println!("cargo:rustc-env=GSMILE_ORT_DYLIB={}", lib.display());
        }
        Err(why) => {
            println!(
                "cargo:warning=gsmile: could not fetch ONNX Runtime {ORT_VERSION} from PyPI ({why}); set ORT_DYLIB_PATH at run time"
            );
            println!("cargo:rustc-env=GSMILE_ORT_DYLIB=");
        }
    }
}

fn library_name() -> &'static str {
    if cfg!(target_os = "macos") { "libonnxruntime.dylib" } else { "libonnxruntime.so" }
}

fn fetch(dest: &Path) -> Result<PathBuf, String> {
    let lib = dest.join(library_name());
    if lib.is_file() {
        return Ok(lib);
    }
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let wheels = dest.join("wheel");
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"])
        .arg(format!("{}=={ORT_VERSION}", package()))
        .arg("-d")
        .arg(&wheels)
        .status()
        .map_err(|e| format!("cannot run `{python} -m pip`: {e}"))?;
    if !status.success() {
        return Err(format!("`{python} -m pip download {}=={ORT_VERSION}` failed", package()));
    }
    // The wheel is a zip; Python's zipfile unpacks the members we need without a Rust zip
    // dependency in the build graph: the runtime, and for the CUDA build its provider
    // libraries, which ONNX Runtime loads from the runtime's own folder.
    let script = format!(
        r#"
import glob, os, shutil, sys, zipfile
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "onnxruntime*.whl")))[-1]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if os.path.basename(n).startswith("{name}")]
    if not names:
        sys.exit("no {name} in " + wheel)
    for provider in [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime_providers_")]:
        with z.open(provider) as src, open(os.path.join(os.path.dirname(sys.argv[2]), os.path.basename(provider)), "wb") as dst:
            shutil.copyfileobj(src, dst)
    member = sorted(names, key=len)[-1]
    tmp = sys.argv[2] + ".part"
    with z.open(member) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, sys.argv[2])
"#,
        name = library_name()
    );
    let status = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&wheels)
        .arg(&lib)
        .status()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !status.success() || !lib.is_file() {
        return Err(format!("could not unpack {} from the wheel in {}", library_name(), wheels.display()));
    }
    let _ = std::fs::remove_dir_all(&wheels);
    Ok(lib)
}
