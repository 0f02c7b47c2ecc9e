#!/usr/bin/env python3
"""A gsmile worker (protocol 1) around diffusers' StableDiffusionInstructPix2PixPipeline.

Serves any InstructPix2Pix-style checkpoint folder (timbrooks/instruct-pix2pix, MagicBrush,
UltraEdit's SD1.5 variant, the tiny random one `onnx/make_tiny_ip2p.py` builds) on CUDA when
present, else on the CPU. A `kind = "command"` bundle names it:

    [worker]
    command = ["python3", "/path/to/diffusers_ip2p_worker.py", "--checkpoint", "/models/instruct-pix2pix"]
    startup_timeout_s = 600   # loading weights

Each instruction of a request comes with its own seed, and gets its own seeded
`torch.Generator`: the initial latents and every ancestral step's noise of a sample are
drawn from it alone, so a sample's edit does not depend on the batch it travels in (one
generator shared by a batch, the usual call, makes it depend on its neighbours).

Settings: `steps`, `guidance_scale` and `image_guidance_scale` arrive with every request
(gsmile's `--steps`, `--guidance-scale`, `--image-guidance-scale`, or the bundle's
`[worker.params]`); the defaults are diffusers' IP2P defaults of 20 / 7.5 / 1.5.

Needs torch, diffusers, transformers and numpy (see onnx/requirements.txt for the versions
gsmile is tested with).
"""
import argparse
import hashlib
import os

import numpy as np
import torch
import diffusers
from diffusers import StableDiffusionInstructPix2PixPipeline

from protocol import PROTOCOL, decode_image, encode_image, serve

VERSION = "1.0.0"
DEFAULTS = {"steps": 20, "guidance_scale": 7.5, "image_guidance_scale": 1.5}


def identity(checkpoint):
    """A fingerprint of the checkpoint's files (names, sizes, modification times), so new
    weights at the same path are new cache keys."""
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(checkpoint)):
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            h.update(f"{os.path.relpath(os.path.join(root, name), checkpoint)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


class Pipeline:
    """The checkpoint's pipeline on its device, with its native size."""

    def __init__(self, checkpoint, device, dtype, max_batch, size):
        self.device = device
        self.dtype = dtype
        self.pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            checkpoint, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
        ).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        self.height, self.width = size or (native, native)
        factor = self.pipe.vae_scale_factor
        if self.height % factor or self.width % factor:
            raise SystemExit(f"--size {self.height} {self.width}: both sides must be multiples of the VAE's factor {factor}")
        self.max_batch = max_batch
        self.checkpoint = os.path.basename(os.path.normpath(checkpoint))
        self.identity = identity(checkpoint)

    def edit(self, image, instructions, seeds, params):
        """`image` `[3, H, W]` in [0, 1] edited with each instruction: `[B, 3, H, W]` in [0, 1]."""
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; this worker takes {sorted(DEFAULTS)}")
        p = {**DEFAULTS, **params}
        batch = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).repeat(len(instructions), 1, 1, 1)
        generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        with torch.inference_mode():
            out = self.pipe(
                prompt=list(instructions),
                image=batch.to(self.device, self.dtype),
                num_inference_steps=int(p["steps"]),
                guidance_scale=float(p["guidance_scale"]),
                image_guidance_scale=float(p["image_guidance_scale"]),
                generator=generators,
                output_type="np",
            ).images
        return np.clip(np.asarray(out, np.float32).transpose(0, 3, 1, 2), 0.0, 1.0)


def handle(pipeline, message):
    """The reply to one protocol message."""
    kind = message.get("type")
    if kind == "hello":
        return {
            "type": "hello",
            "protocol": PROTOCOL,
            "name": "gsmile-diffusers-ip2p-worker",
            "version": VERSION,
            "height": pipeline.height,
            "width": pipeline.width,
            "stochastic": True,
            "max_batch": pipeline.max_batch,
            "accepts": ["f32", "png"],
            "params": {
                "checkpoint": pipeline.checkpoint,
                "checkpoint_files": pipeline.identity,
                "device": pipeline.device,
                "dtype": str(pipeline.dtype).removeprefix("torch."),
                "diffusers": diffusers.__version__,
                "torch": torch.__version__,
            },
        }
    if kind == "edit":
        image = decode_image(message["image"], pipeline.height, pipeline.width)
        edited = pipeline.edit(image, message["instructions"], message["seeds"], message.get("params") or {})
        return {"type": "edited", "id": message["id"], "images": [encode_image(e) for e in edited]}
    raise ValueError(f"unknown message type {kind!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a diffusers InstructPix2Pix checkpoint folder")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                    help="default: float16 on CUDA, float32 on the CPU")
    ap.add_argument("--max-batch", type=int, default=4, help="most instructions per request")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="working size (default: the UNet's native size)")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype or ("float16" if a.device.startswith("cuda") else "float32"))
    torch.use_deterministic_algorithms(True, warn_only=True)
    pipeline = Pipeline(a.checkpoint, a.device, dtype, a.max_batch, a.size)
    serve(lambda message: handle(pipeline, message))

if __name__ == "__main__":
    main()
