"""Editing instructions, their exact targets, key words, and scene captions.

This module is the *ground truth* side of gsmile's synthetic world:

* **Edits** (JSON-serialisable dicts) and their exact pixel targets
  (:func:`apply_edit` / :func:`apply_edits`):

  - ``{"op": "recolour", "object": o, "colour": c}``: the paintable pixels of
    object ``o`` are set to ``PALETTE[c]`` exactly (no shading).  Paintable
    pixels: ``car`` -> car body (wheels stay dark), ``tree`` -> canopy (trunk
    stays brown), ``house`` -> body (not the roof), ``ground`` ("grass"),
    ``roof``, ``sky``, ``sun``, ``moon``, ``water``.
  - ``{"op": "night"}``:    ``y = x * (0.35, 0.40, 0.60) + (0, 0, 0.06)``
  - ``{"op": "brighten"}``: ``y = clip(1.3 * x + 0.08, 0, 1)``
  - ``{"op": "fog"}``:      ``y = 0.45 * x + 0.55 * (0.78, 0.78, 0.80)``
  - ``{"op": "winter"}``:   ground -> (0.93, 0.95, 0.97), tree canopy ->
    (0.85, 0.90, 0.92).
  Several edits are applied in order.

* **Instructions** (:func:`sample_instruction`): text built from templates,
  paraphrases, filler ("please", "could you", "now", "in the picture", ...)
  and distractor words ("nice", "beautiful", "today", ...), in four styles
  (``terse``, ``polite``, ``verbose``, and ``double`` = two edits joined with
  "and", about 12% by default).  Each record has ``text``, ``words`` (the
  whitespace-split text), ``roles`` (one per word: ``key``, ``template``,
  ``filler`` or ``distractor``), ``key_words``, ``style`` and ``edits``.

  **Key-word rule**: a word is *key* when it alone carries the content of an
  edit: for a recolour the object word and the colour word (``car``,
  ``red``); for a global edit the single content word naming it, whatever its
  part of speech (``night``, ``brighten``/``brighter``, ``fog``/``foggy``,
  ``winter``, ``snow``/``snowy``).  Structural template words ("make", "the",
  "it", "to") are neither key nor filler.  Punctuation is never attached to a
  key word, so ``words`` can be compared with ``key_words`` directly.
  Only objects actually visible in the scene (>= ``MIN_PIXELS`` paintable
  pixels) are targeted by recolour edits.

* **Captions** (:func:`describe`) of a (possibly edited) scene for CLIP
  training: "a red car", "a house with a blue roof", "an orange sky",
  "a scene at night", "a foggy scene", ...

All randomness comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from .scene import COLOURS, PALETTE

MIN_PIXELS = 6

#: object id -> words naming it in instructions (first is canonical)
OBJECT_WORDS: dict[str, list[str]] = {
    "car": ["car"], "house": ["house"], "roof": ["roof"], "sky": ["sky"],
    "tree": ["tree"], "water": ["water", "pond"], "ground": ["grass", "ground"],
    "sun": ["sun"], "moon": ["moon"],
}
#: object id -> mask key of the pixels a recolour changes
PAINT_MASK = {"car": "car_body", "tree": "tree_canopy", "house": "house", "roof": "roof",
              "sky": "sky", "ground": "ground", "sun": "sun", "moon": "moon", "water": "water"}

NIGHT_MUL = np.array([0.35, 0.40, 0.60], np.float32)
NIGHT_ADD = np.array([0.0, 0.0, 0.06], np.float32)
BRIGHT_MUL, BRIGHT_ADD = 1.3, 0.08
FOG_KEEP = 0.45
FOG_RGB = np.array([0.78, 0.78, 0.80], np.float32)
SNOW_RGB = np.array([0.93, 0.95, 0.97], np.float32)
FROST_RGB = np.array([0.85, 0.90, 0.92], np.float32)

GLOBAL_OPS = ["night", "brighten", "fog", "winter"]

# ---------------------------------------------------------------- templates
# Recolour templates: {o} object word, {c} colour word, {adj} optional
# distractor adjective slot (removed when unused).
RECOLOUR_TEMPLATES = [
    "make the {adj}{o} {c}",
    "paint the {adj}{o} {c}",
    "turn the {adj}{o} {c}",
    "change the {adj}{o} to {c}",
    "colour the {adj}{o} {c}",
    "color the {adj}{o} {c}",
    "recolor the {adj}{o} {c}",
    "make the {adj}{o} look {c}",
    "change the colour of the {adj}{o} to {c}",
    "the {adj}{o} should be {c}",
]
# templates that can be chained "<t1> and the {o2} {c2}"
CHAIN_TEMPLATES = ["make the {adj}{o} {c}", "paint the {adj}{o} {c}", "turn the {adj}{o} {c}",
                   "colour the {adj}{o} {c}", "color the {adj}{o} {c}"]
# global templates: (template, key word); {adj} slot before "scene/photo" etc.
GLOBAL_TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "night": [("make it night", "night"), ("turn it into night", "night"),
              ("change the {adj}scene to night", "night"), ("make it look like night", "night"),
              ("set the {adj}scene at night", "night")],
    "brighten": [("brighten the {adj}photo", "brighten"), ("brighten the {adj}image", "brighten"),
                 ("brighten it", "brighten"), ("brighten the {adj}picture", "brighten"),
                 ("make the {adj}photo brighter", "brighter"), ("make it brighter", "brighter")],
    "fog": [("add fog", "fog"), ("add some fog", "fog"), ("add fog to the {adj}scene", "fog"),
            ("cover the {adj}scene in fog", "fog"), ("make it foggy", "foggy"),
            ("make the {adj}picture foggy", "foggy")],
    "winter": [("make it winter", "winter"), ("turn it into winter", "winter"),
               ("make it look like winter", "winter"), ("change the season to winter", "winter"),
               ("add snow", "snow"), ("make it snowy", "snowy")],
}

POLITE_PREFIX = [["please"], ["could", "you"], ["can", "you"], ["kindly"], ["would", "you"],
                 ["now"], ["please", "now"]]
POLITE_SUFFIX = [["please"], ["for", "me"], ["now"], ["please", "now"]]
VERBOSE_SUFFIX = [["in", "the", "picture"], ["in", "the", "image"], ["in", "this", "scene"],
                  ["today"], ["in", "the", "photo"], ["right", "now"], ["a", "little"],
                  ["in", "this", "beautiful", "image"], ["for", "me", "today"]]
DISTRACTOR_ADJ = ["nice", "beautiful", "little", "old", "lovely", "pretty"]
#: words counted as distractors (others inserted by the style rules are filler)
DISTRACTORS = {"nice", "beautiful", "little", "old", "lovely", "pretty", "today", "scene",
               "image", "picture", "photo", "this"}


def paint_mask(masks: dict, obj: str) -> np.ndarray:
    return masks[PAINT_MASK[obj]]


def recolourable(masks: dict) -> list[str]:
    """Objects that may be targeted by a recolour in this scene."""
    return [o for o in OBJECT_WORDS if int(paint_mask(masks, o).sum()) >= MIN_PIXELS]


def apply_edit(img: np.ndarray, masks: dict, edit: dict) -> np.ndarray:
    """Exact target of one edit on an HWC float image (returns a new array)."""
    op = edit["op"]
    out = img.astype(np.float32, copy=True)
    if op == "recolour":
        out[paint_mask(masks, edit["object"])] = np.asarray(PALETTE[edit["colour"]], np.float32)
    elif op == "night":
        out = out * NIGHT_MUL + NIGHT_ADD
    elif op == "brighten":
        out = out * BRIGHT_MUL + BRIGHT_ADD
    elif op == "fog":
        out = FOG_KEEP * out + (1.0 - FOG_KEEP) * FOG_RGB
    elif op == "winter":
        out[masks["ground"]] = SNOW_RGB
        out[masks["tree_canopy"]] = FROST_RGB
    else:
        raise ValueError(f"unknown edit op {op!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def apply_edits(img: np.ndarray, masks: dict, edits: list[dict]) -> np.ndarray:
    for e in edits:
        img = apply_edit(img, masks, e)
    return img


# ------------------------------------------------------------ instructions
def _fill(rng, template: str, slots: dict, adj: str | None):
    """Expand a template into (words, roles)."""
    words, roles = [], []
    for tok in template.split():
        if tok.startswith("{adj}"):
            if adj:
                words.append(adj)
                roles.append("distractor")
            tok = tok[len("{adj}"):]
        if tok in ("{o}", "{c}", "{o2}", "{c2}"):
            words.append(slots[tok[1:-1]])
            roles.append("key")
        else:
            words.append(tok)
            roles.append("template")
    return words, roles


def _edit_phrase(rng, edit: dict, adj: str | None, chain: bool = False):
    if edit["op"] == "recolour":
        o = edit["object"]
        ow = OBJECT_WORDS[o][int(rng.integers(len(OBJECT_WORDS[o])))]
        pool = CHAIN_TEMPLATES if chain else RECOLOUR_TEMPLATES
        t = pool[int(rng.integers(len(pool)))]
        return _fill(rng, t, {"o": ow, "c": edit["colour"]}, adj)
    t, key = GLOBAL_TEMPLATES[edit["op"]][int(rng.integers(len(GLOBAL_TEMPLATES[edit["op"]])))]
    words, roles = _fill(rng, t, {}, adj)
    roles = ["key" if w == key else r for w, r in zip(words, roles)]
    return words, roles


def sample_edit(rng, masks: dict, p_global: float = 0.3, exclude=()) -> dict:
    objs = [o for o in recolourable(masks) if o not in exclude]
    if rng.random() < p_global or not objs:
        return {"op": GLOBAL_OPS[int(rng.integers(len(GLOBAL_OPS)))]}
    return {"op": "recolour", "object": objs[int(rng.integers(len(objs)))],
            "colour": COLOURS[int(rng.integers(len(COLOURS)))]}


def sample_instruction(rng: np.random.Generator, masks: dict, style: str | None = None,
                       p_double: float = 0.12, p_global: float = 0.3) -> dict:
    """Sample an instruction valid for the scene with these masks.

    ``style`` is one of ``terse``, ``polite``, ``verbose``, ``double`` or None
    (random: ``p_double`` double, the rest split evenly).
    """
    if style is None:
        if rng.random() < p_double:
            style = "double"
        else:
            style = ["terse", "polite", "verbose"][int(rng.integers(3))]
    adj_p = {"terse": 0.0, "polite": 0.15, "verbose": 0.6, "double": 0.2}[style]

    def adj():
        return DISTRACTOR_ADJ[int(rng.integers(len(DISTRACTOR_ADJ)))] if rng.random() < adj_p else None

    e1 = sample_edit(rng, masks, p_global)
    edits = [e1]
    if style == "double":
        e2 = None
        for _ in range(10):
            cand = sample_edit(rng, masks, 0.3, exclude=(e1.get("object"),))
            if cand["op"] == "recolour" or cand["op"] != e1["op"]:
                e2 = cand
                break
        if e2 is None:
            style = "terse"
        else:
            edits.append(e2)
    if style == "double":
        e1, e2 = edits
        if e1["op"] == "recolour" and e2["op"] == "recolour" and rng.random() < 0.7:
            # "make the car red and the sky orange"
            w, r = _edit_phrase(rng, e1, adj(), chain=True)
            o2 = OBJECT_WORDS[e2["object"]][int(rng.integers(len(OBJECT_WORDS[e2["object"]])))]
            tail = "to {c2}" if w[-2] == "to" else "{c2}"
            w2, r2 = _fill(rng, "and the {o2} " + tail, {"o2": o2, "c2": e2["colour"]}, None)
        else:
            w, r = _edit_phrase(rng, e1, adj())
            w2, r2 = _edit_phrase(rng, e2, adj())
            w2, r2 = ["and"] + w2, ["template"] + r2
        words, roles = w + w2, r + r2
    else:
        words, roles = _edit_phrase(rng, e1, adj())

    # prefix / suffix filler
    pre, suf = [], []
    if style == "polite" or (style in ("verbose", "double") and rng.random() < 0.5):
        pre = list(POLITE_PREFIX[int(rng.integers(len(POLITE_PREFIX)))])
    if style == "polite" and rng.random() < 0.5:
        suf = list(POLITE_SUFFIX[int(rng.integers(len(POLITE_SUFFIX)))])
    if style == "verbose":
        suf = list(VERBOSE_SUFFIX[int(rng.integers(len(VERBOSE_SUFFIX)))])
        extra = list(POLITE_SUFFIX[int(rng.integers(len(POLITE_SUFFIX)))])
        if rng.random() < 0.3 and not set(extra) & set(suf):
            suf += extra
    if style == "terse" and rng.random() < 0.15:
        suf = ["now"]

    def role(w):
        return "distractor" if w in DISTRACTORS else "filler"

    words = pre + words + suf
    roles = [role(w) for w in pre] + roles + [role(w) for w in suf]
    # cosmetic: capitalised first word, punctuation on non-key words only
    if pre and pre[-1] == "please" and len(pre) == 1 and rng.random() < 0.3:
        words[0] = "please,"
    if rng.random() < 0.3 and roles[0] != "key":
        words[0] = words[0][:1].upper() + words[0][1:]
    if roles[-1] != "key" and rng.random() < 0.5:
        words[-1] = words[-1] + ("?" if pre and pre[0] in ("could", "can", "would") else
                                 [".", "!"][int(rng.integers(2))])
    key_words = [w for w, r in zip(words, roles) if r == "key"]
    return {"text": " ".join(words), "words": words, "roles": roles, "key_words": key_words,
            "style": style, "edits": edits}


# ----------------------------------------------------------------- captions
def scene_state(spec: dict, masks: dict) -> dict:
    """Colour name per visible object + global condition flags."""
    st: dict = {"colours": {}, "flags": set()}
    for o in recolourable(masks):
        if o == "sky":
            st["colours"]["sky"] = spec["sky"]["name"]
        elif o == "ground":
            st["colours"]["ground"] = spec["ground"]["name"]
        elif o in ("sun", "moon"):
            st["colours"][o] = spec["celestial"]["name"]
        elif o == "roof":
            st["colours"]["roof"] = spec["house"]["roof_name"]
        else:
            st["colours"][o] = spec[o]["name"]
    return st


def edit_state(st: dict, edits: list[dict]) -> dict:
    st = {"colours": dict(st["colours"]), "flags": set(st["flags"])}
    for e in edits:
        if e["op"] == "recolour":
            st["colours"][e["object"]] = e["colour"]
        else:
            st["flags"].add(e["op"])
            if e["op"] == "winter":
                for o in ("ground", "tree"):
                    if o in st["colours"]:
                        st["colours"][o] = "white"
    return st


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


CAPTION_OBJECT = {"car": "{a} {c} car", "house": "{a} {c} house", "roof": "a house with {a} {c} roof",
                  "sky": "{a} {c} sky", "tree": "{a} {c} tree", "water": "{c} water",
                  "ground": "{c} grass", "sun": "{a} {c} sun", "moon": "{a} {c} moon"}
PRESENCE = {"car": "a car", "house": "a house", "tree": "a tree", "water": "a pond",
            "sun": "the sun", "moon": "the moon"}
CONDITION = {"night": ["a scene at night", "a night scene", "a dark scene"],
             "fog": ["a foggy scene", "a scene in fog"],
             "winter": ["a winter scene", "a snowy scene"],
             "brighten": ["a bright photo", "a brightened scene"]}
DAY = ["a scene during the day", "a daytime scene"]


def describe(st: dict) -> list[str]:
    """All true captions of a scene state (see :func:`scene_state`)."""
    caps = []
    washed = bool(st["flags"] & {"night", "fog"})  # colour names no longer reliable
    for o, c in st["colours"].items():
        if o in PRESENCE:
            caps.append(PRESENCE[o])
        if not washed:
            caps.append(CAPTION_OBJECT[o].format(a=_a(c), c=c))
    for f in st["flags"]:
        caps += CONDITION[f]
    if "night" not in st["flags"]:
        caps += DAY
    return caps


def caption_vocabulary() -> list[str]:
    """Every caption string :func:`describe` can produce (for the tokenizer)."""
    caps = set(DAY)
    for v in CONDITION.values():
        caps.update(v)
    caps.update(PRESENCE.values())
    for t in CAPTION_OBJECT.values():
        for c in COLOURS:
            caps.add(t.format(a=_a(c), c=c))
    return sorted(caps)


def instruction_vocabulary() -> list[str]:
    """Every word instructions can contain (lowercased, punctuation split off)."""
    ws = set()
    for t in RECOLOUR_TEMPLATES + [g for v in GLOBAL_TEMPLATES.values() for g, _ in v]:
        ws.update(t.replace("{adj}", "").replace("{o}", "").replace("{c}", "").split())
    for v in OBJECT_WORDS.values():
        ws.update(v)
    ws.update(COLOURS)
    for lst in (POLITE_PREFIX, POLITE_SUFFIX, VERBOSE_SUFFIX):
        for p in lst:
            ws.update(p)
    ws.update(DISTRACTOR_ADJ)
    ws.update(DISTRACTORS)
    ws.add("and")
    return sorted(ws)
