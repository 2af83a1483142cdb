"""``remove_wedge``: the drop-in step after ``tomopy.recon``, in memory, streamed or on Dask.

Conventions (the same as TomoPy): a volume is ``(n_rows, N, N)`` with rows along the tilt axis,
exactly what ``tomopy.recon`` returns; ``theta`` is in radians, one angle per projection. At
``theta = 0`` the beam runs along axis 1 of each slice, so the missing wedge elongates features
along axis 1.

The result is defined as the network applied to the whole normalised volume after reflect
padding (see :mod:`tomocnn.infer._tiling`); tiled, streamed and Dask inference reproduce it to
float32 rounding, because the network is a fixed local function and every tile gets at least
``model.halo`` voxels of context.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from tomocnn.infer import _tiling

__all__ = ["remove_wedge"]

#: target bytes of one slab's float32 input when the tile size is left to the default (384 MB:
#: 1.69 GiB peak RSS and 0.78 Mvox/s streaming 1024² slices with wedge-v2; 256 MB forced 12-row
#: tiles, five times slower for the halo; 768 MB went over 2 GiB)
_SLAB_BYTES = 384 << 20
#: rows read (evenly spaced along axis 0) and voxels kept per row for the intensity scale
_SAMPLE_ROWS = 8
_SAMPLE_PER_ROW = 1 << 15
#: seed of the voxel subsample (fixed: the same volume always gets the same scale)
_SAMPLE_SEED = 0


def remove_wedge(
    volume,
    theta=None,
    *,
    tilt_range_deg: tuple[float, float] | None = None,
    model: Any = "default",
    tile: int | tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "auto",
    out=None,
    progress: bool = False,
    fov: str | None = "auto",
    nonnegative: bool | None = None,
    projections=None,
    consistency_iters: int = 0,
    consistency_algorithm: str | None = None,
    center: float | None = None,
):
    """Remove noise and missing-wedge artefacts from a limited-angle reconstruction.

    A drop-in step after ``tomopy.recon``: ``clean = remove_wedge(rec, theta)`` returns a volume
    of the same shape, dtype and intensity units as ``rec``.

    Parameters
    ----------
    volume : ndarray, h5py.Dataset or dask.array.Array, shape (n_rows, N, N)
        Reconstruction as returned by ``tomopy.recon``. An ndarray (or memmap) is processed slab by
        slab; an ``h5py.Dataset`` is streamed, never loaded whole; a dask array gives a lazy
        dask array (``map_overlap``) that can run under a ``distributed.Client``.
    theta : array_like, shape (n_angles,), optional
        Tilt angles of the projections, **radians** (as given to ``tomopy.recon``). Only the tilt
        range ``(min, max)`` is used. Give either ``theta`` or ``tilt_range_deg``.
    tilt_range_deg : (float, float), optional
        Minimum and maximum tilt angle, degrees, instead of ``theta``.
    model : str, path or WedgeModel
        ``"default"``, a shipped model name, a model folder, or a loaded
        :class:`tomocnn.models.WedgeModel` (used as is, on its own device).
    tile : int or (int, int, int), optional
        Largest core (output) size of a tile, voxels; each tile also gets ``model.halo`` voxels of
        context and a few voxels of cross-fade per side, and the result does not depend on it.
        Default: the model's ``"tile"`` setting (64), with fewer rows per slab where a slab
        would exceed about 384 MB, so streamed volumes keep a bounded memory.
    batch_size : int
        Tiles per network call (raise it on a GPU).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``; used when loading ``model``.
    out : ndarray or h5py.Dataset, shape (n_rows, N, N), optional
        Where to write the result (any float dtype); written slab by slab and returned. With a
        dask ``volume`` the result is stored into ``out`` with ``dask.array.store``.
    progress : bool
        Show a tqdm bar of tiles done (in-memory and streamed paths).
    fov : {"auto", None}
        ``"auto"``: voxels outside the circle inscribed in each square ``(N, N)`` slice (the
        field of view of ``tomopy.recon``; the region ``tomopy.circ_mask`` zeroes) are passed
        through unchanged, and the intensity scale is taken inside the circle. Slices that are
        not square are processed whole. ``None``: process every voxel.
    nonnegative : bool, optional
        Clip the result at zero inside the field of view. Default: the model's setting
        (``model.json`` ``"nonnegative"``: true for models trained on non-negative quantities
        such as density, attenuation or HAADF signal, where it is a strong prior against the
        wedge). Pass ``False`` for volumes whose values may legitimately be negative.
    projections : ndarray, shape (n_angles, n_rows, N), optional
        The measured (aligned) tilt series behind ``volume``, with ``theta`` its angles: needed
        for ``consistency_iters``.
    consistency_iters : int
        Data consistency: after the network, run this many iterations of
        ``consistency_algorithm`` on the measured angles, started from the network's volume
        (:func:`tomocnn.recon.reconstruct` with ``init_recon``). The updates live in the
        measured directions only, so the wedge the network filled stays, while what it smoothed
        or invented against the data is pulled back (see ``docs/benchmarks.md``). 0: off.
    consistency_algorithm : {"mlem", "sirt"}, optional
        ``"mlem"`` or ``"sirt"`` (clipped at zero for a non-negative output). Default: MLEM for
        a non-negative output, SIRT (unclipped) for a signed one (MLEM cannot make a value
        negative).
    center : float, optional
        Rotation centre of ``projections`` (TomoPy's; None: ``N / 2``).

    Returns
    -------
    ndarray, h5py.Dataset or dask.array.Array, shape (n_rows, N, N)
        ``out`` when given; otherwise a new ndarray (also for an ``h5py.Dataset`` input: pass
        ``out=`` to stream to disk) or, for a dask input, a lazy dask array. Float inputs keep
        their dtype (float16, float32, float64; the network computes in float32); integer
        inputs give float32.

    Raises
    ------
    ValueError
        ``volume`` not 3-D or holding NaN/inf (the message names the row), neither or both of
        ``theta`` and ``tilt_range_deg``, ``theta`` not 1-D, not finite, in degrees (beyond
        ±90°), a tilt range the model was not trained for, or an ``out`` of the wrong shape.
    TypeError
        Complex or non-numeric ``volume``, integer ``out``.
    KeyError
        Unknown model name (the message lists the available models).

    Notes
    -----
    The intensity scale ``s = model.normalisation_scale(sample)`` comes from a fixed random
    subsample of at most 8 evenly spaced rows (so streamed and Dask inputs read only those rows);
    the network sees ``volume / s`` and its output is multiplied by ``s``, so
    ``remove_wedge(a * v) == a * remove_wedge(v)`` for ``a > 0``. If ``out`` is given and an
    error is raised part-way (NaN in a later slab), ``out`` is left partly written;
    :func:`denoise_file` writes files atomically instead.

    A dask array is processed with ``map_overlap`` (``depth = halo + multiple``,
    ``boundary="none"``): each block reflects the volume's own edges exactly as the in-memory path
    does, so the result equals it to float32 rounding whatever the chunks. Chunks smaller than the
    depth are merged first, so the result's chunks may differ from the input's. No progress bar
    is shown for dask arrays (use dask's diagnostics).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from tomocnn.models import WedgeModel, WedgeNet3D
    >>> from tomocnn.infer import remove_wedge
    >>> _ = torch.manual_seed(0)
    >>> model = WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "untrained"})
    >>> rec = np.random.default_rng(0).random((8, 16, 16), dtype=np.float32)
    >>> theta = np.deg2rad(np.arange(-60.0, 61.0, 2.0))
    >>> clean = remove_wedge(rec, theta, model=model)
    >>> clean.shape, clean.dtype
    ((8, 16, 16), dtype('float32'))
    >>> bool(np.allclose(clean, rec, atol=1e-5))  # an untrained network is the identity
    True
    """
    kind = _kind(volume)
    if kind == "array" and not isinstance(volume, np.ndarray):
        volume = np.asarray(volume)
    shape = _check_volume(volume)
    tilt = _tilt_range(theta, tilt_range_deg)
    consistency_iters = _check_consistency(
        consistency_iters, consistency_algorithm, projections, theta, shape, kind
    )
    if fov not in ("auto", None):
        raise ValueError(f"fov must be 'auto' or None, got {fov!r}")
    batch_size = _positive_int(batch_size, "batch_size")
    out_dtype = _output_dtype(volume.dtype)
    if out is not None:
        _check_out(out, None if kind == "dask" else volume, shape)
    wm = _get_model(model, device=device)
    _check_supported(wm, tilt)
    core = _core_sizes(tile, wm, shape)
    mask = _fov_mask(shape, fov)
    scale = _scale(volume, kind, wm, mask)

    def predict(blocks: np.ndarray) -> np.ndarray:
        return wm.predict(blocks, tilt_range_deg=tilt, nonnegative=nonnegative)

    common = dict(
        predict=predict,
        core=core,
        halo=wm.halo,
        multiple=wm.multiple,
        scale=scale,
        out_dtype=out_dtype,
        batch_size=batch_size,
    )
    if kind == "dask":
        result = _dask_apply(volume, shape=shape, mask=mask, **common)
        if out is None:
            return result
        import dask.array as da

        da.store(result, out, lock=True)
        return out

    if out is None:
        out = np.empty(shape, dtype=out_dtype)

    def read(slices):
        return volume[slices]

    def write(r0: int, r1: int, block: np.ndarray) -> None:
        out[r0:r1] = block

    from tqdm.auto import tqdm

    total = _tiling.count_tiles(shape, core, wm.halo, wm.multiple)
    with tqdm(total=total, desc="tomocnn remove_wedge", unit="tile", disable=not progress) as bar:
        _tiling.run_tiled(
            read,
            write,
            shape=shape,
            lo=(0, 0, 0),
            hi=shape,
            fov_mask=mask,
            on_tiles=bar.update,
            **common,
        )
    if consistency_iters:
        clip = wm.nonnegative if nonnegative is None else nonnegative
        algorithm = _consistency_algorithm(wm, nonnegative, consistency_algorithm)
        _consistency_step(out, projections, theta, algorithm, consistency_iters, center, clip)
    return out


def _consistency_algorithm(model, nonnegative: bool | None, algorithm: str | None) -> str:
    """The consistency step's algorithm: as asked, else MLEM (non-negative) or SIRT (signed)."""
    if algorithm is not None:
        return algorithm
    clip = model.nonnegative if nonnegative is None else nonnegative
    return "mlem" if clip else "sirt"


