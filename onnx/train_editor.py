"""Train gsmile's tiny one-step instruction-conditioned image editor.

Usage (from the repository root, with the venv of onnx/requirements.txt)::

    PY=/opt/gsmile-py/bin/python
    # tiny-editor: train (cosine schedule over whichever ends first: --steps or --minutes)
    $PY onnx/train_editor.py --seed 0 --batch 16 --steps 3000 --minutes 12 --stop-at 3000 --save /tmp/ed_main.pt
    # fine-tune (more small-object recolours, lower lr)
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_main.pt --batch 16 --lr 6e-4 --p-small 0.7 \\
        --steps 3000 --minutes 4 --stop-at 3000 --threads 1 --save /tmp/ed_ft.pt
    # selectivity fine-tune (contrast pairs: same scene, two small objects; kept pixels x3)
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_ft.pt --batch 16 --lr 3e-4 --p-small 0.8 \\
        --p-contrast 0.5 --keep-w 3 --gate-w 1.0 --steps 3000 --minutes 14 --stop-at 3000 --threads 2 --save /tmp/ed_sel.pt
    # evaluate + export the bundle onnx/tiny-editor/
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_sel.pt --steps 0
    # tiny-editor-bow: same, order-blind bag-of-words text encoder
    $PY onnx/train_editor.py --seed 0 --text bow --batch 16 --steps 3000 --minutes 6 --stop-at 3000 --save /tmp/ed_bow.pt
    $PY onnx/train_editor.py --seed 0 --text bow --init /tmp/ed_bow.pt --steps 0 --out onnx/tiny-editor-bow

Writes the bundle (``--out``, default ``onnx/tiny-editor/``): ``editor.onnx``,
``tokenizer.json``, ``bundle.toml``, ``README.md`` and ``metrics.json``.

Model (a chain of text-selected masked affine colour maps)
-----------------------------------------------------------
Every edit of the world is a masked affine map (recolour = object mask -> flat
colour; night/brighten/fog = whole image, per-channel ``a*x + b``; winter =
ground -> snow, canopy -> frost), so:

* image: text-independent per-pixel features ``F`` [B,32,64,64] (full-res 3x3
  convs on RGB + x/y, a dilated 32x32 context branch, 1x1 fusion);
* text: transformer (default) or bag of words (``--text bow``), pooled into
  K = 3 slots; per slot a query ``q_k``, gate bias ``b_k`` and affine ``A_k, B_k``;
* ``m_k = sigmoid(<F, q_k>/sqrt(32) + b_k)``,
  ``out_k = clamp((1 - m_k) * out_{k-1} + m_k * (A_k * out_{k-1} + B_k), 0, 1)``;
  gates start closed; an all-padding instruction closes them (identity).

Training: on-the-fly samples from ``onnx/world`` (train seeds >= 1e6;
evaluation uses seeds < 1e6, so scenes and instructions are unseen), 55% of
samples rejection-sampled to recolour a small object first; loss = L1 +
balanced L1 (changed / kept pixels averaged separately per sample) + 0.3 x a
balanced log-loss of the union of the gates vs the changed pixels; AdamW, lr
2e-3, warm-up + cosine.

Evaluation (metrics.json / README): held-out MAE vs exact targets and identity
(overall, per style, per instruction kind), key-word vs filler/distractor drop
sensitivity, "make the car red" localisation on 100 held-out scenes and on
``assets/scene-01.png``, empty-instruction identity.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import MAX_LEN, build_tokenizer, chw, drop_word, editor_sample, encode, file_size_mb
from world import grammar, scene

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_SEED0 = 1_000_000
EVAL_SEED0 = 0


# ------------------------------------------------------------------- model
class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x, bias):  # bias: [B,1,1,L] additive
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q = q.reshape(B, L, self.h, D // self.h).transpose(1, 2)
        k = k.reshape(B, L, self.h, D // self.h).transpose(1, 2)
        v = v.reshape(B, L, self.h, D // self.h).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // self.h) + bias, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, L, D)
        x = x + self.proj(y)
        return x + self.ff(self.ln2(x))


class TextEncoder(nn.Module):
    def __init__(self, vocab: int, d: int = 64, layers: int = 2, heads: int = 4, queries: int = 4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(MAX_LEN, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.q = nn.Parameter(torch.randn(queries, d) * 0.1)
        self.out_dim = queries * d

    def forward(self, ids, mask):
        m = mask.to(torch.float32)
        bias = ((1.0 - m) * -1e4)[:, None, None, :]
        x = self.emb(ids) + self.pos[None]
        for b in self.blocks:
            x = b(x, bias)
        x = self.ln(x)
        att = torch.softmax(torch.einsum("qd,bld->bql", self.q, x) / 8.0 + bias[:, 0], dim=-1)
        return torch.einsum("bql,bld->bqd", att, x)  # [B,queries,d]


class BowText(nn.Module):
    """Order-blind text encoder: masked mean of word embeddings (no attention, no positions)."""

    def __init__(self, vocab: int, d: int = 64, queries: int = 3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.ln = nn.LayerNorm(d)
        self.queries = queries
        self.d = d

    def forward(self, ids, mask):
        m = mask.to(torch.float32)[:, :, None]
        v = (self.emb(ids) * m).sum(1) / (m.sum(1) + 1e-6)
        return self.ln(v)[:, None, :].expand(-1, self.queries, -1)


def gn(c):
    return nn.GroupNorm(8, c)


class ImageFeatures(nn.Module):
    """Text-independent per-pixel features F [B,C,64,64]: full-res stem (colour/edges) +
    a 32x32 dilated context branch (receptive field ~35 px, sees object shape)."""

    def __init__(self, C: int = 32, w0: int = 24, w1: int = 48):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs])[None], persistent=False)
        self.s1 = nn.Conv2d(5, w0, 3, padding=1)
        self.n1 = gn(w0)
        self.s2 = nn.Conv2d(w0, w0, 3, padding=1)
        self.n2 = gn(w0)
        self.down = nn.Conv2d(4 * w0, w1, 1)
        self.nd = gn(w1)
        self.ctx = nn.ModuleList([nn.Conv2d(w1, w1, 3, padding=d, dilation=d) for d in (1, 2, 4, 8, 1)])
        self.cn = nn.ModuleList([gn(w1) for _ in self.ctx])
        self.f1 = nn.Conv2d(w0 + w1 + 3, 64, 1)
        self.nf = gn(64)
        self.f2 = nn.Conv2d(64, C, 1)

    def forward(self, x):
        B = x.shape[0]
        h = F.silu(self.n1(self.s1(torch.cat([x, self.coords.expand(B, -1, -1, -1)], 1))))
        h = F.silu(self.n2(self.s2(h))) + h
        c = F.silu(self.nd(self.down(F.pixel_unshuffle(h, 2))))
        for conv, n in zip(self.ctx, self.cn):
            c = c + F.silu(n(conv(c)))
        c = F.interpolate(c, scale_factor=2.0, mode="nearest")
        return self.f2(F.silu(self.nf(self.f1(torch.cat([h, c, x], 1)))))


class Editor(nn.Module):
    """Chain of K text-selected masked affine edits on per-pixel image features.

    slot k: mask m_k = sigmoid(<F, q_k> / sqrt(C) + b_k), colour map (A_k, B_k);
    out_k = clamp((1 - m_k) * out_{k-1} + m_k * (A_k * out_{k-1} + B_k), 0, 1).
    """

    def __init__(self, vocab: int, text: str = "transformer", C: int = 32, K: int = 3):
        super().__init__()
        self.K, self.C = K, C
        self.text = TextEncoder(vocab, queries=K) if text == "transformer" else BowText(vocab, queries=K)
        d = 64
        self.heads = nn.ModuleList([nn.Sequential(nn.Linear(d, 128), nn.SiLU(), nn.Linear(128, C + 7))
                                    for _ in range(K)])
        for h in self.heads:
            nn.init.normal_(h[2].weight, std=0.01)
            with torch.no_grad():
                h[2].bias.zero_()
                h[2].bias[C] = -4.0  # gates start closed: identity by default
        self.img = ImageFeatures(C)

    def forward(self, image, input_ids, attention_mask, return_logits: bool = False):
        slots = self.text(input_ids, attention_mask)  # [B,K,64]
        # an empty (all-padding) instruction closes every gate: output = input
        empty = (1.0 - attention_mask.to(torch.float32).amax(dim=1)) * 40.0  # [B]
        feats = self.img(image)
        out = image
        scale = 1.0 / math.sqrt(self.C)
        logits = []
        for k in range(self.K):
            p = self.heads[k](slots[:, k])  # [B,C+7]
            q = p[:, :self.C]
            bias = p[:, self.C] - empty
            A = 1.0 + p[:, self.C + 1:self.C + 4]
            Bc = p[:, self.C + 4:self.C + 7]
            logit = torch.einsum("bchw,bc->bhw", feats, q) * scale + bias[:, None, None]
            logits.append(logit)
            m = torch.sigmoid(logit)[:, None]
            edited = A[:, :, None, None] * out + Bc[:, :, None, None]
            out = torch.clamp(out + m * (edited - out), 0.0, 1.0)
        if return_logits:
            return out, torch.stack(logits, 1)
        return out


# -------------------------------------------------------------------- data
SMALL = ("car", "roof", "sun", "moon", "tree", "house", "water")


def sample(seed: int, rng, p_small: float, p_drop: float = 0.1, obj: str | None = None):
    """editor_sample with (prob p_small) a rejection-sampled instruction whose first edit
    recolours a small object (car/roof/sun/moon/tree/house/water) when the scene has one.
    With ``obj``: the first edit must recolour that object (contrast pairs)."""
    spec, img, masks = scene.make_scene(seed)
    want = rng.random() < p_small and any(o in SMALL for o in grammar.recolourable(masks))
    for _ in range(60 if obj else 30):
        ins = grammar.sample_instruction(rng, masks, p_global=0.0 if obj else 0.3)
        e = ins["edits"][0]
        if obj is not None:
            if e["op"] == "recolour" and e["object"] == obj:
                break
        elif not want or (e["op"] == "recolour" and e["object"] in SMALL):
            break
    tgt = grammar.apply_edits(img, masks, ins["edits"])
    text = ins["text"]
    if p_drop > 0 and rng.random() < p_drop:
        cand = [i for i, r in enumerate(ins["roles"]) if r != "key"]
        if cand:
            text = drop_word(ins["words"], cand[int(rng.integers(len(cand)))])
    return img, tgt, text


def make_batch(tok, rng, seeds, p_small=0.55, p_drop=0.1, p_contrast=0.0):
    """A batch of samples; with prob ``p_contrast`` a pair of consecutive slots becomes a
    contrast pair: the same scene, two different small objects recoloured (so a mask that
    also opens on the other object is penalised in one of the two)."""
    xs, ts, texts = [], [], []
    seeds = [int(s) for s in seeds]
    i = 0
    while i < len(seeds):
        pair = None
        if i + 1 < len(seeds) and p_contrast > 0 and rng.random() < p_contrast:
            _, _, masks = scene.make_scene(seeds[i])
            objs = [o for o in grammar.recolourable(masks) if o in SMALL]
            if len(objs) >= 2:
                a, b = rng.choice(len(objs), 2, replace=False)
                pair = [objs[int(a)], objs[int(b)]]
        for obj in (pair or [None]):
            x, t, text = sample(seeds[i], rng, p_small, p_drop, obj=obj)
            xs.append(chw(x))
            ts.append(chw(t))
            texts.append(text)
        i += 2 if pair else 1
    ids, mask = encode(tok, texts)
    return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts)),
            torch.from_numpy(ids), torch.from_numpy(mask))


def loss_fn(out, x, t, logits=None, gate_w: float = 0.3, keep_w: float = 1.0):
    """L1 over all pixels + balanced term: per-sample mean L1 over the pixels the target
    changes + per-sample mean L1 over the pixels it keeps (small objects count as much as
    the sky, false positives still cost).  Plus (``gate_w``) a balanced log-loss between
    the union of the K gates, 1 - prod_k(1 - m_k), and the set of pixels the target
    changes: it keeps gradients alive where a closed sigmoid gate would saturate.
    ``keep_w`` weights the kept-pixel halves of both balanced terms (> 1 punishes edits /
    open gates on pixels the target keeps, e.g. other objects, harder)."""
    changed = ((t - x).abs().sum(1, keepdim=True) > 1e-3).float()
    e = (out - t).abs().mean(1, keepdim=True)
    n_ch = changed.sum((1, 2, 3))

    def balanced(v):
        v_ch = (v * changed).sum((1, 2, 3)) / n_ch.clamp(min=1.0)
        v_keep = (v * (1 - changed)).sum((1, 2, 3)) / (4096 - n_ch).clamp(min=1.0)
        return (v_ch + keep_w * v_keep).mean()

    loss = e.mean() + balanced(e)
    if logits is not None and gate_w > 0:
        log_closed = F.logsigmoid(-logits).sum(1, keepdim=True)  # log prod(1 - m_k)
        log_open = torch.log(-torch.expm1(log_closed.clamp(max=-1e-6)))  # log(1 - prod)
        bce = -(changed * log_open + (1 - changed) * log_closed)
        loss = loss + gate_w * balanced(bce)
    return loss


# -------------------------------------------------------------------- eval
@torch.no_grad()
def run(model, tok, imgs_hwc, texts, bs=64):
    outs = []
    for i in range(0, len(texts), bs):
        x = torch.from_numpy(np.stack([chw(im) for im in imgs_hwc[i:i + bs]]))
        ids, mask = encode(tok, texts[i:i + bs])
        outs.append(model(x, torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
    return np.concatenate(outs)


@torch.no_grad()
def evaluate(model, tok, n_mae=600, n_sens=240, n_loc=100):
    model.eval()
    rng = np.random.default_rng(12345)
    res: dict = {}
    # 1. held-out MAE
    xs, ts, texts, styles = [], [], [], []
    for i in range(n_mae):
        x, t, text, ins, *_ = editor_sample(EVAL_SEED0 + i, rng)
        xs.append(x), ts.append(t), texts.append(text), styles.append(ins["style"])
    out = run(model, tok, xs, texts)
    T = np.stack([chw(t) for t in ts])
    X = np.stack([chw(x) for x in xs])
    err = np.abs(out - T).mean(axis=(1, 2, 3))
    res["heldout_n"] = n_mae
    res["heldout_mae"] = float(err.mean())
    res["identity_mae"] = float(np.abs(X - T).mean())
    res["heldout_mae_by_style"] = {s: float(err[np.array(styles) == s].mean()) for s in sorted(set(styles))}
    # MAE on changed pixels only
    ch = (np.abs(T - X).sum(1) > 1e-3)
    res["heldout_mae_changed_pixels"] = float(np.abs(out - T).sum(1)[ch].mean() / 3)
    res["identity_mae_changed_pixels"] = float(np.abs(X - T).sum(1)[ch].mean() / 3)

    # 2. key vs filler sensitivity
    key_d, fill_d, n_ins = [], [], 0
    for i in range(n_sens):
        x, t, text, ins, *_ = editor_sample(EVAL_SEED0 + 100_000 + i, rng)
        full_text = " ".join(ins["words"])
        var_texts, kinds = [], []
        for j, r in enumerate(ins["roles"]):
            if r in ("key", "filler", "distractor"):
                var_texts.append(drop_word(ins["words"], j))
                kinds.append("key" if r == "key" else "filler")
        o = run(model, tok, [x] * (len(var_texts) + 1), [full_text] + var_texts)
        d = np.abs(o[1:] - o[:1]).mean(axis=(1, 2, 3))
        for k, v in zip(kinds, d):
            (key_d if k == "key" else fill_d).append(float(v))
        n_ins += 1
    res["sensitivity_instructions"] = n_ins
    res["key_drops"] = len(key_d)
    res["filler_drops"] = len(fill_d)
    res["key_drop_mean_abs_change"] = float(np.mean(key_d))
    res["filler_drop_mean_abs_change"] = float(np.mean(fill_d))
    res["key_filler_ratio"] = float(np.mean(key_d) / max(np.mean(fill_d), 1e-12))

    # 3. localisation: "make the car red"
    ins_, outs_ = [], []
    xs, ms = [], []
    s = EVAL_SEED0 + 200_000
    while len(xs) < n_loc:
        spec, img, masks = scene.make_scene(s)
        s += 1
        if masks["car_body"].sum() >= grammar.MIN_PIXELS:
            xs.append(img), ms.append(masks["car"])
    out = run(model, tok, xs, ["make the car red"] * n_loc)
    X = np.stack([chw(x) for x in xs])
    d = np.abs(out - X).mean(1)  # [N,64,64]
    M = np.stack(ms)
    inside = float(d[M].mean())
    outside = float(d[~M].mean())
    red = np.array(scene.PALETTE["red"], np.float32)[None, :, None, None]
    res["car_red_mean_change_inside_car"] = inside
    res["car_red_mean_change_outside_car"] = outside
    res["car_red_inside_outside_ratio"] = inside / max(outside, 1e-12)
    res["car_red_fraction_of_change_inside_car"] = float(d[M].sum() / d.sum())
    res["car_red_dist_to_red_inside_car"] = float(np.abs(out - red).mean(1)[M].mean())
    # 4. per instruction kind (single-edit instructions, terse/polite/verbose)
    res["per_kind"] = per_kind(model, tok, rng, n=40 if n_mae >= 600 else 3)
    # 5. "make the car red" on assets/scene-01.png (+ its car mask)
    res["scene01_car_red"] = scene01_car_red(model, tok)
    # 6. empty instruction (all padding) -> identity
    ids, mask = encode(tok, [""])
    o = model(torch.from_numpy(chw(xs[0])[None]), torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    res["empty_instruction_max_abs_change"] = float(np.abs(o[0] - chw(xs[0])).max())
    model.train()
    return res


KINDS = ["car", "house", "roof", "sky", "grass", "tree", "water", "sun", "moon",
         "night", "brighten", "fog", "winter"]


def _kind_of(edit):
    if edit["op"] != "recolour":
        return edit["op"]
    return "grass" if edit["object"] == "ground" else edit["object"]


@torch.no_grad()
def per_kind(model, tok, rng, n=40):
    out = {}
    for ki, kind in enumerate(KINDS):
        xs, ts, texts = [], [], []
        s = EVAL_SEED0 + 300_000 + ki * 10_000
        while len(xs) < n:
            _, img, masks = scene.make_scene(s)
            s += 1
            obj = {"grass": "ground"}.get(kind, kind)
            if kind not in grammar.GLOBAL_OPS and obj not in grammar.recolourable(masks):
                continue
            for _ in range(500):
                ins = grammar.sample_instruction(rng, masks, style=["terse", "polite", "verbose"][len(xs) % 3])
                if _kind_of(ins["edits"][0]) == kind:
                    break
            else:
                continue
            xs.append(img), ts.append(grammar.apply_edits(img, masks, ins["edits"])), texts.append(ins["text"])
        o = run(model, tok, xs, texts)
        T = np.stack([chw(t) for t in ts])
        X = np.stack([chw(x) for x in xs])
        ch = np.abs(T - X).sum(1) > 1e-3
        out[kind] = {"n": n, "mae": float(np.abs(o - T).mean()), "identity_mae": float(np.abs(X - T).mean()),
                     "mae_changed_pixels": float(np.abs(o - T).mean(1)[ch].mean()),
                     "identity_mae_changed_pixels": float(np.abs(X - T).mean(1)[ch].mean()),
                     "example": texts[0]}
    return out


@torch.no_grad()
def scene01_car_red(model, tok):
    from PIL import Image
    root = os.path.dirname(HERE)
    img = np.asarray(Image.open(os.path.join(root, "assets", "scene-01.png")).convert("RGB"), np.float32) / 255.0
    M = np.asarray(Image.open(os.path.join(root, "assets", "scene-01-masks", "car.png")).convert("L")) > 127
    o = run(model, tok, [img], ["make the car red"])[0]
    d = np.abs(o - chw(img)).mean(0)
    red = np.array(scene.PALETTE["red"], np.float32)[:, None, None]
    inside, outside = float(d[M].mean()), float(d[~M].mean())
    return {"car_pixels": int(M.sum()), "mean_change_inside_car": inside, "mean_change_outside_car": outside,
            "inside_outside_ratio": inside / max(outside, 1e-12),
            "fraction_of_change_inside_car": float(d[M].sum() / max(d.sum(), 1e-12)),
            "dist_to_red_inside_car": float(np.abs(o - red).mean(0)[M].mean()),
            "dist_to_red_inside_car_before": float(np.abs(chw(img) - red).mean(0)[M].mean())}


# ------------------------------------------------------------------ export
def export(model, tok, out_dir):
    model.eval()
    path = os.path.join(out_dir, "editor.onnx")
    x = torch.rand(2, 3, 64, 64)
    ids, mask = encode(tok, ["make the car red", "add fog please"])
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    torch.onnx.export(model, (x, ids, mask), path, input_names=["image", "input_ids", "attention_mask"],
                      output_names=["edited"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "batch"}, "input_ids": {0: "batch"},
                                    "attention_mask": {0: "batch"}, "edited": {0: "batch"}})
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(onnx.load(path))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for B in (1, 7):
        xs, texts = [], []
        for i in range(B):
            _, img, masks = scene.make_scene(900_000 + i)
            xs.append(chw(img))
            texts.append(grammar.sample_instruction(rng, masks)["text"])
        X = np.stack(xs)
        I, Mk = encode(tok, texts)
        o = sess.run(["edited"], {"image": X, "input_ids": I, "attention_mask": Mk})[0]
        with torch.no_grad():
            t = model(torch.from_numpy(X), torch.from_numpy(I), torch.from_numpy(Mk)).numpy()
        worst = max(worst, float(np.abs(o - t).max()))
        assert o.shape == (B, 3, 64, 64)
    assert worst < 1e-5, worst
    return path, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "tiny-editor"))
    ap.add_argument("--bench", action="store_true", help="time 10 steps and exit")
    ap.add_argument("--text", choices=["transformer", "bow"], default="transformer",
                    help="text encoder: transformer (default) or order-blind bag of words")
    ap.add_argument("--p-small", type=float, default=0.55,
                    help="fraction of samples whose first edit recolours a small object")
    ap.add_argument("--gate-w", type=float, default=0.3, help="weight of the gate log-loss")
    ap.add_argument("--keep-w", type=float, default=1.0,
                    help="weight of the kept-pixel half of the balanced L1 and gate log-loss")
    ap.add_argument("--p-contrast", type=float, default=0.0,
                    help="prob. that a pair of batch slots is a contrast pair (same scene, two small objects)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop training after this many minutes (schedule still --steps)")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this many steps of the --steps schedule, save --save, no export")
    ap.add_argument("--save", default="/tmp/tiny-editor.pt", help="where to save the final state_dict")
    ap.add_argument("--init", default=None, help="start from this state_dict (resume / fine-tune)")
    ap.add_argument("--smoke", action="store_true", help="tiny evaluation (pipeline test only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    tok = build_tokenizer()
    model = Editor(tok.get_vocab_size(), text=args.text)
    if args.init:
        model.load_state_dict(torch.load(args.init))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    # cosine decay over progress = max(step / steps, elapsed / minutes): with --minutes the
    # schedule (and training) ends at whichever budget runs out first (shared, busy CPU)
    warm = 30
    t0 = time.time()
    seed_ctr = TRAIN_SEED0 + args.seed * 10_000_000 + (5_000_000 if args.init else 0)
    steps_done = 0
    ema = None
    for step in range(args.steps):
        prog = step / args.steps
        if args.minutes is not None:
            prog = max(prog, (time.time() - t0) / (60 * args.minutes))
        if prog >= 1.0:
            print(f"time budget reached after {step} steps", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * prog))
        seeds = np.arange(seed_ctr, seed_ctr + args.batch)
        seed_ctr += args.batch
        x, t, ids, mask = make_batch(tok, rng, seeds, p_small=args.p_small, p_contrast=args.p_contrast)
        out, logits = model(x, ids, mask, return_logits=True)
        loss = loss_fn(out, x, t, logits, args.gate_w, args.keep_w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        if args.bench and step == 9:
            print(f"{(time.time() - t0) / 10:.3f} s/step")
            return
        steps_done = step + 1
        if step % 50 == 0 or step == args.steps - 1 or args.steps <= 100:
            print(f"step {step} loss {ema:.4f} lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s", flush=True)
        if step % 100 == 99:
            torch.save(model.state_dict(), args.save + ".partial")
        if args.stop_at is not None and step + 1 >= args.stop_at:
            torch.save(model.state_dict(), args.save)
            print(f"stopped after {step + 1} steps, saved {args.save}")
            return
    train_s = time.time() - t0
    torch.save(model.state_dict(), args.save)
    info = {"train_wall_s": round(train_s, 1), "steps": steps_done, "steps_schedule": args.steps,
            "minutes": args.minutes, "batch": args.batch, "threads": args.threads, "lr": args.lr,
            "gate_w": args.gate_w, "keep_w": args.keep_w, "p_contrast": args.p_contrast, "p_small": args.p_small, "text_encoder": args.text, "final_loss_ema": ema}
    if args.steps > 0:
        with open(args.save + ".json", "w") as f:
            json.dump(info, f, indent=1)
    elif args.init and os.path.exists(args.init + ".json"):  # evaluate/export a saved run
        with open(args.init + ".json") as f:
            info = json.load(f)
        info["init"] = args.init
    if args.stop_at is not None:
        print(f"trained {steps_done} steps in {train_s:.0f}s, saved {args.save}")
        return
    t1 = time.time()
    res = evaluate(model, tok, 20, 5, 5) if args.smoke else evaluate(model, tok)
    res["eval_wall_s"] = round(time.time() - t1, 1)
    res.update(info)
    res["params"] = nparams
    tok.save(os.path.join(args.out, "tokenizer.json"))
    path, worst = export(model, tok, args.out)
    res["onnx_vs_torch_max_abs_diff"] = worst
    res["bundle_mb"] = round(file_size_mb(path, os.path.join(args.out, "tokenizer.json")), 3)
    print(json.dumps(res, indent=1))
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_bundle_files(args.out, res, name=os.path.basename(os.path.normpath(args.out)), text=args.text)


RECIPES = {
    "tiny-editor": """Trained by `onnx/train_editor.py` in three runs, each a warm-up + cosine schedule
