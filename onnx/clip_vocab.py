"""Build the real CLIP BPE tokenizer files from open_clip's vocabulary.

OpenAI's CLIP (and so Stable Diffusion 1.x and timbrooks/instruct-pix2pix) uses
a byte-level BPE with 49408 entries.  The merges ship, gzipped, inside the
open_clip_torch wheel (MIT licence, Copyright (c) 2021 OpenAI; see
onnx/tiny-ip2p/NOTICE).  This module converts them the way OpenAI's
`simple_tokenizer.py` and transformers' `CLIPTokenizer` do:

    vocab  = the 256 byte-to-unicode symbols
           + the same 256 symbols with '</w>' appended
           + one entry per merge (the two halves joined), merges = lines[1:48895]
           + '<|startoftext|>' (49406), '<|endoftext|>' (49407)

and saves a transformers `CLIPTokenizer` (model_max_length 77, pad token
'<|endoftext|>' as in SD1.x) into a folder.  The folder holds the files of the
real diffusers layout (`vocab.json`, `merges.txt`, `special_tokens_map.json`,
`tokenizer_config.json`); transformers 5's own `tokenizer.json` (3.6 MB) is
deleted unless --tokenizer-json is given.  A reader must be able to work from
`vocab.json` + `merges.txt` alone.

transformers 5 has no pure-Python ("slow") CLIPTokenizer any more: `CLIPTokenizer`
is the `tokenizers`-backed class (normalizer NFC + collapse whitespace + lowercase,
no ftfy / html.unescape); tests/fixtures/clip_tokenizer/make_ids.py compares it
with a port of OpenAI's simple_tokenizer.

Usage:
    /opt/gsmile-py/bin/python onnx/clip_vocab.py OUT_DIR [--wheel-dir /tmp/oc] [--tokenizer-json]
"""
import argparse
import glob
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile

OPEN_CLIP_VERSION = "3.3.0"
GZ_NAME = "open_clip/bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # 48894 merges -> 512 + 48894 + 2 = 49408 entries
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2 / CLIP map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def find_or_download_wheel(wheel_dir="/tmp/oc"):
    """Path of the open_clip_torch wheel, fetched from PyPI with `pip download` if absent."""
    pat = os.path.join(wheel_dir, f"open_clip_torch-{OPEN_CLIP_VERSION}-*.whl")
    hits = sorted(glob.glob(pat))
    if not hits:
        os.makedirs(wheel_dir, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"open_clip_torch=={OPEN_CLIP_VERSION}",
                        "--no-deps", "--only-binary=:all:", "-d", wheel_dir], check=True)
        hits = sorted(glob.glob(pat))
    if not hits:
        raise FileNotFoundError(f"no open_clip_torch {OPEN_CLIP_VERSION} wheel in {wheel_dir}")
    return hits[0]


def read_merge_lines(wheel_dir="/tmp/oc"):
    """The decompressed lines of bpe_simple_vocab_16e6.txt.gz from the wheel."""
    with zipfile.ZipFile(find_or_download_wheel(wheel_dir)) as z:
        raw = z.read(GZ_NAME)
    return gzip.GzipFile(fileobj=io.BytesIO(raw)).read().decode("utf-8").split("\n")


def build_vocab_and_merges(wheel_dir="/tmp/oc"):
    """(vocab dict token->id with 49408 entries, list of merge strings 'a b')."""
    lines = read_merge_lines(wheel_dir)
    merges = lines[1:N_MERGES + 1]
    assert len(merges) == N_MERGES, len(merges)
    base = list(bytes_to_unicode().values())
    tokens = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == 49408 and vocab[BOS] == 49406 and vocab[EOS] == 49407
    return vocab, merges


def write_clip_tokenizer(out_dir, wheel_dir="/tmp/oc", keep_tokenizer_json=False):
    """Save a transformers CLIPTokenizer with the real vocabulary to out_dir; returns the file names.

    transformers 5 writes only tokenizer.json (3.6 MB) + tokenizer_config.json; we add
    vocab.json, merges.txt and special_tokens_map.json and, unless keep_tokenizer_json,
    delete tokenizer.json so the folder matches timbrooks/instruct-pix2pix's tokenizer/
    (transformers 5 rebuilds the same tokenizer from vocab.json + merges.txt).
    """
    from transformers import CLIPTokenizer

    vocab, merges = build_vocab_and_merges(wheel_dir)
    os.makedirs(out_dir, exist_ok=True)
    vocab_path = os.path.join(out_dir, "vocab.json")
    merges_path = os.path.join(out_dir, "merges.txt")
    # Same formatting as the files on the Hub (openai/clip-vit-large-patch14, SD1.x):
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, ensure_ascii=False))
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77,
                        bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)
    tok.save_pretrained(out_dir)
    # transformers 5 writes tokenizer.json + tokenizer_config.json only; the diffusers layout of
    # SD1.x checkpoints also has vocab.json, merges.txt and special_tokens_map.json, so keep them.
    for p in (vocab_path, merges_path):
        assert os.path.exists(p), p
    stm = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(stm, f, indent=2)
        f.write("\n")
    if not keep_tokenizer_json:
        os.remove(os.path.join(out_dir, "tokenizer.json"))
    # Round-trip: the folder must load and agree with the in-memory tokenizer.
    again = CLIPTokenizer.from_pretrained(out_dir)
    probe = "a photo of a Cat, don't!! 3.14"
    assert again(probe).input_ids == tok(probe).input_ids, probe
    # and from vocab.json + merges.txt alone (the files the Rust side reads)
    only = CLIPTokenizer(vocab=vocab_path, merges=merges_path)
    assert only(probe).input_ids == tok(probe).input_ids, probe
    return sorted(os.listdir(out_dir))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--wheel-dir", default="/tmp/oc")
    ap.add_argument("--tokenizer-json", action="store_true", help="also keep transformers' tokenizer.json")
    a = ap.parse_args()
    files = write_clip_tokenizer(a.out_dir, a.wheel_dir, a.tokenizer_json)
    for f in files:
        print(f"{f}\t{os.path.getsize(os.path.join(a.out_dir, f))}")


if __name__ == "__main__":
    main()
