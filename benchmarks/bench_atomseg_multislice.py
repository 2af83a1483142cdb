"""Column finding on multislice HAADF images (abTEM): a physics check the training never saw.

atomseg's training library is made by its own incoherent, linear image model. Users' images
are not: channelling, cross-talk between columns and probe tails shape real HAADF images. This
script simulates HAADF-STEM images with the multislice method of abTEM (an independent,
field-standard simulator; https://abtem.readthedocs.io), adds Poisson noise at several doses,
and scores ``atomseg.locate`` and the classical oracle of ``bench_atomseg_detect.py`` on them.

Cases (300 kV, 25 mrad aberration-free probe, 0.5 Å FWHM source size, 60–140 mrad detector,
4 frozen-phonon configurations with 0.08 Å rms displacements, so that the thermal diffuse
scattering that dominates HAADF is there; ``--phonons 0``: elastic scattering only):

- SrTiO₃ [001], 39 Å thick: Sr and Ti-O columns (O columns are Z < 11: don't care);
- GaAs [110], 40 Å thick: Ga-As dumbbells 1.41 Å apart;
- an Au truncated octahedron along [001] in vacuum: 201 atoms, columns from 1 atom at the
  edges to 7, scanned at 0.2 Å (atomseg resamples it to its 0.15 Å).

Crystals are scanned over one period and tiled (their image is periodic); the particle is
scanned in full by PRISM (interpolation 3). Truth: every column holding an atom of Z at least
the model card's ``label_min_z`` (11); columns just outside the image and light ones are don't
care. A column is "detectable" at a
dose when its contrast in the noise-free image, over the Poisson noise there, reaches 5
(Rose's criterion: the counts above the local mean, over a square as wide as the
nearest-neighbour distance, summed over a 0.5 Å disc, over the square root of the counts
there); the others are don't care too, and so is the centre of a dumbbell neither column of
which is detectable (``atomseg.detect.pair_centres``: one blob). 3 noise realisations per dose.

Needs ``pip install abtem`` (not a dependency of atomseg). The noise-free images are cached
in ``--cache`` so that re-runs only repeat the detection.

    python benchmarks/bench_atomseg_multislice.py [--cache runs/multislice] [--phonons 4]

About 15 minutes on 2 CPU cores with 4 configurations (once; then cached).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from bench_atomseg_detect import _oracle_classical, _summary  # same baseline, same pooling

from atomseg.detect import match_positions, nearest_neighbour_distance, pair_centres
from atomseg.infer import locate, save_overlay
from atomseg.models import load_model

DOSES = (1e3, 1e4, 1e5)
ENERGY_EV = 300e3
SEMIANGLE_MRAD = 25.0
DETECTOR_MRAD = (60.0, 140.0)  # within the 146 mrad the 0.045 Å potential grid resolves
SOURCE_FWHM_ANGSTROM = 0.5
SAMPLING = 0.15  # Å per scan step of the crystals, the shipped model's pixel size
PARTICLE_SAMPLING = 0.2  # the particle is scanned in full: coarser (atomseg resamples it)
PHONON_SIGMA_ANGSTROM = 0.08  # rms thermal displacement, about that of Au, Sr, Ga, As at 300 K
ROSE = 5.0


def _crystal(name):
    from ase import Atoms
    from ase.build import bulk, cut

    if name == "SrTiO3 [001]":
        a = 3.905
        cell = Atoms(
            "SrTiO3",
            scaled_positions=[
                (0, 0, 0),
                (0.5, 0.5, 0.5),
                (0.5, 0.5, 0),
                (0.5, 0, 0.5),
                (0, 0.5, 0.5),
            ],
            cell=[a, a, a],
            pbc=True,
        )
        return cell, 10
    if name == "GaAs [110]":
        cubic = bulk("GaAs", "zincblende", a=5.653, cubic=True)
        cell = cut(cubic, a=(0.5, -0.5, 0), b=(0, 0, 1), c=(0.5, 0.5, 0))
        # the same atoms in an axis-aligned cell: beam along z (the mirror image of [110])
        cell = Atoms(
            cell.numbers,
            scaled_positions=cell.get_scaled_positions(),
            cell=np.diag(cell.cell.lengths()),
            pbc=True,
        )
        return cell, 10
    raise ValueError(name)


def _particle():
    from ase.cluster import Octahedron

    atoms = Octahedron("Au", length=7, cutoff=2)
    atoms.center(vacuum=3.0)
    return atoms


def _fft_size(n, multiple=1):
    """The smallest n' >= n with no prime factor above 5, divisible by ``multiple``."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1 and n % multiple == 0:
            return n
        n += 1


