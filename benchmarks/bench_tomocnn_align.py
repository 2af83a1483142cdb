"""Alignment of tilt series (``tomocnn.align``): simulated misalignments with known truth, and a
real HAADF series against its authors' alignment.

Part 1 (always): simulated series of phantoms (64-96³, ±60° or ±70°, 2° steps, dose 1e3 e/Å²
per projection) misaligned as a microscope misaligns them: the tilt axis turned 2-10° in the
image plane, a random-walk drift plus 1-3 px jitter on both axes, the rotation centre 2-6 px
off the middle, and a vacuum offset of 1000. Printed per case: the recovered axis angle's error,
the RMS error of the shifts (along the axis after removing its mean; across after removing the
part in span(cos theta, sin theta), which is a translation of the object and not an error),
and the PSNR against the truth of MLEM of the aligned series and of MLEM of the untouched
(perfectly aligned) series, both registered to the truth by a 3-D shift (the aligned series may
reconstruct the object translated, the degenerate part above), and of MLEM of the recorded
series put back with the *true* parameters (the same two interpolations as the aligned one,
which smooth noise: the figure that isolates the estimation error).

Part 2 (``--etspy DIR``, the ``etspy/tests/test_data`` folder of ETSpy's wheel:
``pip download --no-deps etspy`` and unzip): the raw ``HAADF.mrc`` + ``HAADF.rawtlt`` (±76°)
aligned by tomocnn against its authors' alignment, ``HAADF_Aligned.hspy`` (the wheel's
``HAADF.ali`` is byte for byte the raw ``HAADF.mrc``): the MLEM reconstructions side by side
(``--figure``), their PSNR/SSIM against each other and the reprojection residual of each on its
own aligned series. Then the data-consistency step on the needle cut to ±70/60/44° (our
aligned ±76° MLEM as the reference): MLEM, CNN(MLEM), and CNN(MLEM) followed by 20 MLEM (the
``tomocnn pipeline`` default) or SIRT iterations on the measured angles; and the same on the
real ±90° needle ``HAADF.dm3`` (aligned by tomocnn), cut to ±70/60/45°, against MLEM of its
whole range, a reference without a wedge.

    python benchmarks/bench_tomocnn_align.py [--size 96] [--etspy DIR] [--figure needle.png]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
from scipy import ndimage

from tomocnn.infer import remove_wedge
from tomocnn.metrics import psnr, ssim
from tomocnn.prep import align, subtract_background
from tomocnn.prep.alignment import _transform
from tomocnn.recon import consistency, reconstruct
from tomocnn.sim import random_phantom, tilt_angles, tilt_series


def misalign(proj, theta, alpha_deg, shifts):
    """The recorded series: ``raw_i(q) = A_i(R^T (q - o) + o + s_i)`` (the aligner's model)."""
    r = math.radians(alpha_deg)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    o = (np.array(proj.shape[1:]) - 1) / 2
    out = np.empty_like(proj)
    for i in range(proj.shape[0]):
        ndimage.affine_transform(
            proj[i],
            rot.T,
            offset=o - rot.T @ o + shifts[i],
            output=out[i],
            order=3,
            mode="constant",
        )
    return out


def shift_errors(est, true, theta):
    d = est - true
    along = d[:, 0] - d[:, 0].mean()
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    across = d[:, 1] - basis @ np.linalg.lstsq(basis, d[:, 1], rcond=None)[0]
    return float(np.sqrt(np.mean(along**2))), float(np.sqrt(np.mean(across**2)))


def registered_psnr(vol, truth):
    """PSNR after a 3-D shift onto ``truth``, applied in Fourier space (no interpolation blur,
    which would raise the PSNR of a noisy volume and lower that of a sharp one)."""
    from skimage.registration import phase_cross_correlation

    shift = phase_cross_correlation(truth, vol, upsample_factor=10, normalization=None)[0]
    moved = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(vol), shift)).real.astype(np.float32)
    return psnr(moved, truth), shift


