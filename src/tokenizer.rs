//! Instruction tokenisation with Hugging Face `tokenizers`, padded to a bundle's fixed length.
//!
//! Padding is done here rather than by the tokenizer file so every bundle gets the same
//! rule (pad to `max_length`, attention mask 1 on real tokens) and an instruction that does
//! not fit is an error instead of silently losing words, which would corrupt attributions.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::Array2;
use tokenizers::{PaddingDirection, Tokenizer};

use crate::bundle::{Bundle, BundleError};

/// An instruction or caption that cannot be fed to a model.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// More tokens than the model's fixed length.
    #[error(
        "instruction {text:?} has {tokens} tokens but {tokenizer} takes at most {max}. Fix: shorten the instruction (remove filler words)"
    )]
    TooLong {
        /// The text.
        text: String,
        /// Its token count.
        tokens: usize,
        /// The model's limit.
        max: usize,
        /// The tokenizer file.
        tokenizer: PathBuf,
    },
    /// The tokenizer itself failed.
    #[error("tokenizer {tokenizer} failed on {text:?}: {message}")]
    Failed {
        /// The text.
        text: String,
        /// The tokenizer file.
        tokenizer: PathBuf,
        /// Its message.
        message: String,
    },
}

/// Token ids and attention mask for a batch of texts, both `[B, max_length]` int64.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Token ids, padded with the pad id.
    pub input_ids: Array2<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Array2<i64>,
}

/// A bundle's tokenizer with its fixed sequence length.
#[derive(Clone)]
pub struct InstructionTokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: i64,
    pad_left: bool,
    file: PathBuf,
}

impl std::fmt::Debug for InstructionTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstructionTokenizer").field("file", &self.file).field("max_length", &self.max_length).finish()
    }
}

impl InstructionTokenizer {
    /// Loads the tokenizer a bundle's manifest names.
    pub fn from_bundle(bundle: &Bundle) -> Result<Self, BundleError> {
        let spec = bundle.tokenizer_spec()?;
        Self::load(bundle.dir(), &bundle.file(&spec.file), spec.max_length)
    }

    /// Loads a tokenizer from a `tokenizer.json` file or a Hugging Face tokenizer folder (see [`InstructionTokenizer::from_folder`]).
    pub fn load(bundle: &Path, path: &Path, max_length: usize) -> Result<Self, BundleError> {
        if path.is_dir() {
            Self::from_folder(bundle, path, max_length)
        } else {
            Self::from_file(bundle, path, max_length)
        }
    }

    /// Loads a Hugging Face tokenizer folder: its `tokenizer.json` if present, else a CLIP BPE
    /// tokenizer built from `vocab.json` and `merges.txt` (the files diffusers checkpoints ship);
    /// the pad token comes from `tokenizer_config.json` or `special_tokens_map.json`.
    pub fn from_folder(bundle: &Path, dir: &Path, max_length: usize) -> Result<Self, BundleError> {
        let err = |file: &Path, message: String| BundleError::Tokenizer {
            bundle: bundle.to_path_buf(),
            file: file.to_path_buf(),
            message,
        };
        let json = dir.join("tokenizer.json");
        let mut tok = if json.is_file() {
            Self::from_file(bundle, &json, max_length)?
        } else {
            let vocab = dir.join("vocab.json");
            let merges = dir.join("merges.txt");
            let definition = clip_bpe_definition(&vocab, &merges).map_err(|m| err(dir, m))?;
            let inner = Tokenizer::from_str(&definition)
                .map_err(|e| err(dir, format!("cannot build a CLIP BPE tokenizer: {e}. Fix: use the checkpoint's own vocab.json and merges.txt")))?;
            InstructionTokenizer { inner, max_length, pad_id: 0, pad_left: false, file: dir.to_path_buf() }
        };
        if let Some(pad) = special_token(dir, "pad_token").map_err(|m| err(dir, m))? {
            tok.pad_id = i64::from(tok.inner.token_to_id(&pad).ok_or_else(|| {
                err(dir, format!("pad_token {pad:?} is not in the vocabulary. Fix: set pad_token in tokenizer_config.json to a vocabulary token"))
            })?);
        }
        Ok(tok)
    }

