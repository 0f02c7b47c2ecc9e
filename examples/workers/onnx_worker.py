#!/usr/bin/env python3
"""A gsmile worker (protocol 1) that serves a gsmile one-step editor bundle with onnxruntime.

gsmile starts it once per run, as a `kind = "command"` bundle names it:

    [worker]
    command = ["python3", "../../examples/workers/onnx_worker.py", "--bundle", "../tiny-editor"]

and speaks JSON lines over stdin/stdout (see README.md, "Explaining an editor you run in
Python"). Its edits equal gsmile's in-process ONNX editor's: the same tokenisation (the
bundle's tokenizer, special tokens added, padded to `tokenizer.max_length` with the
tokenizer's pad id, refused when longer), the same pixel normalisation and the same graph.
Images go back as raw float32, so nothing is lost to 8-bit rounding.

Needs numpy, onnxruntime and tokenizers (`pip install numpy onnxruntime tokenizers`).
"""
import argparse
import hashlib
import json
import os
import tomllib

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from protocol import PROTOCOL, decode_image, encode_image, serve

VERSION = "1.0.0"


class Editor:
    """A one-step editor bundle: its graph, tokenizer and image settings."""

    def __init__(self, bundle, threads, max_batch):
        with open(os.path.join(bundle, "bundle.toml"), "rb") as f:
            manifest = tomllib.load(f)
        if manifest.get("kind") != "editor":
            raise SystemExit(f"{bundle}: kind is {manifest.get('kind')!r}; this worker serves kind = \"editor\" bundles")
        self.name = manifest["name"]
        spec = manifest["image"]
        self.height, self.width = int(spec["height"]), int(spec["width"])
        self.mean = np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(spec.get("std", [1.0, 1.0, 1.0]), np.float32).reshape(1, 3, 1, 1)
        self.lo, self.hi = (np.float32(v) for v in spec.get("range", [0.0, 1.0]))
        section = manifest["editor"]
        graph = os.path.join(bundle, section["file"])
        self.inputs = (section["image_input"], section["ids_input"], section["mask_input"])
        self.output = section["output"]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.max_length = int(manifest["tokenizer"]["max_length"])
        self.tokenizer, self.pad_id, self.pad_left = load_tokenizer(os.path.join(bundle, manifest["tokenizer"]["file"]))
        self.max_batch = max_batch
        with open(graph, "rb") as f:
            self.graph_sha256 = hashlib.sha256(f.read()).hexdigest()

    def encode(self, texts):
        """input_ids and attention_mask, `[B, max_length]`, as gsmile's tokenizer makes them."""
        n = self.max_length
        ids = np.full((len(texts), n), self.pad_id, np.int64)
        mask = np.zeros((len(texts), n), np.int64)
        for row, text in enumerate(texts):
            tokens = self.tokenizer.encode(text, add_special_tokens=True).ids
            if len(tokens) > n:
                raise ValueError(f"instruction {text!r} has {len(tokens)} tokens, the editor takes at most {n}")
            start = n - len(tokens) if self.pad_left else 0
            ids[row, start : start + len(tokens)] = tokens
            mask[row, start : start + len(tokens)] = 1
        return ids, mask

    def edit(self, image, texts):
        """`image` `[3, H, W]` in [0, 1] edited with each text: `[B, 3, H, W]` in [0, 1]."""
        batch = np.broadcast_to(image, (len(texts),) + image.shape).astype(np.float32)
        pixels = ((batch * (self.hi - self.lo) + self.lo - self.mean) / self.std).astype(np.float32)
        ids, mask = self.encode(texts)
        feeds = dict(zip(self.inputs, (pixels, ids, mask)))
        (out,) = self.session.run([self.output], feeds)
        return np.clip((out - self.lo) / (self.hi - self.lo), 0.0, 1.0).astype(np.float32)


def load_tokenizer(path):
    """The tokenizer as gsmile loads it: a tokenizer.json (or a folder holding one), with its
    padding and truncation removed and its pad id and side kept."""
    folder = path if os.path.isdir(path) else None
    file = os.path.join(path, "tokenizer.json") if folder else path
    if not os.path.isfile(file):
        raise SystemExit(f"{file}: no tokenizer.json; this worker reads tokenizer.json files (not vocab.json + merges.txt)")
    tokenizer = Tokenizer.from_file(file)
    padding = tokenizer.padding
    pad_id, pad_left = (padding["pad_id"], padding["direction"] == "left") if padding else (0, False)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if folder:
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            config = os.path.join(folder, name)
            if os.path.isfile(config):
                with open(config) as f:
                    pad = json.load(f).get("pad_token")
                if isinstance(pad, dict):
                    pad = pad.get("content")
                if isinstance(pad, str):
                    pad_id = tokenizer.token_to_id(pad)
                    if pad_id is None:
                        raise SystemExit(f"{config}: pad_token {pad!r} is not in the vocabulary")
                    break
    return tokenizer, pad_id, pad_left


def handle(editor, message):
    """The reply to one protocol message."""
    kind = message.get("type")
    if kind == "hello":
        return {
            "type": "hello",
            "protocol": PROTOCOL,
            "name": "gsmile-onnx-worker",
            "version": VERSION,
            "height": editor.height,
            "width": editor.width,
            "stochastic": False,
            "max_batch": editor.max_batch,
            "accepts": ["f32", "png"],
            "params": {"bundle": editor.name, "graph_sha256": editor.graph_sha256, "onnxruntime": ort.__version__},
        }
    if kind == "edit":
        image = decode_image(message["image"], editor.height, editor.width)
        edited = editor.edit(image, message["instructions"])
        return {"type": "edited", "id": message["id"], "images": [encode_image(e) for e in edited]}
    raise ValueError(f"unknown message type {kind!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="a gsmile kind = \"editor\" bundle folder")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--max-batch", type=int, default=16, help="most instructions per request")
    a = ap.parse_args()
    editor = Editor(a.bundle, a.threads, a.max_batch)
    serve(lambda message: handle(editor, message))


if __name__ == "__main__":
    main()
