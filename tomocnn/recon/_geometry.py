"""ASTRA geometries, system matrices and FBP helpers shared by every backend (private).

The mapping from the TomoPy conventions to ASTRA's 2-D parallel geometry
-----------------------------------------------------------------------
A slice ``volume[r]`` has shape ``(N, N)`` with axes (1, 2) of the volume. Put the origin at the
centre of the slice and let ``a1``/``a2`` be the coordinates of a voxel centre along axes 1/2 in
pixels (increasing with the index). A ray of the projection at angle ``theta`` runs along
``(a1, a2) = (cos theta, sin theta)`` and reaches the detector at

    s = a2 * cos(theta) - a1 * sin(theta),      detector column = s + center - 0.5.

This is TomoPy's geometry (``libtomo/recon/utils.c``: rays along ``(cos, sin)`` of ``theta`` in
the ``(x, y)`` = (axis 1, axis 2) frame, detector offset ``d + 0.5 - center``), so that at
``theta = 0`` the beam runs along axis 1 and projections sum over axis 1.

ASTRA's 2-D volume puts ``x`` along columns (``x = a2``) and ``y`` up the rows (``y = -a1``); its
``parallel`` geometry has ray direction ``(sin theta, -cos theta)`` and detector direction
``u = (cos theta, sin theta)``, so ``s = x cos theta + y sin theta`` is exactly the expression
above with the same sign of ``theta``. The rotation centre is handled as in TomoPy's ASTRA
wrapper: the detector is shifted by ``n_cols / 2 - center`` pixels along ``u``
(``astra.geom_postalignment``).
"""

from __future__ import annotations

import math

import numpy as np

PROJECTORS = ("linear", "strip", "line")
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def _astra_geometries(theta: np.ndarray, n_cols: int, center: float):
    """Return ``(proj_geom, vol_geom)`` of ASTRA's 2-D parallel beam for one slice."""
    import astra

    vol_geom = astra.create_vol_geom(n_cols, n_cols)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n_cols, np.asarray(theta, np.float64))
    shift = n_cols / 2.0 - float(center)
    if shift != 0.0:
        proj_geom = astra.geom_postalignment(proj_geom, shift)
    return proj_geom, vol_geom


def _system_matrix(theta: np.ndarray, n_cols: int, center: float, projector: str = "linear"):
    """Sparse ``(n_angles * n_cols, n_cols**2)`` CSR float32 matrix of ASTRA's CPU projector.

    Rows are ordered (angle, detector column); columns are the C-ordered pixels of one
    ``(N, N)`` slice. Not cached here (the built-in backend caches its operators).
    """
    import astra

    if projector not in PROJECTORS:
        raise ValueError(f"unknown projector {projector!r}; choose one of {PROJECTORS}")
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    n_cols, center = int(n_cols), float(center)
    proj_geom, vol_geom = _astra_geometries(theta, n_cols, center)
    pid = astra.create_projector(projector, proj_geom, vol_geom)
    try:
        mid = astra.projector.matrix(pid)
        try:
            matrix = astra.matrix.get(mid)
        finally:
            astra.matrix.delete(mid)
    finally:
        astra.projector.delete(pid)
    matrix = matrix.tocsr().astype(np.float32)
    matrix.sort_indices()
    return matrix


def _angular_weights(theta: np.ndarray) -> np.ndarray:
    """Quadrature weights (radians) of each projection angle for filtered back-projection.

    Angles are taken modulo pi. Each angle gets half the distance to each neighbour. Where the
    angles cover the half circle (no gap larger than twice the median step), the first and the
    last angle are neighbours; otherwise (limited angle) an end angle is given the same spacing
    on its open side as on its closed side. For ``n`` evenly spaced angles over pi every weight
    is ``pi / n``, ASTRA's and TomoPy's normalisation.
    """
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.size
    if n == 1:
        return np.array([math.pi])
    phi = np.mod(theta, math.pi)
    order = np.argsort(phi, kind="stable")
    s = phi[order]
    gaps = np.diff(np.concatenate([s, [s[0] + math.pi]]))  # gap after each sorted angle
    positive = gaps[gaps > 1e-9]
    step = float(np.median(positive)) if positive.size else math.pi / n
    big = int(np.argmax(gaps))
    w_sorted = np.empty(n)
    if gaps[big] > 2.0 * step + 1e-9:
        # limited range: open the circle at the largest gap
        s = np.roll(s, -(big + 1))
        order = np.roll(order, -(big + 1))
        inner = np.diff(s)
        inner = np.where(inner < 0, inner + math.pi, inner)
        left = np.concatenate([[inner[0] if n > 1 else step], inner])
        right = np.concatenate([inner, [inner[-1] if n > 1 else step]])
        w_sorted = 0.5 * (left + right)
    else:
        prev_gap = np.roll(gaps, 1)
        w_sorted = 0.5 * (prev_gap + gaps)
    w = np.empty(n)
    w[order] = w_sorted
    return w


def _ramp_filter(n_cols: int, filter_name: str = "shepp-logan") -> np.ndarray:
    """Frequency response (``rfft`` layout) of the band-limited ramp filter and its window.

    The ramp is the discrete band-limited one (its kernel is 1/4 at 0, ``-1/(pi k)**2`` at odd
    ``k``, 0 at even ``k``; Kak and Slaney, eq. 61), which has no DC offset; the sinogram is
    zero-padded to a power of two at least ``2 * n_cols`` long.
    """
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter_name {filter_name!r}; choose one of {FILTERS}")
    size = max(64, 1 << int(math.ceil(math.log2(2 * n_cols))))
    k = np.arange(size)
    k = np.where(k > size // 2, size - k, k)
    kernel = np.zeros(size)
    odd = k % 2 == 1
    kernel[odd] = -1.0 / (math.pi * k[odd]) ** 2
    kernel[0] = 0.25
    response = np.real(np.fft.rfft(kernel))
    w = 2.0 * math.pi * np.arange(response.size) / size  # angular frequency, 0..pi
    if filter_name == "shepp-logan":
        response[1:] *= np.sin(w[1:] / 2) / (w[1:] / 2)
    elif filter_name == "cosine":
        response[1:] *= np.cos(w[1:] / 2)
    elif filter_name == "hamming":
        response[1:] *= 0.54 + 0.46 * np.cos(w[1:])
    elif filter_name == "hann":
        response[1:] *= (1 + np.cos(w[1:])) / 2
    return response.astype(np.float64)


def _filter_sinograms(proj: np.ndarray, filter_name: str) -> np.ndarray:
    """Apply the ramp filter along the last axis (detector columns) of ``proj``."""
    n_cols = proj.shape[-1]
    response = _ramp_filter(n_cols, filter_name)
    size = 2 * (response.size - 1)
    spec = np.fft.rfft(proj, n=size, axis=-1)
    spec *= response
    return np.fft.irfft(spec, n=size, axis=-1)[..., :n_cols].astype(np.float32)
