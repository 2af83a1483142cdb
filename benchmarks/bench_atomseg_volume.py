"""Atoms in a reconstructed tomogram: ``atomseg.locate_atoms`` against 3D peak finding.

An fcc Au particle (a = 4.08 Å, a sphere of ``--radius`` Å, ~550 atoms at 13 Å; each atom a
3D Gaussian of sigma 0.45 Å) is sampled at 0.35 Å voxels, projected over ``--tilt`` (±70°,
1° steps), with Poisson noise at each ``--doses`` (e/Å² per projection at the most
strongly scattering pixel; :func:`tomocnn.sim.tilt_series`) and 0.3 px alignment jitter, and
reconstructed with MLEM (:func:`tomocnn.reconstruct`, 50 iterations). Methods, matched to the
true atoms one-to-one within 0.3 × the nearest-neighbour distance (2.88 Å) in 3D:

- atomseg: :func:`atomseg.locate_atoms` with the shipped model, slicing along each axis: 0
  (across the tilt axis, the default), 1 (the beam direction at zero tilt, blurred by the
  missing wedge) and 2;
- 3D peaks (oracle): Gaussian smoothing (sigma 1 voxel), ``skimage.feature.peak_local_max``
  with a minimum distance of half the true nearest-neighbour distance and, per volume, the
  best threshold against the truth, then the same sub-voxel peak fit as atomseg's (a parabola
  through the log values of the smoothed volume either side of each peak, along each axis):
  the usual first step of atomic electron tomography's atom tracing.

Prints precision, recall, F1 and position RMSE (pm) per dose, and the time of each.

    python benchmarks/bench_atomseg_volume.py [--doses 1e3 1e4] [--tilt 70] [--radius 13]
                                              [--figure docs/images/tomogram_atoms.png]

``--figure`` saves, for the first dose, a central slice across the tilt axis of the
reconstruction, through an atomic plane, with the atoms found and the true ones within half a
voxel of it.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

VOXEL = 0.35  # Å
LATTICE = 4.08  # Å, Au
NN = LATTICE / np.sqrt(2)  # nearest-neighbour distance, Å


def particle(radius_angstrom: float, seed: int = 0):
    """An fcc Au sphere: (volume, atom positions in voxels, volume index order)."""
    rng = np.random.default_rng(seed)
    g = np.arange(-8, 9)
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 1, 3)
    pts = ((cells + base[None]).reshape(-1, 3) + rng.uniform(-0.5, 0.5, 3)) * LATTICE
    pts = pts[np.linalg.norm(pts, axis=1) < radius_angstrom]
    n = int(2 * (radius_angstrom + 6) / VOXEL) // 8 * 8
    atoms = pts / VOXEL + (n - 1) / 2
    vol = np.zeros((n, n, n), np.float32)
    s2 = 2 * (0.45 / VOXEL) ** 2
    for a in atoms:
        k = np.round(a).astype(int)
        box = tuple(slice(c - 5, c + 6) for c in k)
        zz, yy, xx = np.mgrid[box]
        vol[box] += np.exp(-((zz - a[0]) ** 2 + (yy - a[1]) ** 2 + (xx - a[2]) ** 2) / s2)
    return vol, atoms


def match(found: np.ndarray, atoms: np.ndarray):
    """(precision, recall, F1, RMSE pm): one-to-one within 0.3 × NN in 3D."""
    tol = 0.3 * NN / VOXEL
    if len(found) == 0:
        return 1.0, 0.0, 0.0, float("nan")
    d = np.linalg.norm(found[:, None] - atoms[None], axis=2)
    r, c = linear_sum_assignment(np.where(d <= tol, d, 1e6))
    ok = d[r, c] <= tol
    tp = int(ok.sum())
    prec, rec = tp / len(found), tp / len(atoms)
    f1 = 2 * tp / (len(found) + len(atoms))
    rmse = float(np.sqrt(np.mean(d[r[ok], c[ok]] ** 2))) * VOXEL * 100 if tp else float("nan")
    return prec, rec, f1, rmse


def peaks_3d(rec: np.ndarray, atoms: np.ndarray):
    """3D local maxima at the best threshold against the truth, refined to sub-voxel peaks."""
    from skimage.feature import peak_local_max

    from atomseg.infer.atoms import _refine_3d

    smooth = ndimage.gaussian_filter(rec.astype(np.float64), 1.0)
    lo, hi = np.percentile(smooth, [50, 99.99])
    best, best_p = None, None
    for t in np.linspace(0.05, 0.8, 16):
        p = peak_local_max(
            smooth, min_distance=max(1, int(0.5 * NN / VOXEL)), threshold_abs=lo + t * (hi - lo)
        ).astype(float)
        m = match(p, atoms)
        if best is None or m[2] > best[2]:
            best, best_p = m, p
    return match(_refine_3d(rec, best_p), atoms)


def _figure(rec, table, atoms, dose, path) -> None:
    """A central slice across the tilt axis, through an atomic plane, atoms found and true."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = (np.asarray(rec.shape) - 1) / 2
    k = int(round(atoms[np.argmin(np.linalg.norm(atoms - centre, axis=1)), 0]))  # on a plane
    found = table[np.abs(table["plane"] - k) <= 0.5]
    true = atoms[np.abs(atoms[:, 0] - k) <= 0.5]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.imshow(rec[k], cmap="gray", interpolation="nearest")
    ax.scatter(true[:, 2], true[:, 1], s=6, c="cyan", label="true atoms")
    ax.scatter(found["col"], found["row"], s=90, facecolors="none", edgecolors="orange",
               label="atomseg.locate_atoms")  # fmt: skip
    ax.set_title(f"MLEM slice {k} across the tilt axis, {dose:.0e} e/Å² per projection")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--doses", type=float, nargs="+", default=[1e3, 1e4])
    ap.add_argument("--tilt", type=float, default=70.0, help="± tilt range, degrees")
    ap.add_argument("--radius", type=float, default=13.0, help="particle radius, Å")
    ap.add_argument("--figure", help="PNG: a slice of the first dose's reconstruction, atoms on it")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from atomseg.infer import locate_atoms
    from tomocnn import reconstruct
    from tomocnn.sim import tilt_angles, tilt_series

    vol, atoms = particle(args.radius)
    theta = tilt_angles(args.tilt, n=int(round(2 * args.tilt)) + 1 if args.tilt < 90 else 180)
    print(
        f"Au particle, {len(atoms)} atoms, {vol.shape[0]}³ voxels of {VOXEL} Å, "
        f"±{args.tilt:g}° ({len(theta)} projections), MLEM 50 iterations"
    )
    print("| dose e/Å² per projection | method | precision | recall | F1 | RMSE pm | time s |")
    print("|---|---|---|---|---|---|---|")
    for dose in args.doses:
        proj = tilt_series(
            vol, theta, dose_e_per_A2=dose, pixel_size_angstrom=VOXEL, jitter_px=0.3, rng=1
        )
        rec = reconstruct(proj, theta, algorithm="mlem", n_iter=50)
        for axis in (0, 1, 2):
            start = time.perf_counter()
            table = locate_atoms(rec, voxel_size_angstrom=VOXEL, axis=axis)
            seconds = time.perf_counter() - start
            p, r, f1, rmse = match(table[["plane", "row", "col"]].to_numpy(), atoms)
            if args.figure and axis == 0 and dose == args.doses[0]:
                _figure(rec, table, atoms, dose, args.figure)
            print(
                f"| {dose:.0e} | atomseg, slices along axis {axis} | {p:.3f} | {r:.3f} | "
                f"{f1:.3f} | {rmse:.1f} | {seconds:.0f} |"
            )
        start = time.perf_counter()
        p, r, f1, rmse = peaks_3d(rec, atoms)
        seconds = time.perf_counter() - start
        print(
            f"| {dose:.0e} | 3D peaks (oracle threshold) | {p:.3f} | {r:.3f} | {f1:.3f} | "
            f"{rmse:.1f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