def _scan(scan_end, gpts, potential_atoms, prism=1, phonons=0):
    """HAADF image (fraction of the probe) by multislice, or PRISM with this interpolation."""
    import abtem

    extent = potential_atoms.cell.lengths()[:2]
    grid = tuple(_fft_size(int(np.ceil(e / 0.045)), prism) for e in extent)
    if phonons:  # thermal diffuse scattering, which dominates HAADF, needs frozen phonons
        potential_atoms = abtem.FrozenPhonons(
            potential_atoms, num_configs=phonons, sigmas=PHONON_SIGMA_ANGSTROM, seed=0
        )
    potential = abtem.Potential(potential_atoms, gpts=grid, slice_thickness=2.0)
    scan = abtem.GridScan(start=(0, 0), end=scan_end, gpts=gpts)
    detector = abtem.AnnularDetector(inner=DETECTOR_MRAD[0], outer=DETECTOR_MRAD[1])
    if prism > 1:  # the particle: every probe position would take hours by plain multislice
        smatrix = abtem.SMatrix(
            potential=potential,
            energy=ENERGY_EV,
            semiangle_cutoff=SEMIANGLE_MRAD,
            interpolation=prism,
        )
        image = smatrix.scan(scan=scan, detectors=detector)
    else:
        probe = abtem.Probe(energy=ENERGY_EV, semiangle_cutoff=SEMIANGLE_MRAD)
        image = probe.scan(potential, scan=scan, detectors=detector)
    image = image.gaussian_filter(SOURCE_FWHM_ANGSTROM / 2.355).compute(progress_bar=True)
    array = np.asarray(image.array, np.float64)
    return array.reshape(-1, *array.shape[-2:]).mean(0)  # mean over configurations, if kept


def _columns(atoms, tol=0.2):
    """(x, y) of each projected column (mean of its atoms) and its largest Z."""
    xy = atoms.positions[:, :2]
    z = atoms.numbers
    key = np.round(xy / tol).astype(int)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    n = inv.max() + 1
    pos = np.zeros((n, 2))
    np.add.at(pos, inv, xy)
    count = np.bincount(inv, minlength=n)
    zmax = np.zeros(n, int)
    np.maximum.at(zmax, inv, z)
    return pos / count[:, None], zmax


CASES = ("SrTiO3 [001]", "GaAs [110]", "Au particle [001]")


def simulate_cases(cache: Path, names=CASES, phonons=0):
    """Noise-free multislice images (cached as .npz) and their columns.

    Per case: ``image`` (fraction of the probe per pixel), ``pixel`` (Å, rows and columns),
    ``rc`` (every projected column, in pixels, also just outside the image) and ``z`` (its
    heaviest atom).
    """
    cache.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name in names:
        stem = name.replace(" ", "_").replace("[", "").replace("]", "")
        f = cache / (stem + (f"_phonons{phonons}" if phonons else "") + ".npz")
        if name == "Au particle [001]":
            atoms = _particle()
            extent = atoms.cell.lengths()[:2]
            gpts = tuple(int(round(e / PARTICLE_SAMPLING)) for e in extent)
            pixel = extent / np.array(gpts)
            pos, zmax = _columns(atoms)
            if not f.is_file():
                print(f"multislice: {name}")
                np.savez(f, image=_scan(tuple(extent), gpts, atoms, prism=3, phonons=phonons))
        else:
            cell, n_z = _crystal(name)
            period = cell.cell.lengths()[:2]
            per = tuple(int(round(p / SAMPLING)) for p in period)
            ntile = tuple(int(np.ceil(180 / g)) for g in per)
            pixel = period / np.array(per)
            pos, zmax = _columns(cell * (ntile[0] + 1, ntile[1] + 1, 1))
            if not f.is_file():
                print(f"multislice: {name}")
                reps = tuple(int(np.ceil(16.0 / p)) for p in period)
                slab = cell * (*reps, n_z)
                np.savez(f, image=np.tile(_scan(tuple(period), per, slab, phonons=phonons), ntile))
        image = np.load(f)["image"]
        cases[name] = dict(image=image, pixel=pixel, rc=pos / pixel, z=zmax)
    return cases


