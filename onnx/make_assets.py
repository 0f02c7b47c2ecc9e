"""Write gsmile's sample scenes to ``assets/``.

Usage (from the repository root)::

    /opt/gsmile-py/bin/python onnx/make_assets.py

Deterministically searches world seeds (from 0 upward) for scenes matching a
fixed list of requirements and writes, for NN = 01..06:

* ``assets/scene-NN.png``: the 64x64 RGB scene (uint8 PNG);
* ``assets/scene-NN.json``: ``{"seed", "objects", "mask_pixels", "spec"}``
  where ``objects`` lists the visible objects (>= 6 pixels);
* ``assets/scene-NN-masks/<object>.png``: binary masks (L mode, 0/255) of
  each visible object (public names: sky, ground, sun, moon, house, roof, car,
  tree, water; ``house`` excludes the roof, ``car`` includes the wheels).

scene-01 is guaranteed to have a clearly visible car and house.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import grammar, scene  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# requirement per scene: objects that must be visible (min pixels), extras
REQS = [
    {"car": 60, "house": 150, "tree": 40, "sun": 20, "water": 60, "sky_name": "blue"},
    {"car": 50, "house": 120, "tree": 40, "sun": 20, "water": 50},
    {"car": 50, "house": 120, "tree": 40, "moon": 20, "water": 50},
    {"car": 50, "house": 120, "tree": 40, "sun": 20, "sky_name": "orange"},
    {"car": 50, "tree": 40, "sun": 20, "water": 50, "no": "house"},
    {"car": 50, "house": 120, "water": 50, "sun": 20, "sky_name": "grey"},
]


def ok(spec, masks, req) -> bool:
    for k, v in req.items():
        if k == "sky_name":
            if spec["sky"]["name"] != v:
                return False
        elif k == "no":
            if masks[v].any():
                return False
        elif int(masks[k].sum()) < v:
            return False
    return True


def main():
    out = os.path.join(ROOT, "assets")
    os.makedirs(out, exist_ok=True)
    seed, used = 0, set()
    for n, req in enumerate(REQS, start=1):
        seed = 0
        while True:
            spec, img, masks = scene.make_scene(seed)
            if seed not in used and ok(spec, masks, req):
                break
            seed += 1
        used.add(seed)
        name = f"scene-{n:02d}"
        Image.fromarray(scene.to_uint8(img)).save(os.path.join(out, name + ".png"))
        objs = scene.present_objects(masks, grammar.MIN_PIXELS)
        meta = {"seed": seed, "objects": objs,
                "mask_pixels": {o: int(masks[o].sum()) for o in objs}, "spec": spec}
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
        mdir = os.path.join(out, name + "-masks")
        shutil.rmtree(mdir, ignore_errors=True)
        os.makedirs(mdir)
        for o in objs:
            Image.fromarray(masks[o].astype(np.uint8) * 255, mode="L").save(os.path.join(mdir, o + ".png"))
        print(name, "seed", seed, objs)


if __name__ == "__main__":
    main()