    /// Loads a `tokenizer.json`; its padding settings give the pad id and side, default 0 and right.
    pub fn from_file(bundle: &Path, file: &Path, max_length: usize) -> Result<Self, BundleError> {
        let err = |message: String| BundleError::Tokenizer {
            bundle: bundle.to_path_buf(),
            file: file.to_path_buf(),
            message,
        };
        let fix = "Fix: point `tokenizer.file` at a Hugging Face tokenizer.json, or at a folder with tokenizer.json or CLIP's vocab.json + merges.txt";
        let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read it ({e}). {fix}")))?;
        // tokenizers 0.23 panics (an `expect` in its decoder deserialiser) on some files that
        // are not valid JSON; checking the syntax first turns those into an error. Anything
        // else it panics on is caught too, so a bad file never aborts gsmile.
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| err(format!("not valid JSON ({e}). {fix}")))?;
        let parsed = std::panic::catch_unwind(|| text.parse::<Tokenizer>())
            .map_err(|_| err(format!("the tokenizers library could not read it (it panicked). {fix}")))?;
        let mut inner = parsed.map_err(|e| err(format!("{e}. {fix}")))?;
        let (pad_id, pad_left) = inner
            .get_padding()
            .map(|p| (i64::from(p.pad_id), matches!(p.direction, PaddingDirection::Left)))
            .unwrap_or((0, false));
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| err(e.to_string()))?;
        Ok(InstructionTokenizer { inner, max_length, pad_id, pad_left, file: file.to_path_buf() })
    }

    /// The fixed sequence length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Number of tokens `text` becomes, before padding.
    pub fn count(&self, text: &str) -> Result<usize, TokenizeError> {
        Ok(self.ids(text)?.len())
    }

    fn ids(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        let enc = self.inner.encode(text, true).map_err(|e| TokenizeError::Failed {
            text: text.to_string(),
            tokenizer: self.file.clone(),
            message: e.to_string(),
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Which of `words` the tokenizer maps (in part) to its unknown token: words the model
    /// cannot see, whose attributions mean little. All false for tokenizers without one.
    pub fn unknown_words(&self, words: &[&str]) -> Vec<bool> {
        // The model's unknown token is a field of its serialised form for every model kind
        // (`unk_token`), which the `tokenizers` API exposes no other common way.
        let unk = serde_json::to_value(self.inner.get_model())
            .ok()
            .and_then(|v| v.get("unk_token").and_then(|t| t.as_str().map(str::to_string)))
            .and_then(|t| self.inner.token_to_id(&t));
        words
            .iter()
            .map(|w| unk.is_some_and(|u| self.inner.encode(*w, false).is_ok_and(|e| e.get_ids().contains(&u))))
            .collect()
    }

    /// Encodes a batch; an empty text becomes all padding (gSMILE samples may drop every word).
    pub fn encode(&self, texts: &[&str]) -> Result<Encoded, TokenizeError> {
        let l = self.max_length;
        let mut input_ids = Array2::from_elem((texts.len(), l), self.pad_id);
        let mut attention_mask = Array2::zeros((texts.len(), l));
        for (row, text) in texts.iter().enumerate() {
            let ids = self.ids(text)?;
            if ids.len() > l {
                return Err(TokenizeError::TooLong {
                    text: text.to_string(),
                    tokens: ids.len(),
                    max: l,
                    tokenizer: self.file.clone(),
                });
            }
            let start = if self.pad_left { l - ids.len() } else { 0 };
            for (k, id) in ids.iter().enumerate() {
                input_ids[[row, start + k]] = i64::from(*id);
                attention_mask[[row, start + k]] = 1;
            }
        }
        Ok(Encoded { input_ids, attention_mask })
    }
}

/// CLIP's start-of-text token.
const BOS: &str = "<|startoftext|>";
/// CLIP's end-of-text token, also its unknown and (in Stable Diffusion 1.x) padding token.
const EOS: &str = "<|endoftext|>";
/// The word pattern of OpenAI CLIP's `simple_tokenizer.py`, as transformers' converter writes it.
const CLIP_WORDS: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A special token (`pad_token`, …) from a tokenizer folder's `tokenizer_config.json`, else `special_tokens_map.json`.
fn special_token(dir: &Path, key: &str) -> Result<Option<String>, String> {
    for name in ["tokenizer_config.json", "special_tokens_map.json"] {
        let path = dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        match value.get(key) {
            Some(serde_json::Value::String(s)) => return Ok(Some(s.clone())),
            Some(serde_json::Value::Object(o)) => {
                if let Some(serde_json::Value::String(s)) = o.get("content") {
                    return Ok(Some(s.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The `tokenizers` JSON definition of OpenAI CLIP's tokenizer over a `vocab.json` and `merges.txt`.
///
/// Mirrors what transformers' `CLIPTokenizerFast` converter writes (NFC, whitespace collapsing and
/// lower-casing; CLIP's word regex; byte-level BPE with a `</w>` end-of-word suffix; start and end
/// tokens around every text), so checkpoints that ship only the slow tokenizer files still load.
fn clip_bpe_definition(vocab: &Path, merges: &Path) -> Result<String, String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            format!(
                "cannot read {}: {e}. Fix: the folder needs tokenizer.json, or vocab.json and merges.txt",
                p.display()
            )
        })
    };
    let vocab_map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&read(vocab)?).map_err(|e| {
        format!("{}: not a JSON object of token ids: {e}. Fix: use the checkpoint's own vocab.json", vocab.display())
    })?;
    let merges_text = read(merges)?;
    let merges: Vec<String> = merges_text
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let id = |t: &str| {
        vocab_map.get(t).and_then(serde_json::Value::as_u64).ok_or_else(|| {
            format!(
                "{}: no {t} token, so not a CLIP vocabulary. Fix: ship a tokenizer.json for other tokenizers",
                vocab.display()
            )
        })
    };
    let (bos, eos) = (id(BOS)?, id(EOS)?);
    let special = |content: &str, id: u64| serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let definition = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(BOS, bos), special(EOS, eos)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"}
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_WORDS}, "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOS, eos], "cls": [BOS, bos], "trim_offsets": false, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": EOS, "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab_map, "merges": merges}
    });
    Ok(definition.to_string())
}