def _consistency_step(out, projections, theta, algorithm, n_iter, center, clip) -> None:
    """Iterate ``algorithm`` on the measured angles from ``out``, in place (slab by slab)."""
    from tomocnn.recon import reconstruct

    kwargs = dict(
        algorithm=algorithm,
        n_iter=n_iter,
        center=center,
        min_constraint=0.0 if clip and algorithm == "sirt" else None,
        backend="torch",
    )
    if np.dtype(out.dtype) == np.float32:
        reconstruct(projections, theta, init_recon=out, out=out, **kwargs)
    else:
        start = np.asarray(out, dtype=np.float32)
        out[...] = reconstruct(projections, theta, init_recon=start, **kwargs)


def _check_consistency(n_iter, algorithm, projections, theta, shape, kind) -> int:
    """Validate the consistency-step arguments; return the number of iterations."""
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer) or n_iter < 0:
        raise ValueError(f"consistency_iters must be an integer >= 0, got {n_iter!r}")
    if n_iter == 0:
        return 0
    if algorithm not in ("sirt", "mlem", None):
        raise ValueError(f"consistency_algorithm must be 'sirt' or 'mlem', got {algorithm!r}")
    if projections is None or theta is None:
        raise ValueError(
            "consistency_iters needs the measured projections and their angles: pass "
            "projections= and theta= (radians)"
        )
    if kind == "dask":
        raise ValueError("the consistency step runs on in-memory or HDF5 volumes, not on dask")
    p_shape = tuple(np.shape(projections))
    if len(p_shape) != 3 or p_shape[1:] != (shape[0], shape[2]) or shape[1] != shape[2]:
        raise ValueError(
            f"projections of shape {p_shape} do not belong to a volume of shape {shape}: "
            f"expected (n_angles, {shape[0]}, {shape[2]})"
        )
    return int(n_iter)