def simulated(args):
    rng = np.random.default_rng(args.seed)
    print("\n## Simulated misalignments (truth known)\n")
    print(
        "| case | axis turned | centre off | shift RMS | axis error | along RMSE | across RMSE "
        "| MLEM untouched | MLEM true parameters | MLEM aligned | time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    kinds = ["polyhedron", "core_shell", "star", "aggregate", "supported", "hollow"]
    worst = [0.0, 0.0, 0.0]
    for k in range(args.n):
        kind = kinds[k % len(kinds)]
        truth = random_phantom(args.size, kind=kind, rng=rng)
        max_tilt = 60 if k % 2 == 0 else 70
        theta = tilt_angles(max_tilt, step=2.0)
        proj = tilt_series(truth, theta, dose_e_per_A2=1e3, rng=rng)
        n = theta.size
        alpha = float(rng.uniform(2, 10) * rng.choice([-1, 1]))
        centre = float(rng.uniform(2, 6) * rng.choice([-1, 1]))
        jitter = rng.uniform(1, 3)
        s = np.cumsum(rng.normal(0, 0.4, (n, 2)), axis=0) + rng.normal(0, jitter, (n, 2))
        s[:, 1] += centre
        raw = misalign(proj, theta, alpha, s) + 1000.0
        t0 = time.perf_counter()
        aligned, _, rep = align(raw, theta)
        dt = time.perf_counter() - t0
        along, across = shift_errors(rep["shifts"], s, theta)
        ref = reconstruct(proj, theta, algorithm="mlem")
        put_back = _transform(raw - 1000.0, alpha, s, proj.shape[1:], scale=1.0, order=3)
        oracle = reconstruct(np.clip(put_back, 0, None), theta, algorithm="mlem")
        rec = reconstruct(np.clip(aligned, 0, None), theta, algorithm="mlem")
        p_ref, _ = registered_psnr(ref, truth)
        p_or, _ = registered_psnr(oracle, truth)
        p_al, _ = registered_psnr(rec, truth)
        err = abs(rep["axis_angle_deg"] - alpha)
        loss = max(p_ref, p_or) - p_al
        worst = [max(worst[0], err), max(worst[1], along, across), max(worst[2], loss)]
        print(
            f"| {kind} ±{max_tilt}° | {alpha:+.1f}° | {centre:+.1f} px | "
            f"{np.sqrt(np.mean((s - s.mean(0)) ** 2)):.1f} px | {err:.2f}° | {along:.2f} px | "
            f"{across:.2f} px | {p_ref:.2f} dB | {p_or:.2f} dB | {p_al:.2f} dB | {dt:.0f} s |"
        )
    print(
        f"\nworst: axis error {worst[0]:.2f}° (target 0.3°), shift RMSE {worst[1]:.2f} px "
        f"(target 0.5 px), MLEM aligned below the better of untouched and true parameters by "
        f"{worst[2]:.2f} dB (target 1 dB)"
    )


def needle(args):
    from tomocnn.io import read_tilt_series

    d = args.etspy.rstrip("/") + "/"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw, theta = read_tilt_series(d + "HAADF.mrc")
        ali, theta_ali = read_tilt_series(d + "HAADF_Aligned.hspy")
    assert np.allclose(theta, theta_ali)
    print("\n## ETSpy's real HAADF needle: tomocnn's alignment against its authors'\n")
    t0 = time.perf_counter()
    ours, _, rep = align(raw, theta)
    dt = time.perf_counter() - t0
    print(
        f"tomocnn.align: axis {rep['axis_angle_deg']:.2f}° from the rows, centre offset "
        f"{rep['center_offset_px']:+.1f} px, {dt:.0f} s"
    )
    # the authors' stack has the axis along the columns: turned by exactly 90° onto the rows
    theirs = _transform(
        subtract_background(ali),
        90.0,
        np.zeros((ali.shape[0], 2)),
        ali.shape[1:][::-1],
        scale=1.0,
        order=1,
    )
    scale = float(np.percentile(ours, 99.9))
    ours, theirs = ours / scale, theirs / float(np.percentile(theirs, 99.9))
    rec_ours = reconstruct(np.clip(ours, 0, None), theta, algorithm="mlem")
    rec_theirs = reconstruct(np.clip(theirs, 0, None), theta, algorithm="mlem")
    reg, shift = registered_psnr(rec_ours, rec_theirs)
    moved = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(rec_ours), shift)).real
    c_ours = consistency(rec_ours, np.clip(ours, 0, None), theta)
    c_theirs = consistency(rec_theirs, np.clip(theirs, 0, None), theta)
    print("| | reprojection residual | mass ratio |")
    print("|---|---|---|")
    print(
        f"| MLEM of tomocnn's alignment | {100 * c_ours['residual']:.2f} % "
        f"| {c_ours['mass_ratio']:.3f} |"
    )
    print(
        f"| MLEM of the authors' HAADF_Aligned.hspy | {100 * c_theirs['residual']:.2f} % "
        f"| {c_theirs['mass_ratio']:.3f} |"
    )
    print(
        f"\nthe two reconstructions against each other (registered by a {np.round(shift, 1)} "
        f"voxel shift): PSNR {reg:.2f} dB, SSIM {ssim(moved, rec_theirs):.4f}"
    )
    if args.figure:
        _figure(args.figure, moved, rec_theirs)

    print("\n## Data consistency after the CNN, the needle cut to a limited range\n")
    print("reference: MLEM of tomocnn's aligned ±76° series (itself limited-angle)\n")
    _consistency_table(np.clip(ours, 0, None), theta, rec_ours, (70, 60, 44), args.model)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw90, theta90 = read_tilt_series(d + "HAADF.dm3")
    al90, _, rep90 = align(raw90, theta90)
    al90 = np.clip(al90 / float(np.percentile(al90, 99.9)), 0, None)
    print(
        f"\nETSpy's ±90° needle (HAADF.dm3, 91 x 64²): axis {rep90['axis_angle_deg']:.2f}° from "
        f"the rows, centre offset {rep90['center_offset_px']:+.1f} px; reference: MLEM of the "
        "whole aligned ±90° series (no wedge)\n"
    )
    ref90 = reconstruct(al90, theta90, algorithm="mlem")
    _consistency_table(al90, theta90, ref90, (70, 60, 45), args.model, sirt=True)


