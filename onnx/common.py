"""Shared helpers for gsmile's model scripts: tokenizer, batches, ONNX checks.

The tokenizer is word-level (``tokenizers`` library): NFKC + lowercase
normaliser, ``Whitespace`` pre-tokenizer (punctuation split off), a WordLevel
vocabulary of every word the grammar and the captions can produce plus common
punctuation, ``[PAD]`` = 0 and ``[UNK]`` = 1, and fixed padding to
``MAX_LEN`` = 24 configured inside tokenizer.json.  No truncation is
configured: longer inputs come out longer than 24 ids (the Rust side rejects
them).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tokenizers import Tokenizer, normalizers, pre_tokenizers  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402

from world import grammar, scene  # noqa: E402

MAX_LEN = 24
PUNCT = [".", ",", "!", "?", ";", ":", "'", '"', "-", "(", ")"]


def build_tokenizer() -> Tokenizer:
    words = set(grammar.instruction_vocabulary())
    for cap in grammar.caption_vocabulary():
        words.update(cap.split())
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for w in sorted(words) + PUNCT:
        if w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_padding(length=MAX_LEN, pad_id=0, pad_token="[PAD]")
    return tok


def encode(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch-encode to int64 ``[B, 24]`` ids and attention mask."""
    encs = tok.encode_batch(list(texts))
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    assert ids.shape[1] == MAX_LEN, f"text longer than {MAX_LEN} tokens"
    return ids, mask


def chw(img_hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img_hwc.transpose(2, 0, 1), dtype=np.float32)


def drop_word(words: list[str], i: int) -> str:
    return " ".join(w for j, w in enumerate(words) if j != i)


def editor_sample(seed: int, rng: np.random.Generator, p_drop: float = 0.0, style=None):
    """One (scene, instruction, target) training/eval sample.

    With probability ``p_drop`` one non-key word is removed from the text
    (the edit is still fully determined by the key words, so the target is
    unchanged); this teaches robustness to missing filler.
    Returns (x_hwc, target_hwc, text, instruction, spec, masks).
    """
    spec, img, masks = scene.make_scene(seed)
    ins = grammar.sample_instruction(rng, masks, style=style)
    tgt = grammar.apply_edits(img, masks, ins["edits"])
    text = ins["text"]
    if p_drop > 0 and rng.random() < p_drop:
        cand = [i for i, r in enumerate(ins["roles"]) if r != "key"]
        if cand:
            text = drop_word(ins["words"], cand[int(rng.integers(len(cand)))])
    return img, tgt, text, ins, spec, masks


def file_size_mb(*paths: str) -> float:
    return sum(os.path.getsize(p) for p in paths) / 1e6
