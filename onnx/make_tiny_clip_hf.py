"""Make a tiny, seeded, random-weight Hugging Face ``transformers`` CLIP checkpoint.

Usage (from the repository root, with the venv of onnx/requirements.txt)::

    /opt/gsmile-py/bin/python onnx/make_tiny_clip_hf.py --seed 0 --out /tmp/tiny-clip-hf-ckpt

Writes a folder that ``transformers`` loads like any downloaded CLIP
checkpoint (``CLIPModel.from_pretrained``, ``CLIPTokenizer.from_pretrained``,
``CLIPImageProcessorPil.from_pretrained``) and that ``onnx/export_clip.py``
exports exactly as it would export e.g. ``openai/clip-vit-large-patch14``:

* ``config.json`` + ``model.safetensors``: ``CLIPModel`` with
  text tower vocab 49408 / hidden 16 / 2 layers / 2 heads / 77 positions,
  vision tower image 32 / patch 8 / hidden 32 / 2 layers / 2 heads,
  projection_dim 32, quick_gelu, ``eos_token_id`` 49407.  Every parameter is
  re-drawn from a ``torch.Generator`` seeded with ``--seed`` (fixed per-name
  rules below), so weights do not depend on transformers' own init code;
* ``vocab.json``, ``merges.txt``, ``special_tokens_map.json``,
  ``tokenizer_config.json`` and a compact ``tokenizer.json``: the real CLIP
  BPE vocabulary (49408 entries, model_max_length 77, pad = ``<|endoftext|>``),
  converted by ``onnx/clip_vocab.py`` from open_clip's
  ``bpe_simple_vocab_16e6.txt.gz`` exactly as OpenAI's ``SimpleTokenizer``
  builds it (byte-to-unicode base tokens, the same with ``</w>``, merges
  ``lines[1 : 49152-256-2+1]``, then ``<|startoftext|>``, ``<|endoftext|>``);
* ``preprocessor_config.json``: ``CLIPImageProcessor`` (PIL backend) with
  shortest_edge 40 + centre crop 32x32 (so both resize and crop matter),
  bicubic, OpenAI CLIP mean/std, do_convert_rgb;
* ``gsmile_provenance.json``: description / made_by / licence / notes that
  ``onnx/export_clip.py`` copies into the bundle's ``bundle.toml`` and README.

The BPE file is read from the open_clip_torch 3.3.0 wheel in ``--wheel-dir``
(``pip download open_clip_torch==3.3.0 --no-deps -d /tmp/oc``; clip_vocab.py
runs that itself when the wheel is missing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SHORTEST_EDGE = 40
CROP = 32


# --------------------------------------------------------------------------- tokenizer
def save_tokenizer(out: str, wheel_dir: str):
    """CLIPTokenizer with the real vocabulary (onnx/clip_vocab.py) + a compact tokenizer.json."""
    from transformers import CLIPTokenizer

    import clip_vocab

    # vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json and transformers 5's
    # tokenizer.json (pretty-printed, 3.6 MB) ...
    clip_vocab.write_clip_tokenizer(out, wheel_dir, keep_tokenizer_json=True)
    # ... rewritten compactly (same content, 1.7 MB): the bundle carries it like openai's checkpoints do.
    tok = CLIPTokenizer.from_pretrained(out)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok.backend_tokenizer.to_str(pretty=False))
    back = CLIPTokenizer.from_pretrained(out)
    want = [49406, 320, 1125, 539, 320, 2368, 49407]  # OpenAI's ids for "a photo of a cat"
    assert back("a photo of a cat")["input_ids"] == want
    assert back.pad_token_id == 49407 and back.model_max_length == 77 and len(back) == 49408
    return back


# --------------------------------------------------------------------------- model
def make_config():
    from transformers import CLIPConfig

    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                bos_token_id=49406, eos_token_id=49407, pad_token_id=1, projection_dim=32)
    vision = dict(image_size=CROP, patch_size=8, num_channels=3, hidden_size=32, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=2, hidden_act="quick_gelu", projection_dim=32)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=32, logit_scale_init_value=2.6592)


def reinit(model: torch.nn.Module, seed: int):
    """Redraw every parameter from one seeded generator, in ``named_parameters`` order.

    * embeddings (token / position / class): N(0, 0.5)
    * q_proj / k_proj weights: N(0, 2 / sqrt(fan_in)) (sharper attention, so images differ)
    * other Linear / Conv weights: N(0, 1 / sqrt(fan_in))
    * biases: N(0, 0.1); LayerNorm weight 1 + N(0, 0.1), bias N(0, 0.1)
    * logit_scale: log(1 / 0.07)
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            def normal(std):
                return torch.randn(p.shape, generator=g, dtype=torch.float32) * std

            if name == "logit_scale":
                p.fill_(math.log(1 / 0.07))
            elif "embedding" in name and (name.endswith("token_embedding.weight") or name.endswith("position_embedding.weight")
                                          or name.endswith("class_embedding")):
                p.copy_(normal(0.5))
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + normal(0.1))
            elif name.endswith(".bias"):
                p.copy_(normal(0.1))
            elif name.endswith(".weight"):
                fan_in = int(p[0].numel())
                gain = 2.0 if (".q_proj." in name or ".k_proj." in name) else 1.0
                p.copy_(normal(gain / math.sqrt(fan_in)))
            else:
                raise AssertionError(f"no init rule for {name}")


