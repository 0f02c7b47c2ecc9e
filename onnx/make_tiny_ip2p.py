"""Build a tiny, seeded, random-weight InstructPix2Pix pipeline in diffusers format.

It has the exact structure of timbrooks/instruct-pix2pix (a diffusers
`StableDiffusionInstructPix2PixPipeline`: CLIP text encoder with the real
49408-entry BPE vocabulary, an 8-channel-input UNet2DConditionModel, an
AutoencoderKL and the Euler-ancestral scheduler with IP2P's scheduler config)
but tiny random weights, so that the ONNX export (`export_ip2p.py`) and a Rust
re-implementation of the pipeline can be tested against diffusers on a
2-core CPU in seconds.  The weights mean nothing: outputs are noise that
depends on the prompt and the image, which is all a parity test needs.

    /opt/gsmile-py/bin/python onnx/make_tiny_ip2p.py --seed 0 --out /tmp/tiny-ip2p-ckpt

Sizes: 32x32 images, VAE scale factor 2 -> 4x16x16 latents, text hidden size 16.

Freshly constructed diffusers/transformers modules are not a good test
subject (some layers start at zero or identity, attention can be nearly
uniform), so after construction every parameter is re-drawn from a seeded
normal distribution (`perturb`): matrices ~ N(0, 1/fan_in), norm scales
~ 1 + N(0, 0.1^2), biases ~ N(0, 0.1^2).  `--check` verifies that two prompts
give clearly different latents and images.
"""
import argparse
import math
import os

import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_vocab import write_clip_tokenizer

IMAGE_SIZE = 32
TEXT_DIM = 16

# timbrooks/instruct-pix2pix scheduler/scheduler_config.json (diffusers keys; the
# checkpoint also carries clip_sample/set_alpha_to_one/skip_prk_steps, which
# EulerAncestralDiscreteScheduler ignores).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    trained_betas=None,
    prediction_type="epsilon",
    steps_offset=1,
)


def perturb(module, seed):
    """Re-draw every parameter of module from a seeded normal distribution (see module doc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("weight"):  # norm scales
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:  # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build_components(seed=0, tokenizer_dir=None):
    """Construct (and perturb) the pipeline's components; returns a dict for the pipeline constructor."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
    )
    perturb(unet, seed * 1000 + 1)

    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
        scaling_factor=0.18215,
    )
    perturb(vae, seed * 1000 + 2)

    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TEXT_DIM,
        intermediate_size=4 * TEXT_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=TEXT_DIM,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )
    text_encoder = CLIPTextModel(text_config)
    perturb(text_encoder, seed * 1000 + 3)
    text_encoder.eval()

    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG)

    if tokenizer_dir is None:
        import tempfile
        tokenizer_dir = tempfile.mkdtemp(prefix="clip-tok-")
    if not os.path.exists(os.path.join(tokenizer_dir, "vocab.json")):
        write_clip_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)

    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_pipeline(seed=0, tokenizer_dir=None):
    """The tiny StableDiffusionInstructPix2PixPipeline, float32 on CPU, progress bar off."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline(**build_components(seed, tokenizer_dir))
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.eval()  # as from_pretrained leaves them
    return pipe.to("cpu")


def prompt_sensitivity(pipe, seed=0):
    """Max abs differences (latents, images in [0,1]) between two prompts on the same image and noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8))
    lat = torch.from_numpy(rng.standard_normal((1, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2)).astype(np.float32))
    outs = {}
    for kind in ("latent", "np"):
        res = []
        for prompt in ("make the car red", "turn the sky orange"):
            gen = torch.Generator().manual_seed(seed)
            o = pipe(prompt, image=img, num_inference_steps=4, latents=lat.clone(), generator=gen,
                     output_type=kind).images
            res.append(np.asarray(o, dtype=np.float32))
        outs[kind] = (float(np.abs(res[0] - res[1]).max()), float(np.abs(res[0]).max()),
                      float(res[0].min()), float(res[0].max()))
    return outs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="folder for the diffusers checkpoint (save_pretrained)")
    ap.add_argument("--check", action="store_true", help="print prompt sensitivity of the saved pipeline")
    a = ap.parse_args()
    pipe = build_pipeline(a.seed)
    pipe.save_pretrained(a.out, safe_serialization=True)
    # transformers 5 saves the tokenizer as tokenizer.json only; rewrite the folder with the
    # files of the real checkpoint (vocab.json, merges.txt, special_tokens_map.json,
    # tokenizer_config.json) so exports and readers see the real layout.
    tok_dir = os.path.join(a.out, "tokenizer")
    for f in os.listdir(tok_dir):
        os.remove(os.path.join(tok_dir, f))
    write_clip_tokenizer(tok_dir)
    total = 0
    for root, _, files in sorted(os.walk(a.out)):
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"{os.path.relpath(p, a.out)}\t{os.path.getsize(p)}")
    print(f"total\t{total}")
    if a.check:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        again = StableDiffusionInstructPix2PixPipeline.from_pretrained(a.out, safety_checker=None)
        again.set_progress_bar_config(disable=True)
        for kind, (d, amax, lo, hi) in prompt_sensitivity(again, a.seed).items():
            print(f"prompt sensitivity [{kind}]: max|a-b| = {d:.4f}  (max|a| = {amax:.4f}, range [{lo:.3f}, {hi:.3f}])")


if __name__ == "__main__":
    main()
