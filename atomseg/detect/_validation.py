"""Input checks shared by the detection functions (private)."""

from __future__ import annotations

import numbers

import numpy as np


def _as_image(array, name: str, *, dtype=np.float64) -> np.ndarray:
    """Return ``array`` as a 2-D finite float array, or raise a ValueError naming the problem."""
    try:
        out = np.asarray(array)
    except Exception as exc:  # e.g. ragged nested lists
        raise ValueError(f"{name} must be a 2-D array of numbers") from exc
    if out.dtype == bool:
        out = out.astype(dtype)
    if not (np.issubdtype(out.dtype, np.integer) or np.issubdtype(out.dtype, np.floating)):
        raise ValueError(f"{name} must be a real-valued array, got dtype {out.dtype}")
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, n_cols), got shape {out.shape}")
    if out.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {out.shape}")
    out = out.astype(dtype, copy=False)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _positive(value, name: str, *, allow_none: bool = False) -> float | None:
    """Return ``value`` as a float > 0, or raise a ValueError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _fraction(value, name: str) -> float:
    """Return ``value`` as a float in [0, 1], or raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return value


def _as_positions(positions, name: str) -> np.ndarray:
    """Return positions as a float array of shape (n, 2) with (row, col) columns.

    Accepts an array-like of shape (n, 2) or a table (pandas DataFrame) with ``row`` and ``col``
    columns.
    """
    if hasattr(positions, "columns"):
        missing = {"row", "col"} - set(positions.columns)
        if missing:
            raise ValueError(f"{name} is a table without the column(s) {sorted(missing)}")
        positions = positions[["row", "col"]].to_numpy()
    try:
        out = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of shape (n, 2) of (row, col)") from exc
    if out.size == 0:
        return np.zeros((0, 2))
    if out.ndim != 2 or out.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) of (row, col), got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return out