over whichever budget ends first (`--steps` or `--minutes`): 1348 steps in 12 min at lr 2e-3
(busy shared 2-core machine, time budget), then a fine-tune from those weights (280 steps,
4.0 min, lr 6e-4, 70% small-object recolours, 1 thread), then a selectivity fine-tune
from those ({steps} steps, {train_min:.1f} min, lr {lr:g}, {p_small_pct:.0f}% small-object recolours,
{p_contrast_pct:.0f}% of sample pairs are contrast pairs - the same scene with two different small
objects recoloured - kept pixels weighted {keep_w:g}x in the balanced L1 and gate
log-loss, gate log-loss weight {gate_w:g}, {threads} threads on an otherwise idle 2-core machine),
then evaluated and exported from the saved weights:

    PY=/opt/gsmile-py/bin/python
    $PY onnx/train_editor.py --seed 0 --batch 16 --steps 3000 --minutes 12 --stop-at 3000 --save /tmp/ed_main.pt
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_main.pt --batch 16 --lr 6e-4 --p-small 0.7 \\
        --steps 3000 --minutes 4 --stop-at 3000 --threads 1 --save /tmp/ed_ft.pt
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_ft.pt --batch 16 --lr {lr:g} --p-small {p_small:g} \\
        --p-contrast {p_contrast:g} --keep-w {keep_w:g} --gate-w {gate_w:g} --steps {steps_schedule} --minutes {minutes:g} \\
        --stop-at {steps_schedule} --threads {threads} --save /tmp/ed_sel.pt
    $PY onnx/train_editor.py --seed 0 --init /tmp/ed_sel.pt --steps 0   # evaluate + export

