"""Wedge removal against the baselines, on held-out phantoms of kinds the training never saw.

For each tilt range (±45°, ±60°, ±75°, and ±89° as "near full range") and each held-out
phantom (noisy tilt series), the same run measures:

- SIRT and FBP (the inputs users have),
- SIRT followed by total-variation denoising with its best weight (oracle, chosen per volume
  against the truth from a grid),
- MLEM (non-negative iterative reconstruction, as TomoPy offers),
- the CNN applied to SIRT, to FBP and to MLEM (it post-processes whatever reconstruction the
  user made; the model card lists the algorithms it was trained on),
- the CNN applied to MLEM followed by the data-consistency step that ``tomocnn pipeline`` runs
  by default (20 MLEM iterations on the measured angles, started from the CNN's output),

and prints PSNR (dB), SSIM and elongation along the beam axis (1.0 is ideal) as a Markdown
table, the CNN's gain over SIRT, and the CNN's speed in Mvox/s on a 128³ volume.

    python benchmarks/bench_tomocnn_wedge.py [--n 4] [--size 64] [--model default] [--speed-only]
        [--ranges 45 60 75 89]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from skimage.restoration import denoise_tv_chambolle

from tomocnn.infer import remove_wedge
from tomocnn.metrics import elongation, psnr, ssim
from tomocnn.recon import reconstruct
from tomocnn.sim import HELD_OUT_KINDS, random_phantom, tilt_angles, tilt_series


def _best_tv(rec, truth):
    best = None
    for w in (0.005, 0.01, 0.02, 0.04, 0.08, 0.16):
        out = denoise_tv_chambolle(rec, weight=w * float(np.abs(rec).max() or 1))
        p = psnr(out, truth)
        if best is None or p > best[0]:
            best = (p, out)
    return best[1]


def _measure(vol, truth):
    return np.array([psnr(vol, truth), ssim(vol, truth), elongation(vol, truth)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="phantoms per tilt range")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--dose", type=float, default=1e3, help="e/Å² per projection")
    ap.add_argument("--speed-only", action="store_true", help="only the speed measurement")
    ap.add_argument("--ranges", type=int, nargs="+", default=[45, 60, 75, 89], metavar="DEG")
    args = ap.parse_args(argv)
    dose_e_per_A2 = args.dose

    methods = [
        "SIRT",
        "FBP",
        "SIRT+TV (best)",
        "MLEM",
        "CNN(SIRT)",
        "CNN(FBP)",
        "CNN(MLEM)",
        "CNN(MLEM)+DC",
    ]
    print(
        f"held-out phantom kinds: {', '.join(HELD_OUT_KINDS)}; {args.n} per range, "
        f"{args.size}³, 61 projections, noisy"
    )
    print("| range | method | PSNR dB | SSIM | elongation |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    for max_tilt in () if args.speed_only else args.ranges:
        scores = {m: [] for m in methods}
        for k in range(args.n):
            kind = HELD_OUT_KINDS[k % len(HELD_OUT_KINDS)]
            truth = random_phantom(args.size, kind=kind, rng=rng)
            theta = tilt_angles(max_tilt, n=61)
            proj = tilt_series(truth, theta, dose_e_per_A2=dose_e_per_A2, rng=rng)
            sirt = reconstruct(proj, theta, algorithm="sirt")
            fbp = reconstruct(proj, theta, algorithm="fbp")
            mlem = reconstruct(proj, theta, algorithm="mlem")
            vols = {
                "SIRT": sirt,
                "FBP": fbp,
                "SIRT+TV (best)": _best_tv(sirt, truth),
                "MLEM": mlem,
                "CNN(SIRT)": remove_wedge(sirt, theta, model=args.model),
                "CNN(FBP)": remove_wedge(fbp, theta, model=args.model),
                "CNN(MLEM)": remove_wedge(mlem, theta, model=args.model),
                "CNN(MLEM)+DC": remove_wedge(
                    mlem,
                    theta,
                    model=args.model,
                    projections=proj,
                    consistency_iters=20,
                    consistency_algorithm="mlem",
                ),
            }
            for m in methods:
                scores[m].append(_measure(vols[m], truth))
        for m in methods:
            p, s, e = np.mean(scores[m], axis=0)
            print(f"| ±{max_tilt}° | {m} | {p:.2f} | {s:.3f} | {e:.3f} |")
        for m in ("CNN(SIRT)", "CNN(MLEM)", "CNN(MLEM)+DC"):
            gain = np.mean(scores[m], axis=0)[0] - np.mean(scores["SIRT"], axis=0)[0]
            print(f"| ±{max_tilt}° | {m} gain over SIRT | {gain:+.2f} dB | | |")

    vol = random_phantom(128, rng=rng)
    theta = tilt_angles(60, n=61)
    remove_wedge(vol[:16], theta, model=args.model)  # warm-up
    t0 = time.perf_counter()
    remove_wedge(vol, theta, model=args.model)
    dt = time.perf_counter() - t0
    print(f"\nCNN speed: 128³ in {dt:.1f} s = {vol.size / dt / 1e6:.2f} Mvox/s")


if __name__ == "__main__":
    main()