def make_model(seed: int):
    from transformers import CLIPModel

    torch.manual_seed(seed)
    model = CLIPModel(make_config()).eval()
    reinit(model, seed)
    return model


def save_preprocessor(out: str):
    from transformers import CLIPImageProcessorPil
    from transformers.image_utils import PILImageResampling

    proc = CLIPImageProcessorPil(
        do_resize=True, size={"shortest_edge": SHORTEST_EDGE}, resample=PILImageResampling.BICUBIC,
        do_center_crop=True, crop_size={"height": CROP, "width": CROP},
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=MEAN, image_std=STD,
        do_convert_rgb=True)
    proc.save_pretrained(out)
    return proc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="checkpoint folder to write (not committed)")
    ap.add_argument("--wheel-dir", default="/tmp/oc",
                    help="folder with the open_clip_torch 3.3.0 wheel (onnx/clip_vocab.py downloads it if absent)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    save_tokenizer(a.out, a.wheel_dir)
    save_preprocessor(a.out)
    model = make_model(a.seed)
    model.save_pretrained(a.out)
    n = sum(p.numel() for p in model.parameters())
    prov = {
        "name": "tiny-clip-hf",
        "description": ("Tiny random-weight transformers CLIPModel (seed %d, %d parameters) with the real CLIP BPE "
                        "tokenizer and a CLIPImageProcessor (shortest_edge %d, centre crop %d): a test double for "
                        "real Hugging Face CLIP checkpoints; its embeddings mean nothing." % (a.seed, n, SHORTEST_EDGE, CROP)),
        "made_by": f"onnx/make_tiny_clip_hf.py --seed {a.seed} --out {a.out}",
        "licence": ("MIT OR Apache-2.0: random weights generated by the gsmile project; tokenizer vocabulary and "
                    "merges are OpenAI CLIP's (MIT licence), taken from open_clip_torch 3.3.0 (MIT)"),
        "notes": ("Random weights (torch.Generator seed %d), not trained: use only to test that a CLIP bundle "
                  "is loaded, preprocessed, tokenized and run exactly like transformers does." % a.seed),
        "seed": a.seed,
        "parameters": n,
    }
    with open(os.path.join(a.out, "gsmile_provenance.json"), "w") as f:
        json.dump(prov, f, indent=1)
        f.write("\n")
    print(json.dumps({"out": a.out, "seed": a.seed, "parameters": n,
                      "files": {f: os.path.getsize(os.path.join(a.out, f)) for f in sorted(os.listdir(a.out))}},
                     indent=1))


if __name__ == "__main__":
    main()
