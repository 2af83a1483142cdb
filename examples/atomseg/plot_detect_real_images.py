"""Find the atomic columns in real HAADF-STEM images and save overlays.

Runs the shipped model on every PNG/TIFF in a folder (default: the project's ``shared/realdata``
beside the checkout) and writes ``<name>_columns.png`` overlays and ``<name>_columns.csv``
tables next to this script's output folder.

    python examples/atomseg/plot_detect_real_images.py [FOLDER] [--out docs/images]
"""

import argparse
import time
from pathlib import Path

from atomseg.infer import locate, save_overlay
from atomseg.io import read_image

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[2] / "shared" / "realdata"
# Nominal calibrations from the real-data README (None: unknown; the scale is then searched
# for, see atomseg.infer.search_pixel_size).
PIXEL_SIZE = {"dso_8nm_1024px": 8.0 * 10 / 1024, "gold_grain_boundary_512px": None}

ap = argparse.ArgumentParser()
ap.add_argument("folder", nargs="?", default=str(DEFAULT))
ap.add_argument("--out", default="atomseg_real_images")
args = ap.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
for path in sorted(Path(args.folder).glob("*.png")) + sorted(Path(args.folder).glob("*.tif")):
    image, px = read_image(str(path))
    px = px or PIXEL_SIZE.get(path.stem)
    t0 = time.perf_counter()
    table = locate(image, pixel_size_angstrom=px)
    dt = time.perf_counter() - t0
    save_overlay(
        image,
        table,
        out / f"{path.stem}_columns.png",
        title=f"{path.stem}: {len(table)} columns ({dt:.1f} s)",
    )
    table.to_csv(out / f"{path.stem}_columns.csv", index=False)
    print(f"{path.name}: {len(table)} columns in {dt:.2f} s (pixel size {px} Å)")
