"""
A synthetic ADF-STEM training library with its ground truth
===========================================================

Writes a small library with the same generator ``atomseg simulate`` uses (random structures,
zone axes, pixel sizes, probes, particles, interfaces, supports, doses, scan distortions and
8-bit exports), then saves

- ``<out>_grid.png``: 12 library images; the right half of each carries the true column
  positions, coloured by atomic number, so the left half shows the bare image;
- ``<out>_labels.png``: a close-up of GaAs [110] (dumbbells 1.41 Å apart) and of a Au particle
  edge on amorphous carbon, with what the network learns: the disc mask and the Gaussian map.

The images are made with a fast incoherent (linear) model, see :mod:`atomseg.sim.imaging`.

Run:  python examples/atomseg/plot_library.py [--out atomseg_sim] [--n 12]   (~10 s on a CPU)
"""

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from atomseg.sim import save_sample_grid, simulate_image, write_library


def _labels_figure(path):
    samples = [
        simulate_image(
            shape=(128, 128), seed=3, scene="slab", structure="GaAs", zone_axis="110",
            pixel_size_angstrom=0.1, dose_e_per_A2=2e5, clip_8bit=False,
            aberration_corrected=True, source_size_angstrom=0.6,
        ),
        simulate_image(
            shape=(128, 128), seed=10, scene="particle", structure="Au", zone_axis="100",
            pixel_size_angstrom=0.2, dose_e_per_A2=1e5, amorphous_thickness_angstrom=60.0,
            amorphous_z=6, clip_8bit=False,
        ),
    ]  # fmt: skip
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.2), constrained_layout=True)
    for row, s in zip(axes, samples):
        p = s.params
        lo, hi = np.percentile(s.image, [1, 99.8])
        row[0].imshow(s.image, cmap="gray", vmin=lo, vmax=hi)
        row[0].set_title(
            f"{p['structure']} [{p['zone_axis']}], {s.pixel_size_angstrom} Å/px", fontsize=9
        )
        row[1].imshow(s.image, cmap="gray", vmin=lo, vmax=hi)
        row[1].imshow(np.ma.masked_equal(s.mask, 0), cmap="autumn", alpha=0.45)
        c = s.columns
        row[1].plot(c["col"], c["row"], "c+", ms=4, mew=0.7)
        row[1].set_title(
            f"disc mask (r = {p['label_disc_radius_px']:.1f} px) + true positions", fontsize=9
        )
        row[2].imshow(s.gaussian, cmap="magma", vmin=0, vmax=1)
        row[2].set_title(f"Gaussian map (σ = {p['label_gaussian_sigma_px']:.1f} px)", fontsize=9)
        thin = c[c["n_atoms"] <= 3]
        if len(thin):
            row[1].plot(thin["col"], thin["row"], "o", mfc="none", mec="lime", ms=7, mew=0.8)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle("What the U-net learns from (lime circles: edge columns with 1-3 atoms)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="atomseg_sim", help="prefix of the PNG files")
    ap.add_argument("--n", type=int, default=12, help="images in the library (default 12)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library = write_library(Path(tmp) / "library.h5", n=args.n, seed=args.seed, workers=1)
        grid = save_sample_grid(library, f"{args.out}_grid.png", n=args.n)
    _labels_figure(f"{args.out}_labels.png")
    print(f"saved {grid} and {args.out}_labels.png")


if __name__ == "__main__":
    main()
