//! CLIP tokenisation equals transformers' `CLIPTokenizer` on the real CLIP BPE vocabulary.
//!
//! `tests/fixtures/clip_tokenizer/ids.json` was made by
//! `tests/fixtures/clip_tokenizer/make_ids.py` (transformers 5.18 `CLIPTokenizer` over
//! `onnx/tiny-ip2p/tokenizer`, OpenAI's vocabulary from open_clip_torch). Two folder layouts
//! are checked: a diffusers checkpoint's `vocab.json` + `merges.txt` only (gsmile builds the
//! tokenizer itself) and a transformers export with `tokenizer.json`.

use crate::common::repo;
use gsmile::tokenizer::InstructionTokenizer;

#[derive(serde::Deserialize)]
struct Fixture {
    pad_id: i64,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<i64>,
    padded_ids: Vec<i64>,
}

fn fixture() -> Fixture {
    serde_json::from_slice(&std::fs::read(repo("tests/fixtures/clip_tokenizer/ids.json")).unwrap()).unwrap()
}

fn check(folder: &str) {
    let dir = repo(folder);
    let tok = InstructionTokenizer::load(&dir, &dir, 77).unwrap();
    let f = fixture();
    let (mut fitting, mut long) = (0, 0);
    for case in &f.cases {
        if case.ids.len() > 77 {
            let err = tok.encode(&[case.text.as_str()]).unwrap_err().to_string();
            assert!(err.contains(&format!("{} tokens", case.ids.len())) && err.contains("Fix"), "{folder}: {err}");
            long += 1;
            continue;
        }
        assert_eq!(tok.count(&case.text).unwrap(), case.ids.len(), "{folder}: token count of {:?}", case.text);
        let enc = tok.encode(&[case.text.as_str()]).unwrap();
        assert_eq!(enc.input_ids.row(0).to_vec(), case.padded_ids, "{folder}: ids of {:?}", case.text);
        let mask: Vec<i64> = (0..77).map(|i| i64::from(i < case.ids.len())).collect();
        assert_eq!(enc.attention_mask.row(0).to_vec(), mask, "{folder}: mask of {:?}", case.text);
        assert!(enc.input_ids.row(0).iter().skip(case.ids.len()).all(|&id| id == f.pad_id));
        fitting += 1;
    }
    assert!(fitting >= 30 && long >= 1, "{fitting} fitting and {long} long cases");
}

#[test]
fn vocab_and_merges_only_equal_transformers() {
    assert!(
        !repo("onnx/tiny-ip2p/tokenizer/tokenizer.json").exists(),
        "this test must exercise the vocab.json + merges.txt path"
    );
    check("onnx/tiny-ip2p/tokenizer");
}

#[test]
fn tokenizer_json_equals_transformers() {
    assert!(repo("onnx/tiny-clip-hf/tokenizer/tokenizer.json").exists());
    check("onnx/tiny-clip-hf/tokenizer");
}

#[test]
fn missing_merges_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo("onnx/tiny-ip2p/tokenizer/vocab.json"), dir.path().join("vocab.json")).unwrap();
    let err = InstructionTokenizer::load(dir.path(), dir.path(), 77).unwrap_err().to_string();
    assert!(err.contains("merges.txt") && err.contains("Fix"), "{err}");
}
