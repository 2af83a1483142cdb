"""Tilt schemes and simulated single-axis parallel-beam tilt series."""

from __future__ import annotations

import math
import numbers

import numpy as np
import numpy.typing as npt

from tomocnn.recon._checks import _check_scalar_center, _check_theta, _check_volume
from tomocnn.sim._util import _as_rng

SCHEMES = ("uniform", "uneven", "saxton")
ORDERS = ("sequential", "dose-symmetric", "bidirectional")


def _positive(x, name, *, allow_zero=False):
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise TypeError(f"{name} must be a finite number, got {x!r}")
    if x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {x}")
    return float(x)


def _dose_symmetric(theta_sorted: np.ndarray) -> np.ndarray:
    """Hagen's dose-symmetric order: 0, then groups of two alternating sides."""
    start = int(np.argmin(np.abs(theta_sorted)))
    pos = list(range(start + 1, theta_sorted.size))
    neg = list(range(start - 1, -1, -1))
    order = [start]
    sides = [pos, neg]
    side, take = 0, 1
    while pos or neg:
        if not sides[side]:
            side = 1 - side
        for _ in range(take):
            if sides[side]:
                order.append(sides[side].pop(0))
        side, take = 1 - side, 2
    return theta_sorted[np.asarray(order)]


def tilt_angles(
    max_tilt_deg: float = 60.0,
    *,
    min_tilt_deg: float | None = None,
    n: int | None = None,
    step: float | None = None,
    scheme: str = "uniform",
    order: str = "sequential",
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Projection angles of a single-axis tilt series, in radians.

    Parameters
    ----------
    max_tilt_deg : float
        Highest tilt, degrees.
    min_tilt_deg : float, optional
        Lowest tilt, degrees; default ``-max_tilt_deg`` (a symmetric range).
    n : int, optional
        Number of angles (default 61 when ``step`` is not given either).
    step : float, optional
        Angular step in degrees (``uniform``: angles ``min, min + step, ...`` up to
        ``max_tilt_deg``; other schemes: the mean step). Give ``n`` or ``step``, not both.
    scheme : {"uniform", "uneven", "saxton"}
        ``uniform`` even steps; ``uneven`` random steps between 0.5x and 1.5x the mean (needs
        ``rng``); ``saxton`` steps proportional to ``cos(theta)`` (finer at high tilt).
    order : {"sequential", "dose-symmetric", "bidirectional"}
        Acquisition order: ``sequential`` from ``min`` to ``max``; ``dose-symmetric`` (Hagen):
        the angle nearest 0, then groups of two alternating between the positive and the
        negative side; ``bidirectional``: from 0 up to ``max``, then down from 0 to ``min``.
    rng : int or numpy.random.Generator, optional
        Random numbers for ``scheme="uneven"``.

    Returns
    -------
    theta : ndarray, shape (n_angles,)
        float32 radians, in acquisition order.

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.sim import tilt_angles
    >>> theta = tilt_angles(60, step=2)
    >>> theta.size, float(np.rad2deg(theta[0])), float(np.rad2deg(theta[-1]))
    (61, -60.0, 60.0)
    >>> np.rad2deg(tilt_angles(6, step=3, order="dose-symmetric")).round().tolist()
    [0.0, 3.0, -3.0, -6.0, 6.0]
    """
    hi = float(max_tilt_deg)
    lo = -hi if min_tilt_deg is None else float(min_tilt_deg)
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise ValueError("tilt limits must be finite numbers of degrees")
    if hi <= lo:
        raise ValueError(f"max_tilt_deg ({hi}) must be larger than min_tilt_deg ({lo})")
    if hi - lo > 180.0 + 1e-9:
        raise ValueError(f"the tilt range {lo}..{hi} deg spans more than 180 degrees")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")
    if n is not None and step is not None:
        raise ValueError("give either n or step, not both")
    if step is not None:
        step = _positive(step, "step")
        n_angles = int(math.floor((hi - lo) / step + 1e-6)) + 1
    else:
        n_angles = 61 if n is None else n
        if isinstance(n_angles, bool) or not isinstance(n_angles, numbers.Integral):
            raise TypeError(f"n must be an integer, got {n!r}")
        if n_angles < 2:
            raise ValueError(f"n must be >= 2, got {n_angles}")
    if scheme == "uniform":
        if step is not None:
            deg = lo + step * np.arange(n_angles)
        else:
            deg = np.linspace(lo, hi, n_angles)
    elif scheme == "uneven":
        gen = _as_rng(rng)
        steps = gen.uniform(0.5, 1.5, size=n_angles - 1)
        deg = lo + (hi - lo) * np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])
    else:  # saxton: even steps of the inverse Gudermannian, so d(theta) ~ cos(theta)
        if max(abs(lo), abs(hi)) >= 90.0:
            raise ValueError("the saxton scheme needs |tilt| < 90 degrees")
        u = np.linspace(
            np.arcsinh(np.tan(np.deg2rad(lo))), np.arcsinh(np.tan(np.deg2rad(hi))), n_angles
        )
        deg = np.rad2deg(np.arctan(np.sinh(u)))
    deg = np.sort(deg)
    if order == "dose-symmetric":
        deg = _dose_symmetric(deg)
    elif order == "bidirectional":
        start = int(np.argmin(np.abs(deg)))
        deg = np.concatenate([deg[start:], deg[:start][::-1]])
    return np.deg2rad(deg).astype(np.float32)


def project(
    volume: npt.ArrayLike,
    theta: npt.ArrayLike,
    *,
    center: float | None = None,
    projector: str = "linear",
    device: str | None = None,
) -> np.ndarray:
    """Noise-free parallel-beam projections of a volume (the forward model).

    Parameters
    ----------
    volume : ndarray, shape (n_rows, N, N)
        Non-negative density; rows run along the tilt axis (TomoPy's volume layout).
    theta : ndarray, shape (n_angles,)
        Angles in radians. At ``theta = 0`` the beam runs along axis 1 (the projection is
        ``volume.sum(axis=1)``); the sign of rotation is TomoPy's.
    center : float, optional
        Rotation centre in detector pixels (TomoPy's ``center``); None means ``N / 2``.
    projector : {"linear", "strip", "line"}
        ASTRA CPU projector: ``linear`` (Joseph, the one :func:`tomocnn.recon.reconstruct`
        inverts) or ``strip`` (area-weighted: use it to avoid an inverse crime).
    device : str, optional
        Torch device (default CUDA if available, else CPU).

    Returns
    -------
    projections : ndarray, shape (n_angles, n_rows, N)
        float32 line integrals (voxel value x path length in voxels).

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.sim import project
    >>> vol = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    >>> p = project(vol, np.array([0.0]))
    >>> p.shape, bool(np.allclose(p[0], vol.sum(axis=1), atol=1e-4))
    ((1, 3, 16), True)
    """
    from tomocnn.recon._torch import project_torch

    vol = _check_volume(volume)
    theta = _check_theta(theta, None)
    c = _check_scalar_center(center, vol.shape[2])
    return project_torch(vol, theta, c, projector=projector, device=device)


def _shift_images(proj: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    out = np.empty_like(proj)
    for i in range(proj.shape[0]):
        out[i] = ndimage.shift(proj[i], shifts[i], order=1, mode="nearest")
    return out


def tilt_series(
    volume: npt.ArrayLike,
    theta: npt.ArrayLike,
    *,
    center: float | None = None,
    dose_e_per_A2: float | None = None,
    pixel_size_angstrom: float = 1.0,
    read_noise: float = 0.0,
    jitter_px: float = 0.0,
    projector: str = "linear",
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate a recorded tilt series: projections, alignment jitter, shot and read noise.

    Parameters
    ----------
    volume : ndarray, shape (n_rows, N, N)
        Non-negative density (e.g. from :func:`random_phantom`).
    theta : ndarray, shape (n_angles,)
        Angles in radians, in acquisition order.
    center : float, optional
        Rotation centre in detector pixels; None means ``N / 2``.
    dose_e_per_A2 : float, optional
        Electron dose per projection, electrons per square angstrom, *as detected at the
        most strongly scattering pixel of the series*: the noise-free projections are scaled
        so that their maximum ``p_max`` corresponds to
        ``e = dose_e_per_A2 * pixel_size_angstrom**2`` electrons, counts are drawn from a
        Poisson law and scaled back, so a pixel of value ``p`` gets variance
        ``p * p_max / e``. None: no shot noise. The total dose of the series is
        ``n_angles * dose_e_per_A2``.
    pixel_size_angstrom : float
        Pixel size, angstrom.
    read_noise : float
        Standard deviation of additive Gaussian (detector) noise, as a fraction of ``p_max``.
    jitter_px : float
        Standard deviation (pixels) of a random shift of each projection along rows and
        columns, as left by an imperfect alignment. 0 disables it.
    projector : {"linear", "strip", "line"}
        See :func:`project`.
    rng : int or numpy.random.Generator, optional
        Random numbers (scikit-image style).

    Returns
    -------
    projections : ndarray, shape (n_angles, n_rows, N)
        float32, in the units of :func:`project` (values can be negative with read noise).

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.sim import tilt_series, tilt_angles
    >>> vol = np.zeros((4, 16, 16), np.float32)
    >>> vol[:, 4:12, 4:12] = 1
    >>> p = tilt_series(vol, tilt_angles(60, n=7), dose_e_per_A2=100, rng=0)
    >>> p.shape, p.dtype
    ((7, 4, 16), dtype('float32'))
    """
    gen = _as_rng(rng)
    if dose_e_per_A2 is not None:
        dose_e_per_A2 = _positive(dose_e_per_A2, "dose_e_per_A2")
    pixel_size_angstrom = _positive(pixel_size_angstrom, "pixel_size_angstrom")
    read_noise = _positive(read_noise, "read_noise", allow_zero=True)
    jitter_px = _positive(jitter_px, "jitter_px", allow_zero=True)
    proj = project(volume, theta, center=center, projector=projector)
    if jitter_px > 0:
        proj = _shift_images(proj, gen.normal(0.0, jitter_px, size=(proj.shape[0], 2)))
    p_max = float(proj.max())
    scale = p_max if p_max > 0 else 1.0
    if dose_e_per_A2 is not None:
        electrons = dose_e_per_A2 * pixel_size_angstrom**2
        lam = np.clip(proj, 0, None).astype(np.float64) * (electrons / scale)
        proj = (gen.poisson(lam) * (scale / electrons)).astype(np.float32)
    if read_noise > 0:
        proj = proj + gen.normal(0.0, read_noise * scale, size=proj.shape).astype(np.float32)
    return np.ascontiguousarray(proj, dtype=np.float32)
