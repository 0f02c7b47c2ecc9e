//! The direction of data flow (ARCHITECTURE.md): a pipeline stage never imports a later one.

use std::path::Path;

/// Modules any stage may use.
const FOUNDATION: [&str; 9] =
    ["error", "io", "cache", "bundle", "runtime", "imaging", "tokenizer", "preprocess", "Error"];

/// The stages in data-flow order; each may import the ones before it (and itself).
const STAGES: [&str; 13] = [
    "perturb",
    "editor",
    "encoder",
    "models",
    "distance",
    "surrogate",
    "spatial",
    "explain",
    "render",
    "output",
    "metrics",
    "scenario",
    "evaluate",
];

/// The `crate::NAME` modules a Rust file uses outside comments.
fn crate_imports(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.push(name);
            }
            rest = tail;
        }
        // `use crate::{a, b::c}` lists several modules at once.
        if let Some(at) = code.find("crate::{") {
            let list = &code[at + "crate::{".len()..];
            for item in list.split([',', '}']) {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_stage_imports_a_later_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        // The module a file belongs to: its first path component, without `.rs`.
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(stage) = STAGES.iter().position(|s| *s == first) else { continue };
        checked += 1;
        for name in crate_imports(&std::fs::read_to_string(file).unwrap()) {
            if FOUNDATION.contains(&name.as_str()) || name == "Result" {
                continue;
            }
            match STAGES.iter().position(|s| *s == name) {
                Some(used) if used <= stage => {}
                Some(_) => wrong.push(format!("{} uses crate::{name}, a later stage", rel.display())),
                None => {
                    wrong.push(format!("{} uses crate::{name}, which ARCHITECTURE.md does not place", rel.display()))
                }
            }
        }
    }
    assert!(checked >= STAGES.len(), "found only {checked} stage files under {}", src.display());
    assert!(wrong.is_empty(), "data flows one way (see ARCHITECTURE.md):\n{}", wrong.join("\n"));
}

#[test]
fn imports_are_found_in_use_lists_and_paths() {
    let names = crate_imports(
        "use crate::{Error, Result, imaging, spatial};\nlet x = crate::render::png(); // crate::evaluate",
    );
    assert_eq!(names, ["Error", "Result", "imaging", "spatial", "render"]);
}
