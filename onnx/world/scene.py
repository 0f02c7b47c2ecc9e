"""Seeded procedural scenes for gsmile's synthetic world.

A scene is a 64x64 RGB picture of a simple landscape: a sky band at the top,
ground (grass) below the horizon, optionally a sun *or* a moon in the sky, a
house (rectangular body + triangular roof), a car (body + darker wheels), a
tree (trunk + round canopy) and a pond of water in the foreground.  Not every
object is in every scene.

A scene is fully described by a small JSON-serialisable *spec* (a dict, see
:func:`sample_spec`), and a spec is fully determined by its integer seed
(``sample_spec(seed)``), so scenes can be stored either as the spec or just
as the seed.  :func:`render` turns a spec into

* ``image``: float32 array ``[64, 64, 3]`` (HWC) in ``[0, 1]``;
* ``masks``: dict of boolean ``[64, 64]`` arrays giving the *visible* pixels
  of each object after occlusion.  Public objects: ``sky, ground, sun, moon,
  house, roof, car, tree, water`` (``house`` is the body without the roof,
  ``car`` = body + wheels, ``tree`` = trunk + canopy).  Parts used by the
  editing targets are also returned: ``car_body, car_wheels, tree_trunk,
  tree_canopy``.

Rendering is vectorised numpy (well under a millisecond per scene).  Images
saved as PNG are quantised to uint8; :func:`quantize` gives the same values as
float, which is what the models are trained on.
"""

from __future__ import annotations

import numpy as np

SIZE = 64

#: Named colours: used for natural object colours (with a little jitter), as
#: recolour targets (exact values, no jitter) and in captions.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.15),
    "orange": (0.97, 0.55, 0.10),
    "purple": (0.55, 0.20, 0.75),
    "pink": (0.98, 0.55, 0.75),
    "white": (0.96, 0.96, 0.96),
    "black": (0.08, 0.08, 0.08),
    "cyan": (0.10, 0.80, 0.85),
    "brown": (0.50, 0.30, 0.12),
    "grey": (0.50, 0.50, 0.50),
}
COLOURS: list[str] = list(PALETTE)

#: Public object names (mask keys always present in :func:`render` output).
OBJECTS = ["sky", "ground", "sun", "moon", "house", "roof", "car", "tree", "water"]
#: Extra part masks.
PARTS = ["car_body", "car_wheels", "tree_trunk", "tree_canopy"]

# Natural colours: (name, rgb) choices with weights, per object.
_SKY = [("blue", (0.45, 0.70, 0.95), (0.28, 0.52, 0.88), 0.75),
        ("orange", (0.98, 0.70, 0.40), (0.80, 0.45, 0.35), 0.12),
        ("grey", (0.70, 0.72, 0.75), (0.55, 0.57, 0.60), 0.13)]
_GROUND = [("green", (0.22, 0.62, 0.20), 0.8), ("brown", (0.55, 0.45, 0.22), 0.2)]
_HOUSE = ["red", "white", "yellow", "blue", "orange", "pink", "brown", "grey"]
_ROOF = ["red", "brown", "black", "grey", "blue"]
_CANOPY = [("green", (0.10, 0.45, 0.15), 0.8), ("orange", (0.90, 0.50, 0.12), 0.1),
           ("yellow", (0.85, 0.78, 0.20), 0.1)]
_WATER = [("blue", (0.15, 0.40, 0.80), 0.8), ("cyan", (0.15, 0.70, 0.80), 0.2)]
_TRUNK = (0.40, 0.25, 0.10)
_WHEEL = (0.10, 0.10, 0.10)
_SUN = [("yellow", (0.98, 0.88, 0.20), 0.8), ("orange", (0.98, 0.60, 0.15), 0.2)]
_MOON = ("white", (0.92, 0.92, 0.84))

