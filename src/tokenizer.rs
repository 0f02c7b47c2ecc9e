//! Instruction tokenisation with Hugging Face `tokenizers`, padded to a bundle's fixed length.
//!
//! Padding is done here rather than by the tokenizer file so every bundle gets the same
//! rule (pad to `max_length`, attention mask 1 on real tokens) and an instruction that does
//! not fit is an error instead of silently losing words, which would corrupt attributions.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tokenizers::{PaddingDirection, Tokenizer};

use crate::bundle::{Bundle, BundleError};

/// An instruction or caption that cannot be fed to a model.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// More tokens than the model's fixed length.
    #[error("instruction {text:?} has {tokens} tokens but {tokenizer} takes at most {max}. Fix: shorten the instruction (remove filler words)")]
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
        let spec = &bundle.manifest().tokenizer;
        Self::from_file(bundle.dir(), &bundle.file(&spec.file), spec.max_length)
    }

    /// Loads a `tokenizer.json`; its padding settings give the pad id and side, default 0 and right.
    pub fn from_file(bundle: &Path, file: &Path, max_length: usize) -> Result<Self, BundleError> {
        let err = |message: String| BundleError::Tokenizer { bundle: bundle.to_path_buf(), file: file.to_path_buf(), message };
        let mut inner = Tokenizer::from_file(file).map_err(|e| err(e.to_string()))?;
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