(`--steps N --stop-at N` without `--minutes`, N = 1348, 280 and {steps}, gives the same
step counts but slightly different learning-rate curves.)
""",
    "tiny-editor-bow": """Trained by `onnx/train_editor.py --text bow` (same image network, loss and
data as `tiny-editor`; cosine schedule over the time budget, which ended it after
{steps} steps, {train_min:.1f} min), then evaluated and exported:

    PY=/opt/gsmile-py/bin/python
    $PY onnx/train_editor.py --seed 0 --text bow --batch 16 --steps 3000 --minutes {minutes} --stop-at 3000 --save /tmp/ed_bow.pt
    $PY onnx/train_editor.py --seed 0 --text bow --init /tmp/ed_bow.pt --steps 0 --out onnx/tiny-editor-bow
""",
}

TEXT_ARCH = {
    "transformer": """* text: word embedding(64) + learned positions, 2 pre-LN transformer layers
  (4 heads), attention pooling with 3 learned query slots (masked); each slot has
  its own MLP head giving a query q_k (32-d), a gate bias b_k and an affine colour
  map A_k, B_k (3 each);""",
    "bow": """* text: **bag of words** - masked mean of word embeddings(64) + LayerNorm, no
  attention and no positions, so it is blind to word order; the same vector
  feeds 3 slot heads (MLP each) giving a query q_k (32-d), a gate bias b_k and
  an affine colour map A_k, B_k (3 each);""",
}


def write_bundle_files(out, r, name="tiny-editor", text="transformer"):
    car = r["scene01_car_red"]
    notes = (f"Held-out pixel MAE {r['heldout_mae']:.4f} (identity {r['identity_mae']:.4f}); "
             f"key-word drop changes output {r['key_filler_ratio']:.1f}x more than filler drop "
             f"({r['key_drop_mean_abs_change']:.4f} vs {r['filler_drop_mean_abs_change']:.4f}); "
             f"'make the car red' on 100 held-out scenes: mean change inside car mask "
             f"{r['car_red_mean_change_inside_car']:.3f} vs outside {r['car_red_mean_change_outside_car']:.4f} "
             f"({100 * r['car_red_fraction_of_change_inside_car']:.0f}% of change inside); on assets/scene-01.png "
             f"{car['mean_change_inside_car']:.3f} vs {car['mean_change_outside_car']:.4f} "
             f"({100 * car['fraction_of_change_inside_car']:.0f}% inside). See README.md/metrics.json.")
    desc = ("One-step instruction-conditioned editor trained on gsmile's synthetic world."
            if text == "transformer" else
            "One-step editor with an order-blind bag-of-words text encoder (comparison model), "
            "trained on gsmile's synthetic world.")
    made_by = "onnx/train_editor.py --seed 0" + (" --text bow" if text == "bow" else "")
    toml = f'''kind = "editor"
name = "{name}"
description = "{desc}"

[provenance]
made_by = "{made_by}"
licence = "MIT OR Apache-2.0: trained by the gsmile project on synthetic data it generates"
notes = "{notes}"

[tokenizer]
file = "tokenizer.json"
max_length = 24

[image]
height = 64
width = 64
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
range = [0.0, 1.0]

[editor]
file = "editor.onnx"
image_input = "image"
ids_input = "input_ids"
mask_input = "attention_mask"
output = "edited"
'''
    with open(os.path.join(out, "bundle.toml"), "w") as f:
        f.write(toml)
    by_style = ", ".join(f"{k} {v:.4f}" for k, v in r["heldout_mae_by_style"].items())
    rows = "\n".join(
        f"| {k} | `{v['example']}` | {v['mae']:.4f} | {v['identity_mae']:.4f} | "
        f"{v['mae_changed_pixels']:.4f} | {v['identity_mae_changed_pixels']:.4f} |"
        for k, v in r["per_kind"].items())
    recipe = RECIPES[name].format(steps=r["steps"], steps_schedule=r["steps_schedule"],
                                  train_min=r["train_wall_s"] / 60, minutes=r.get("minutes"),
                                  lr=r["lr"], p_small=r["p_small"], p_small_pct=100 * r["p_small"],
                                  p_contrast=r.get("p_contrast", 0.0),
                                  p_contrast_pct=100 * r.get("p_contrast", 0.0),
                                  keep_w=r.get("keep_w", 1.0), gate_w=r["gate_w"], threads=r["threads"])
    bow_note = ("" if text == "transformer" else """
