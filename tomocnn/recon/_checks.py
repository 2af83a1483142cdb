"""Input validation shared by ``tomocnn.recon`` and ``tomocnn.sim`` (private).

Every check raises a ``TypeError`` (wrong kind of object) or a ``ValueError`` (wrong shape or
value) whose message names the argument, what was expected and what was received.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

ALGORITHMS = ("sirt", "sart", "cgls", "mlem", "fbp")
BACKENDS = ("auto", "torch", "astra", "tomopy")


def _as_real_array(x, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise TypeError(f"{name} must be convertible to a numpy array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(bad.sum()) - n_nan
            raise ValueError(
                f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
                "clean or mask them before reconstruction (e.g. numpy.nan_to_num)"
            )


def _check_projections(projections) -> np.ndarray:
    """Return ``projections`` as float32 ``(n_angles, n_rows, n_cols)``, checked."""
    arr = _as_real_array(projections, "projections")
    if arr.ndim != 3:
        hint = (
            "; for a single sinogram (n_angles, n_cols) pass sino[:, None, :]"
            if arr.ndim == 2
            else ""
        )
        raise ValueError(
            "projections must be 3-D (n_angles, n_rows, n_cols) as in tomopy.recon, "
            f"got ndim={arr.ndim} with shape {arr.shape}{hint}"
        )
    if min(arr.shape) < 1:
        raise ValueError(f"projections must not be empty, got shape {arr.shape}")
    if arr.shape[2] < 2:
        raise ValueError(f"projections need at least 2 detector columns, got shape {arr.shape}")
    _check_finite(arr, "projections")
    return np.asarray(arr, dtype=np.float32)


def _check_volume(volume) -> np.ndarray:
    """Return ``volume`` as float32 ``(n_rows, N, N)``, checked."""
    arr = _as_real_array(volume, "volume")
    if arr.ndim != 3:
        raise ValueError(f"volume must be 3-D (n_rows, N, N), got ndim={arr.ndim}")
    if arr.shape[1] != arr.shape[2]:
        raise ValueError(
            "volume slices must be square: shape (n_rows, N, N) with N = n_cols, "
            f"got shape {arr.shape}"
        )
    if min(arr.shape) < 1 or arr.shape[1] < 2:
        raise ValueError(f"volume is too small, got shape {arr.shape}")
    _check_finite(arr, "volume")
    return np.asarray(arr, dtype=np.float32)


def _check_theta(theta, n_angles: int | None) -> np.ndarray:
    """Return ``theta`` (radians) as float64 ``(n_angles,)``, checked against the data."""
    arr = _as_real_array(theta, "theta")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"theta must be 1-D (one angle per projection), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("theta is empty: at least one projection angle is needed")
    if n_angles is not None and arr.size != n_angles:
        raise ValueError(
            f"theta has {arr.size} angles but projections has {n_angles} "
            "(axis 0 must be the angle axis: (n_angles, n_rows, n_cols))"
        )
    _check_finite(arr, "theta")
    if np.abs(arr).max() > 2 * math.pi + 1e-6:
        raise ValueError(
            f"theta must be in radians, but its largest value is {np.abs(arr).max():.4g} "
            "(> 2 pi); did you pass degrees? use numpy.deg2rad"
        )
    return arr


def _check_center(center, n_rows: int, n_cols: int) -> np.ndarray:
    """Return the rotation centre of each row, float64 ``(n_rows,)`` (TomoPy's ``center``)."""
    if center is None:
        return np.full(n_rows, n_cols / 2.0)
    arr = _as_real_array(center, "center").astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(n_rows, float(arr))
    elif arr.ndim != 1 or arr.size not in (1, n_rows):
        raise ValueError(
            f"center must be a number or one value per row ({n_rows}), got shape {arr.shape}"
        )
    elif arr.size == 1:
        arr = np.full(n_rows, float(arr[0]))
    _check_finite(arr, "center")
    if np.any(arr < -n_cols) or np.any(arr > 2 * n_cols):
        raise ValueError(
            f"center must be in detector pixels along n_cols (0..{n_cols}), got "
            f"{arr.min():.4g}..{arr.max():.4g}"
        )
    return arr


def _check_scalar_center(center, n_cols: int) -> float:
    if center is None:
        return n_cols / 2.0
    if not isinstance(center, numbers.Real) or isinstance(center, bool):
        raise TypeError(f"center must be a number (detector pixels) or None, got {center!r}")
    return float(_check_center(center, 1, n_cols)[0])


def _check_algorithm(algorithm) -> str:
    if not isinstance(algorithm, str) or algorithm.lower() not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
    return algorithm.lower()


def _check_backend(backend) -> str:
    if backend == "builtin":
        return "torch"
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    return backend.lower()


def _check_n_iter(n_iter, default: int) -> int:
    if n_iter is None:
        return default
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"n_iter must be a positive integer or None, got {n_iter!r}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    return int(n_iter)
