"""Export a Hugging Face ``transformers`` CLIP checkpoint to a gsmile ``clip`` bundle.

Usage (from the repository root, with the venv of onnx/requirements.txt)::

    /opt/gsmile-py/bin/python onnx/export_clip.py CHECKPOINT_DIR OUT_DIR [--fp16] [--name NAME] [--opset 17]

``CHECKPOINT_DIR`` is any ``CLIPModel`` folder on disk (``config.json`` +
weights, tokenizer files, ``preprocessor_config.json``), e.g. a download of
``openai/clip-vit-large-patch14`` or the output of
``onnx/make_tiny_clip_hf.py``.  Writes::

    OUT/vision_model/model.onnx  pixel_values [batch,3,S,S] -> image_embeds [batch,P]
    OUT/text_model/model.onnx    input_ids, attention_mask int64 [batch,L] -> text_embeds [batch,P]
    OUT/tokenizer/               tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, ...
    OUT/preprocessor_config.json copied unchanged
    OUT/bundle.toml, OUT/README.md, OUT/metrics.json

``image_embeds`` / ``text_embeds`` are ``get_image_features`` /
``get_text_features`` (the projections), **not** L2-normalised.  S is
``vision_config.image_size``, L is ``text_config.max_position_embeddings``
(77), P is ``projection_dim``.  Batch is dynamic, everything else fixed.
Floats are float32, or float16 with ``--fp16`` (the model is cast with
``.half()`` before tracing, so weights, ``pixel_values`` and both outputs are
float16; ids and mask stay int64).  Graphs: ``torch.onnx.export`` (TorchScript
exporter, ``dynamo=False``), opset 17 by default, eager attention, one file
each (no external data, so each tower must stay under 2 GB: fine up to
ViT-L/14 in fp32).

Before writing the manifest the script checks the graphs with
``onnx.checker`` and runs them with onnxruntime (CPU) at batch 1 and 3 on
random pixel values, processed synthetic images and tokenized texts, against
the float32 transformers model; it fails if the cosine similarity drops below
0.99999 (fp32) / 0.999 (fp16).  It also checks that ``tokenizer/tokenizer.json``
loaded with the bare ``tokenizers`` library (truncation 77 + padding with the
pad token, as the Rust side does) gives the same ids and mask as
``CLIPTokenizer``.

If the checkpoint has ``gsmile_provenance.json`` (written by
``make_tiny_clip_hf.py``), its description / made_by / licence / notes go into
``bundle.toml``; otherwise use ``--description``, ``--made-by``, ``--licence``,
``--notes``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import warnings

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json"]
SAMPLE_TEXTS = ["", "a photo of a cat", "make the car red", "Turn the SKY   purple, please!",
                "un café à Paris 🙂", " ".join(["a very long caption"] * 30)]


class VisionTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        return self.clip.get_image_features(pixel_values=pixel_values).pooler_output


class TextTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        return self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def display_path(p: str) -> str:
    ap = os.path.abspath(p)
    return os.path.relpath(ap, REPO) if ap.startswith(REPO + os.sep) else p


def tower_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def export_towers(clip, out: str, fp16: bool, opset: int, seq_len: int, image_size: int) -> dict[str, str]:
    model = copy.deepcopy(clip).half() if fp16 else clip
    dt = torch.float16 if fp16 else torch.float32
    vision = VisionTower(model).eval()
    text = TextTower(model).eval()
    for tower, sub in ((model.vision_model, "vision"), (model.text_model, "text")):
        if tower_bytes(tower) > 1.9e9:
            raise SystemExit(f"{sub} tower is {tower_bytes(tower) / 1e9:.2f} GB: over the 2 GB single-file ONNX limit")
    paths = {"vision": os.path.join(out, "vision_model", "model.onnx"),
             "text": os.path.join(out, "text_model", "model.onnx")}
    for p in paths.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
    g = torch.Generator().manual_seed(0)
    px = torch.randn(2, 3, image_size, image_size, generator=g).to(dt)
    ids = torch.full((2, seq_len), 49407, dtype=torch.int64)
    ids[:, 0] = 49406
    ids[0, 1:4] = torch.tensor([320, 1125, 539])
    mask = torch.zeros((2, seq_len), dtype=torch.int64)
    mask[0, :5] = 1
    mask[1, :2] = 1
    ids[1, 1] = 49407
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(vision, (px,), paths["vision"], input_names=["pixel_values"],
                          output_names=["image_embeds"], opset_version=opset, dynamo=False,
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
        torch.onnx.export(text, (ids, mask), paths["text"], input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"},
                                        "text_embeds": {0: "batch"}})
    import onnx

    for p in paths.values():
        extra = sorted(set(os.listdir(os.path.dirname(p))) - {"model.onnx"})
        if extra:
            raise SystemExit(f"unexpected external data next to {p}: {extra}")
        onnx.checker.check_model(p)
    return paths


def io_signature(path: str) -> list[dict]:
    import onnx

    m = onnx.load(path, load_external_data=False)
    out = []
    for kind, vals in (("input", m.graph.input), ("output", m.graph.output)):
        for v in vals:
            t = v.type.tensor_type
            out.append({"kind": kind, "name": v.name,
                        "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": [d.dim_param or d.dim_value for d in t.shape.dim]})
    return out


def synthetic_images(n: int, seed: int):
    """Seeded PIL images of assorted sizes/modes (gradients + rectangles) for the check."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    ims = []
    for i in range(n):
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 120))
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                      np.full_like(xx, int(rng.integers(0, 256)))], -1).astype(np.uint8)
        im = Image.fromarray(a, "RGB")
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            d.rectangle([x0, y0, x0 + int(rng.integers(3, 30)), y0 + int(rng.integers(3, 30))],
                        fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        ims.append(im.convert("L") if i == 1 else im)
    return ims


def compare(ref: np.ndarray, got: np.ndarray) -> dict:
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    cos = (ref * got).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1))
    return {"max_abs_diff": float(np.abs(ref - got).max()), "min_cosine": float(cos.min()),
            "max_abs_ref": float(np.abs(ref).max())}


