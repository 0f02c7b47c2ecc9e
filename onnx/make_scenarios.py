"""Write gsmile's scenario suites (``scenarios/odd-world/`` and ``scenarios/smoke/``).

Usage (from the repository root; about 2 minutes on one core, not run by CI)::

    /opt/gsmile-py/bin/python onnx/make_scenarios.py

A *scenario* is one explanation job (an image, an instruction, its
paraphrases, its ground-truth key words) labelled with its cell of the
*operational design domain* (ODD): the conditions under which the editor is
meant to work.  ``src/scenario.rs`` loads the files this script writes; the
format is documented there and in each suite's ``suite.toml``.

ODD axes (``odd-world``)
------------------------
* ``time_of_day``: ``day`` | ``dusk`` | ``night``.  The world has no dusk or
  night renderer, so the base image of a cell is made deterministically:
  ``day`` = a world scene whose sky the sampler named ``blue``; ``dusk`` = a
  world scene whose sky the sampler named ``orange`` (the world's own sunset
  sky, no transform); ``night`` = a blue-sky scene passed through the
  grammar's exact ``night`` edit (``y = x * (0.35, 0.40, 0.60) + (0, 0, 0.06)``).
* ``weather``: ``clear`` | ``fog`` | ``snow``: nothing, the grammar's exact
  ``fog`` edit, or its exact ``winter`` edit (snow on the ground, frost on the
  tree canopy).  Edits are applied in the order winter, night, fog (snow lies
  on the ground before dark; fog veils everything last).
* ``scene_content``: the foreground objects (car, house, tree, water) with at
  least ``grammar.MIN_PIXELS`` visible pixels, sorted and comma-joined; sky
  and ground are always present and sun/moon are covered by
  ``target_object``.  All 15 non-empty subsets are allowed and used.
* ``target_object``: the object the (first) edit recolours, or ``global``.
* ``edit``: ``recolour`` or a global edit (``night``, ``brighten``, ``fog``,
  ``winter``).  A global edit is never the one the cell already shows (no
  "make it night" on a night image).
* ``colour``: the recolour's colour (never the object's current colour), or
  ``none`` for global edits.
* ``style``: ``terse`` | ``polite`` | ``verbose`` | ``double`` come from
  ``grammar.sample_instruction`` (a ``double`` instruction carries a second
  edit chosen by the grammar; the ODD labels describe the first one).
  ``ambiguous`` replaces the object phrase of a grammar recolour template by
  "it" ("make it red", "could you paint it red?"): its key word is the colour
  only, and ``target_object`` is the edit the scenario *expects*, which the
  instruction underdetermines.  ``negated`` ("make the car red, not the
  house") is left out: "not" is not in the tokenizer's vocabulary, so the
  editor could not read it.

Instructions, key words and paraphrases
---------------------------------------
The instruction is drawn from the grammar by rejection sampling: the
grammar's sampler is called with the requested style until its first edit is
exactly the scenario's edit.  Two paraphrases are drawn the same way (other
templates and, for terse/polite/verbose, the other two styles) and kept only
when their key words are the same multiset as the instruction's (so "pond"
never stands in for "water", nor "foggy" for "fog").  Every text is checked
with the project's tokenizer (``common.build_tokenizer``): no ``[UNK]`` and at
most 24 tokens.

Images
------
``images/NNN.png`` is the cell's base image (uint8 PNG), ``images/NNN-masks/``
holds 0/255 masks of every visible public object (``scene.present_objects``
with ``MIN_PIXELS``; masks are those of the un-transformed scene, since the
global edits move no pixels).  ``related_images`` are the *same scene spec
with small layout jitter*: every object shifted horizontally by the same
deterministic offset (+2 px for ``-b``, -2 px for ``-c``; the water moves by
the opposite amount), re-rendered and passed through the same cell
transforms.  A related image is kept only if it shows the same foreground
objects and the target stays recolourable, so the same instruction applies
to it (a consistency check: the explanation should not change much).

Seeds: scenes come from world seeds below 1,000,000 (never used for
training), searched upward from ``SEED_BASE``; each scene seed is used once.
"""

from __future__ import annotations

import copy
import itertools
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import grammar, scene  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_BASE = 700_000
SEED_SCAN = 60_000
RNG_SEED = 20240601
#: paint pixels a target needs so that its recolour is clearly visible
MIN_TARGET_PIXELS = 20
MAX_TOKENS = 24

