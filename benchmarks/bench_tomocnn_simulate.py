"""Throughput of training-pair simulation (``tomocnn simulate``) against an ASTRA CPU baseline.

Measures, on this machine:

1. the target configuration: 64^3 pairs, 61 angles (+-60 deg, 2 deg steps), SIRT with 100
   iterations, built-in ``torch`` backend, a pool of worker processes (default 2), written to
   HDF5 by :func:`tomocnn.sim.write_pairs` -- end to end (pool start-up included) and in the
   steady state;
2. the default training mix (random ranges 45-75 deg, steps 1-3 deg, SIRT 30-150 iterations
   or FBP);
3. the baseline, in the same run: one pair of the target configuration reconstructed with
   ASTRA's 2-D CPU SIRT slice by slice (``backend="astra"``, single-threaded; the 2-core figure
   assumes two such processes scale perfectly), and how far the two reconstructions differ.

Run:  python benchmarks/bench_tomocnn_simulate.py [--n 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def _steady_state(n, workers, settings):
    """Per-record completion times of the pair pipeline (no HDF5), in a fresh pool."""
    from tomocnn.sim.pairs import _records

    stamps = []
    t0 = time.perf_counter()
    for _ in _records(range(n), settings, workers):
        stamps.append(time.perf_counter() - t0)
    k = min(len(stamps) - 1, max(2 * workers, len(stamps) // 4))  # skip the warm-up records
    return (len(stamps) - 1 - k) / (stamps[-1] - stamps[k])


def main(argv=None) -> int:
    from tomocnn.recon import reconstruct
    from tomocnn.sim import random_phantom, tilt_angles, tilt_series, write_pairs
    from tomocnn.sim.pairs import _settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="pairs per measurement (default 24)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-iter", type=int, default=100, help="SIRT iterations (default 100)")
    args = parser.parse_args(argv)

    import torch

    print(
        f"cpu cores: {os.cpu_count()}, torch {torch.__version__} threads "
        f"{torch.get_num_threads()}, load average before: {_load()}"
    )
    S, n = args.size, args.n
    target = {
        "tilt_ranges_deg": [60],
        "steps_deg": [2],
        "algorithms": ["sirt"],
        "n_iter": args.n_iter,
    }
    with tempfile.TemporaryDirectory() as tmp:
        # 1. target configuration, end to end through write_pairs
        t0 = time.perf_counter()
        write_pairs(
            os.path.join(tmp, "target.h5"),
            n=n,
            size=S,
            seed=1,
            workers=args.workers,
            progress=False,
            **target,
        )
        e2e = n / (time.perf_counter() - t0)
        settings = _settings(S, 1, [60], [2], ["sirt"], None, args.n_iter, "torch", None)
        steady = _steady_state(n, args.workers, settings)
        print(
            f"\n[target] {S}^3, 61 angles (+-60, 2 deg), SIRT {args.n_iter} it, "
            f"{args.workers} workers"
        )
        print(f"  built-in torch backend : {e2e:5.2f} pairs/s end to end (HDF5, pool start-up)")
        print(f"                           {steady:5.2f} pairs/s steady state")
        # 2. default training mix
        t0 = time.perf_counter()
        write_pairs(
            os.path.join(tmp, "mix.h5"), n=n, size=S, seed=2, workers=args.workers, progress=False
        )
        mix = n / (time.perf_counter() - t0)
        print(
            f"[default mix] random ranges/steps, SIRT 30-150 it or FBP: {mix:5.2f} pairs/s "
            "end to end"
        )

    # 3. baseline: ASTRA 2-D CPU SIRT, slice by slice, one pair, single process
    theta = tilt_angles(60, step=2)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    truth = random_phantom(S, kind="polyhedron", rng=rng)
    proj = tilt_series(truth, theta, dose_e_per_A2=500, projector="strip", rng=rng)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec_astra = reconstruct(proj, theta, n_iter=args.n_iter, backend="astra")
    t_astra = time.perf_counter() - t0 + t_sim
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rec_torch = reconstruct(proj, theta, n_iter=args.n_iter, backend="torch")
    t_torch = time.perf_counter() - t0 + t_sim
    diff = np.linalg.norm(rec_torch - rec_astra) / np.linalg.norm(rec_astra)
    print(
        f"[baseline] ASTRA CPU SIRT slice by slice: {t_astra:6.2f} s/pair = "
        f"{1 / t_astra:5.3f} pairs/s on 1 core, {2 / t_astra:5.3f} pairs/s on 2 (ideal)"
    )
    print(
        f"  same pair, built-in backend on 1 thread: {t_torch:6.2f} s/pair "
        f"({t_astra / t_torch:4.1f}x faster); relative difference {diff:.1e}"
    )
    print(f"  speed-up of the target run over the 2-core baseline: {steady / (2 / t_astra):4.1f}x")
    print(f"load average after: {_load()}")
    print(f"target >= 1 pair/s: {'met' if steady >= 1 else 'NOT met'} (steady state)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
