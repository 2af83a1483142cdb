"""Tile geometry and the slab-by-slab tiled engine behind :func:`tomocnn.infer.remove_wedge`.

Reference semantics (what tiling reproduces)
--------------------------------------------
The whole-volume result is defined on the *padded* volume ``P``: the normalised volume padded on
every axis by ``halo`` voxels with numpy ``mode="reflect"``, plus extra reflected voxels at the end
so that each padded length ``L = round_up(n + 2 * halo, multiple)``. The network runs on ``P`` and
the result is cropped back to ``[halo, halo + n)``. All coordinates below are indices into ``P``
("padded coordinates"); original index ``q`` is padded index ``q + halo``.

Tiles
-----
Along each axis the output is cut into nearly equal *cores* of at most ``core`` voxels. A tile's
output region is its core widened by ``blend`` voxels into each neighbour; its input is that region
widened by ``halo`` voxels on each side and then aligned: inputs start on multiples of
``multiple`` and have a length that is a multiple of it, so every tile's pooling grid lines up
with the whole-volume grid. Inputs are shifted (never shrunk, so every tile keeps the same shape
and tiles batch) into a *window* of ``P``. The window either is the edge of ``P``
(where the network sees exactly what it sees on the whole volume) or reaches ``halo`` voxels past
the output, so the receptive field of every output voxel is complete and each tile equals the
whole-volume result. Where two tiles overlap their outputs are cross-faded with linear weights that
sum to one (a partition of unity), which hides any residual seam.

Streaming
---------
Tiles are processed one *row of tiles* (a slab along axis 0) at a time. A slab's input rows are
read from the source (h5py datasets read only those rows), the finished output rows are handed to
a ``write`` callback, and only the ``2 * blend`` rows shared with the next slab are carried over,
so peak memory is set by the slab, not by the volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: voxels by which neighbouring tile outputs overlap on each side of a seam (cross-faded)
BLEND = 4


def round_up(x: int, m: int) -> int:
    return -(-int(x) // m) * m


def round_down(x: int, m: int) -> int:
    return (int(x) // m) * m


def reflect_index(q: np.ndarray, n: int) -> np.ndarray:
    """Map (possibly out-of-range) indices onto ``[0, n)`` as numpy ``pad(mode="reflect")`` does."""
    q = np.asarray(q, dtype=np.int64)
    if n == 1:
        return np.zeros_like(q)
    period = 2 * (n - 1)
    r = np.mod(q, period)
    return np.where(r > n - 1, period - r, r)


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis, in padded coordinates."""

    in_lo: int
    in_hi: int
    out_lo: int
    out_hi: int
    weight: np.ndarray  # float32, shape (out_hi - out_lo,)