TIMES = ["day", "dusk", "night"]
WEATHERS = ["clear", "fog", "snow"]
FOREGROUND = ["car", "house", "tree", "water"]
SUBSETS = [",".join(sorted(c)) for n in range(1, 5) for c in itertools.combinations(FOREGROUND, n)]
TARGETS = ["car", "house", "roof", "sky", "tree", "water", "ground", "sun", "moon", "global"]
EDITS = ["recolour"] + grammar.GLOBAL_OPS
COLOURS = list(scene.COLOURS)
STYLES = ["terse", "polite", "verbose", "ambiguous", "double"]
SCENARIOS_PER_CELL = 15

AXES_DOC = {
    "time_of_day": "day: world scene with a blue sky; dusk: world scene with its orange (sunset) sky; "
                   "night: blue-sky scene + the grammar's exact night edit",
    "weather": "clear: as rendered; fog: + exact fog edit; snow: + exact winter edit "
               "(order: winter, night, fog)",
    "scene_content": "visible foreground objects (car, house, tree, water), sorted, comma-joined; "
                     "sky and ground are always present",
    "target_object": "object recoloured by the (first) edit, or global",
    "edit": "recolour, or the global edit asked for (never the one the cell already shows)",
    "colour": "recolour colour (never the object's current one), none for global edits",
    "style": "terse/polite/verbose/double from the grammar; ambiguous: the object phrase replaced by "
             "'it' (key word = colour only); negated is not supported ('not' is not in the vocabulary)",
}


# ---------------------------------------------------------------- tokenizer
def _tokenizer():
    import common  # noqa: E402  (imports the tokenizers library)
    return common.build_tokenizer()


def check_text(tok, text: str):
    enc = tok.encode(text)
    n = sum(enc.attention_mask)
    if 1 in enc.ids:
        raise SystemExit(f"unknown word in {text!r}: {enc.tokens}")
    if n > MAX_TOKENS:
        raise SystemExit(f"{text!r} is {n} tokens (> {MAX_TOKENS})")


# ------------------------------------------------------------------ scenes
def transform(img: np.ndarray, masks: dict, time: str, weather: str) -> np.ndarray:
    """The cell's base image: winter, then night, then fog (exact grammar edits)."""
    edits = []
    if weather == "snow":
        edits.append({"op": "winter"})
    if time == "night":
        edits.append({"op": "night"})
    if weather == "fog":
        edits.append({"op": "fog"})
    return scene.quantize(grammar.apply_edits(img, masks, edits))


def content(masks: dict) -> str:
    vis = scene.present_objects(masks, grammar.MIN_PIXELS)
    return ",".join(sorted(o for o in vis if o in FOREGROUND))


def natural_colour(spec: dict, obj: str) -> str:
    if obj in ("sky", "ground"):
        return spec[obj]["name"]
    if obj in ("sun", "moon"):
        return spec["celestial"]["name"]
    if obj == "roof":
        return spec["house"]["roof_name"]
    return spec[obj]["name"]


def jitter(spec: dict, dx: int) -> dict:
    """The same scene with every object moved ``dx`` px (water ``-dx``)."""
    s = copy.deepcopy(spec)
    for o, key in (("house", "x0"), ("car", "x0")):
        if s.get(o):
            s[o][key] += dx
    if s.get("tree"):
        s["tree"]["cx"] = round(s["tree"]["cx"] + dx, 2)
    if s.get("water"):
        s["water"]["cx"] = round(s["water"]["cx"] - dx, 2)
    if s.get("celestial"):
        s["celestial"]["cx"] += dx
    return s