# label ids of the internal label map
_L = {"sky": 0, "ground": 1, "sun": 2, "moon": 3, "water": 4, "house": 5, "roof": 6,
      "tree_trunk": 7, "tree_canopy": 8, "car_body": 9, "car_wheels": 10}

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def _jit(rng: np.random.Generator, rgb, amount: float = 0.05) -> list[float]:
    c = np.clip(np.asarray(rgb, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0.0, 1.0)
    return [round(float(v), 4) for v in c]


def _pick(rng: np.random.Generator, choices):
    w = np.array([c[-1] for c in choices], dtype=np.float64)
    return choices[int(rng.choice(len(choices), p=w / w.sum()))]


def sample_spec(seed: int, p_object: float = 0.8) -> dict:
    """Sample a random scene spec from an integer seed (deterministic).

    Each of house/car/tree/water is present with probability ``p_object``
    (at least one of them always is); the sky holds a sun (55%), a moon (25%)
    or nothing.
    """
    rng = np.random.default_rng(int(seed))
    spec: dict = {"seed": int(seed), "size": SIZE}
    horizon = int(rng.integers(24, 33))
    spec["horizon"] = horizon
    name, bottom, top, _ = _pick(rng, _SKY)
    spec["sky"] = {"name": name, "rgb": _jit(rng, bottom), "rgb_top": _jit(rng, top)}
    gname, grgb, _ = _pick(rng, _GROUND)
    spec["ground"] = {"name": gname, "rgb": _jit(rng, grgb)}

    u = rng.random()
    kind = "sun" if u < 0.55 else ("moon" if u < 0.80 else None)
    if kind is None:
        spec["celestial"] = None
    else:
        r = int(rng.integers(3, 6))
        cx = int(rng.integers(r + 2, SIZE - r - 2))
        cy = int(rng.integers(r + 2, max(r + 3, horizon - r - 6)))
        if kind == "sun":
            cname, crgb, _ = _pick(rng, _SUN)
        else:
            cname, crgb = _MOON
        spec["celestial"] = {"kind": kind, "cx": cx, "cy": cy, "r": r,
                             "name": cname, "rgb": _jit(rng, crgb, 0.03)}

    present = [o for o in ("house", "car", "tree", "water") if rng.random() < p_object]
    if not present:
        present = [str(rng.choice(["house", "car", "tree", "water"]))]
    standing = [o for o in ("house", "car", "tree") if o in present]
    order = list(rng.permutation(standing))
    n = max(1, len(order))
    slot = SIZE / n
    for o in ("house", "car", "tree", "water"):
        spec[o] = None
    for i, o in enumerate(order):
        lo, hi = i * slot, (i + 1) * slot
        if o == "house":
            w = int(rng.integers(14, 21))
            h = int(rng.integers(10, 16))
            cx = rng.uniform(lo + w / 2 + 1, max(lo + w / 2 + 1.01, hi - w / 2 - 1))
            body = str(rng.choice(_HOUSE))
            roof = str(rng.choice([r for r in _ROOF if r != body]))
            spec["house"] = {"x0": int(round(cx - w / 2)), "y1": horizon + int(rng.integers(8, 14)),
                             "w": w, "h": h, "roof_h": int(rng.integers(5, 9)),
                             "name": body, "rgb": _jit(rng, PALETTE[body]),
                             "roof_name": roof, "roof_rgb": _jit(rng, PALETTE[roof])}
        elif o == "car":
            w = int(rng.integers(12, 18))
            cx = rng.uniform(lo + w / 2 + 1, max(lo + w / 2 + 1.01, hi - w / 2 - 1))
            body = str(rng.choice(COLOURS))
            spec["car"] = {"x0": int(round(cx - w / 2)), "y1": horizon + int(rng.integers(12, 19)),
                           "w": w, "h": int(rng.integers(5, 8)), "name": body,
                           "rgb": _jit(rng, PALETTE[body]), "wheel_rgb": _jit(rng, _WHEEL, 0.03)}
        else:  # tree
            r = int(rng.integers(5, 8))
            cx = rng.uniform(lo + r + 1, max(lo + r + 1.01, hi - r - 1))
            cname, crgb, _ = _pick(rng, _CANOPY)
            spec["tree"] = {"cx": round(float(cx), 2), "y1": horizon + int(rng.integers(6, 15)),
                            "trunk_w": int(rng.integers(2, 4)), "trunk_h": int(rng.integers(5, 9)),
                            "r": r, "name": cname, "rgb": _jit(rng, crgb),
                            "trunk_rgb": _jit(rng, _TRUNK, 0.03)}
    if "water" in present:
        rx = int(rng.integers(8, 15))
        wname, wrgb, _ = _pick(rng, _WATER)
        spec["water"] = {"cx": round(float(rng.uniform(rx, SIZE - rx)), 2),
                         "cy": int(rng.integers(55, 60)), "rx": rx, "ry": int(rng.integers(3, 6)),
                         "name": wname, "rgb": _jit(rng, wrgb)}
    return spec


def render(spec: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render a spec to ``(image[64,64,3] float32 in [0,1], masks)``.

    Draw order (later occludes earlier): sky, ground, sun/moon, water, house,
    roof, tree trunk, tree canopy, car body, wheels.
    """
    yy, xx = _YY, _XX
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    lab = np.zeros((SIZE, SIZE), np.int8)
    hz = spec["horizon"]

    # sky: vertical gradient from rgb_top (row 0) to rgb (horizon)
    t = np.clip(yy[:, :1] / hz, 0.0, 1.0)[..., None]  # [64,1,1]
    sky = (1 - t) * np.asarray(spec["sky"]["rgb_top"], np.float32) + t * np.asarray(spec["sky"]["rgb"], np.float32)
    img[:] = sky
    ground = yy >= hz
    img[ground] = spec["ground"]["rgb"]
    lab[ground] = _L["ground"]

    def put(m, rgb, name):
        img[m] = rgb
        lab[m] = _L[name]

    c = spec.get("celestial")
    if c:
        m = ((xx - c["cx"]) ** 2 + (yy - c["cy"]) ** 2 <= c["r"] ** 2) & (yy < hz)
        put(m, c["rgb"], c["kind"])
    w = spec.get("water")
    if w:
        m = ((xx - w["cx"]) / w["rx"]) ** 2 + ((yy - w["cy"]) / w["ry"]) ** 2 <= 1.0
        put(m & (yy >= hz), w["rgb"], "water")
    h = spec.get("house")
    if h:
        x0, x1, y1 = h["x0"], h["x0"] + h["w"], h["y1"]
        y0 = y1 - h["h"]
        m = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        put(m, h["rgb"], "house")
        # roof: isosceles triangle with base [x0-2, x1+2] at y0, apex roof_h above
        cx, half = (x0 + x1) / 2.0, (x1 - x0) / 2.0 + 2.0
        ry = (y0 - yy) / h["roof_h"]  # 0 at base .. 1 at apex
        m = (yy < y0) & (ry <= 1.0) & (np.abs(xx - cx) <= half * (1.0 - ry))
        put(m, h["roof_rgb"], "roof")
    tr = spec.get("tree")
    if tr:
        cx, y1, tw = tr["cx"], tr["y1"], tr["trunk_w"]
        m = (np.abs(xx - cx) <= tw / 2.0) & (yy < y1) & (yy >= y1 - tr["trunk_h"] - 2)
        put(m, tr["trunk_rgb"], "tree_trunk")
        ccy = y1 - tr["trunk_h"] - tr["r"] + 2
        m = (xx - cx) ** 2 + (yy - ccy) ** 2 <= tr["r"] ** 2
        put(m, tr["rgb"], "tree_canopy")
    car = spec.get("car")
    if car:
        x0, x1, y1 = car["x0"], car["x0"] + car["w"], car["y1"]
        y0 = y1 - car["h"]
        body = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        # cabin on top: narrower rect
        cab = (xx >= x0 + car["w"] * 0.25) & (xx < x1 - car["w"] * 0.2) & (yy >= y0 - 3) & (yy < y0)
        put(body | cab, car["rgb"], "car_body")
        m = np.zeros_like(body)
        for wx in (x0 + 3.0, x1 - 3.0):
            m |= (xx - wx) ** 2 + (yy - y1) ** 2 <= 2.3 ** 2
        put(m, car["wheel_rgb"], "car_wheels")

    masks = {k: lab == v for k, v in _L.items()}
    masks["car"] = masks["car_body"] | masks["car_wheels"]
    masks["tree"] = masks["tree_trunk"] | masks["tree_canopy"]
    masks["sky"] = lab == _L["sky"]
    out = {k: masks[k] for k in OBJECTS + PARTS}
    return np.clip(img, 0.0, 1.0), out


def quantize(img: np.ndarray) -> np.ndarray:
    """Round a float image to the uint8 grid (what a PNG round trip gives)."""
    return (np.round(np.clip(img, 0, 1) * 255.0) / 255.0).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float HWC [0,1] -> uint8 HWC."""
    return np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8)


def present_objects(masks: dict[str, np.ndarray], min_pixels: int = 1) -> list[str]:
    """Public objects with at least ``min_pixels`` visible pixels."""
    return [o for o in OBJECTS if int(masks[o].sum()) >= min_pixels]


def make_scene(seed: int) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """``sample_spec(seed)`` + :func:`render`, image quantised to uint8 levels."""
    spec = sample_spec(seed)
    img, masks = render(spec)
    return spec, quantize(img), masks
