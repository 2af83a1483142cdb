"""Speed and accuracy of atomseg's circular Hough detection against scikit-image.

Run with ``python benchmarks/bench_atomseg_hough.py [--repeat N] [--sizes 512 1024]``.

Synthetic segmentation maps: soft discs (``1 / (1 + exp((d - r) / 0.6))``, r = 4 px) on a
randomly rotated and shifted square lattice (spacing 12 px, 0.5 px jitter), so every column sits
at a random sub-pixel position and the ground truth is exact.

Printed, in one run on the same maps:

* time per map of the Hough transform alone: ``atomseg.detect.hough_circle`` (FFT; its cost
  does not depend on the edges) against ``skimage.transform.hough_circle`` (one vote loop per
  edge pixel) with the same radii (3, 4, 5 px) on the same sparse binary edge map (the rim of
  ``probability > 0.5``; the accumulators are checked equal) and on a dense one (pixels where
  the gradient magnitude of the map exceeds 1e-3, as a gradient edge map gives it); ratio =
  skimage / ours;
* time per map of the whole detection: ``detect_columns`` (edges, Hough, peaks, sub-pixel
  refinement, scores) against ``skimage.transform.hough_circle`` + ``hough_circle_peaks`` with
  the same radii and suppression distance on the sparse edges;
* accuracy against the ground truth (``match_positions`` within 0.3 x the nearest-neighbour
  distance): F1 and position RMSE of ``detect_columns`` (noise-free, and with Gaussian noise of
  0.1 added to the map and the radius estimated from it) and of the scikit-image pipeline tuned
  with the truth (only the true radius, peaks half a spacing apart; whole pixels).

Times are the best of ``--repeat`` runs, wall clock, single process (on a shared machine the best
run is the least disturbed one); CPU time is shown too.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy import ndimage
from skimage.transform import hough_circle as sk_hough_circle
from skimage.transform import hough_circle_peaks as sk_hough_circle_peaks

from atomseg.detect import detect_columns, hough_circle, match_positions, nearest_neighbour_distance
from atomseg.detect._synthetic import _disc_map, _lattice

RADIUS_PX = 4.0
SPACING_PX = 12.0
EDGE_PX = 0.6
SK_RADII = np.array([3, 4, 5])


def _best_time(func, repeat):
    """(best wall time, CPU time of that run, result) over ``repeat`` calls after a warm-up."""
    result = func()
    best = (np.inf, np.inf)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = func()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < best[0]:
            best = (wall, cpu)
    return best[0], best[1], result


def _skimage_pipeline(edges, radii, min_distance_px):
    acc = sk_hough_circle(edges, radii)
    m = int(min_distance_px)
    _, cx, cy, _ = sk_hough_circle_peaks(acc, radii, min_xdistance=m, min_ydistance=m)
    return np.stack([cy, cx], axis=1).astype(float)


def _score(predicted, true):
    m = match_positions(predicted, true, max_distance_px=0.3 * nearest_neighbour_distance(true))
    return m["f1"], m["rmse_px"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}; best of {args.repeat}; disc radius {RADIUS_PX} px, "
        f"spacing {SPACING_PX} px"
    )
    print(
        f"{'map':>9} {'columns':>7} | {'Hough ms (cpu)':>15} {'skimage':>8} {'ratio':>6} "
        f"{'skimage dense':>13} {'ratio':>6} | {'detect ms (cpu)':>15} {'skimage+peaks':>13} "
        f"{'ratio':>6}"
    )
    accuracy = []
    for n in args.sizes:
        shape = (n, n)
        true = _lattice(shape, SPACING_PX, rng=rng, jitter_px=0.5, margin_px=0.5)
        prob = _disc_map(shape, true, RADIUS_PX, edge_px=EDGE_PX)
        mask = prob > 0.5
        edges = mask & ~ndimage.binary_erosion(mask)  # sparse binary edges: the rims
        dense = np.hypot(*np.gradient(prob)) > 1e-3  # what a gradient edge map gives skimage

        ours_h, ours_h_cpu, acc = _best_time(lambda e=edges: hough_circle(e, SK_RADII), args.repeat)
        few = max(1, args.repeat // 2)
        sk_h, _, sk_acc = _best_time(lambda e=edges: sk_hough_circle(e, SK_RADII), few)
        assert np.allclose(acc, sk_acc, atol=1e-5)  # the same accumulator
        sk_dense, _, _ = _best_time(lambda e=dense: sk_hough_circle(e, SK_RADII), 1)
        ours_d, ours_d_cpu, columns = _best_time(
            lambda p=prob: detect_columns(p, radius_px=RADIUS_PX), args.repeat
        )
        # same radii and suppression distance as detect_columns (3 radii, min distance = radius)
        sk_d, _, _ = _best_time(lambda e=edges: _skimage_pipeline(e, SK_RADII, RADIUS_PX), few)
        print(
            f"{n:>4}x{n:<4} {len(true):>7} | {ours_h * 1e3:7.1f} ({ours_h_cpu * 1e3:5.1f}) "
            f"{sk_h * 1e3:8.1f} {sk_h / ours_h:6.1f} {sk_dense * 1e3:13.1f} "
            f"{sk_dense / ours_h:6.1f} | {ours_d * 1e3:7.1f} ({ours_d_cpu * 1e3:5.1f}) "
            f"{sk_d * 1e3:13.1f} {sk_d / ours_d:6.1f}"
        )
        noisy = np.clip(prob + rng.normal(0, 0.1, shape), 0, 1)
        accuracy.append((n, "detect_columns, noise-free", *_score(columns, true)))
        accuracy.append((n, "detect_columns, noise 0.1", *_score(detect_columns(noisy), true)))
        # skimage at its best: the true radius only, peaks at least half a spacing apart
        best_sk = _skimage_pipeline(edges, [int(RADIUS_PX)], SPACING_PX / 2)
        accuracy.append((n, "skimage Hough+peaks (tuned)", *_score(best_sk, true)))

    print()
    print(f"{'map':>9} {'method':<28} {'F1':>6} {'RMSE px':>8}")
    for n, name, f1, rmse in accuracy:
        print(f"{n:>4}x{n:<4} {name:<28} {f1:6.3f} {rmse:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
