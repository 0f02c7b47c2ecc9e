"""Reference timing of the InstructPix2Pix ONNX loop driven from Python, for `cargo bench --bench pix2pix`.

Runs the same ONNX graphs as gsmile's Rust pipeline (text encoder, VAE encoder, UNet with
three-branch guidance, VAE decoder) with onnxruntime and diffusers' own
EulerAncestralDiscreteScheduler, on one image shared by B prompts, with the same intra-op
threads and the same cap on UNet rows per call. Prints one JSON object per batch size:

    {"batch": B, "steps": S, "step_ms": ..., "total_ms": ..., "samples_per_s": ...}

Usage: python benches/pix2pix_python.py BUNDLE --batches 1 4 16 --steps 8 --threads 2 --max-rows 24
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort
import torch
from diffusers import EulerAncestralDiscreteScheduler
from transformers import CLIPTokenizer


def session(path, threads):
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-rows", type=int, default=24)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    b = a.bundle
    tok = CLIPTokenizer.from_pretrained(f"{b}/tokenizer")
    text = session(f"{b}/text_encoder/model.onnx", a.threads)
    unet = session(f"{b}/unet/model.onnx", a.threads)
    venc = session(f"{b}/vae_encoder/model.onnx", a.threads)
    vdec = session(f"{b}/vae_decoder/model.onnx", a.threads)
    sched = EulerAncestralDiscreteScheduler.from_pretrained(f"{b}/scheduler")
    cfg = json.load(open(f"{b}/vae_decoder/config.json"))
    scaling = cfg.get("scaling_factor", 0.18215)
    ids_type = np.int32 if text.get_inputs()[0].type == "tensor(int32)" else np.int64

    rng = np.random.default_rng(0)
    image = rng.random((1, 3, a.size, a.size), dtype=np.float32)
    words = "please make the car red at night with a blue sky".split()
    gs, igs = 7.5, 1.5

    def encode(prompts):
        ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="np").input_ids
        return text.run(None, {"input_ids": ids.astype(ids_type)})[0]

    def run(batch):
        prompts = [" ".join(words[: 1 + i % len(words)]) for i in range(batch)]
        embeds = encode(prompts)
        uncond = encode([""])[0]
        img_lat = venc.run(None, {"sample": image * 2 - 1})[0][:, :4]
        c, h, w = img_lat.shape[1:]
        sched.set_timesteps(a.steps)
        gen = torch.Generator().manual_seed(0)
        latents = torch.randn((1, c, h, w), generator=gen).numpy().repeat(batch, 0) * float(sched.init_noise_sigma)
        step_times = []
        for t in sched.timesteps:
            t0 = time.perf_counter()
            scaled = sched.scale_model_input(torch.from_numpy(latents), t).numpy()
            rows = []
            for i in range(batch):
                rows += [(i, 0), (i, 1), (i, 2)]
            pred = np.empty((len(rows), c, h, w), np.float32)
            for s in range(0, len(rows), a.max_rows):
                chunk = rows[s : s + a.max_rows]
                sample = np.zeros((len(chunk), 2 * c, h, w), np.float32)
                states = np.empty((len(chunk),) + uncond.shape, np.float32)
                for k, (i, br) in enumerate(chunk):
                    sample[k, :c] = scaled[i]
                    if br != 2:
                        sample[k, c:] = img_lat[0]
                    states[k] = embeds[i] if br == 0 else uncond
                ts = np.full((len(chunk),), float(t), np.float32)
                pred[s : s + len(chunk)] = unet.run(None, {"sample": sample, "timestep": ts, "encoder_hidden_states": states})[0]
            p = pred.reshape(batch, 3, c, h, w)
            guided = p[:, 2] + gs * (p[:, 0] - p[:, 1]) + igs * (p[:, 1] - p[:, 2])
            latents = sched.step(torch.from_numpy(guided), t, torch.from_numpy(latents), generator=gen).prev_sample.numpy()
            step_times.append(time.perf_counter() - t0)
        out = []
        for s in range(0, batch, max(1, a.max_rows // 3)):
            out.append(vdec.run(None, {"latent_sample": latents[s : s + max(1, a.max_rows // 3)] / scaling})[0])
        return step_times

    for batch in a.batches:
        run(batch)  # warm-up
        total, step = float("inf"), float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            steps = run(batch)
            total = min(total, time.perf_counter() - t0)
            step = min(step, float(np.median(steps)))
        print(json.dumps({"batch": batch, "steps": a.steps, "step_ms": step * 1e3, "total_ms": total * 1e3, "samples_per_s": batch / total}))


if __name__ == "__main__":
    main()