# ------------------------------------------------------------------------------------------------
# validation helpers (also used by tomocnn.infer.files)


def _tilt_range(theta, tilt_range_deg) -> tuple[float, float]:
    """Return the tilt range in degrees from exactly one of ``theta`` (radians) or a range."""
    if (theta is None) == (tilt_range_deg is None):
        raise ValueError(
            "give exactly one of theta (tilt angles in radians, as for tomopy.recon) "
            "or tilt_range_deg=(min, max) in degrees"
        )
    if theta is not None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 1 or theta.size < 2:
            raise ValueError(
                f"theta must be 1-D with at least two tilt angles (radians), got shape "
                f"{theta.shape}"
            )
        if not np.isfinite(theta).all():
            raise ValueError("theta holds NaN or inf values")
        if np.abs(theta).max() > math.pi / 2 + 1e-6:
            raise ValueError(
                f"theta must be tilt angles in radians within ±pi/2 (±90°); got a largest |theta|"
                f" of {np.abs(theta).max():.4g}; if these are degrees, pass numpy.deg2rad(theta)"
                " or tilt_range_deg=(min, max)"
            )
        lo, hi = math.degrees(theta.min()), math.degrees(theta.max())
        lo, hi = max(lo, -90.0), min(hi, 90.0)
    else:
        try:
            lo, hi = (float(v) for v in tilt_range_deg)
        except (TypeError, ValueError):
            raise ValueError(
                f"tilt_range_deg must be two numbers (min, max) in degrees, got {tilt_range_deg!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"tilt_range_deg holds NaN or inf: {(lo, hi)}")
    if not (-90.0 <= lo < hi <= 90.0):
        raise ValueError(
            f"the tilt range must satisfy -90 <= min < max <= 90 degrees, got ({lo:g}, {hi:g})"
        )
    return lo, hi


def _get_model(model, *, device: str = "auto"):
    """A loaded ``WedgeModel`` from a name, a folder or an instance (returned as is)."""
    from tomocnn.models.registry import WedgeModel, load_model

    if isinstance(model, WedgeModel):
        return model
    if isinstance(model, str | os.PathLike):
        return load_model(model, device=device)
    raise TypeError(
        f"model must be a model name, a model folder or a WedgeModel, got {type(model).__name__}"
    )


def _check_supported(model, tilt: tuple[float, float]) -> None:
    """Raise if the model declares the maximum tilt angles it supports and ``tilt`` is outside."""
    cfg = model.config or {}
    span = (cfg.get("supported") or {}).get("max_tilt_deg") or cfg.get("tilt_range_deg_supported")
    if not span:
        return
    a, b = (float(v) for v in span)
    if not all(a - 1e-6 <= abs(t) <= b + 1e-6 for t in tilt):
        raise ValueError(
            f"model {model.name!r} supports tilt ranges whose end angles lie between ±{a:g}° and "
            f"±{b:g}°; got ({tilt[0]:.4g}°, {tilt[1]:.4g}°)"
        )


def _output_dtype(dtype) -> np.dtype:
    """Float dtypes are kept; integers and booleans give float32."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    if dtype.kind in "iub":
        return np.dtype(np.float32)
    raise TypeError(f"volume must hold real numbers, got dtype {dtype}")


def _fov_mask(shape, fov) -> np.ndarray | None:
    """Boolean ``(N, N)`` mask of the inscribed circle (as ``tomopy.circ_mask``), or None."""
    n1, n2 = shape[1], shape[2]
    if fov is None or n1 != n2:
        return None
    c = (n1 - 1) / 2.0
    y, x = np.ogrid[:n1, :n2]
    return (y - c) ** 2 + (x - c) ** 2 < (n1 / 2.0) ** 2


def _kind(volume) -> str:
    module = type(volume).__module__
    if module.startswith("dask"):
        import dask.array as da

        if isinstance(volume, da.Array):
            return "dask"
    if isinstance(volume, np.ndarray):
        return "array"
    if hasattr(volume, "shape") and hasattr(volume, "dtype") and hasattr(volume, "__getitem__"):
        return "stream"  # h5py.Dataset, zarr array, ...: read slab by slab
    return "array"


def _check_volume(volume) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in volume.shape)
    if len(shape) != 3:
        hint = " (a single slice? use volume[None])" if len(shape) == 2 else ""
        raise ValueError(
            f"volume must be 3-D (n_rows, N, N) as returned by tomopy.recon, got shape "
            f"{shape}{hint}"
        )
    if 0 in shape:
        raise ValueError(f"volume is empty: shape {shape}")
    _output_dtype(volume.dtype)
    return shape


def _check_out(out, volume, shape) -> None:
    if not (hasattr(out, "shape") and hasattr(out, "dtype") and hasattr(out, "__setitem__")):
        raise TypeError(f"out must be an ndarray or an h5py.Dataset, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; expected {tuple(shape)}")
    if np.dtype(out.dtype).kind != "f":
        raise TypeError(f"out must have a float dtype, got {np.dtype(out.dtype)}")
    if volume is None:
        return
    if isinstance(out, np.ndarray) and isinstance(volume, np.ndarray):
        if np.shares_memory(out, volume):
            raise ValueError("out must not share memory with volume (in-place is not supported)")
    elif out is volume or (_is_h5(out) and _is_h5(volume) and out.id == volume.id):
        raise ValueError("out must not be the input dataset (in-place is not supported)")
    if _is_h5(out) and out.file.mode == "r":
        raise ValueError(f"out dataset {out.name!r} is in a file opened read-only")


def _is_h5(obj) -> bool:
    return type(obj).__module__.startswith("h5py")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _core_sizes(tile, model, shape) -> tuple[int, int, int]:
    m, h = model.multiple, model.halo
    default = tile is None
    if default:
        tile = model.config.get("tile", 64)
    sizes = (tile,) * 3 if isinstance(tile, int | np.integer) else tuple(tile)
    if len(sizes) != 3 or not all(
        isinstance(t, int | np.integer) and not isinstance(t, bool) and t > 0 for t in sizes
    ):
        raise ValueError(f"tile must be a positive int or three positive ints, got {tile!r}")
    core = [int(t) for t in sizes]
    if default:  # bound a slab's float32 input to about _SLAB_BYTES
        plane = 4 * _tiling.padded_length(shape[1], h, m) * _tiling.padded_length(shape[2], h, m)
        extra = _tiling.tile_input_size(core[0], h, m) - core[0]
        core[0] = max(m, min(core[0], _SLAB_BYTES // plane - extra))
    return tuple(core)


def _sample_rows(n_rows: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_rows - 1, min(n_rows, _SAMPLE_ROWS)).round().astype(int))


def _scale(volume, kind: str, model, mask) -> float:
    """The model's intensity scale from a fixed subsample of a few evenly spaced rows."""
    rows = _sample_rows(volume.shape[0])
    if kind == "dask":
        import dask

        slices = dask.compute(*[volume[int(r)] for r in rows])
    else:
        slices = [volume[int(r)] for r in rows]
    rng = np.random.default_rng(_SAMPLE_SEED)
    parts = []
    for r, s in zip(rows, slices):
        s = np.asarray(s)
        if s.dtype.kind == "f" and not np.isfinite(s).all():
            raise ValueError(
                f"the input volume holds NaN or inf values in row {int(r)}; remove or replace "
                "them (for example with numpy.nan_to_num) first"
            )
        v = s[mask] if mask is not None else s.ravel()
        if v.size > _SAMPLE_PER_ROW:
            v = v[rng.integers(0, v.size, _SAMPLE_PER_ROW)]
        parts.append(v.astype(np.float64))
    return float(model.normalisation_scale(np.concatenate(parts)))


def _dask_apply(volume, *, shape, mask, predict, core, halo, multiple, **kw):
    """Lazy dask result: ``map_overlap`` with the context the tiled engine needs per block."""
    import dask.array as da
    from dask.array.overlap import ensure_minimum_chunksize

    depth = halo + multiple  # covers the halo plus the alignment of the pooling grid
    chunks = tuple(
        ensure_minimum_chunksize(depth, c) if sum(c) > depth else (sum(c),) for c in volume.chunks
    )
    if chunks != volume.chunks:
        volume = volume.rechunk(chunks)
    starts = [np.cumsum((0, *c)).tolist() for c in chunks]
    # overlap only along axes cut into several chunks (a single chunk holds all its context)
    depths = tuple(depth if len(c) > 1 else 0 for c in chunks)

    def block_fn(block: np.ndarray, block_info=None) -> np.ndarray:
        loc = block_info[0]["chunk-location"]
        lo = tuple(starts[a][loc[a]] for a in range(3))
        hi = tuple(starts[a][loc[a] + 1] for a in range(3))
        off = tuple(max(0, lo[a] - depths[a]) for a in range(3))
        expect = tuple(min(shape[a], hi[a] + depths[a]) - off[a] for a in range(3))
        if block.shape != expect:  # map_overlap did not overlap as planned
            raise RuntimeError(f"unexpected block shape {block.shape}, expected {expect}")
        res = np.empty(tuple(hi[a] - lo[a] for a in range(3)), dtype=kw["out_dtype"])

        def read(slices):
            return block[tuple(slice(s.start - o, s.stop - o) for s, o in zip(slices, off))]

        def write(r0: int, r1: int, b: np.ndarray) -> None:
            res[r0 - lo[0] : r1 - lo[0]] = b

        sub = None if mask is None else mask[lo[1] : hi[1], lo[2] : hi[2]]
        _tiling.run_tiled(
            read,
            write,
            shape=shape,
            lo=lo,
            hi=hi,
            predict=predict,
            core=core,
            halo=halo,
            multiple=multiple,
            fov_mask=sub,
            **kw,
        )
        return res

    return da.map_overlap(
        block_fn,
        volume,
        depth=dict(enumerate(depths)),
        boundary="none",
        trim=False,
        chunks=chunks,
        dtype=kw["out_dtype"],
        meta=np.empty((0, 0, 0), dtype=kw["out_dtype"]),
    )
