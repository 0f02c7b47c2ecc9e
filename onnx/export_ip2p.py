"""Export a diffusers InstructPix2Pix checkpoint to the diffusers/optimum ONNX layout.

    /opt/gsmile-py/bin/python onnx/export_ip2p.py CHECKPOINT_DIR OUT_DIR [--fp16] [--opset 17]

CHECKPOINT_DIR is any `StableDiffusionInstructPix2PixPipeline` saved with
`save_pretrained` (e.g. a local copy of timbrooks/instruct-pix2pix, or the tiny
one from make_tiny_ip2p.py).  OUT_DIR gets:

    model_index.json, scheduler/scheduler_config.json, tokenizer/*   copied
    text_encoder/model.onnx  input_ids int32 [B,77] -> last_hidden_state [B,77,D], pooler_output [B,D]
    unet/model.onnx          sample [B,8,h,w], timestep float32 [B], encoder_hidden_states [B,77,D]
                             -> out_sample [B,4,h,w]
    vae_encoder/model.onnx   sample [B,3,H,W] in [-1,1] -> latent_sample [B,4,h,w]
                             = mode (mean) of the latent distribution, NOT scaled by scaling_factor
    vae_decoder/model.onnx   latent_sample [B,4,h,w] (already divided by scaling_factor)
                             -> sample [B,3,H,W] in about [-1,1]
    each model folder also holds the component's config.json (the VAE's in both vae folders).

B, h, w (and H, W) are dynamic axes.  Floats are float32, or float16 with --fp16
(weights and float inputs/outputs) -- except `timestep`, which stays float32:
Euler timesteps are fractional (e.g. 856.2857) and float16 cannot hold them
(spacing 0.5 above 512); diffusers itself computes the sinusoidal timestep
embedding in float32 and casts it to the model dtype afterwards, as the
exported graph does.

Graphs are written as one file each when they fit in protobuf's 2 GB; larger
ones (the fp32 UNet of the real model, 3.4 GB) get their weights in a single
`model.onnx_data` file next to `model.onnx`.  Every graph is run with
onnxruntime (CPU) on random inputs, at two batch sizes and two spatial sizes,
and compared with PyTorch; the max abs differences are printed and written to
OUT_DIR/export_report.json.

Exporter: the TorchScript exporter (`dynamo=False`, as onnx/train_editor.py
uses) by default; `--exporter dynamo` uses torch.export (see the report in
onnx/tiny-ip2p/README.md for how the two compared).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

TWO_GB = 2 * 1024**3 - 1


class TextEncoderWrapper(torch.nn.Module):
    """int32 input_ids -> (last_hidden_state, pooler_output), no attention mask (as the SD pipelines)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids.to(torch.int64), return_dict=True)
        return o.last_hidden_state, o.pooler_output