This model exists to be compared with `tiny-editor` (same image network, loss,
data and tokenizer; only the text encoder differs).  Being order-blind, it
cannot tell "make the car red and the sky orange" from "make the car orange and
the sky red", nor which of two edits comes first.
""")
    worse = [k for k, v in r["per_kind"].items() if v["mae"] >= v["identity_mae"]]
    weak = ("" if not worse else f"""
**Known weakness: edits leak outside small objects.**  Recolours of small
objects now change the right object (MAE on the changed pixels
{min(r['per_kind'][k]['mae_changed_pixels'] for k in worse):.3f}-{max(r['per_kind'][k]['mae_changed_pixels'] for k in worse):.3f}
vs identity ~0.3-0.4), but the gates also open on parts of other objects, so over
the whole image the MAE of these kinds is *above* the identity baseline
(the target changes only 1-5% of the pixels): {', '.join(worse)}.  For "make the
car red" only {100 * r['car_red_fraction_of_change_inside_car']:.0f}% of the change (held-out) /
{100 * car['fraction_of_change_inside_car']:.0f}% (scene-01) is inside the car{"" if min(r['car_red_fraction_of_change_inside_car'], car['fraction_of_change_inside_car']) >= 0.6 else "; the goal of > 60% was not reached in the time available"}.
""")
    readme = f"""# {name}