def _column_snr(clean_counts, rc, spacing_px, radius_px):
    """Rose SNR of each column in a noise-free count image (see the module docstring)."""
    from scipy import ndimage

    h, w = clean_counts.shape
    rr, cc = np.mgrid[:h, :w]
    out = np.zeros(len(rc))
    local = ndimage.uniform_filter(clean_counts, size=max(3, int(round(spacing_px))))
    for i, (r, c) in enumerate(rc):
        disc = (rr - r) ** 2 + (cc - c) ** 2 <= radius_px**2
        signal = np.sum(clean_counts[disc] - local[disc])
        out[i] = signal / np.sqrt(max(np.sum(clean_counts[disc]), 1e-9))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", default="runs/multislice")
    ap.add_argument("--seeds", type=int, default=3, help="noise realisations per dose")
    ap.add_argument("--model", default="default")
    ap.add_argument(
        "--phonons", type=int, default=4, help="frozen-phonon configurations (0: elastic only)"
    )
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--figure", default=None, help="PNG of the detections at 1e4 (one per case)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    cases = simulate_cases(Path(args.cache), args.cases, args.phonons)
    min_z = int(load_model(args.model).config.get("label_min_z", 1))  # the model card's, as
    # in bench_atomseg_detect.py: lighter columns are not asked for
    print(
        "| case | dose e/Å² | detectable | method | precision | recall | F1 | RMSE pm "
        "| false/image (nothing detectable) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c in cases.items():
        px = float(np.mean(c["pixel"]))
        inside = (c["rc"] > -0.5).all(1) & (c["rc"] < np.array(c["image"].shape) - 0.5).all(1)
        heavy = (c["z"] >= min_z) & inside
        true_all = c["rc"][heavy]
        other = c["rc"][~heavy]  # light columns, and those just outside the image
        spacing = nearest_neighbour_distance(true_all)
        tol = 0.3 * spacing
        for dose in DOSES:
            clean = c["image"] * dose * px**2  # fraction of the probe -> electrons per pixel
            snr = _column_snr(clean, true_all, spacing, 0.5 / px)
            det = snr >= ROSE
            true = true_all[det]
            # and the centre of a dumbbell neither column of which is detectable (one blob), as
            # bench_atomseg_detect.py counts it (those just outside the image included)
            beyond = c["rc"][(c["z"] >= min_z) & ~inside]
            blobs = pair_centres(
                np.concatenate([true_all, beyond]),
                np.concatenate([det, np.zeros(len(beyond), bool)]),
            )
            ignore = np.concatenate([other, true_all[~det], blobs])
            res = {"atomseg": [], "classical (oracle)": []}
            for seed in range(args.seeds):
                noisy = np.random.default_rng(seed).poisson(clean).astype(np.float32)
                t = locate(noisy, pixel_size_angstrom=px, model=args.model)
                found = t[["row", "col"]].to_numpy()
                m = match_positions(found, true, max_distance_px=tol, ignore=ignore)
                res["atomseg"].append(m)
                res["classical (oracle)"].append(
                    _oracle_classical(noisy, spacing, true, tol, ignore)
                )
                if args.figure and dose == 1e4 and seed == 0:
                    stem = name.split()[0]
                    save_overlay(noisy, t, f"{args.figure}_{stem}.png", title=f"{name}, 1e4 e/Å²")
            share = f"{det.sum()} of {len(det)}"
            for method, ms in res.items():
                ms = [dict(m, rmse_pm=m["rmse_px"] * px * 100) for m in ms]
                p, r, f1, rmse, n = _summary(ms, [px] * len(ms), [0.0] * len(ms))
                if sum(m["tp"] + m["fn"] for m in ms) == 0:
                    fp = sum(m["fp"] for m in ms) / n
                    print(
                        f"| {name} | {dose:.0e} | {share} | {method} | – | – | – | – | {fp:.1f} |"
                    )
                else:
                    row = f"{p:.3f} | {r:.3f} | {f1:.3f} | {rmse:.1f}"
                    print(f"| {name} | {dose:.0e} | {share} | {method} | {row} | |")


if __name__ == "__main__":
    main()