class UNetWrapper(torch.nn.Module):
    """(sample, timestep, encoder_hidden_states) -> predicted noise."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.m(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class VaeEncoderWrapper(torch.nn.Module):
    """Image in [-1,1] -> mode of the latent distribution (unscaled, as InstructPix2Pix's image latents)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample):
        return self.m.encode(sample, return_dict=True).latent_dist.mode()


class VaeDecoderWrapper(torch.nn.Module):
    """Latents (already divided by scaling_factor) -> image in about [-1,1]."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, latent_sample):
        return self.m.decode(latent_sample, return_dict=False)[0]


def load_components(ckpt, dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    te = CLIPTextModel.from_pretrained(os.path.join(ckpt, "text_encoder"), torch_dtype=dtype,
                                       attn_implementation="eager").eval()
    unet = UNet2DConditionModel.from_pretrained(ckpt, subfolder="unet", torch_dtype=dtype).eval()
    vae = AutoencoderKL.from_pretrained(ckpt, subfolder="vae", torch_dtype=dtype).eval()
    return te, unet, vae


def finalize_onnx(tmp_path, out_path, output_shapes=None, dynamic_axes=None, limit=TWO_GB):
    """Check the graph and save it as one file (or with one external-data file if over `limit`).

    output_shapes ({name: shape of the example output}) fixes output dims that the exporter
    left symbolic although they are static (e.g. vae_encoder's 4 latent channels came out as
    'Slicelatent_sample_dim_1'); dims in dynamic_axes keep their names.  Returns the size in
    bytes of the graph and its weights.
    """
    import onnx

    # the exporter itself spills weights into many files next to tmp_path above 2 GB
    folder = os.path.dirname(tmp_path)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    model = onnx.load(tmp_path, load_external_data=True)
    for o in model.graph.output:
        if output_shapes and o.name in output_shapes:
            dyn = (dynamic_axes or {}).get(o.name, {})
            for ax, d in enumerate(o.type.tensor_type.shape.dim):
                if ax in dyn:
                    d.dim_param = dyn[ax]
                else:
                    d.dim_value = int(output_shapes[o.name][ax])
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    data_name = os.path.basename(out_path) + "_data"
    for old in (out_path, os.path.join(os.path.dirname(out_path), data_name)):
        if os.path.exists(old):
            os.remove(old)
    if size < limit:
        onnx.checker.check_model(model)
        onnx.save_model(model, out_path)
    else:
        onnx.save_model(model, out_path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        onnx.checker.check_model(out_path)
    return size


def export_one(module, args, path, input_names, output_names, dynamic_axes, opset, exporter, limit=TWO_GB):
    """torch.onnx.export into a temp dir, then finalize_onnx to path."""
    with torch.no_grad():
        example = module(*args)
    example = example if isinstance(example, tuple) else (example,)
    output_shapes = {n: tuple(t.shape) for n, t in zip(output_names, example)}
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "model.onnx")
        with torch.no_grad():
            if exporter == "torchscript":
                torch.onnx.export(module, args, tmp, input_names=input_names, output_names=output_names,
                                  dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                                  do_constant_folding=True)
            else:
                from torch.export import Dim

                dims = {}
                shapes = []
                for name in input_names:
                    axes = dynamic_axes.get(name, {})
                    spec = {}
                    for ax, dim_name in axes.items():
                        if dim_name not in dims:
                            dims[dim_name] = Dim.AUTO
                        spec[ax] = dims[dim_name]
                    shapes.append(spec or None)
                prog = torch.onnx.export(module, args, input_names=input_names, output_names=output_names,
                                         dynamic_shapes=tuple(shapes), opset_version=opset, dynamo=True,
                                         optimize=True, verify=False)
                prog.save(tmp)
        return finalize_onnx(tmp, path, output_shapes, dynamic_axes, limit)


def ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def describe(sess):
    """[(io, name, dtype, shape)] of a session's inputs and outputs."""
    rows = [("input", i.name, i.type, i.shape) for i in sess.get_inputs()]
    rows += [("output", o.name, o.type, o.shape) for o in sess.get_outputs()]
    return rows


def compare(sess, ref_module, feeds, names_out):
    """Max abs diff (and max |ref|) per output between onnxruntime and the float32 torch reference."""
    out = sess.run(names_out, feeds)
    with torch.no_grad():
        targs = [torch.from_numpy(np.asarray(v)) for v in feeds.values()]
        targs = [t.float() if t.dtype == torch.float16 else t for t in targs]
        ref = ref_module(*targs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    res = {}
    for n, o, r in zip(names_out, out, ref):
        r = r.float().numpy()
        assert o.shape == r.shape, (n, o.shape, r.shape)
        assert np.isfinite(o.astype(np.float32)).all(), n
        res[n] = {"shape": list(o.shape), "max_abs_diff": float(np.abs(o.astype(np.float32) - r).max()),
                  "max_abs_ref": float(np.abs(r).max())}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--fp16", action="store_true", help="float16 weights and float inputs/outputs (timestep stays float32)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    ap.add_argument("--single-file-limit", type=int, default=TWO_GB, help=argparse.SUPPRESS)  # to test external data
    a = ap.parse_args()

    t0 = time.time()
    ckpt, out = a.checkpoint, a.out
    dtype = torch.float16 if a.fp16 else torch.float32
    np_dtype = np.float16 if a.fp16 else np.float32
    os.makedirs(out, exist_ok=True)

    # ---- copied files
    shutil.copy(os.path.join(ckpt, "model_index.json"), os.path.join(out, "model_index.json"))
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    shutil.copy(os.path.join(ckpt, "scheduler", "scheduler_config.json"), os.path.join(out, "scheduler"))
    if os.path.exists(os.path.join(out, "tokenizer")):
        shutil.rmtree(os.path.join(out, "tokenizer"))
    shutil.copytree(os.path.join(ckpt, "tokenizer"), os.path.join(out, "tokenizer"))

    te, unet, vae = load_components(ckpt, dtype)
    # float32 references for the checks (the same weights; for --fp16 the checkpoint's
    # fp32/fp16 weights rounded to fp16 are what the graph holds, so diffs include rounding)
    te32, unet32, vae32 = load_components(ckpt, torch.float32) if a.fp16 else (te, unet, vae)

    D = te.config.hidden_size
    L = te.config.max_position_embeddings
    lat_c = vae.config.latent_channels
    in_c = unet.config.in_channels
    vae_f = 2 ** (len(vae.config.block_out_channels) - 1)
    unet_f = 2 ** (len(unet.config.block_out_channels) - 1)
    s = unet.config.sample_size if isinstance(unet.config.sample_size, int) else unet.config.sample_size[0]
    rng = np.random.default_rng(a.seed)
    report = {"checkpoint": ckpt, "fp16": a.fp16, "opset": a.opset, "exporter": a.exporter,
              "torch": torch.__version__, "models": {}}

    def rn(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np_dtype)

    # ---- export specs: (folder, wrapper, ref wrapper, example args, in names, out names, dyn axes, check feeds, config src)
    vocab = te.config.vocab_size

    def ids(b):
        x = rng.integers(0, vocab - 2, (b, L)).astype(np.int32)
        x[:, 0] = 49406 if vocab > 49406 else 0
        x[:, -1] = te.config.eos_token_id if te.config.eos_token_id is not None else vocab - 1
        return x

    # latent sizes for the checks: the config's, and a small non-square one
    small = (unet_f * 2, unet_f * 3)
    specs = [
        ("text_encoder", TextEncoderWrapper(te), TextEncoderWrapper(te32),
         (torch.from_numpy(ids(2)),), ["input_ids"], ["last_hidden_state", "pooler_output"],
         {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}},
         [{"input_ids": ids(1)}, {"input_ids": ids(3)}], os.path.join(ckpt, "text_encoder", "config.json")),
        ("unet", UNetWrapper(unet), UNetWrapper(unet32),
         (torch.from_numpy(rn(2, in_c, s, s)), torch.tensor([999.0, 856.2857], dtype=torch.float32),
          torch.from_numpy(rn(2, L, D))),
         ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
         {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
          "encoder_hidden_states": {0: "batch"}, "out_sample": {0: "batch", 2: "height", 3: "width"}},
         [{"sample": rn(3, in_c, s, s), "timestep": np.full(3, 713.5714, np.float32), "encoder_hidden_states": rn(3, L, D)},
          {"sample": rn(1, in_c, *small), "timestep": np.array([0.0], np.float32), "encoder_hidden_states": rn(1, L, D)}],
         os.path.join(ckpt, "unet", "config.json")),
        ("vae_encoder", VaeEncoderWrapper(vae), VaeEncoderWrapper(vae32),
         (torch.from_numpy(rn(2, 3, s * vae_f, s * vae_f).clip(-1, 1)),), ["sample"], ["latent_sample"],
         {"sample": {0: "batch", 2: "height", 3: "width"}, "latent_sample": {0: "batch", 2: "height", 3: "width"}},
         [{"sample": rn(3, 3, s * vae_f, s * vae_f).clip(-1, 1)},
          {"sample": rn(1, 3, small[0] * vae_f, small[1] * vae_f).clip(-1, 1)}],
         os.path.join(ckpt, "vae", "config.json")),
        ("vae_decoder", VaeDecoderWrapper(vae), VaeDecoderWrapper(vae32),
         (torch.from_numpy(rn(2, lat_c, s, s, scale=5.0)),), ["latent_sample"], ["sample"],
         {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "height", 3: "width"}},
         [{"latent_sample": rn(3, lat_c, s, s, scale=5.0)}, {"latent_sample": rn(1, lat_c, *small, scale=5.0)}],
         os.path.join(ckpt, "vae", "config.json")),
    ]

    for folder, wrapper, ref, args, in_names, out_names, dyn, feeds_list, cfg in specs:
        t1 = time.time()
        wrapper.eval()
        ref.eval()
        path = os.path.join(out, folder, "model.onnx")
        nbytes = export_one(wrapper, args, path, in_names, out_names, dyn, a.opset, a.exporter,
                            a.single_file_limit)
        shutil.copy(cfg, os.path.join(out, folder, "config.json"))
        sess = ort_session(path)
        checks = [compare(sess, ref, feeds, out_names) for feeds in feeds_list]
        io = describe(sess)
        report["models"][folder] = {"bytes": nbytes, "io": io, "checks": checks}
        print(f"{folder}: {nbytes} bytes, {time.time() - t1:.1f}s")
        for row in io:
            print(f"  {row[0]:6s} {row[1]:22s} {row[2]:16s} {row[3]}")
        for c in checks:
            for n, r in c.items():
                print(f"  check {n:18s} shape {r['shape']}: max|ort-torch| = {r['max_abs_diff']:.3g}"
                      f" (max|torch| = {r['max_abs_ref']:.3g})")
        sys.stdout.flush()
    with open(os.path.join(out, "export_report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
