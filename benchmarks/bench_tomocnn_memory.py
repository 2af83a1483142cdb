"""Peak memory of streamed wedge removal on a large HDF5 volume (``tomocnn denoise``).

Creates an ``(N, N, N)`` float32 HDF5 volume slab by slab (default ``N = 1024``: 4 GiB, written
without ever holding it in memory), runs :func:`tomocnn.infer.denoise_file` on it with a tiny
random network (width 4, 2 levels) and reports the peak resident memory (RSS, sampled every
20 ms by a thread, and the process high-water mark) together with the throughput in voxels/s.

The target: under 2 GB of RSS for a 4 GB volume. The tiny network keeps the run feasible on a
CPU; the memory bound comes from slab-by-slab streaming and does not depend on the network.

Usage::

    python benchmarks/bench_tomocnn_memory.py              # 1024^3, 4 GiB (slow on a CPU)
    python benchmarks/bench_tomocnn_memory.py --size 256   # quick run, 64 MiB
    python benchmarks/bench_tomocnn_memory.py --rows 160 --model default  # the shipped model
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class PeakRSS:
    """Sample this process's RSS in a background thread; ``peak`` is the maximum seen (bytes)."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def make_volume(path: Path, n_rows: int, n: int, *, seed: int = 0) -> None:
    """Write a float32 ``(n_rows, n, n)`` volume slab by slab (blobs plus noise)."""
    import h5py

    rng = np.random.default_rng(seed)
    slab = max(1, (64 << 20) // (4 * n * n))  # ~64 MiB per write
    y, x = np.ogrid[:n, :n]
    base = (np.sin(y / 17.0) * np.cos(x / 23.0)).astype(np.float32)
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "/exchange/data",
            shape=(n_rows, n, n),
            dtype=np.float32,
            chunks=(min(16, n_rows), min(256, n), min(256, n)),
        )
        for r0 in range(0, n_rows, slab):
            r1 = min(n_rows, r0 + slab)
            block = rng.standard_normal((r1 - r0, n, n), dtype=np.float32)
            block *= 0.1
            block += base
            d[r0:r1] = block


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, help="N of the (N, N, N) volume (1024)")
    p.add_argument("--rows", type=int, default=None, help="n_rows (default N)")
    p.add_argument("--tile", type=int, default=None, help="tile core size (default: model's)")
    p.add_argument(
        "--model", default=None, help="a shipped model or folder instead of the tiny network"
    )
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workdir", default=None, help="folder for the volumes (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the volumes")
    args = p.parse_args(argv)

    import torch

    from tomocnn.infer import denoise_file
    from tomocnn.models import WedgeNet3D, save_model

    if args.threads:
        torch.set_num_threads(args.threads)
    n, n_rows = args.size, args.rows or args.size
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tomocnn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / "rec.h5", work / "clean.h5"
    gib = n_rows * n * n * 4 / 2**30
    try:
        t0 = time.perf_counter()
        make_volume(src, n_rows, n)
        print(
            f"volume: ({n_rows}, {n}, {n}) float32, {gib:.2f} GiB, written in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        if args.model:
            model = args.model
        else:
            torch.manual_seed(0)
            net = WedgeNet3D(width=4, levels=2)
            with torch.no_grad():
                net.head.weight.normal_(0.0, 0.5)
            config = {"name": "bench-tiny"}
            if args.tile:
                config["tile"] = args.tile
            model = save_model(work / "model", net, config)

        baseline = PeakRSS().peak
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            denoise_file(
                src,
                dst,
                tilt_range_deg=(-60, 60),
                model=str(model),
                progress=True,
                device=args.device,
                batch_size=args.batch_size,
            )
        elapsed = time.perf_counter() - t0
        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
        voxels = n_rows * n * n
        print(f"threads: {torch.get_num_threads()}, device: {args.device}")
        print(
            f"peak RSS during denoise_file: {rss.peak / 2**30:.3f} GiB "
            f"(before: {baseline / 2**30:.3f} GiB; process high-water mark "
            f"{high_water / 2**30:.3f} GiB) for a {gib:.2f} GiB volume"
        )
        print(
            f"time: {elapsed:.1f} s, throughput: {voxels / elapsed:.3g} voxels/s "
            + (f"(model {args.model})" if args.model else "(tiny network, width 4, 2 levels)")
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