A one-step, instruction-conditioned image editor for gsmile's synthetic world
(64x64 landscapes, see `onnx/world/`).  Trained from scratch by the gsmile
project; licence MIT OR Apache-2.0.
{bow_note}
## How it was made

{recipe}
Batch {r['batch']} of freshly generated samples per step (train seeds >= 1,000,000),
{100 * r['p_small']:.0f}% of them (last run) rejection-sampled so that the (first) edit recolours a
small object (car, roof, sun, moon, tree, house, water); AdamW, 30-step
warm-up then cosine decay (learning rates above); CPU only ({r['threads']} threads, last run) on a
2-core machine; venv pinned in `onnx/requirements.txt`.

## Interface

| name | type | shape | meaning |
|---|---|---|---|
| `image` (in) | float32 | [batch,3,64,64] | RGB in [0,1], channel-first, no normalisation |
| `input_ids` (in) | int64 | [batch,24] | `tokenizer.json` ids, padded with `[PAD]`=0 |
| `attention_mask` (in) | int64 | [batch,24] | 1 for real tokens, 0 for padding |
| `edited` (out) | float32 | [batch,3,64,64] | edited RGB in [0,1] |

`tokenizer.json`: word level, NFKC + lowercase, whitespace/punctuation
pre-tokenizer, `[UNK]`=1, fixed padding to 24, no truncation.  ONNX opset 17,
dynamic batch; onnxruntime (CPU) matches PyTorch to {r['onnx_vs_torch_max_abs_diff']:.1e}
(batch 1 and 7).  An all-padding instruction closes every gate: the output is
the input (max change {r['empty_instruction_max_abs_change']:.1e}).