def _consistency_table(series, theta, ref, ranges, model, *, sirt=False):
    print("| range | method | PSNR dB | SSIM | reprojection residual | mass ratio |")
    print("|---|---|---|---|---|---|")
    for r in ranges:
        keep = np.abs(np.rad2deg(theta)) <= r + 1e-6
        p, th = series[keep], theta[keep]
        mlem = reconstruct(p, th, algorithm="mlem")
        vols = {}
        if sirt:
            vols["SIRT"] = reconstruct(p, th, algorithm="sirt")
            vols["CNN(SIRT)"] = remove_wedge(vols["SIRT"], th, model=model)
        vols["MLEM"] = mlem
        vols["CNN(MLEM)"] = remove_wedge(mlem, th, model=model)
        for alg in ("mlem", "sirt"):
            vols[f"CNN(MLEM) + 20 {alg.upper()}"] = remove_wedge(
                mlem,
                th,
                model=model,
                projections=p,
                consistency_iters=20,
                consistency_algorithm=alg,
            )
        for name, v in vols.items():
            c = consistency(v, p, th)
            print(
                f"| ±{r}° | {name} | {psnr(v, ref):.2f} | {ssim(v, ref):.4f} | "
                f"{100 * c['residual']:.2f} % | {c['mass_ratio']:.3f} |"
            )


def _figure(path, ours, theirs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = ours.shape[0]
    fig, ax = plt.subplots(2, 2, figsize=(8, 8))
    vmax = float(np.percentile(theirs, 99.9))
    for row, (name, v) in enumerate((("tomocnn.align", ours), ("authors' alignment", theirs))):
        ax[row, 0].imshow(v[n // 2], cmap="gray", vmin=0, vmax=vmax)
        ax[row, 0].set_title(f"{name}: slice across the axis")
        ax[row, 1].imshow(v[:, v.shape[1] // 2], cmap="gray", vmin=0, vmax=vmax)
        ax[row, 1].set_title(f"{name}: along the axis")
        for a in ax[row]:
            a.axis("off")
    fig.suptitle("ETSpy's HAADF needle (±76°), MLEM")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"figure: {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=6, help="simulated cases")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--etspy", help="ETSpy's tests/test_data folder (the real needle)")
    ap.add_argument("--figure", help="PNG of the two needle reconstructions")
    ap.add_argument("--model", default="default")
    ap.add_argument("--skip-simulated", action="store_true")
    args = ap.parse_args(argv)
    if not args.skip_simulated:
        simulated(args)
    if args.etspy:
        needle(args)


if __name__ == "__main__":
    main()
