"""Tilt-series alignment by common lines, centre of mass and projection matching.

The home of ``tomocnn.align``.

The model of a recorded projection ``i``: the aligned projection ``A_i`` (rows along the tilt
axis, the axis through the middle column) seen through an in-plane rotation by the axis angle
``phi`` and a shift ``s_i``::

    A_i(p) = raw_i(R(phi) (p - o - s_i) + o_raw),      R(phi) = [[cos, -sin], [sin, cos]]

with ``p = (row, col)``, ``o`` and ``o_raw`` the middles of the two images, and ``phi`` the
angle of the tilt axis measured from the raw image's row axis (axis 1 of the stack, downwards
on screen) towards its column axis. ``s_i = (along, across)`` the axis, in pixels.

How each unknown is found (measured in ``benchmarks/bench_tomocnn_align.py``):

* the **axis angle** from common lines: summed across the axis, every projection gives the
  projection of the object onto the axis, the same at every tilt only when the angle is right
  (off by ``d``, a feature ``u`` pixels from the axis moves along it by ``u sin d``, differently
  at each tilt). The angle of least disagreement between the profiles: a 5° grid over the half
  circle (or ±20° of a guess) on 64-pixel copies, then grids of 1°, 0.25° and 0.05° and a
  least-squares parabola on the working copies. A series whose best angle explains the
  profiles little better than the median angle is noise, and refused;
* **shifts along the axis** from the common line: the sum of each projection across the axis
  is the projection of the object onto the axis, the same at every tilt, so these profiles are
  cross-correlated with their mean (scikit-image's ``phase_cross_correlation``);
* **shifts across the axis and the centre** from the centre of mass: the projected centre of
  mass of an object moves as ``c0 + a cos(theta) + b sin(theta)`` (``c0``: the axis offset);
  what the fit leaves over is drift and jitter;
* then **projection matching**: every projection is cross-correlated with the reprojection of
  the current reconstruction, for a few rounds, the across-axis part of each update kept
  orthogonal to ``1, cos(theta), sin(theta)`` (a moving object or the centre, not a
  misalignment): the centre stays the centre of mass's, which the benchmark finds within
  0.01 px. (A last search of the centre by the reprojection residual was measured and dropped:
  the residual of linearly interpolated images is lowest half a pixel off, where they are
  blurred most.)

The search runs on copies smoothed and sampled at most 128 pixels a side; shifts are in pixels
of the input.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

__all__ = ["align", "align_file", "subtract_background", "vacuum_levels"]

#: the working images are sampled at most this many pixels a side
_WORK_SIZE = 128
#: the coarse axis search runs on images at most this many pixels a side
_COARSE_SIZE = 64
#: SIRT iterations of the quick reconstructions that score a candidate
_SCORE_ITERS = 20
#: rounds of projection matching (stopped earlier when every update is below 0.05 px)
_MATCH_ROUNDS = 6
#: a series whose best axis angle leaves more than this share of the median candidate's
#: common-line residual has no tilt axis to find: pure noise leaves 0.77-0.79, ETSpy's real
#: needles (HAADF.mrc, HAADF.dm3) 0.32 and 0.31, simulated particles at a dose of 1e2 e/A²
#: 0.04-0.19 (measured on 64-pixel copies, as the coarse search runs)
_NOISE_RATIO = 0.6


def subtract_background(projections, *, fraction: float = 0.2) -> np.ndarray:
    """Subtract the vacuum level of each projection of an ADF/HAADF tilt series.

    The level is the median of the darkest ``fraction`` of the projection's pixels: vacuum,
    where a HAADF signal is zero but a detector adds an offset (real series often read
    thousands of counts, or negative values, there). After it, the projections are line
    integrals of the specimen up to a scale, as reconstruction assumes.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        The tilt series.
    fraction : float
        Share of each projection's pixels taken as vacuum, in (0, 1). Lower it for a specimen
        that fills most of the field.

    Returns
    -------
    ndarray, shape (n_angles, n_rows, n_cols), float32

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.prep import subtract_background
    >>> p = np.full((2, 8, 8), 1000.0, np.float32)
    >>> p[:, 3:5, 3:5] += 50
    >>> out = subtract_background(p)
    >>> float(out[0, 0, 0]), float(out[0, 4, 4])
    (0.0, 50.0)
    """
    proj = _check_stack(projections)
    return proj - vacuum_levels(proj, fraction=fraction)[:, None, None]


def vacuum_levels(projections, *, fraction: float = 0.2) -> np.ndarray:
    """The vacuum level of each projection: the median of its darkest ``fraction`` of pixels.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        The tilt series.
    fraction : float
        Share of each projection's pixels taken as vacuum, in (0, 1).

    Returns
    -------
    ndarray, shape (n_angles,), float32

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.prep import vacuum_levels
    >>> p = np.full((2, 8, 8), 1000.0, np.float32)
    >>> p[:, 3:5, 3:5] += 50
    >>> vacuum_levels(p).tolist()
    [1000.0, 1000.0]
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    proj = np.asarray(projections)
    flat = np.sort(proj.reshape(proj.shape[0], -1), axis=1)
    dark = flat[:, : max(1, int(fraction * flat.shape[1]))]
    return np.median(dark, axis=1).astype(np.float32)