## Architecture ({r['params']:,} parameters, {r['bundle_mb']:.2f} MB bundle)

Every edit of the world is a *masked affine* colour map (a recolour = object
mask -> flat colour; night/brighten/fog = whole image, per-channel affine;
winter = ground -> snow and canopy -> frost), so the editor is a chain of K = 3
of them, selected by the text:

{TEXT_ARCH[text]}
* image: text-independent per-pixel features F (32 channels, 64x64): two
  full-resolution 3x3 convs (RGB + x/y coordinates), a 32x32 context branch
  (space-to-depth, five 3x3 convs with dilations 1/2/4/8/1, residual,
  receptive field ~35 px), upsampled and fused with the full-resolution
  features and the RGB by two 1x1 convs; GroupNorm + SiLU;
* edit chain: `m_k = sigmoid(<F, q_k>/sqrt(32) + b_k)`,
  `out_k = clamp((1-m_k)*out_(k-1) + m_k*(A_k*out_(k-1) + B_k), 0, 1)`, `out_0 = image`;
  gates start closed (b_k = -4), and an empty instruction subtracts 40 from every
  b_k, so the default is the identity.

Loss: L1 over all pixels + a balanced term (per sample: mean L1 over the pixels
the exact target changes + mean L1 over the pixels it keeps), so a car counts
as much as the sky without rewarding edits outside it; + {r['gate_w']:g} x a balanced
log-loss between the union of the gates, 1 - prod(1 - m_k), and the pixels the
target changes (keeps gradients alive where closed gates saturate: without it
the first attempt shut the recolour gates for good).  In the last run the
kept-pixel halves of both balanced terms are weighted {r.get('keep_w', 1.0):g}x (`--keep-w`), so a
gate that also opens on another object costs more.  Targets are the exact
ones of `onnx/world/grammar.py` (terse/polite/verbose/two-edit instructions;
10% of samples have one non-key word removed).

