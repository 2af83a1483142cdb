"""Peak memory and time of ``atomseg.locate`` on a large image, tiled and in one piece.

Builds an ``N × N`` image at the model's 0.15 Å/px by repeating one simulated 512² Pd slab
(1e5 e/Å²), then runs :func:`atomseg.locate` on it twice, each in a fresh process: with the
network run in overlapping tiles (the default, :data:`atomseg.models.registry.MAX_TILE_PX`)
and in one piece (the baseline, tiles switched off). Prints per run the process's peak
resident memory (high-water mark), the wall time and the number of columns found (the same
for both: the tiled map equals the one-piece map to rounding).

Usage::

    python benchmarks/bench_atomseg_memory.py               # 4096², about 2 min on 2 cores
    python benchmarks/bench_atomseg_memory.py --size 8192 --tiled-only   # needs ~12 GiB
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import warnings


def _run(size: int, tiled: bool, queue) -> None:
    import numpy as np

    import atomseg.models.registry as registry
    from atomseg.infer import locate
    from atomseg.sim import simulate_image

    warnings.filterwarnings("ignore")
    if not tiled:
        registry.MAX_TILE_PX = 10**9
    s = simulate_image(
        shape=(512, 512), seed=5, dose_e_per_A2=1e5, pixel_size_angstrom=0.15, scene="slab"
    )
    reps = -(-size // 512)
    image = np.tile(s.image, (reps, reps))[:size, :size]
    start = time.perf_counter()
    table = locate(image, pixel_size_angstrom=0.15)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    queue.put((len(table), seconds, peak))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=4096, help="image side, px")
    ap.add_argument("--tiled-only", action="store_true", help="skip the one-piece baseline")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")  # a fresh process per run: its own high-water mark
    modes = [True] if args.tiled_only else [True, False]
    print(f"atomseg.locate on a {args.size}² image at 0.15 Å/px")
    print("| network | columns | time s | peak RSS GiB |")
    print("|---|---|---|---|")
    for tiled in modes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(args.size, tiled, queue))
        proc.start()
        n, seconds, peak = queue.get()
        proc.join()
        print(f"| {'tiled' if tiled else 'one piece'} | {n} | {seconds:.1f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
