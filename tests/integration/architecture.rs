//! The direction of data flow: a pipeline stage never imports a later one. `STAGES` is the
//! order ARCHITECTURE.md draws; change both together.

use std::path::Path;

/// Modules any stage may use.
const FOUNDATION: [&str; 10] =
    ["error", "io", "cache", "stats", "bundle", "runtime", "imaging", "tokenizer", "preprocess", "Error"];

/// The stages in data-flow order; each may import the ones before it (and itself).
const STAGES: [&str; 16] = [
    "perturb",
    "editor",
    "encoder",
    "lpips",
    "describe",
    "models",
    "distance",
    "surrogate",
    "method",
    "spatial",
    "explain",
    "render",
    "output",
    "metrics",
    "scenario",
    "evaluate",
];

/// The `crate::NAME` modules a Rust file uses outside comments, including every top-level
/// name of a `use crate::{…}` list (which may span lines).
fn crate_imports(text: &str) -> Vec<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join(" ");
    let ident = |s: &str| s.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(list) = rest.strip_prefix('{') else {
            names.push(ident(rest));
            continue;
        };
        // Top-level items of the list: split on commas outside nested braces.
        let (mut depth, mut item) = (0usize, String::new());
        for c in list.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => names.push(ident(&std::mem::take(&mut item))),
                _ if depth == 0 => item.push(c),
                _ => {}
            }
        }
        names.push(ident(&item));
    }
    names.retain(|n| !n.is_empty());
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
    let text =
        "use crate::{Error, Result,\n    imaging, spatial::{a, b}};\nlet x = crate::render::png(); // crate::evaluate";
    assert_eq!(crate_imports(text), ["Error", "Result", "imaging", "spatial", "render"]);
}
