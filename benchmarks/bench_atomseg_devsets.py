"""Dev sets: choose detection rules on images that are neither the library's nor the benchmark's.

Simulates images like those of ``bench_atomseg_detect.py`` (the same scenarios and truth:
columns of Z >= 11, resolved, with SNR >= 5; light, unresolved, too weak and just-outside
columns don't care) from other seeds, runs ``atomseg.locate`` with the shipped card and with
cards whose detection rules are overridden, and prints F1, false and missed columns per dose.
The README's dev D and dev E are

    python benchmarks/bench_atomseg_devsets.py --seed 888 --doses 1e2 1e3 1e4 1e5
    python benchmarks/bench_atomseg_devsets.py --seed 777

and a rule is compared by overriding card keys (JSON values), each ``--set`` one variant:

    python benchmarks/bench_atomseg_devsets.py --seed 777 \\
        --set '{"lattice_mutual_min_votes": null, "lattice_grains": 0}'

how much a wrong calibration costs (each image given its pixel size times K, and given none,
the scale then searched for, ``atomseg.infer.search_pixel_size``), with ``--model`` to
compare models:

    python benchmarks/bench_atomseg_devsets.py --seed 888 --doses 1e2 1e3 1e4 1e5 \\
        --scales 0.8 1 1.25 --uncalibrated

One random sequence runs through the doses in order, so a dose's images depend on the doses
before it: keep the dose list (dev D is drawn with 1e2 first) to get the same images.
About 2 minutes per variant and scale on 2 CPU cores (360 images).
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings

import numpy as np
from bench_atomseg_detect import DETECTABLE_SNR, SCENARIOS, _draw_case, _truth

from atomseg.detect import match_positions, nearest_neighbour_distance
from atomseg.infer import locate
from atomseg.models import load_model
from atomseg.sim import simulate_image


def dev_images(seed, n, doses, min_z):
    """Yield (dose, image, pixel size, true, don't care, tolerance) of one dev set."""
    rng = np.random.default_rng(seed)
    config = {"label_min_z": min_z, "label_min_snr": DETECTABLE_SNR}
    for dose in doses:
        for i, scenario in enumerate(SCENARIOS):
            for k in range(n):
                kw = _draw_case(scenario, rng)
                image_seed = seed * 10**8 + int(dose) * 1000 + 100 * i + k
                s = simulate_image(
                    shape=(256, 256), seed=image_seed, dose_e_per_A2=dose, config=config, **kw
                )
                _, true, every, other, _ = _truth(s, min_z)
                if len(every) < 4:
                    continue
                tol = 0.3 * nearest_neighbour_distance(every)
                yield dose, s.image, s.pixel_size_angstrom, true, other, tol


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=777, help="dev set seed (not 2026: the benchmark)")
    ap.add_argument("--n", type=int, default=40, help="images per scenario and dose")
    ap.add_argument("--doses", type=float, nargs="+", default=[1e3, 1e4, 1e5])
    ap.add_argument("--model", default="default")
    ap.add_argument("--set", action="append", default=[], help="JSON card overrides, a variant")
    ap.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0],
        metavar="K",
        help="give each image its pixel size times K (a calibration K times off; default 1)",
    )
    ap.add_argument(
        "--uncalibrated", action="store_true", help="also give no pixel size (scale searched for)"
    )
    args = ap.parse_args(argv)
    if any(not np.isfinite(k) or k <= 0 for k in args.scales):
        ap.error(f"--scales must be positive, got {args.scales}")
    warnings.filterwarnings("ignore")
    base = load_model(args.model)
    variants = {"shipped card": base}
    for text in args.set:
        model = copy.copy(base)
        model.config = copy.deepcopy(base.config)
        model.config["detection"].update(json.loads(text))
        variants[text] = model
    min_z = int(base.config.get("label_min_z", 1))
    scales = list(args.scales) + ([None] if args.uncalibrated else [])

    def label(name, k):
        if scales == [1.0]:
            return name
        return f"{name}, {'no pixel size' if k is None else f'pixel size x {k:g}'}"

    counts = {label(name, k): {} for name in variants for k in scales}
    for dose, image, px, true, other, tol in dev_images(args.seed, args.n, args.doses, min_z):
        for name, model in variants.items():
            for k in scales:
                size = None if k is None else px * k
                found = locate(image, pixel_size_angstrom=size, model=model)[["row", "col"]]
                m = match_positions(found.to_numpy(), true, max_distance_px=tol, ignore=other)
                c = counts[label(name, k)].setdefault(dose, np.zeros(4))
                c += [m["tp"], m["fp"], m["fn"], 1]
    print(f"dev set seed {args.seed}, {args.n} images per scenario and dose")
    print("| variant | dose e/Å² | F1 | false | missed | images |")
    print("|---|---|---|---|---|---|")
    for name, by_dose in counts.items():
        for dose, (tp, fp, fn, n_img) in sorted(by_dose.items()):
            f1 = f"{2 * tp / (2 * tp + fp + fn):.4f}" if tp + fn else "–"
            print(f"| {name} | {dose:.0e} | {f1} | {fp:.0f} | {fn:.0f} | {n_img:.0f} |")


if __name__ == "__main__":
    main()
