"""Training pairs: (limited-angle reconstruction, ground truth) written to HDF5.

Each record draws a phantom (:func:`random_phantom`, training kinds only by default), a tilt
scheme, a dose and a reconstruction algorithm, simulates the tilt series with ASTRA's ``strip``
projector (area-weighted, so that reconstruction with the ``linear`` one commits no inverse
crime), adds Poisson and Gaussian noise and jitter (:func:`tilt_series`), and reconstructs it
with :func:`tomocnn.recon.reconstruct` (the built-in batched backend by default).

File layout (``format_version`` 1)
----------------------------------
=====================  ==================  ============================================
dataset                shape, dtype        content
=====================  ==================  ============================================
``/recon``             (n, S, S, S) f4     reconstruction, TomoPy layout ``(n_rows, N, N)``
``/truth``             (n, S, S, S) f4     ground-truth phantom in [0, 1]
``/theta``             (n,) vlen f4        angles, radians, acquisition order
``/max_tilt_deg``      (n,) f4             highest tilt of ``/theta``, degrees
``/min_tilt_deg``      (n,) f4             lowest tilt of ``/theta``, degrees
``/algorithm``         (n,) vlen str       ``sirt``, ``fbp``, ...
``/n_iter``            (n,) i4             iterations (0 for fbp)
``/dose``              (n,) f4             ``dose_e_per_A2`` per projection (pixel 1 A)
``/read_noise``        (n,) f4             Gaussian noise, fraction of the maximum
``/jitter_px``         (n,) f4             alignment jitter, pixels
``/kind``              (n,) vlen str       phantom kind
``/seed``              (n,) i8             the record's seed (derived from seed, index)
=====================  ==================  ============================================

``/recon`` and ``/truth`` are chunked one record per chunk, ``lzf``-compressed. Root
attributes: ``format_version``, ``seed``, ``n_target`` (records asked for), ``n_done``
(records complete: a reader must use only ``[:n_done]``), ``size``, ``pixel_size_angstrom``,
``settings`` (JSON of the drawing settings) and ``software``.

The file is written as ``PATH.partial`` and renamed to ``PATH`` when complete. Calling
:func:`write_pairs` again with the same settings resumes an interrupted ``.partial`` file (or
extends a complete one to a larger ``n``); record ``i`` depends only on ``(seed, i)``, so a
resumed file is identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence

import numpy as np

from tomocnn.sim.phantoms import PHANTOM_KINDS, TRAINING_KINDS, random_phantom
from tomocnn.sim.tilt import tilt_angles, tilt_series

FORMAT_VERSION = 1
DEFAULT_STEPS_DEG = (1.0, 1.5, 2.0, 2.5, 3.0)
_DEFAULT_ALGORITHMS = {"sirt": 0.8, "fbp": 0.2}
_DOSE_RANGE = (50.0, 5.0e4)  # e/A^2 per projection (pixel 1 A), log-uniform
_NUM_FIELDS = {
    "max_tilt_deg": np.float32,
    "min_tilt_deg": np.float32,
    "n_iter": np.int32,
    "dose": np.float32,
    "read_noise": np.float32,
    "jitter_px": np.float32,
    "seed": np.int64,
}
_STR_FIELDS = ("algorithm", "kind")


def _record_seed(seed: int, index: int) -> int:
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
    return int(ss.generate_state(1, dtype=np.uint64)[0] & np.uint64(2**63 - 1))


def _make_pair(index: int, settings: dict) -> dict:
    """Simulate record ``index``: everything is drawn from its own seed."""
    from tomocnn.recon import DEFAULT_N_ITER, reconstruct

    record_seed = _record_seed(settings["seed"], index)
    rng = np.random.default_rng(record_seed)
    size = settings["size"]
    kind = str(rng.choice(settings["kinds"]))
    truth = random_phantom(size, kind=kind, rng=rng)
    # tilt scheme
    if settings["tilt_ranges_deg"] is None:
        hi = float(rng.uniform(45.0, 75.0))
        lo = -(hi + float(rng.uniform(-5.0, 5.0))) if rng.random() < 0.3 else -hi
    else:
        hi = float(rng.choice(settings["tilt_ranges_deg"]))
        lo = -hi
    step = float(rng.choice(settings["steps_deg"]))
    u = rng.random()
    scheme = (
        "uniform" if u < 0.8 or settings["steps_deg_fixed"] else ("saxton" if u < 0.9 else "uneven")
    )
    order = "dose-symmetric" if rng.random() < 0.5 else "sequential"
    if scheme == "uniform":
        theta = tilt_angles(hi, min_tilt_deg=lo, step=step, order=order)
    else:
        n = int(math.floor((hi - lo) / step)) + 1
        theta = tilt_angles(hi, min_tilt_deg=lo, n=n, scheme=scheme, order=order, rng=rng)
    # noise
    dose = float(np.exp(rng.uniform(*np.log(_DOSE_RANGE))))
    read_noise = float(rng.uniform(0.0, 0.02))
    jitter = float(rng.uniform(0.0, 0.5)) if rng.random() < 0.5 else 0.0
    proj = tilt_series(
        truth,
        theta,
        dose_e_per_A2=dose,
        read_noise=read_noise,
        jitter_px=jitter,
        projector="strip",
        rng=rng,
    )
    algorithms = settings["algorithms"]
    names = list(algorithms)
    p = np.asarray([algorithms[a] for a in names], dtype=float)
    algorithm = str(names[int(rng.choice(len(names), p=p / p.sum()))])
    if settings["n_iter"] is not None:
        n_iter = settings["n_iter"]
    elif algorithm in ("sirt", "mlem"):  # users stop anywhere from ~30 to ~150 iterations
        n_iter = int(round(math.exp(rng.uniform(math.log(30), math.log(150)))))
    else:
        n_iter = DEFAULT_N_ITER[algorithm]
    recon = reconstruct(
        proj,
        theta,
        algorithm=algorithm,
        n_iter=n_iter,
        backend=settings["backend"],
        device=settings["device"],
    )
    return {
        "recon": recon,
        "truth": truth,
        "theta": theta.astype(np.float32),
        "max_tilt_deg": float(np.rad2deg(theta.max())),
        "min_tilt_deg": float(np.rad2deg(theta.min())),
        "algorithm": algorithm,
        "n_iter": 0 if algorithm == "fbp" else n_iter,
        "dose": dose,
        "read_noise": read_noise,
        "jitter_px": jitter,
        "kind": kind,
        "seed": record_seed,
    }


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _settings(size, seed, tilt_ranges_deg, steps_deg, algorithms, kinds, n_iter, backend, device):
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if tilt_ranges_deg is not None:
        tilt_ranges_deg = [float(t) for t in np.atleast_1d(tilt_ranges_deg)]
        if not tilt_ranges_deg or not all(0 < t <= 90 for t in tilt_ranges_deg):
            raise ValueError(
                f"tilt_ranges_deg must be maximum tilts in (0, 90], got {tilt_ranges_deg}"
            )
    steps_fixed = steps_deg is not None
    steps = [float(s) for s in np.atleast_1d(DEFAULT_STEPS_DEG if steps_deg is None else steps_deg)]
    if not steps or not all(s > 0 for s in steps):
        raise ValueError(f"steps_deg must be positive angles, got {steps}")
    from tomocnn.recon import ALGORITHMS

    if algorithms is None:
        algorithms = dict(_DEFAULT_ALGORITHMS)
    elif isinstance(algorithms, Mapping):
        algorithms = {str(a): float(w) for a, w in algorithms.items()}
    else:
        algorithms = {
            str(a): 1.0 for a in ([algorithms] if isinstance(algorithms, str) else algorithms)
        }
    bad = [a for a in algorithms if a not in ALGORITHMS]
    if not algorithms or bad:
        raise ValueError(f"unknown algorithm(s) {bad}; choose from {ALGORITHMS}")
    kinds = list(
        TRAINING_KINDS if kinds is None else ([kinds] if isinstance(kinds, str) else kinds)
    )
    bad = [k for k in kinds if k not in PHANTOM_KINDS]
    if not kinds or bad:
        raise ValueError(f"unknown phantom kind(s) {bad}; choose from {PHANTOM_KINDS}")
    return {
        "size": int(size),
        "seed": int(seed),
        "tilt_ranges_deg": tilt_ranges_deg,
        "steps_deg": steps,
        "steps_deg_fixed": steps_fixed,
        "algorithms": algorithms,
        "kinds": kinds,
        "n_iter": None if n_iter is None else int(n_iter),
        "backend": backend,
        "device": device,
    }


def _create(f, settings, n):
    import h5py

    from tomocnn import __version__

    S = settings["size"]
    vol = {"shape": (n, S, S, S), "maxshape": (None, S, S, S), "chunks": (1, S, S, S)}
    f.create_dataset("recon", dtype="f4", compression="lzf", **vol)
    f.create_dataset("truth", dtype="f4", compression="lzf", **vol)
    f.create_dataset("theta", shape=(n,), maxshape=(None,), dtype=h5py.vlen_dtype(np.float32))
    for name in _STR_FIELDS:
        f.create_dataset(name, shape=(n,), maxshape=(None,), dtype=h5py.string_dtype())
    for name, dt in _NUM_FIELDS.items():
        f.create_dataset(name, shape=(n,), maxshape=(None,), dtype=dt)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["seed"] = settings["seed"]
    f.attrs["size"] = S
    f.attrs["n_target"] = n
    f.attrs["n_done"] = 0
    f.attrs["pixel_size_angstrom"] = 1.0
    f.attrs["settings"] = _settings_json(settings)
    f.attrs["software"] = f"tomocnn {__version__}"


def _settings_json(settings) -> str:
    keep = {k: v for k, v in settings.items() if k not in ("device",)}
    return json.dumps(keep, sort_keys=True)


def _check_settings(f, settings, path) -> None:
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION or f.attrs.get("settings") != _settings_json(settings):
        raise ValueError(
            f"{path} was written with other settings (format_version={version}, "
            f"settings={f.attrs.get('settings')}); write to another file or delete it"
        )


def _open_for_append(path, settings, n):
    """Open ``path`` (a .partial file) for appending; check it matches ``settings``."""
    import h5py

    f = h5py.File(path, "r+")
    try:
        _check_settings(f, settings, path)
        if f["recon"].shape[0] < n:
            for name in ("recon", "truth", "theta", *_STR_FIELDS, *_NUM_FIELDS):
                f[name].resize(n, axis=0)
        f.attrs["n_target"] = max(n, int(f.attrs["n_target"]))
    except BaseException:
        f.close()
        raise
    return f


def _write_record(f, i, rec):
    f["recon"][i] = rec["recon"]
    f["truth"][i] = rec["truth"]
    f["theta"][i] = rec["theta"]
    for name in _STR_FIELDS:
        f[name][i] = rec[name]
    for name in _NUM_FIELDS:
        f[name][i] = rec[name]


def write_pairs(
    path: str | os.PathLike,
    *,
    n: int,
    size: int = 64,
    seed: int = 0,
    tilt_ranges_deg: Sequence[float] | None = None,
    steps_deg: Sequence[float] | None = None,
    algorithms: Sequence[str] | Mapping[str, float] | None = None,
    kinds: Sequence[str] | None = None,
    n_iter: int | None = None,
    backend: str = "torch",
    device: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> str:
    """Simulate ``n`` (limited-angle reconstruction, ground truth) pairs into an HDF5 file.

    The layout is described in the module docstring of :mod:`tomocnn.sim.pairs`.

    Parameters
    ----------
    path : str or path
        Output HDF5 file; written as ``path + ".partial"``, renamed when complete. An existing
        ``.partial`` (or complete) file with the same settings is resumed (or extended).
    n : int
        Number of records wanted in the file.
    size : int
        Edge ``S`` of the cubic volumes (64 by default).
    seed : int
        Master seed; record ``i`` uses a seed derived from ``(seed, i)`` only.
    tilt_ranges_deg : sequence of float, optional
        Maximum tilts (degrees) to draw from, for symmetric ranges ``+-t``. Default: uniform in
        45-75 degrees, 30 % of them made asymmetric by up to 5 degrees.
    steps_deg : sequence of float, optional
        Angular steps (degrees) to draw from; default 1, 1.5, 2, 2.5, 3 with 20 % of the
        schemes uneven (Saxton or random steps of that mean). Given: uniform steps only.
    algorithms : sequence of str or dict, optional
        Reconstruction algorithms to draw from (uniformly), or ``{name: weight}``; default
        ``{"sirt": 0.8, "fbp": 0.2}``.
    kinds : sequence of str, optional
        Phantom kinds; default :data:`TRAINING_KINDS` (all but :data:`HELD_OUT_KINDS`).
    n_iter : int, optional
        Iterations of the iterative algorithms. Default: SIRT and MLEM draw a log-uniform
        number from 30 to 150 per record (the range users stop at; with noise SIRT's error is
        lowest somewhere in it), SART and CGLS use :data:`tomocnn.recon.DEFAULT_N_ITER`.
    backend : str
        Reconstruction backend (``"torch"``, the fast built-in one; ``"astra"`` for a
        baseline).
    device : str, optional
        Torch device for the built-in backend.
    workers : int, optional
        Worker processes (each with one torch thread); default 2 if the machine has at
        least 2 cores and ``n - n_done >= 8``, else 1 (in process, all threads).
    progress : bool
        Show a progress bar (pairs/s).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import h5py, os, tempfile
    >>> from tomocnn.sim import write_pairs
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.h5")
    >>> _ = write_pairs(path, n=2, size=16, n_iter=5, progress=False)
    >>> with h5py.File(path) as f:
    ...     f["recon"].shape, int(f.attrs["n_done"]), f["algorithm"].asstr()[0] in ("sirt", "fbp")
    ((2, 16, 16, 16), 2, True)
    """
    import h5py

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    settings = _settings(
        size, seed, tilt_ranges_deg, steps_deg, algorithms, kinds, n_iter, backend, device
    )
    path = os.fspath(path)
    partial = path + ".partial"
    if os.path.exists(path) and not os.path.exists(partial):
        with h5py.File(path, "r") as f:
            _check_settings(f, settings, path)
            done = int(f.attrs.get("n_done", 0))
        if done >= n:
            return path
        os.replace(path, partial)
    if os.path.exists(partial):
        f = _open_for_append(partial, settings, n)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        f = h5py.File(partial, "w")
        _create(f, settings, n)
    try:
        start = int(f.attrs["n_done"])
        todo = range(start, n)
        if workers is None:
            workers = 2 if (os.cpu_count() or 1) >= 2 and len(todo) >= 8 else 1
        bar = _bar(progress, n, start)
        try:
            for i, rec in zip(todo, _records(todo, settings, workers)):
                _write_record(f, i, rec)
                f.attrs["n_done"] = i + 1
                f.flush()
                bar.update(1)
        finally:
            bar.close()
    finally:
        f.close()
    os.replace(partial, path)
    return path


def _bar(progress, total, initial):
    if not progress:
        from tomocnn.recon._api import _NoBar

        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="pair", desc="simulate", dynamic_ncols=True)


def _records(indices, settings, workers):
    """Records in index order, computed in process or by a pool of worker processes."""
    if workers <= 1 or len(indices) <= 1:
        for i in indices:
            yield _make_pair(i, settings)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")  # fork after torch/OpenMP start-up is unsafe
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        pending = deque()
        it = iter(indices)
        try:
            for i in it:
                pending.append(pool.submit(_make_pair, i, settings))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