class SeedIndex:
    """Specs of seeds ``SEED_BASE ..``, grouped by (sky name, celestial, foreground present)."""

    def __init__(self):
        self.groups: dict[tuple, list[int]] = {}
        for seed in range(SEED_BASE, SEED_BASE + SEED_SCAN):
            spec = scene.sample_spec(seed)
            cel = spec["celestial"]["kind"] if spec["celestial"] else "none"
            present = ",".join(sorted(o for o in FOREGROUND if spec[o]))
            self.groups.setdefault((spec["sky"]["name"], cel, present), []).append(seed)
        self.used: set[int] = set()

    def find(self, sky: str, subset: str, target: str, colour: str | None, time: str, weather: str):
        """First unused seed whose scene fits; returns (seed, spec, img, masks) or None."""
        cels = {"sun": ["sun"], "moon": ["moon"]}.get(target, ["sun", "moon", "none"])
        cands = sorted(s for c in cels for s in self.groups.get((sky, c, subset), []))
        for seed in cands:
            if seed in self.used:
                continue
            spec = scene.sample_spec(seed)
            img, masks = scene.render(spec)
            if content(masks) != subset:
                continue
            if target != "global":
                if int(grammar.paint_mask(masks, target).sum()) < MIN_TARGET_PIXELS:
                    continue
                if colour == natural_colour(spec, target):
                    continue
            if not related(spec, subset, target, time, weather):
                continue
            self.used.add(seed)
            return seed, spec, scene.quantize(img), masks
        return None


def related(spec: dict, subset: str, target: str, time: str, weather: str) -> list[np.ndarray]:
    """Jittered re-renders (+2, -2 px) that keep the content and the target; [] if none."""
    out = []
    for dx in (2, -2):
        img, masks = scene.render(jitter(spec, dx))
        if content(masks) != subset:
            return []
        if target != "global" and int(grammar.paint_mask(masks, target).sum()) < MIN_TARGET_PIXELS:
            return []
        out.append(transform(scene.quantize(img), masks, time, weather))
    return out


# ------------------------------------------------------------ instructions
AMBIGUOUS_TEMPLATES = sorted({t.replace("the {adj}{o}", "it") for t in grammar.RECOLOUR_TEMPLATES})


def ambiguous(rng: np.random.Generator, colour: str) -> dict:
    """A recolour with its object phrase replaced by "it": key word = colour."""
    t = AMBIGUOUS_TEMPLATES[int(rng.integers(len(AMBIGUOUS_TEMPLATES)))]
    words = [colour if w == "{c}" else w for w in t.split()]
    roles = ["key" if w == colour else "template" for w in words]
    if rng.random() < 0.5:
        pre = list(grammar.POLITE_PREFIX[int(rng.integers(len(grammar.POLITE_PREFIX)))])
        words, roles = pre + words, ["filler"] * len(pre) + roles
    return {"text": " ".join(words), "words": words, "roles": roles, "key_words": [colour],
            "style": "ambiguous", "edits": [{"op": "recolour", "colour": colour}]}


def draw(rng, masks: dict, edit: dict, style: str, avoid: set[str], keys: list[str] | None):
    """Grammar instruction in ``style`` whose first edit is ``edit`` (rejection sampling)."""
    for _ in range(200_000):
        if style == "ambiguous":
            ins = ambiguous(rng, edit["colour"])
        else:
            ins = grammar.sample_instruction(rng, masks, style=style,
                                             p_global=1.0 if edit["op"] != "recolour" else 0.0)
            if ins["style"] != style or ins["edits"][0] != edit:
                continue
        if ins["text"] in avoid:
            continue
        if keys is not None and sorted(ins["key_words"]) != sorted(keys):
            continue
        if keys is None and edit["op"] == "recolour" and style != "ambiguous":
            # the canonical object word, so that paraphrases can match it
            if grammar.OBJECT_WORDS[edit["object"]][0] not in ins["key_words"]:
                continue
        return ins
    raise SystemExit(f"no {style} instruction for {edit}")


def paraphrase_styles(style: str) -> list[str]:
    if style in ("terse", "polite", "verbose"):
        return [s for s in ("terse", "polite", "verbose") if s != style]
    return [style, style]


# ------------------------------------------------------------------ writing
def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_list(xs: list[str]) -> str:
    return "[" + ", ".join(toml_str(x) for x in xs) + "]"


def save_png(arr: np.ndarray, path: str):
    Image.fromarray(scene.to_uint8(arr)).save(path, optimize=True)