def align(
    projections,
    theta,
    *,
    axis_angle_deg: float | None = None,
    search_axis: bool = True,
    background: str | None = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Align a tilt series: rotate its tilt axis onto the rows, remove drift, centre the axis.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        The recorded series as read (:func:`tomocnn.io.read_tilt_series`), in any in-plane
        orientation: the tilt axis may lie at any angle in the image.
    theta : ndarray, shape (n_angles,)
        Tilt angles, radians.
    axis_angle_deg : float, optional
        A first guess of the axis angle (degrees from the image's row axis towards its column
        axis; 90 for a horizontal axis): the search then looks within ±20° of it. With
        ``search_axis=False`` it is taken as it is. Default: searched over the half circle.
    search_axis : bool
        Search for the axis angle (default) or keep ``axis_angle_deg`` (0 when None).
    background : {"auto", None}
        ``"auto"``: subtract each projection's vacuum level first
        (:func:`subtract_background`); None: the data are line integrals already.
    progress : bool
        Show a progress bar.

    Returns
    -------
    aligned : ndarray, shape (n_angles, n_rows', n_cols'), float32
        The projections with the tilt axis along axis 1 through the middle of the columns:
        reconstruct them with the default centre (``center=None``, TomoPy's ``n_cols / 2``).
        ``(n_rows', n_cols')`` is ``(n_cols, n_rows)`` when the axis lay closer to the columns.
    theta : ndarray, shape (n_angles,)
        The angles, unchanged.
    report : dict
        ``axis_angle_deg``; ``shifts`` ``(n_angles, 2)``, pixels along and across the axis
        applied to each rotated projection; ``center_offset_px``, where the axis lay across it
        from the middle of the detector before the shift; ``center``, TomoPy's ``center`` of
        the aligned series (``n_cols' / 2``); ``background`` per projection (or None);
        ``residual_before`` and ``residual_after``, the relative reprojection residual of a
        quick SIRT of the series as given and as aligned (at the working resolution).

    Raises
    ------
    ValueError
        Not a 3-D stack, NaN or inf, fewer than 5 projections, angles not matching, or no tilt
        axis to be found (a series of noise: give ``axis_angle_deg`` with
        ``search_axis=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.prep import align
    >>> from tomocnn.sim import project, tilt_angles
    >>> vol = np.zeros((24, 24, 24), np.float32)
    >>> vol[6:18, 8:14, 9:17] = 1
    >>> vol[10:14, 14:18, 5:9] = 2
    >>> theta = tilt_angles(60, n=31)
    >>> proj = project(vol, theta)
    >>> aligned, theta2, report = align(proj, theta, axis_angle_deg=0, search_axis=False)
    >>> aligned.shape, bool(np.abs(report["shifts"]).max() < 0.6)
    ((31, 24, 24), True)
    """
    from tqdm.auto import tqdm

    raw = _check_stack(projections)
    theta = _check_angles(theta, raw.shape[0])
    if background not in ("auto", None):
        raise ValueError(f"background must be 'auto' or None, got {background!r}")
    levels = None
    if background == "auto":
        levels = vacuum_levels(raw)
        raw = raw - levels[:, None, None]
    if axis_angle_deg is not None:
        axis_angle_deg = float(axis_angle_deg)
        if not math.isfinite(axis_angle_deg):
            raise ValueError(f"axis_angle_deg must be finite, got {axis_angle_deg}")
    steps = 4 if search_axis else 2
    with tqdm(total=steps, desc="tomocnn align", disable=not progress) as bar:
        work = _Work(raw, theta, _WORK_SIZE)
        before = work.residual(_wrap(axis_angle_deg or 0.0), work.zero_shifts())
        if search_axis:
            bar.set_postfix_str("axis angle (coarse)")
            coarse = _Work(raw, theta, _COARSE_SIZE)
            phi = coarse.coarse_axis(axis_angle_deg)
            bar.update()
            bar.set_postfix_str("axis angle (fine)")
            phi = work.fine_axis(phi)
            bar.update()
        else:
            phi = _wrap(axis_angle_deg or 0.0)
        bar.set_postfix_str("projection matching")
        shifts = work.match(phi, work.initial_shifts(phi))
        bar.update()
        after = work.residual(phi, shifts)
        bar.update()
    out_shape = _out_shape(raw.shape[1:], phi)
    aligned = _transform(raw, phi, shifts, out_shape, scale=1.0, order=3)
    offset = float(-shifts[:, 1].mean())
    report = {
        "axis_angle_deg": float(phi),
        "shifts": shifts.astype(np.float64),
        "center_offset_px": offset,
        "center": out_shape[1] / 2.0,
        "background": None if levels is None else levels.astype(np.float64),
        "residual_before": float(before),
        "residual_after": float(after),
    }
    return aligned, theta.copy(), report


def align_file(
    input,
    output,
    *,
    theta=None,
    tilt_range_deg: tuple[float, float] | None = None,
    tilt_step_deg: float | None = None,
    axis_angle_deg: float | None = None,
    search_axis: bool = True,
    progress: bool = True,
) -> dict:
    """Read a tilt series file, align it, write Data Exchange HDF5 (``tomocnn align``).

    The output holds ``/exchange/data`` (aligned, float32), ``/exchange/theta`` (degrees), and
    the alignment: ``/exchange/shifts`` ``(n_angles, 2)`` (pixels along and across the axis)
    with the axis angle, centre offset, TomoPy centre and residuals as attributes of
    ``/exchange/data``. Written under a temporary name and renamed; never onto the input.

    Parameters
    ----------
    input : str or path
        Any tilt series :func:`tomocnn.io.read_tilt_series` reads.
    output : str or path
        Output ``.h5`` file.
    theta, tilt_range_deg, tilt_step_deg
        Angles, as for :func:`tomocnn.io.read_tilt_series` (when the file has none).
    axis_angle_deg, search_axis, progress
        As for :func:`align`.

    Returns
    -------
    dict
        The report of :func:`align`.

    Examples
    --------
    >>> import os, tempfile
    >>> import h5py, numpy as np
    >>> from tomocnn.prep import align_file
    >>> from tomocnn.io import write_dataexchange
    >>> from tomocnn.sim import project, tilt_angles
    >>> d = tempfile.mkdtemp()
    >>> vol = np.zeros((16, 16, 16), np.float32)
    >>> vol[4:12, 5:10, 6:11] = 1
    >>> theta = tilt_angles(60, n=21)
    >>> write_dataexchange(os.path.join(d, "t.h5"), project(vol, theta), theta)
    >>> rep = align_file(os.path.join(d, "t.h5"), os.path.join(d, "a.h5"),
    ...                  axis_angle_deg=0, search_axis=False, progress=False)
    >>> with h5py.File(os.path.join(d, "a.h5")) as f:
    ...     f["/exchange/data"].shape, f["/exchange/shifts"].shape
    ((21, 16, 16), (21, 2))
    """
    import h5py

    from tomocnn import __version__
    from tomocnn.io import read_tilt_series
    from tomocnn.io._files import atomic_path, check_output_path, split_spec
    from tomocnn.io.dataexchange import _require_hdf5

    path = split_spec(output)[0]
    _require_hdf5(path)
    check_output_path(path, input_path=split_spec(input)[0])  # before any work
    proj, theta = read_tilt_series(
        input, theta=theta, tilt_range_deg=tilt_range_deg, tilt_step_deg=tilt_step_deg
    )
    aligned, theta, report = align(
        proj, theta, axis_angle_deg=axis_angle_deg, search_axis=search_axis, progress=progress
    )
    with atomic_path(path, input_path=split_spec(input)[0]) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("implements", data="exchange")
        d = f.create_dataset("/exchange/data", data=aligned)
        d.attrs["axes"] = "theta:y:x"
        f.create_dataset("/exchange/theta", data=np.rad2deg(theta)).attrs["units"] = "degrees"
        f.create_dataset("/exchange/shifts", data=report["shifts"])
        f["/exchange/shifts"].attrs["axes"] = "along_axis:across_axis (pixels)"
        for key in ("axis_angle_deg", "center_offset_px", "center"):
            d.attrs[key] = report[key]
        d.attrs["reprojection_residual_before"] = report["residual_before"]
        d.attrs["reprojection_residual_after"] = report["residual_after"]
        d.attrs["source"] = os.fspath(input)
        d.attrs["software"] = f"tomocnn {__version__}"
    return report


# --- the working copy and its scores ---------------------------------------------------------


class _Work:
    """The series smoothed and sampled at most ``size`` pixels a side, with its scores."""

    def __init__(self, raw: np.ndarray, theta: np.ndarray, size: int):
        from scipy import ndimage

        self.theta = theta
        self.scale = max(1.0, max(raw.shape[1:]) / size)
        sigma = 0.5 * self.scale if self.scale > 1 else 0.0
        self.raw = (
            np.stack([ndimage.gaussian_filter(p, sigma) for p in raw]) if sigma else raw
        ).astype(np.float32)
        self.full_shape = raw.shape[1:]
        self.cos, self.sin = np.cos(theta), np.sin(theta)
        self._basis = np.stack([np.ones_like(theta), self.cos, self.sin], axis=1)

    def zero_shifts(self) -> np.ndarray:
        return np.zeros((self.theta.size, 2))

    def images(self, phi: float, shifts: np.ndarray) -> np.ndarray:
        full = _out_shape(self.full_shape, phi)
        shape = tuple(max(8, int(round(n / self.scale))) for n in full)
        return _transform(self.raw, phi, shifts, shape, scale=self.scale, order=1)

    def residual(self, phi: float, shifts: np.ndarray) -> float:
        return _reprojection(self.images(phi, shifts), self.theta)[0]

    def initial_shifts(self, phi: float) -> np.ndarray:
        """Shifts along the axis from the common line, across it from the centre of mass."""
        img = self.images(phi, self.zero_shifts())
        shifts = np.zeros((img.shape[0], 2))
        shifts[:, 0] = _profile_shifts(img.sum(axis=2)) * self.scale
        mass = np.clip(img, 0, None).sum(axis=1)  # (n, cols)
        total = mass.sum(axis=1)
        cols = np.arange(img.shape[2]) - (img.shape[2] - 1) / 2
        com = (mass * cols).sum(axis=1) / np.where(total > 0, total, 1)
        coef, *_ = np.linalg.lstsq(self._basis, com, rcond=None)
        jitter = com - self._basis[:, 1:] @ coef[1:]  # the axis offset c0 is kept
        shifts[:, 1] = -jitter * self.scale
        return shifts

    def common_line_residual(self, phi: float) -> float:
        """How far the profiles along the axis differ between projections, once aligned.

        Summed across the axis, every projection gives the projection of the object onto the
        axis, the same at every tilt when ``phi`` is the axis angle; off by ``d`` degrees, a
        feature at ``u`` pixels from the axis moves along it by ``u sin(d)``, differently at
        each tilt. Relative squared difference from the mean profile.
        """
        from scipy import ndimage

        profiles = self.images(phi, self.zero_shifts()).sum(axis=2)
        shifts = _profile_shifts(profiles)
        moved = np.stack(
            [ndimage.shift(p, s, order=3, mode="nearest") for p, s in zip(profiles, shifts)]
        )
        den = float((moved**2).sum())
        return float(((moved - moved.mean(axis=0)) ** 2).sum()) / (den if den > 0 else 1.0)

    def coarse_axis(self, guess: float | None) -> float:
        """The axis angle of least common-line residual on a grid (±20° of a guess, else all)."""
        grid = (
            np.arange(-90.0, 90.0, 5.0)
            if guess is None
            else _wrap(guess) + np.arange(-20.0, 20.01, 2.5)
        )
        scores = np.array([self.common_line_residual(p) for p in grid])
        if scores.min() > _NOISE_RATIO * np.median(scores):
            raise ValueError(
                "could not find the tilt axis: the projections agree no better along one "
                "in-plane direction than along any other (is this a tilt series of a specimen, "
                "not noise?); give the axis angle (axis_angle_deg, --axis-angle) and turn the "
                "search off (search_axis=False, --no-axis-search)"
            )
        return float(_wrap(grid[int(np.argmin(scores))]))

    def fine_axis(self, phi: float) -> float:
        """Refine the axis angle: grids of 1°, 0.25° and 0.05° around the best, then one
        least-squares parabola through every score within 0.75° of the best (the residual of a
        nearly round particle is shallow: one noisy point must not decide)."""
        seen: dict[float, float] = {}
        for step in (1.0, 0.25, 0.05):
            grid = phi + step * np.arange(-3, 4)
            for p in grid:
                seen.setdefault(round(float(p), 6), self.common_line_residual(float(p)))
            phi = min(seen, key=seen.get)
        angles = np.array(list(seen))
        scores = np.array([seen[a] for a in angles])
        near = np.abs(angles - phi) <= 0.75
        if near.sum() >= 5:
            c2, c1, _ = np.polyfit(angles[near] - phi, scores[near], 2)
            if c2 > 0:
                phi += float(np.clip(-c1 / (2 * c2), -0.5, 0.5))
        return float(_wrap(phi))

    def match(self, phi: float, shifts: np.ndarray) -> np.ndarray:
        """Projection matching: each projection against the reprojection of the series."""
        from skimage.registration import phase_cross_correlation

        shifts = shifts.copy()
        proj_basis = self._basis @ np.linalg.pinv(self._basis)
        for _ in range(_MATCH_ROUNDS):
            img = self.images(phi, shifts)
            _, rep = _reprojection(img, self.theta)
            upd = np.array(
                [
                    phase_cross_correlation(r, p, upsample_factor=20, normalization=None)[0]
                    for r, p in zip(rep, img)
                ]
            )
            upd[:, 0] -= upd[:, 0].mean()
            upd[:, 1] -= proj_basis @ upd[:, 1]
            shifts += upd * self.scale
            if np.abs(upd).max() < 0.05:
                break
        return shifts


# --- helpers ---------------------------------------------------------------------------------


def _check_stack(projections) -> np.ndarray:
    from tomocnn.recon._checks import _check_projections

    proj = _check_projections(projections)
    if proj.shape[1] < 8 or proj.shape[2] < 8:
        raise ValueError(f"projections of at least 8x8 pixels are needed, got {proj.shape[1:]}")
    return proj


def _check_angles(theta, n: int) -> np.ndarray:
    from tomocnn.recon._checks import _check_theta

    theta = _check_theta(theta, n)
    if n < 5:
        raise ValueError(f"at least 5 projections are needed to align a series, got {n}")
    if np.abs(theta).max() > math.pi / 2 + 1e-6:
        raise ValueError(
            "theta must be tilt angles in radians within ±pi/2; got a largest |theta| of "
            f"{np.abs(theta).max():.4g}"
        )
    return theta


def _wrap(phi: float) -> float:
    """An axis angle in [-90, 90) degrees (an axis and its reverse are the same axis)."""
    return float((np.asarray(phi) + 90.0) % 180.0 - 90.0)


def _out_shape(shape, phi: float) -> tuple[int, int]:
    """The aligned image shape: rows along the axis (swapped when it is nearer the columns)."""
    return tuple(shape) if abs(_wrap(phi)) <= 45.0 else (shape[1], shape[0])


def _transform(raw, phi, shifts, out_shape, *, scale: float, order: int) -> np.ndarray:
    """``A_i(p) = raw_i(scale R(phi) (p - o) + o_raw - R(phi) s_i)`` for every projection."""
    from scipy import ndimage

    r = math.radians(phi)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    o_raw = (np.asarray(raw.shape[1:], float) - 1) / 2
    o_out = (np.asarray(out_shape, float) - 1) / 2
    out = np.empty((raw.shape[0], *out_shape), np.float32)
    for i in range(raw.shape[0]):
        offset = o_raw - rot @ (shifts[i] + scale * o_out)
        ndimage.affine_transform(
            raw[i],
            scale * rot,
            offset=offset,
            output_shape=out_shape,
            output=out[i],
            order=order,
            mode="nearest",
        )
    return out


def _profile_shifts(profiles: np.ndarray) -> np.ndarray:
    """Shifts (pixels) that bring each 1-D profile onto the mean profile."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    shifts = np.zeros(profiles.shape[0])
    for _ in range(3):
        moved = np.stack(
            [ndimage.shift(p, s, order=1, mode="nearest") for p, s in zip(profiles, shifts)]
        )
        ref = moved.mean(axis=0)
        upd = np.array(
            [
                phase_cross_correlation(ref, m, upsample_factor=20, normalization=None)[0][0]
                for m in moved
            ]
        )
        shifts += upd - upd.mean()
        if np.abs(upd).max() < 0.05:
            break
    return shifts


def _reprojection(img: np.ndarray, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """(relative residual, reprojection) of a quick non-negative SIRT of ``img``."""
    from tomocnn.recon import reconstruct
    from tomocnn.sim import project

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = reconstruct(
            img, theta, algorithm="sirt", n_iter=_SCORE_ITERS, min_constraint=0.0, backend="torch"
        )
    rep = project(rec, theta)
    den = float(np.linalg.norm(img))
    return float(np.linalg.norm(rep - img)) / (den if den > 0 else 1.0), rep
