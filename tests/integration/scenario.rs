//! The shipped scenario suites load, cover their ODD, and broken copies fail with errors
//! that name the file, the line and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gsmile::scenario::{ScenarioError, Suite, load_suite, shard};

fn suite_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

fn load(name: &str) -> Suite {
    let dir = suite_dir(name);
    load_suite(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Every ODD value a suite's scenarios use, per axis.
fn used_values(suite: &Suite) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &suite.scenarios {
        for (axis, value) in &s.odd {
            used.entry(axis.as_str()).or_default().insert(value.as_str());
        }
    }
    used
}

fn check_images(suite: &Suite) {
    for s in &suite.scenarios {
        let img = image::open(&s.image).unwrap_or_else(|e| panic!("{}: {e}", s.image.display()));
        assert_eq!((img.width(), img.height()), (64, 64), "{}", s.image.display());
        for r in &s.related_images {
            let img = image::open(r).unwrap_or_else(|e| panic!("{}: {e}", r.display()));
            assert_eq!((img.width(), img.height()), (64, 64), "{}", r.display());
        }
        let masks = s.masks.as_ref().unwrap_or_else(|| panic!("{}: no masks", s.id));
        let target = &s.odd["target_object"];
        if target != "global" {
            let m = masks.join(format!("{target}.png"));
            let m = image::open(&m).unwrap_or_else(|e| panic!("{}: {e}", m.display())).to_luma8();
            assert!(m.pixels().all(|p| p[0] == 0 || p[0] == 255), "{}: mask not binary", s.id);
            assert!(m.pixels().filter(|p| p[0] == 255).count() >= 6, "{}: target not visible", s.id);
        }
    }
}

#[test]
fn odd_world_suite_covers_every_axis_value() {
    let suite = load("odd-world");
    assert_eq!(suite.name, "odd-world");
    assert!(suite.scenarios.len() >= 120, "{} scenarios", suite.scenarios.len());
    for axis in ["time_of_day", "weather", "scene_content", "target_object", "colour", "style"] {
        assert!(suite.axes.contains_key(axis), "suite.toml lacks axis {axis}");
    }
    let used = used_values(&suite);
    for (axis, values) in &suite.axes {
        for v in values {
            assert!(used[axis.as_str()].contains(v.as_str()), "odd.{axis} = {v:?} is never used");
        }
    }
    for s in &suite.scenarios {
        assert_eq!(s.odd.len(), suite.axes.len(), "{}", s.id);
        assert!(!s.paraphrases.is_empty(), "{}: no paraphrases", s.id);
        assert!(!s.related_images.is_empty(), "{}: no related images", s.id);
        let global = s.odd["target_object"] == "global";
        assert_eq!(global, s.odd["colour"] == "none", "{}: colour none iff global", s.id);
        assert_eq!(global, s.odd["edit"] != "recolour", "{}: edit vs target", s.id);
    }
    check_images(&suite);
}

#[test]
fn smoke_suite_loads() {
    let suite = load("smoke");
    assert_eq!(suite.scenarios.len(), 6);
    let ids: BTreeSet<_> = suite.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 6);
    check_images(&suite);
}

#[test]
fn odd_world_shards_partition_the_suite() {
    let suite = load("odd-world");
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.extend(shard(&suite.scenarios, i, 4).unwrap().iter().map(|s| s.id.clone()));
    }
    ids.sort();
    let mut all: Vec<_> = suite.scenarios.iter().map(|s| s.id.clone()).collect();
    all.sort();
    assert_eq!(ids, all);
}

/// A copy of the smoke suite in a temp dir, with `edit` applied to its first scenario file.
fn broken(edit: impl FnOnce(&Path, &str) -> String) -> (tempfile::TempDir, String, ScenarioError) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&suite_dir("smoke"), tmp.path());
    let mut files: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("suite.toml"))
        .collect();
    files.sort();
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&files[0], edit(tmp.path(), &text)).unwrap();
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let err = load_suite(tmp.path()).expect_err("the broken suite loaded");
    (tmp, name, err)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn line_of(text: &str, starts: &str) -> usize {
    1 + text.lines().position(|l| l.starts_with(starts)).unwrap()
}

#[test]
fn bad_odd_value_names_file_line_and_field() {
    let mut expected_line = 0;
    let (_t, name, err) = broken(|_, text| {
        let line = text.lines().find(|l| l.starts_with("weather = ")).unwrap().to_string();
        expected_line = line_of(text, "weather = ");
        text.replace(&line, "weather = \"rain\"")
    });
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{name}:{expected_line}: odd.weather = \"rain\" is not one of clear, fog, snow (suite.toml)"
        )),
        "{msg}"
    );
}

#[test]
fn missing_image_names_file_line_and_field() {
    let mut expected_line = 0;
    let (_t, name, err) = broken(|dir, text| {
        expected_line = line_of(text, "image = ");
        let given = text.lines().find(|l| l.starts_with("image = ")).unwrap();
        std::fs::remove_file(dir.join(given.trim_start_matches("image = ").trim_matches('"'))).unwrap();
        text.to_string()
    });
    let msg = err.to_string();
    assert!(matches!(err, ScenarioError::MissingPath { ref field, .. } if field == "image"), "{msg}");
    assert!(msg.contains(&format!("{name}:{expected_line}: image = ")) && msg.contains("no such file"), "{msg}");
}

#[test]
fn toml_error_names_file_line_and_field() {
    let mut expected_line = 0;
    let (_t, name, err) = broken(|_, text| {
        expected_line = line_of(text, "key_words = ");
        text.replace("key_words = [", "key_words = [,")
    });
    let msg = err.to_string();
    assert!(matches!(err, ScenarioError::Toml { .. }), "{msg}");
    assert!(msg.contains(&format!("{name}:{expected_line}:")), "{msg}");

    let (_t, name, err) = broken(|_, text| text.replace("instruction = ", "instructions = "));
    let msg = err.to_string();
    assert!(matches!(err, ScenarioError::Toml { field: Some(ref f), .. } if f == "instructions"), "{msg}");
    assert!(msg.contains(&name) && msg.contains("unknown field `instructions`"), "{msg}");
}