def write_suite_toml(out: str, name: str, description: str, axes: dict[str, list[str]]):
    lines = [f"# Written by onnx/make_scenarios.py; regenerate rather than edit by hand.",
             f"name = {toml_str(name)}", f"description = {toml_str(description)}", "",
             "# ODD axes: every scenario's [odd] table gives one allowed value per axis.", "[axes]"]
    for k, vs in axes.items():
        lines.append(f"# {AXES_DOC[k]}")
        lines.append(f"{k} = {toml_list(vs)}")
    with open(os.path.join(out, "suite.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_scenario(out: str, prefix: str, n: int, cell: dict, found, ins: dict, paras: list[dict],
                   rel_imgs: list[np.ndarray]):
    seed, spec, img, masks = found
    stem = f"{n:03d}"
    imdir = os.path.join(out, "images")
    base = transform(img, masks, cell["time_of_day"], cell["weather"])
    save_png(base, os.path.join(imdir, stem + ".png"))
    mdir = os.path.join(imdir, stem + "-masks")
    os.makedirs(mdir, exist_ok=True)
    for o in scene.present_objects(masks, grammar.MIN_PIXELS):
        Image.fromarray(masks[o].astype(np.uint8) * 255, mode="L").save(
            os.path.join(mdir, o + ".png"), optimize=True)
    rel = []
    for suffix, r in zip("bc", rel_imgs):
        save_png(r, os.path.join(imdir, f"{stem}-{suffix}.png"))
        rel.append(f"images/{stem}-{suffix}.png")
    slug = "-".join([cell["time_of_day"], cell["weather"], cell["target_object"],
                     cell["colour"] if cell["colour"] != "none" else cell["edit"], cell["style"]])
    unnamed = f"(unnamed, expected: {cell['target_object']})"
    edits = " + ".join(e["op"] if e["op"] != "recolour" else
                       f"recolour {e.get('object', unnamed)} {e['colour']}" for e in ins["edits"])
    lines = [f"# world seed {seed}; base image = {cell['time_of_day']}/{cell['weather']} transform of "
             f"scene.render(sample_spec({seed})); edits: {edits}",
             f"id = {toml_str(f'{prefix}-{stem}')}",
             f"image = {toml_str(f'images/{stem}.png')}",
             f"masks = {toml_str(f'images/{stem}-masks')}",
             f"instruction = {toml_str(ins['text'])}",
             f"paraphrases = {toml_list([p['text'] for p in paras])}",
             f"key_words = {toml_list(ins['key_words'])}",
             f"related_images = {toml_list(rel)}",
             "", "[odd]"]
    for k in AXES_DOC:
        lines.append(f"{k} = {toml_str(cell[k])}")
    with open(os.path.join(out, f"{stem}-{slug}.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------ the grid
def plan(n_cells_rep: int) -> list[dict]:
    """ODD cells: every time x weather cell ``n_cells_rep`` times, other axes cycled.

    Targets and colours cycle through their lists; styles, scene contents and
    global edits take the least-used value compatible with the scenario
    (ambiguous needs a recolour, a foreground target must be in the content,
    roof needs a house, a global edit must not be one the cell already shows).
    """
    cells = []
    ptr = {"colour": 0}
    used: dict[tuple, int] = {}

    def take(name, values, ok):
        """The least-used compatible value (ties: list order), so every value is used."""
        good = [v for v in values if ok(v)]
        if not good:
            raise SystemExit(f"no compatible {name}")
        v = min(good, key=lambda v: (used.get((name, v), 0), values.index(v)))
        used[(name, v)] = used.get((name, v), 0) + 1
        return v

    for i in range(len(TIMES) * len(WEATHERS) * n_cells_rep):
        time = TIMES[i % 3]
        weather = WEATHERS[(i // 3) % 3]
        target = TARGETS[i % len(TARGETS)]
        need = {"roof": "house"}.get(target, target)
        subset = take("subset", SUBSETS, lambda s: need not in FOREGROUND or need in s.split(","))
        style = take("style", STYLES, lambda s: not (s == "ambiguous" and target == "global"))
        if target == "global":
            shown = {"night"} if time == "night" else set()
            shown |= {"fog": {"fog"}, "snow": {"winter"}}.get(weather, set())
            edit = take("gop", grammar.GLOBAL_OPS, lambda g: g not in shown)
            colour = "none"
        else:
            edit = "recolour"
            colour = COLOURS[ptr["colour"] % len(COLOURS)]
            ptr["colour"] += 1
        cells.append({"time_of_day": time, "weather": weather, "scene_content": subset,
                      "target_object": target, "edit": edit, "colour": colour, "style": style})
    return cells


def build(out: str, prefix: str, cells: list[dict], index: SeedIndex, tok, rng):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "images"))
    for n, cell in enumerate(cells, start=1):
        sky = "orange" if cell["time_of_day"] == "dusk" else "blue"
        colour = None if cell["colour"] == "none" else cell["colour"]
        found = None
        for _ in range(len(COLOURS)):
            found = index.find(sky, cell["scene_content"], cell["target_object"], colour,
                               cell["time_of_day"], cell["weather"])
            if found is not None or colour is None:
                break
            # every fitting scene already has this colour: take the next colour
            colour = COLOURS[(COLOURS.index(colour) + 1) % len(COLOURS)]
            cell["colour"] = colour
        if found is None:
            raise SystemExit(f"no scene for {cell}")
        seed, spec, img, masks = found
        if cell["edit"] == "recolour":
            edit = {"op": "recolour", "object": cell["target_object"], "colour": cell["colour"]}
        else:
            edit = {"op": cell["edit"]}
        ins = draw(rng, masks, edit, cell["style"], set(), None)
        paras, seen = [], {ins["text"]}
        for st in paraphrase_styles(cell["style"]):
            p = draw(rng, masks, edit, st, seen, ins["key_words"])
            seen.add(p["text"])
            paras.append(p)
        for t in [ins["text"]] + [p["text"] for p in paras]:
            check_text(tok, t)
        rel = related(spec, cell["scene_content"], cell["target_object"],
                      cell["time_of_day"], cell["weather"])
        write_scenario(out, prefix, n, cell, found, ins, paras, rel)


def coverage(cells: list[dict], axes: dict[str, list[str]]):
    for k, vs in axes.items():
        counts = {v: sum(c[k] == v for c in cells) for v in vs}
        missing = [v for v, c in counts.items() if c == 0]
        if missing:
            raise SystemExit(f"axis {k}: values never used: {missing}")
        print(f"  {k}: " + ", ".join(f"{v}={c}" for v, c in counts.items()))


def main():
    tok = _tokenizer()
    rng = np.random.default_rng(RNG_SEED)
    print("indexing world seeds ...")
    index = SeedIndex()
    axes = {"time_of_day": TIMES, "weather": WEATHERS, "scene_content": SUBSETS,
            "target_object": TARGETS, "edit": EDITS, "colour": COLOURS + ["none"], "style": STYLES}

    cells = plan(SCENARIOS_PER_CELL)
    out = os.path.join(ROOT, "scenarios", "odd-world")
    build(out, "odd-world", cells, index, tok, rng)
    write_suite_toml(out, "odd-world",
                     "gsmile's synthetic world over its operational design domain: time of day x "
                     "weather x scene content x target object x edit x colour x instruction style "
                     "(onnx/make_scenarios.py).", axes)
    print(f"odd-world: {len(cells)} scenarios")
    coverage(cells, axes)

    # smoke: six quick scenarios, one per style plus a global edit, clear day/dusk/night
    smoke = [
        {"time_of_day": "day", "weather": "clear", "scene_content": "car,house,tree,water",
         "target_object": "car", "edit": "recolour", "colour": "red", "style": "terse"},
        {"time_of_day": "day", "weather": "clear", "scene_content": "car,house,tree,water",
         "target_object": "sky", "edit": "recolour", "colour": "orange", "style": "polite"},
        {"time_of_day": "dusk", "weather": "clear", "scene_content": "car,house,tree",
         "target_object": "house", "edit": "recolour", "colour": "blue", "style": "verbose"},
        {"time_of_day": "night", "weather": "clear", "scene_content": "car,tree,water",
         "target_object": "tree", "edit": "recolour", "colour": "purple", "style": "ambiguous"},
        {"time_of_day": "day", "weather": "fog", "scene_content": "car,house,tree,water",
         "target_object": "roof", "edit": "recolour", "colour": "green", "style": "double"},
        {"time_of_day": "day", "weather": "snow", "scene_content": "car,house,water",
         "target_object": "global", "edit": "night", "colour": "none", "style": "terse"},
    ]
    out = os.path.join(ROOT, "scenarios", "smoke")
    build(out, "smoke", smoke, index, tok, rng)
    smoke_axes = {k: sorted({c[k] for c in smoke}) for k in axes}
    write_suite_toml(out, "smoke", "Six quick scenarios of gsmile's synthetic world, for tests "
                     "(onnx/make_scenarios.py).", smoke_axes)
    print("smoke: 6 scenarios")


if __name__ == "__main__":
    main()