def merge(a: dict | None, b: dict) -> dict:
    if a is None:
        return b
    return {"max_abs_diff": max(a["max_abs_diff"], b["max_abs_diff"]),
            "min_cosine": min(a["min_cosine"], b["min_cosine"]),
            "max_abs_ref": max(a["max_abs_ref"], b["max_abs_ref"])}


def verify(clip, paths, tokenizer, processor, fp16: bool, seq_len: int, image_size: int) -> dict:
    import onnxruntime as ort

    fdt = np.float16 if fp16 else np.float32
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sv = ort.InferenceSession(paths["vision"], so, providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(paths["text"], so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    res = {"image": None, "text": None}
    batches = [rng.standard_normal((1, 3, image_size, image_size)).astype(np.float32),
               rng.standard_normal((3, 3, image_size, image_size)).astype(np.float32)]
    if processor is not None:
        batches.append(processor(images=synthetic_images(3, 0), return_tensors="np")["pixel_values"].astype(np.float32))
    for x in batches:
        got = sv.run(["image_embeds"], {"pixel_values": x.astype(fdt)})[0]
        assert got.dtype == fdt and got.shape[0] == x.shape[0], (got.dtype, got.shape)
        with torch.no_grad():
            ref = clip.get_image_features(pixel_values=torch.from_numpy(x)).pooler_output.numpy()
        res["image"] = merge(res["image"], compare(ref, got))
    for texts in (SAMPLE_TEXTS[1:2], SAMPLE_TEXTS[:4], SAMPLE_TEXTS[3:]):
        enc = tokenizer(texts, padding="max_length", max_length=seq_len, truncation=True, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        got = st.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0]
        assert got.dtype == fdt and got.shape[0] == len(texts), (got.dtype, got.shape)
        with torch.no_grad():
            ref = clip.get_text_features(input_ids=torch.from_numpy(ids),
                                         attention_mask=torch.from_numpy(mask)).pooler_output.numpy()
        res["text"] = merge(res["text"], compare(ref, got))
    floor = 0.999 if fp16 else 0.99999
    for k, r in res.items():
        if not r["min_cosine"] > floor:
            raise SystemExit(f"{k}: onnxruntime vs transformers cosine {r['min_cosine']} <= {floor}")
    return res


def copy_tokenizer(ckpt: str, out_tok: str, seq_len: int):
    """Copy the checkpoint's tokenizer files; fill in tokenizer.json / vocab.json / merges.txt if missing."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(ckpt)
    os.makedirs(out_tok, exist_ok=True)
    copied = []
    for f in TOKENIZER_FILES:
        if os.path.exists(os.path.join(ckpt, f)):
            shutil.copyfile(os.path.join(ckpt, f), os.path.join(out_tok, f))
            copied.append(f)
    if "tokenizer.json" not in copied:
        tok.backend_tokenizer.save(os.path.join(out_tok, "tokenizer.json"), pretty=False)
    if "vocab.json" not in copied or "merges.txt" not in copied:
        tok.backend_tokenizer.model.save(out_tok)
    if "tokenizer_config.json" not in copied:
        tok.save_pretrained(os.path.join(out_tok, ".tmp"))
        shutil.move(os.path.join(out_tok, ".tmp", "tokenizer_config.json"), os.path.join(out_tok, "tokenizer_config.json"))
        shutil.rmtree(os.path.join(out_tok, ".tmp"))
    # The bundle's files must tokenize exactly as the checkpoint does, also through bare `tokenizers`.
    from tokenizers import Tokenizer

    back = CLIPTokenizer.from_pretrained(out_tok)
    raw = Tokenizer.from_file(os.path.join(out_tok, "tokenizer.json"))
    raw.enable_truncation(max_length=seq_len)
    raw.enable_padding(length=seq_len, pad_id=back.pad_token_id, pad_token=back.pad_token)
    for t in SAMPLE_TEXTS:
        a = tok(t, padding="max_length", max_length=seq_len, truncation=True)
        b = back(t, padding="max_length", max_length=seq_len, truncation=True)
        e = raw.encode(t)
        assert a["input_ids"] == b["input_ids"] == e.ids, t
        assert a["attention_mask"] == b["attention_mask"] == e.attention_mask, t
    return back


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def fmt(x: float) -> str:
    return f"{x:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--fp16", action="store_true", help="float16 weights, pixel_values and embeddings")
    ap.add_argument("--name", help="bundle name (default: basename of OUT)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--description")
    ap.add_argument("--made-by")
    ap.add_argument("--licence")
    ap.add_argument("--notes")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from transformers import CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    ckpt, out = a.checkpoint, a.out
    prov = {}
    if os.path.exists(os.path.join(ckpt, "gsmile_provenance.json")):
        with open(os.path.join(ckpt, "gsmile_provenance.json")) as f:
            prov = json.load(f)
    cmd = f"onnx/export_clip.py {ckpt} {display_path(out)}" + (" --fp16" if a.fp16 else "")
    if a.name:
        cmd += f" --name {a.name}"
    if a.opset != 17:
        cmd += f" --opset {a.opset}"
    name = a.name or os.path.basename(os.path.normpath(out))
    made_by = a.made_by or (f"{prov['made_by']} && {cmd}" if "made_by" in prov else cmd)
    licence = a.licence or prov.get("licence", "as the source checkpoint (see its model card)")
    description = a.description or prov.get(
        "description", f"transformers CLIPModel {os.path.basename(os.path.normpath(ckpt))}.")
    precision = "float16" if a.fp16 else "float32"
    description = f"{description} ONNX export, {precision}."

    clip = CLIPModel.from_pretrained(ckpt, attn_implementation="eager", dtype=torch.float32).eval()
    cfg = clip.config
    seq_len = cfg.text_config.max_position_embeddings
    image_size = cfg.vision_config.image_size
    embed_dim = cfg.projection_dim
    pre_src = os.path.join(ckpt, "preprocessor_config.json")
    if not os.path.exists(pre_src):
        raise SystemExit(f"{pre_src} missing: the bundle needs the checkpoint's image preprocessor config")

    if os.path.isdir(out):
        for sub in ("vision_model", "text_model", "tokenizer"):
            shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    tokenizer = copy_tokenizer(ckpt, os.path.join(out, "tokenizer"), seq_len)
    shutil.copyfile(pre_src, os.path.join(out, "preprocessor_config.json"))
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil.from_pretrained(out)
    crop = processor.crop_size
    if (crop.height, crop.width) != (image_size, image_size):
        print(f"warning: preprocessor crop {crop} != vision image_size {image_size}", file=sys.stderr)

    paths = export_towers(clip, out, a.fp16, a.opset, seq_len, image_size)
    checks = verify(clip, paths, tokenizer, processor, a.fp16, seq_len, image_size)
    sigs = {k: io_signature(p) for k, p in paths.items()}
    sizes = {}
    for root, _, files in os.walk(out):
        for f in files:
            if f not in ("README.md", "bundle.toml", "metrics.json"):
                sizes[os.path.relpath(os.path.join(root, f), out)] = os.path.getsize(os.path.join(root, f))
    params = {"vision": sum(p.numel() for p in clip.vision_model.parameters()) + clip.visual_projection.weight.numel(),
              "text": sum(p.numel() for p in clip.text_model.parameters()) + clip.text_projection.weight.numel()}
    metrics = {"checkpoint": ckpt, "precision": precision, "opset": a.opset, "embed_dim": embed_dim,
               "image_size": image_size, "max_length": seq_len, "parameters": params,
               "onnxruntime_vs_transformers_fp32": checks, "io": sigs,
               "versions": {"torch": torch.__version__.split("+")[0],
                            "transformers": __import__("transformers").__version__,
                            "onnx": __import__("onnx").__version__,
                            "onnxruntime": __import__("onnxruntime").__version__}}
    notes = prov.get("notes", "")
    notes = a.notes or (notes + " " if notes else "") + (
        f"Embeddings are NOT L2-normalised (CLIP get_image_features / get_text_features). {precision} "
        f"ONNX (opset {a.opset}, torch.onnx TorchScript exporter); onnxruntime CPU vs transformers fp32: image "
        f"max abs diff {fmt(checks['image']['max_abs_diff'])} (min cosine {checks['image']['min_cosine']:.7f}), text "
        f"max abs diff {fmt(checks['text']['max_abs_diff'])} (min cosine {checks['text']['min_cosine']:.7f}). "
        f"See README.md/metrics.json.")

    toml = f'''kind = "clip"
name = {toml_str(name)}
description = {toml_str(description)}

[provenance]
made_by = {toml_str(made_by)}
licence = {toml_str(licence)}
notes = {toml_str(notes)}

[tokenizer]
file = "tokenizer"
max_length = {seq_len}

[clip]
embed_dim = {embed_dim}
normalized = false
preprocessor = "preprocessor_config.json"
image_file = "vision_model/model.onnx"
pixel_input = "pixel_values"
image_output = "image_embeds"
text_file = "text_model/model.onnx"
ids_input = "input_ids"
mask_input = "attention_mask"
text_output = "text_embeds"
'''
    import tomllib

    tomllib.loads(toml)
    with open(os.path.join(out, "bundle.toml"), "w", encoding="utf-8") as f:
        f.write(toml)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")
    write_readme(out, name, description, made_by, licence, prov, metrics, sizes)
    total = sum(sizes.values())
    print(json.dumps({"out": out, "checks": checks, "io": sigs, "bundle_bytes": total}, indent=1))


def write_readme(out, name, description, made_by, licence, prov, m, sizes):
    prec = m["precision"]
    with open(os.path.join(out, "preprocessor_config.json")) as f:
        pre = f.read().strip()
    cmds = "\n".join("    /opt/gsmile-py/bin/python " + c.strip() for c in made_by.split("&&"))
    sig_lines = []

    def one(s):
        return f"`{s['name']}` {s['dtype']} [{', '.join(str(d) for d in s['shape'])}]"

    for k, sig in m["io"].items():
        ins = ", ".join(one(s) for s in sig if s["kind"] == "input")
        outs = ", ".join(one(s) for s in sig if s["kind"] == "output")
        sig_lines.append(f"* `{k}_model/model.onnx`: {ins} -> {outs}")
    chk = m["onnxruntime_vs_transformers_fp32"]
    rows = "\n".join(f"| {k} | {v['max_abs_diff']:.3g} | {v['min_cosine']:.8f} | {v['max_abs_ref']:.3g} |"
                     for k, v in chk.items())
    files = "\n".join(f"| `{f}` | {n:,} |" for f, n in sorted(sizes.items()))
    seed = f"\nSeed: {prov['seed']} (weights drawn from `torch.Generator().manual_seed({prov['seed']})`).\n" \
        if "seed" in prov else ""
    text = f"""# {name}

{description}

Licence: {licence}.

## How it was made

{cmds}
{seed}
(venv pinned in `onnx/requirements.txt`; transformers {m['versions']['transformers']},
torch {m['versions']['torch']}, onnx {m['versions']['onnx']}, onnxruntime {m['versions']['onnxruntime']}.)

{prov.get('notes', '')}

## Interface

{chr(10).join(sig_lines)}

`batch` is dynamic.  `image_embeds` / `text_embeds` are CLIP's projected
features (`get_image_features` / `get_text_features`), **not L2-normalised**.
Float tensors are {prec}{' (convert at the boundary)' if prec == 'float16' else ''}.
Text: `tokenizer/` (CLIPTokenizer: tokenizer.json + vocab.json + merges.txt),
pad to {m['max_length']} with `<|endoftext|>` (id 49407), truncate to {m['max_length']}
(`<|startoftext|>` ... `<|endoftext|>` kept), mask 1 on real tokens.
Images: `preprocessor_config.json` (transformers `CLIPImageProcessor`, PIL backend):

```json
{pre}
```

## Checked

onnxruntime (CPU) against the float32 transformers model, batches of 1 and 3
(random pixel values, processed synthetic images, tokenized texts incl. empty
and over-long ones):

| tower | max abs diff | min cosine | max abs value |
|---|---|---|---|
{rows}

## Files ({sum(sizes.values()) / 1e6:.2f} MB)

| file | bytes |
|---|---|
{files}
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
