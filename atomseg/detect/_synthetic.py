"""Tiny synthetic maps with exact column positions, for examples, tests and benchmarks (private).

These are deliberately simple (discs and Gaussians on a jittered lattice); the physical image
simulator lives in :mod:`atomseg.sim`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _lattice(shape, spacing_px, *, rng=None, jitter_px=0.0, margin_px=0.0):
    """Positions (n, 2) of a randomly shifted and rotated square lattice inside ``shape``."""
    rng = np.random.default_rng(rng)
    n_rows, n_cols = shape
    half = np.hypot(n_rows, n_cols) / 2 + spacing_px
    k = np.arange(-np.ceil(half / spacing_px), np.ceil(half / spacing_px) + 1) * spacing_px
    grid = np.stack(np.meshgrid(k, k, indexing="ij"), axis=-1).reshape(-1, 2)
    angle = rng.uniform(0, np.pi / 2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pos = grid @ rot.T + np.array([(n_rows - 1) / 2, (n_cols - 1) / 2])
    pos += rng.uniform(-spacing_px / 2, spacing_px / 2, size=2)
    pos += rng.normal(0, jitter_px, size=pos.shape) if jitter_px else 0.0
    lo, hi = margin_px - 0.5, np.array(shape) - 0.5 - margin_px
    keep = np.all((pos >= lo) & (pos <= hi), axis=1)
    return pos[keep]


def _pixel_grid(shape):
    rr, cc = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1).astype(float)


def _disc_map(shape, positions, radius_px, *, edge_px=0.5):
    """Soft discs: ``1 / (1 + exp((distance - radius) / edge))`` to the nearest column."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    if len(positions) == 0:
        return np.zeros(shape)
    dist, _ = cKDTree(positions).query(_pixel_grid(shape))
    z = np.clip((dist - radius_px) / edge_px, -50, 50)
    return (1.0 / (1.0 + np.exp(z))).reshape(shape)


def _gaussian_image(shape, positions, sigma_px, *, amplitudes=1.0, background=0.0):
    """Sum of isotropic Gaussian columns of width ``sigma_px`` on a constant background."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    out = np.full(int(np.prod(shape)), float(background))
    if len(positions) == 0:
        return out.reshape(shape)
    amplitudes = np.broadcast_to(np.asarray(amplitudes, dtype=float), (len(positions),))
    grid = _pixel_grid(shape)
    k = min(len(positions), 16)
    dist, idx = cKDTree(positions).query(grid, k=k, distance_upper_bound=5 * sigma_px)
    dist, idx = dist.reshape(len(grid), k), idx.reshape(len(grid), k)
    ok = np.isfinite(dist)
    amp = np.where(ok, amplitudes[np.minimum(idx, len(positions) - 1)], 0.0)
    out += np.sum(amp * np.exp(-0.5 * (np.where(ok, dist, 0.0) / sigma_px) ** 2), axis=1)
    return out.reshape(shape)
