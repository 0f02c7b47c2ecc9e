"""Copy a few public-domain / CC0 photographs shipped by scikit-image into assets/photos/.

The photographs come from the wheel of `scikit-image` (`skimage.data`, no download), are
scaled with Pillow (Lanczos) so their long side is at most 384 pixels, and saved as PNG;
`LICENCES.md` records each photo's source and licence as scikit-image documents them.

    python3 -m venv /tmp/photos && /tmp/photos/bin/pip install scikit-image==0.26.0 pillow
    /tmp/photos/bin/python assets/photos/make_photos.py
"""
import os

import skimage
from PIL import Image
from skimage import data

HERE = os.path.dirname(os.path.abspath(__file__))
LONG_SIDE = 384

PHOTOS = {
    "astronaut": (
        data.astronaut,
        "Eileen Collins, NASA astronaut, by NASA (https://flic.kr/p/r9qvLn)",
        "public domain (no known copyright restrictions)",
    ),
    "chelsea": (data.chelsea, "Chelsea the cat, by Stefan van der Walt", "CC0"),
    "coffee": (data.coffee, "a coffee cup, by Rachel Michetti", "CC0"),
    "rocket": (
        data.rocket,
        "Falcon 9 at SpaceX's Launch Complex 40, by SpaceX (https://www.flickr.com/photos/spacexphotos/16511594820/)",
        "public domain (released by SpaceX)",
    ),
}


def main():
    rows = []
    for name, (load, source, licence) in PHOTOS.items():
        image = Image.fromarray(load()).convert("RGB")
        scale = LONG_SIDE / max(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        image.save(os.path.join(HERE, f"{name}.png"), optimize=True)
        rows.append(f"| `{name}.png` | {image.width}x{image.height} | {source} | {licence} |")
    with open(os.path.join(HERE, "LICENCES.md"), "w") as f:
        f.write(
            "# Photographs and their licences\n\n"
            f"Copied from `skimage.data` (scikit-image {skimage.__version__}, whose documentation gives the "
            "sources and licences below) by `make_photos.py`, scaled to a long side of "
            f"{LONG_SIDE} pixels.\n\n"
            "| file | size | source | licence |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
