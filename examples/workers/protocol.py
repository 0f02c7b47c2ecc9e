"""gsmile's worker protocol (version 1) for Python workers: image encodings and the serving loop.

A worker supplies `handle(message) -> reply` for `hello` and `edit` messages; `serve` reads
JSON lines from stdin, answers each with one line on stdout, and turns any exception into a
structured `{"type": "error"}` reply so the worker lives on. See README.md, "Explaining an
editor you run in Python".
"""
import base64
import io
import json
import sys

import numpy as np

PROTOCOL = 1


def decode_image(wire, height, width):
    """A protocol image as `[3, H, W]` float32 in [0, 1]."""
    if "f32_base64" in wire:
        values = np.frombuffer(base64.b64decode(wire["f32_base64"]), dtype="<f4")
        return values.reshape(wire["shape"]).astype(np.float32)
    from PIL import Image  # only for PNG requests; gsmile sends f32 to workers that accept it

    picture = Image.open(io.BytesIO(base64.b64decode(wire["png_base64"]))).convert("RGB")
    if picture.size != (width, height):
        raise ValueError(f"image is {picture.size[0]}x{picture.size[1]}, expected {width}x{height}")
    return np.asarray(picture, np.float32).transpose(2, 0, 1) / 255.0


def encode_image(image):
    """`[3, H, W]` float32 as a protocol image, exactly."""
    data = np.ascontiguousarray(image, dtype="<f4").tobytes()
    return {"f32_base64": base64.b64encode(data).decode("ascii"), "shape": list(image.shape)}


def serve(handle, lines=sys.stdin, out=sys.stdout):
    """Answers each JSON line of `lines` with `handle`'s reply on `out`, until the input ends."""
    for line in lines:
        if not line.strip():
            continue
        message = {}
        try:
            message = json.loads(line)
            reply = handle(message)
        except Exception as e:  # every failure is a structured error, the worker lives on
            reply = {"type": "error", "id": message.get("id") if isinstance(message, dict) else None, "message": str(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
