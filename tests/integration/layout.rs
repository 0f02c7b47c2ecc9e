//! Every test file is compiled: each `.rs` file beside a test binary's `main.rs` is declared as
//! one of its modules (an undeclared file would silently never run), and new test files join
//! a binary rather than adding one that links the whole crate again.

use std::path::Path;

use crate::common::repo;

/// The `.rs` files in `dir` other than `main.rs`, as module names.
fn module_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
        .filter(|name| name != "main")
        .collect();
    names.sort();
    names
}

#[test]
fn every_test_file_is_a_module_of_a_binary() {
    for binary in ["integration", "counters"] {
        let dir = repo("tests").join(binary);
        let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
        for name in module_files(&dir) {
            assert!(main.lines().any(|l| l == format!("mod {name};")), "tests/{binary}/main.rs lacks `mod {name};`");
        }
    }
    let top = module_files(&repo("tests"));
    assert!(
        top.is_empty(),
        "{top:?} in tests/ would each be a test binary linking the whole crate: make them modules \
         of tests/integration (or of tests/counters if they read process-wide counters)"
    );
}
