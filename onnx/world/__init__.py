"""gsmile's synthetic world.

A tiny, fully seeded procedural world used to *train* and *test* the small
ONNX models shipped with gsmile (``onnx/tiny-editor`` and ``onnx/tiny-clip``):

* :mod:`world.scene` -- 64x64 RGB scenes (sky, ground, sun/moon, house with
  roof, car, tree, water) described by a small JSON-serialisable spec, with
  per-object boolean masks.
* :mod:`world.grammar` -- editing instructions (recolour / global edits,
  paraphrases, filler and distractor words, two-edit instructions) with their
  exact pixel targets and ground-truth key words, plus scene captions for CLIP.

Everything takes an explicit ``numpy.random.Generator`` or integer seed, so a
given seed always yields the same scene, instruction and target.
"""

from . import scene, grammar  # noqa: F401
