"""Speed of the synthetic STEM library generator (``atomseg simulate``).

Writes a library of 256² images (simulation + lzf-compressed HDF5 writing) with the default
number of workers and again in one process, and prints images/s and the time extrapolated to
the 10,000-image library the U-net trains on (target: at most 2 minutes on 2 cores). It also
prints the CPU time per image, which does not depend on what else the machine runs: on ``k``
free cores the library takes about ``10,000 * cpu_per_image / k``.

    python benchmarks/bench_atomseg_simulate.py [--n 400] [--size 256] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from atomseg.sim import simulate_image, write_library
from atomseg.sim.library import _default_workers


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="images per run (default 400)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--workers", type=int, default=None, help="default: available cores")
    args = ap.parse_args(argv)
    workers = args.workers or _default_workers()
    shape = (args.size, args.size)
    for i in range(20):  # warm up imports and the structure cache
        simulate_image(shape=shape, rng=i)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"atomseg simulate: {args.n} images of {args.size}², {_default_workers()} cores "
        f"available, load average {load:.1f} before the runs"
    )
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, w in ((f"{workers} workers (default)", workers), ("1 process", 1)):
            path = os.path.join(d, f"lib{w}.h5")
            t0, c0 = time.perf_counter(), time.process_time()
            write_library(path, n=args.n, seed=1, shape=shape, workers=w)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            mib = os.path.getsize(path) / 2**20 / args.n
            rows.append((label, args.n / dt, 10_000 * dt / args.n, mib, cpu / args.n))
    print("| run | images/s | 10,000 images | MiB/image |\n| --- | ---: | ---: | ---: |")
    for label, ips, t10k, mib, _ in rows:
        print(f"| {label} | {ips:.1f} | {t10k:.0f} s ({t10k / 60:.1f} min) | {mib:.2f} |")
    cpu = rows[1][4]
    print(
        f"CPU per image, simulation + writing (1 process): {cpu * 1e3:.1f} ms -> 10,000 images "
        f"on 2 free cores: about {10_000 * cpu / 2:.0f} s"
    )


if __name__ == "__main__":
    main()