def axis_tiles(
    out_lo: int,
    out_hi: int,
    win_lo: int,
    win_hi: int,
    *,
    core: int,
    halo: int,
    multiple: int,
    blend: int = BLEND,
) -> list[AxisTile]:
    """Tiles covering ``[out_lo, out_hi)`` with inputs inside ``[win_lo, win_hi)`` (one axis).

    The output is split into ``ceil(n / core)`` cores of nearly equal length. Every tile has the
    same input length, a multiple of ``multiple``, and starts on a multiple of ``multiple`` (the
    window bounds must be multiples too), so pooling grids line up with the whole-volume grid;
    the weights of overlapping tiles sum to one at every output position.
    """
    m = multiple
    n = out_hi - out_lo
    n_tiles = max(1, -(-n // max(1, int(core))))
    bounds = [out_lo + (i * n) // n_tiles for i in range(n_tiles + 1)]
    b = min(blend, (n // n_tiles) // 2)
    longest = max(bounds[i + 1] - bounds[i] for i in range(n_tiles))
    # input = output (core + cross-fade) + halo each side + slack to align the start
    size = round_up(longest + 2 * (b + halo) + m - 1, m)
    ones = np.ones(n, np.float32)
    if size >= win_hi - win_lo:  # one tile spans the whole window
        return [AxisTile(win_lo, win_hi, out_lo, out_hi, ones)]
    tiles = []
    for k in range(n_tiles):
        cs, ce = bounds[k], bounds[k + 1]
        lo = out_lo if k == 0 else cs - b
        hi = out_hi if k == n_tiles - 1 else ce + b
        x = np.arange(lo, hi, dtype=np.float64) + 0.5
        w = np.ones(hi - lo, dtype=np.float64)
        if b > 0:
            if k > 0:
                w = np.minimum(w, (x - (cs - b)) / (2 * b))
            if k < n_tiles - 1:
                w = np.minimum(w, ((ce + b) - x) / (2 * b))
        in_lo = min(max(round_down(lo - halo, m), win_lo), win_hi - size)
        tiles.append(AxisTile(in_lo, in_lo + size, lo, hi, w.astype(np.float32)))
    return tiles


def tile_input_size(core: int, halo: int, multiple: int, blend: int = BLEND) -> int:
    """Input length of a tile whose core is ``core`` voxels (before clipping to the volume)."""
    return round_up(core + 2 * (min(blend, core // 2) + halo) + multiple - 1, multiple)


def padded_length(n: int, halo: int, multiple: int) -> int:
    return round_up(n + 2 * halo, multiple)


def window(lo: int, hi: int, n: int, halo: int, multiple: int) -> tuple[int, int]:
    """Padded-coordinate window holding the context for original output ``[lo, hi)``."""
    return round_down(lo, multiple), min(
        padded_length(n, halo, multiple), round_up(hi + 2 * halo, multiple)
    )


def count_tiles(shape, core, halo, multiple, lo=(0, 0, 0), hi=None) -> int:
    hi = tuple(shape) if hi is None else hi
    total = 1
    for a in range(3):
        w = window(lo[a], hi[a], shape[a], halo, multiple)
        t = axis_tiles(lo[a] + halo, hi[a] + halo, *w, core=core[a], halo=halo, multiple=multiple)
        total *= len(t)
    return total


def run_tiled(
    read: Callable[[tuple[slice, slice, slice]], np.ndarray],
    write: Callable[[int, int, np.ndarray], None],
    *,
    shape: tuple[int, int, int],
    lo: tuple[int, int, int],
    hi: tuple[int, int, int],
    predict: Callable[[np.ndarray], np.ndarray],
    core: tuple[int, int, int],
    halo: int,
    multiple: int,
    scale: float,
    out_dtype: np.dtype,
    fov_mask: np.ndarray | None,
    batch_size: int,
    on_tiles: Callable[[int], None] | None = None,
) -> None:
    """Process original region ``[lo, hi)`` of a volume of ``shape``, one slab of tiles at a time.

    ``read(slices)`` returns the raw input for original-coordinate slices (it may be asked for
    voxels of a context zone around the region, never outside ``shape``); ``predict`` maps
    normalised float32 blocks ``(B, D, H, W)`` to the same shape. ``write(r0, r1, block)``
    receives finished rows ``[r0, r1)`` (original coordinates) of the region, already scaled
    back, cast to ``out_dtype`` and with the input passed through where ``fov_mask`` (shape
    ``(hi[1] - lo[1], hi[2] - lo[2])``) is False. Raises ``ValueError`` naming the rows on
    non-finite input.
    """
    h, m = halo, multiple
    win = [window(lo[a], hi[a], shape[a], h, m) for a in range(3)]
    tiles = [
        axis_tiles(lo[a] + h, hi[a] + h, *win[a], core=core[a], halo=h, multiple=m)
        for a in range(3)
    ]
    # in-slice padded index maps, shared by every slab
    idx = [None] + [reflect_index(np.arange(*win[a]) - h, shape[a]) for a in (1, 2)]
    src_lo = [None] + [int(idx[a].min()) for a in (1, 2)]
    src_hi = [None] + [int(idx[a].max()) + 1 for a in (1, 2)]
    w12 = [t1.weight[:, None] * t2.weight[None, :] for t1 in tiles[1] for t2 in tiles[2]]
    pairs = [(t1, t2) for t1 in tiles[1] for t2 in tiles[2]]
    n1, n2 = hi[1] - lo[1], hi[2] - lo[2]

    carry = None  # finished-in-part rows shared with the next slab, from carry_lo (padded)
    carry_lo = 0
    for k, t0 in enumerate(tiles[0]):
        rows = reflect_index(np.arange(t0.in_lo, t0.in_hi) - h, shape[0])
        r_lo, r_hi = int(rows.min()), int(rows.max()) + 1
        raw = np.asarray(
            read((slice(r_lo, r_hi), slice(src_lo[1], src_hi[1]), slice(src_lo[2], src_hi[2])))
        )
        _check_finite(raw, r_lo)
        x = raw[np.ix_(rows - r_lo, idx[1] - src_lo[1], idx[2] - src_lo[2])]
        x = x.astype(np.float32, copy=False)
        x /= np.float32(scale)
        last = k == len(tiles[0]) - 1
        done_hi = t0.out_hi if last else tiles[0][k + 1].out_lo
        n_done = done_hi - t0.out_lo  # rows finished after this slab
        r0 = t0.out_lo - h  # their first original row
        keep = None  # input voxels outside the field of view, passed through
        if fov_mask is not None:
            src = raw[r0 - r_lo : r0 - r_lo + n_done, lo[1] - src_lo[1] : hi[1] - src_lo[1]]
            keep = src[:, :, lo[2] - src_lo[2] : hi[2] - src_lo[2]][:, ~fov_mask]
        del raw

        acc = np.zeros((t0.out_hi - t0.out_lo, n1, n2), dtype=np.float32)
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = np.stack(
                [
                    x[
                        :,
                        t1.in_lo - win[1][0] : t1.in_hi - win[1][0],
                        t2.in_lo - win[2][0] : t2.in_hi - win[2][0],
                    ]
                    for t1, t2 in chunk
                ]
            )
            y = predict(batch)
            for j, (t1, t2) in enumerate(chunk):
                part = y[
                    j,
                    t0.out_lo - t0.in_lo : t0.out_hi - t0.in_lo,
                    t1.out_lo - t1.in_lo : t1.out_hi - t1.in_lo,
                    t2.out_lo - t2.in_lo : t2.out_hi - t2.in_lo,
                ]
                wgt = w12[start + j][None] * t0.weight[:, None, None]
                acc[
                    :,
                    t1.out_lo - (lo[1] + h) : t1.out_hi - (lo[1] + h),
                    t2.out_lo - (lo[2] + h) : t2.out_hi - (lo[2] + h),
                ] += part * wgt
            del batch, y
            if on_tiles is not None:
                on_tiles(len(chunk))
        del x
        if carry is not None:
            acc[carry_lo - t0.out_lo : carry_lo - t0.out_lo + carry.shape[0]] += carry
        block = acc[:n_done]
        block *= np.float32(scale)
        out = block.astype(out_dtype, copy=False)
        if keep is not None:
            out[:, ~fov_mask] = keep
        write(r0, r0 + n_done, out)
        del out, block, keep
        carry = None if last else acc[n_done:].copy()
        carry_lo = done_hi
        del acc


def _check_finite(raw: np.ndarray, row0: int) -> None:
    if raw.dtype.kind != "f":
        return
    finite = np.isfinite(raw)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(axis=1)) + row0
    first, n_bad = int(bad_rows[0]), len(bad_rows)
    raise ValueError(
        f"the input volume holds NaN or inf values in row {first} "
        f"({n_bad} bad row(s) among rows {row0}:{row0 + raw.shape[0]} read for this slab); "
        "remove or replace them (for example with numpy.nan_to_num) first"
    )
