"""Atoms in a reconstructed volume: columns found slice by slice, linked across slices.

In an atomic-resolution tomogram every atom is a blob a few voxels across, so it shows as a
"column" in each of the few slices it crosses. :func:`locate_atoms` runs
:func:`atomseg.locate_stack` on every slice along one axis (each first averaged with its
neighbours along the axis) and :func:`link_frames` joins the detections of one atom in adjacent
slices into a chain (mutual nearest neighbours, at most ``max_shift_px`` apart in the plane),
splits a chain where its intensity dips between two maxima (two atoms stacked along the axis
whose blobs touch) and drops chains shorter than ``min_frames`` (a blob of noise seen in one
slice); atoms far fainter than the brightest are dropped, and each is moved to the sub-voxel
peak of the volume near it. One row per atom, its position in the volume's own index order
(``plane``, ``row``, ``col``: ``volume[plane, row, col]``, whatever axis was sliced).

On simulated tomograms of isolated Gaussian atoms this does as well as plain 3D peak finding
with the same peak fit, not better (``benchmarks/bench_atomseg_volume.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

__all__ = ["ATOM_COLUMNS", "link_frames", "locate_atoms"]

#: the columns of an atom table (plus ``*_angstrom`` when the voxel size is known)
ATOM_COLUMNS = ["plane", "row", "col", "score", "intensity", "n_frames"]


def _links(table: pd.DataFrame, max_shift_px: float) -> np.ndarray:
    """``nxt[i]``: the detection in the next frame that ``i`` is linked to, or -1."""
    frame = table["frame"].to_numpy()
    pos = table[["row", "col"]].to_numpy(float)
    nxt = np.full(len(table), -1)
    by_frame = {f: np.flatnonzero(frame == f) for f in np.unique(frame)}
    for f, here in by_frame.items():
        there = by_frame.get(f + 1)
        if there is None:
            continue
        d_fwd, j_fwd = cKDTree(pos[there]).query(pos[here])
        _, j_back = cKDTree(pos[here]).query(pos[there])
        mutual = (j_back[j_fwd] == np.arange(len(here))) & (d_fwd <= max_shift_px)
        nxt[here[mutual]] = there[j_fwd[mutual]]
    return nxt


def _chains(nxt: np.ndarray) -> list[np.ndarray]:
    """Follow the links from every detection that no other links to."""
    has_prev = np.zeros(len(nxt), bool)
    has_prev[nxt[nxt >= 0]] = True
    chains = []
    for start in np.flatnonzero(~has_prev):
        chain = [start]
        while nxt[chain[-1]] >= 0:
            chain.append(nxt[chain[-1]])
        chains.append(np.asarray(chain))
    return chains


def _split_at_dips(chain: np.ndarray, level: np.ndarray, dip: float) -> list:
    """Cut a chain where its level falls below ``dip`` times the lower of the maxima beside it.

    Returns (part, whether the chain was cut) pairs."""
    v = level[chain]
    n = len(v)
    peaks = [
        k for k in range(n) if (k == 0 or v[k] >= v[k - 1]) and (k == n - 1 or v[k] > v[k + 1])
    ]
    cuts, peak = [], peaks[0]
    for nxt in peaks[1:]:
        low = peak + int(np.argmin(v[peak : nxt + 1]))
        if v[low] < dip * min(v[peak], v[nxt]):
            cuts.append(low)  # the lowest frame starts the next part
            peak = nxt
        elif v[nxt] > v[peak]:
            peak = nxt
    parts = np.split(chain, cuts)
    return [(part, len(parts) > 1) for part in parts]


def _centre(values: np.ndarray, level: np.ndarray, cut: bool) -> np.ndarray:
    """(frame, row, col) of one chain: the level-weighted mean over it, or, for a part of a
    chain cut where a stacked neighbour begins (``cut``), over the frames symmetric about its
    brightest one, so that the missing side does not pull it."""
    near = slice(None)
    if cut:
        k = int(np.argmax(level))
        h = min(k, len(level) - 1 - k)
        near = slice(k - h, k + h + 1)
    w = level[near] / level[near].sum()
    return w @ values[near]


def link_frames(
    table: pd.DataFrame,
    *,
    max_shift_px: float,
    min_frames: int = 3,
    dip: float = 0.8,
) -> pd.DataFrame:
    """Join the per-frame detections of a stack of slices into one row per object.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`atomseg.locate_stack` table: ``frame``, ``row``, ``col``, ``score``,
        ``intensity``.
    max_shift_px : float
        Largest in-plane distance (pixels) between the detections of one object in adjacent
        frames; they must also be each other's nearest neighbour.
    min_frames : int
        Chains seen in fewer frames are dropped (noise).
    dip : float
        A chain is cut where its intensity (above the table's lowest) falls below ``dip``
        times the lower of the maxima on either side: two objects stacked along the axis.

    Returns
    -------
    pandas.DataFrame
        ``frame``, ``row``, ``col`` (sub-frame and sub-pixel: intensity-weighted means over the
        chain; for a chain cut at a dip, over the frames symmetric about its brightest one),
        ``score`` and ``intensity`` (their maxima over the chain), ``n_frames``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> f = np.arange(10)
    >>> level = np.exp(-((f - 2.2) ** 2) / 2) + np.exp(-((f - 6.8) ** 2) / 2)  # atoms at 2.2, 6.8
    >>> t = pd.DataFrame({"frame": f, "row": 20.0, "col": 30.0, "score": 0.9, "intensity": level})
    >>> linked = link_frames(t, max_shift_px=2.0)
    >>> linked["frame"].round(1).tolist(), linked["n_frames"].tolist()
    ([2.1, 6.8], [4, 6])
    """
    if not np.isfinite(max_shift_px) or max_shift_px <= 0:
        raise ValueError(f"max_shift_px must be positive, got {max_shift_px}")
    if int(min_frames) < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    missing = {"frame", "row", "col", "score", "intensity"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}")
    columns = ["frame", "row", "col", "score", "intensity", "n_frames"]
    if len(table) == 0:
        return pd.DataFrame(columns=columns, dtype=float)
    table = table.reset_index(drop=True)
    intensity = table["intensity"].to_numpy(float)
    level = intensity - intensity.min()  # above the faintest detection: weights and dips
    level = level + 1e-6 * max(level.max(), 1e-12)  # a chain of equal levels still weighs
    chains = []
    for chain in _chains(_links(table, float(max_shift_px))):
        chains.extend(_split_at_dips(chain, level, float(dip)))
    chains = [(c, cut) for c, cut in chains if len(c) >= int(min_frames)]
    if not chains:
        return pd.DataFrame(columns=columns, dtype=float)
    rows = []
    values = table[["frame", "row", "col"]].to_numpy(float)
    score = table["score"].to_numpy(float)
    for c, cut in chains:
        centre = _centre(values[c], level[c], cut)
        rows.append((*centre, score[c].max(), intensity[c].max(), len(c)))
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["frame", "row", "col"], ignore_index=True)


class _AxisSmoothed:
    """A 3-D array-like whose slices along ``axis`` are Gaussian-weighted means of the
    volume's neighbouring slices (sigma ``sigma_px``, edges repeated), read slice by slice so
    that an HDF5 dataset or memory map is never loaded whole; the slices of the last window
    are kept, so that in-order access reads each slice once."""

    def __init__(self, volume, axis: int, sigma_px: float):
        self.volume, self.axis, self.shape = volume, axis, tuple(volume.shape)
        reach = max(1, int(np.ceil(3 * sigma_px)))
        self.offsets = np.arange(-reach, reach + 1)
        w = np.exp(-0.5 * (self.offsets / sigma_px) ** 2)
        self.weights = w / w.sum()
        self._kept: dict = {}  # (slice index, the other axes' index) -> slice

    def __getitem__(self, index):
        index = list(index)
        i, n = int(index[self.axis]), self.shape[self.axis]
        rest = repr(index[: self.axis] + index[self.axis + 1 :])
        window = {}
        for k in self.offsets:
            j = min(max(i + k, 0), n - 1)
            if (j, rest) not in window:
                index[self.axis] = j
                frame = self._kept.get((j, rest))
                window[j, rest] = (
                    np.asarray(self.volume[tuple(index)], np.float64) if frame is None else frame
                )
        self._kept = window
        return sum(w * window[min(max(i + k, 0), n - 1), rest]
                   for k, w in zip(self.offsets, self.weights))  # fmt: skip


def _refine_3d(volume, positions: np.ndarray, sigma_px: float = 1.0) -> np.ndarray:
    """Each position moved to the peak of the volume smoothed by ``sigma_px`` near it: the
    brightest voxel within one voxel, then a parabola through the log values either side of
    it along each axis (exact for a Gaussian blob). A box of ±(3 sigma + 2) voxels is read per
    atom, so an HDF5 dataset is never loaded whole."""
    from scipy import ndimage

    from atomseg.detect.hough import parabola_vertex

    shape = np.asarray(volume.shape)
    half = int(np.ceil(3 * sigma_px)) + 2
    out = np.asarray(positions, float).copy()
    for n, p in enumerate(out):
        k = np.round(p).astype(int)
        lo, hi = np.maximum(k - half, 0), np.minimum(k + half + 1, shape)
        if np.any(hi - lo < 3):
            continue
        box = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], np.float64)
        box = ndimage.gaussian_filter(box, sigma_px, mode="nearest")
        c = k - lo
        near = tuple(slice(max(x - 1, 0), x + 2) for x in c)
        j = np.array(np.unravel_index(np.argmax(box[near]), box[near].shape))
        c = j + np.array([max(x - 1, 0) for x in c])
        if np.any(c < 1) or np.any(c > np.array(box.shape) - 2):
            continue
        logs = np.log(np.maximum(box - box.min(), 1e-12))
        steps = np.eye(3, dtype=int)
        fm, fp = (logs[tuple((c + sign * steps).T)] for sign in (-1, 1))
        out[n] = c + parabola_vertex(fm, logs[tuple(c)], fp) + lo
    return out


def locate_atoms(
    volume,
    *,
    voxel_size_angstrom: float | None = None,
    axis: int = 0,
    min_frames: int = 3,
    max_shift_angstrom: float = 0.8,
    smooth_angstrom: float = 0.35,
    min_relative_intensity: float = 0.05,
    refine: bool = True,
    model: Any = "default",
    threshold: float | None = None,
    batch_size: int = 4,
    device: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """Find the atoms of an atomic-resolution tomogram: one row per atom, 3D and sub-voxel.

    Every slice along ``axis`` goes through :func:`atomseg.locate_stack` and the detections
    are linked across slices (:func:`link_frames`; module docstring).

    Parameters
    ----------
    volume : array-like, shape (n0, n1, n2)
        Reconstructed volume (ndarray, h5py dataset or memory map; atoms bright), e.g. what
        ``tomopy.recon`` or :func:`tomocnn.reconstruct` returns.
    voxel_size_angstrom : float, optional
        Voxel size; slices are resampled to the model's pixel size. Without it one scale is
        searched for on the middle slice (:func:`atomseg.infer.search_pixel_size`) and used
        for every slice.
    axis : int
        The axis to slice along (0, 1 or 2); 0 (across the tilt axis) is the default and was
        the best at low dose in ``benchmarks/bench_atomseg_volume.py``; the beam direction at
        zero tilt (axis 1 in TomoPy's layout, blurred by the missing wedge) the weakest.
    min_frames : int
        An atom must be seen in at least this many adjacent slices (a blob of noise is seen in
        one or two). An atom about 1 Å across at 0.35 Å voxels crosses 3 to 4.
    max_shift_angstrom : float
        Largest in-plane step between the detections of one atom in adjacent slices (needs
        ``voxel_size_angstrom``; otherwise 2 px).
    smooth_angstrom : float
        Each slice is first the Gaussian-weighted mean of its neighbours along ``axis`` (sigma
        in Å; 1 voxel without ``voxel_size_angstrom``; 0: off): an atom crosses several slices,
        so this pools its signal and keeps atoms 2 Å apart along the axis apart. Measured in
        ``benchmarks/bench_atomseg_volume.py``: at 1e2 e/Å² per projection F1 0.941 -> 0.985.
    min_relative_intensity : float
        Atoms whose intensity above the volume's background (its median) is below this share
        of the brightest atoms' (the 95th percentile) are dropped: in nearly empty slices,
        normalised one by one, the missing wedge's streaks outside the object look like faint
        atoms. The default 0.05 keeps atoms down to a twentieth of the heaviest one's signal
        (Fe beside Pt in HAADF: ~0.15); 0 keeps all.
    refine : bool
        Move each atom to the sub-voxel peak of the volume (smoothed by one voxel) near it: a
        parabola through the log values either side of the brightest voxel, along each axis.
        False: the intensity-weighted mean of its detections.

    The other parameters are those of :func:`atomseg.locate_stack`.

    Returns
    -------
    pandas.DataFrame
        ``plane``, ``row``, ``col``: the atom's position in voxels, in the volume's index order
        (``volume[plane, row, col]``) whatever the axis; ``score``, ``intensity`` (maxima over
        its slices), ``n_frames``; and ``plane_angstrom``, ``row_angstrom``, ``col_angstrom``
        when the voxel size is given.

    Raises
    ------
    ValueError
        If the volume is not 3-D, a slice is bad (named), or a parameter is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.models import ColumnModel
    >>> from atomseg.models.unet import UNet
    >>> tiny = ColumnModel(UNet(4, 3), {"pixel_size_angstrom": 0.15})
    >>> volume = np.random.default_rng(0).random((8, 32, 32))
    >>> list(locate_atoms(volume, voxel_size_angstrom=0.15, model=tiny).columns)[:6]
    ['plane', 'row', 'col', 'score', 'intensity', 'n_frames']
    """
    from atomseg.infer.columns import locate_stack

    shape = getattr(volume, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"volume must be 3-D, got shape {shape}")
    if axis not in (0, 1, 2, -1, -2, -3):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    axis = axis % 3
    if not np.isfinite(smooth_angstrom) or smooth_angstrom < 0:
        raise ValueError(f"smooth_angstrom must be >= 0, got {smooth_angstrom}")
    if not 0 <= min_relative_intensity < 1:
        raise ValueError(f"min_relative_intensity must be in [0, 1), got {min_relative_intensity}")
    raw = volume
    if voxel_size_angstrom is not None:
        v = float(voxel_size_angstrom)
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"voxel_size_angstrom must be positive, got {voxel_size_angstrom}")
        max_shift_px = float(max_shift_angstrom) / v
        sigma_px = float(smooth_angstrom) / v
    else:
        max_shift_px = 2.0
        sigma_px = 1.0 if smooth_angstrom > 0 else 0.0
    if sigma_px > 0:
        volume = _AxisSmoothed(volume, axis, sigma_px)
    table = locate_stack(
        volume,
        axis=axis,
        pixel_size_angstrom=voxel_size_angstrom,
        model=model,
        threshold=threshold,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    linked = link_frames(table, max_shift_px=max_shift_px, min_frames=min_frames)
    if min_relative_intensity > 0 and len(linked):
        step = max(1, int(round((np.prod(shape) / 1e6) ** (1 / 3))))  # ~1e6 voxels suffice
        background = float(np.median(np.asarray(raw[::step, ::step, ::step], np.float64)))
        above = linked["intensity"].to_numpy(float) - background
        linked = linked[above >= min_relative_intensity * np.percentile(above, 95)]
    # (frame, row, col) of slices along `axis` -> the volume's own index order
    others = [a for a in range(3) if a != axis]
    coords = np.empty((len(linked), 3))
    coords[:, axis] = linked["frame"].to_numpy(float)
    coords[:, others[0]] = linked["row"].to_numpy(float)
    coords[:, others[1]] = linked["col"].to_numpy(float)
    if refine and len(coords):
        coords = _refine_3d(raw, coords)
    out = pd.DataFrame(coords, columns=["plane", "row", "col"])
    for name in ("score", "intensity", "n_frames"):
        out[name] = linked[name].to_numpy()
    out["n_frames"] = out["n_frames"].astype(int)
    if voxel_size_angstrom is not None:
        for name in ("plane", "row", "col"):
            out[f"{name}_angstrom"] = out[name] * float(voxel_size_angstrom)
    return out.sort_values(["plane", "row", "col"], ignore_index=True)
