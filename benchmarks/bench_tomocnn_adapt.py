"""Adapting the shipped wedge model to one tilt series (``tomocnn.adapt``), against the shipped
model and MLEM, on real needles and held-out simulated families.

Each case: a limited-range tilt series (aligned with ``tomocnn.align`` for the real ones), its
MLEM reconstruction, the shipped model on it, and the model adapted to that series alone (no
ground truth) on it; each CNN output also followed by the data-consistency step of ``tomocnn
pipeline`` (20 MLEM iterations); and each output's reprojection residual on the measured
angles (``tomocnn.consistency``: adapting must not drift from the data). PSNR/SSIM against
a reference: for the real needles the whole range (``HAADF.dm3``: ±90°, no wedge;
``HAADF.mrc``: ±76°), for the simulations the truth.
Times are wall clock on this machine, the adaptation's including its reconstruction, the
consistent estimate and the simulated cubes. One case also runs the cryo-ET way: the same
self-supervised objective from an untrained network for the same time.

    python benchmarks/bench_tomocnn_adapt.py --etspy DIR [--minutes 2] [--minutes-large 10]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from tomocnn.infer import remove_wedge
from tomocnn.metrics import psnr, ssim
from tomocnn.models import WedgeModel, load_model
from tomocnn.models.network import WedgeNet3D
from tomocnn.prep import align
from tomocnn.recon import consistency, reconstruct
from tomocnn.sim import random_phantom, tilt_angles, tilt_series
from tomocnn.train import adapt


def case(name, series, theta, ref, minutes, *, scratch=False):
    mlem = reconstruct(series, theta, algorithm="mlem")
    t0 = time.perf_counter()
    adapted = adapt(series, theta, minutes=minutes, rng=0, progress=False)
    dt = time.perf_counter() - t0
    models = {"shipped": "default", "adapted": adapted}
    if scratch:
        card = dict(load_model("default").config, name="untrained")
        fresh = WedgeModel(WedgeNet3D(width=8, levels=3), card)
        models["from scratch (same objective, same time)"] = adapt(
            series, theta, model=fresh, minutes=minutes, rng=0, progress=False
        )
    rows = [("MLEM", mlem)]
    for label, m in models.items():
        rows.append((f"CNN {label}", remove_wedge(mlem, theta, model=m)))
        dc = remove_wedge(mlem, theta, model=m, projections=series, consistency_iters=20)
        rows.append((f"CNN {label} + DC", dc))
    info = adapted.config["adaptation"]
    print(
        f"\n{name}: adaptation {dt:.0f} s in all ({info['steps']} steps), held-out L1 "
        f"{info['held_out_l1_before']:.4f} -> {info['held_out_l1_after']:.4f} ({info['kept']})"
    )
    print("| method | PSNR dB | SSIM | reprojection residual |")
    print("|---|---|---|---|")
    for label, v in rows:
        res = consistency(v, series, theta)["residual"]
        print(f"| {label} | {psnr(v, ref):.2f} | {ssim(v, ref):.4f} | {100 * res:.2f} % |")


def _aligned(path):
    """A real series aligned by tomocnn, scaled to 1, and MLEM of its whole range."""
    from tomocnn.io import read_tilt_series

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw, theta = read_tilt_series(path)
    series, theta, _ = align(raw, theta)
    series = np.clip(series / float(np.percentile(series, 99.9)), 0, None)
    return series, theta, reconstruct(series, theta, algorithm="mlem")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--etspy", help="ETSpy's tests/test_data folder (the real needles)")
    ap.add_argument("--minutes", type=float, default=2.0, help="training budget, small cases")
    ap.add_argument("--minutes-large", type=float, default=10.0, help="budget, 256² x 77")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for kind in ("star", "hollow"):
        truth = random_phantom(64, kind=kind, rng=rng)
        theta = tilt_angles(60, step=2.0)
        proj = tilt_series(truth, theta, dose_e_per_A2=1e3, rng=rng)
        case(f"held-out simulated '{kind}', 64³, ±60°", proj, theta, truth, args.minutes)
    if not args.etspy:
        return
    d = args.etspy.rstrip("/") + "/"
    series, theta, ref = _aligned(d + "HAADF.dm3")
    for r in (70, 60, 45):
        keep = np.abs(np.rad2deg(theta)) <= r + 1e-6
        case(
            f"real needle HAADF.dm3 (64², reference ±90°) cut to ±{r}°",
            series[keep],
            theta[keep],
            ref,
            args.minutes,
            scratch=(r == 60),
        )
    if args.skip_large:
        return
    series, theta, ref = _aligned(d + "HAADF.mrc")
    for r in (60, 45):
        keep = np.abs(np.rad2deg(theta)) <= r + 1e-6
        case(
            f"real needle HAADF.mrc (256², reference ±76°) cut to ±{r}°",
            series[keep],
            theta[keep],
            ref,
            args.minutes_large,
        )
    t0 = time.perf_counter()
    adapt(series, theta, minutes=args.minutes_large, rng=0, progress=False)
    print(
        f"\nthe whole HAADF.mrc series (256² x 77), {args.minutes_large:g} minutes of training: "
        f"{time.perf_counter() - t0:.0f} s in all"
    )


if __name__ == "__main__":
    main()