## Measured (held-out scenes and instructions, seeds < 1,000,000, never used in training)

* Pixel MAE vs exact targets over {r['heldout_n']} random samples: **{r['heldout_mae']:.4f}**
  (identity baseline {r['identity_mae']:.4f}).  By style: {by_style}.
  On pixels the target changes: {r['heldout_mae_changed_pixels']:.4f}
  (identity {r['identity_mae_changed_pixels']:.4f}).
* Per instruction kind ({r['per_kind']['car']['n']} held-out scenes each, single-edit
  instructions in terse/polite/verbose style; MAE over all pixels and over the
  pixels the target changes):

| kind | example | MAE | identity | MAE changed px | identity changed px |
|---|---|---|---|---|---|
{rows}

* Word-drop sensitivity over {r['sensitivity_instructions']} instructions: mean
  |output(full) - output(one word dropped)| = {r['key_drop_mean_abs_change']:.4f} for
  key words ({r['key_drops']} drops) vs {r['filler_drop_mean_abs_change']:.4f} for
  filler/distractor words ({r['filler_drops']} drops): ratio **{r['key_filler_ratio']:.1f}x**.
* "make the car red" on 100 held-out scenes with a car: mean |change| inside the
  car mask {r['car_red_mean_change_inside_car']:.3f} vs outside {r['car_red_mean_change_outside_car']:.4f}
  (ratio {r['car_red_inside_outside_ratio']:.0f}x; {100 * r['car_red_fraction_of_change_inside_car']:.0f}% of all
  change is inside the car mask, which covers ~2% of the image); mean L1 distance
  to red inside the car {r['car_red_dist_to_red_inside_car']:.3f} (the car mask includes the dark wheels,
  which the exact target keeps).
* Same on `assets/scene-01.png` ({car['car_pixels']} car pixels): inside {car['mean_change_inside_car']:.3f}
  vs outside {car['mean_change_outside_car']:.4f} (ratio {car['inside_outside_ratio']:.0f}x,
  {100 * car['fraction_of_change_inside_car']:.0f}% of change inside); distance to red inside the car
  {car['dist_to_red_inside_car']:.3f} (before the edit {car['dist_to_red_inside_car_before']:.3f}).

## Limits

Only knows the synthetic world: 64x64 scenes, the vocabulary of
`tokenizer.json` (anything else is `[UNK]`), recolour of car/house/roof/sky/
tree/water/grass/sun/moon into 12 colours, and night/brighten/fog/winter, at
most three masked colour maps per instruction.  Two-edit instructions are less
exact than single edits (see the per-style MAE).  Output on out-of-grammar text
(e.g. key words dropped) is whatever the network does - which is exactly what
gsmile explains.
{weak}"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme)


if __name__ == "__main__":
    main()
