"""Quality measures of a reconstruction against the truth: PSNR, SSIM and elongation.

``elongation`` measures the missing-wedge smear: the ratio of the object's spread along the
beam axis (axis 1 of each slice) to its spread along axis 2, divided by the same ratio of the
truth. A perfect reconstruction gives 1.0; a limited-angle one gives more.
"""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "ssim", "elongation"]


def _pair(volume, truth):
    v = np.asarray(volume, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if v.shape != t.shape:
        raise ValueError(f"shapes differ: {v.shape} vs truth {t.shape}")
    return v, t


def psnr(volume: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with the truth's range as the peak.

    Examples
    --------
    >>> t = np.zeros((4, 4, 4)); t[1:3, 1:3, 1:3] = 1
    >>> round(psnr(t + 0.1, t), 2)
    20.0
    """
    v, t = _pair(volume, truth)
    mse = float(np.mean((v - t) ** 2))
    peak = float(t.max() - t.min()) or 1.0
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ssim(volume: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity (3D, scikit-image), with the truth's range as the data range.

    Examples
    --------
    >>> t = np.random.default_rng(0).random((16, 16, 16))
    >>> ssim(t, t)
    1.0
    """
    from skimage.metrics import structural_similarity

    v, t = _pair(volume, truth)
    rng = float(t.max() - t.min()) or 1.0
    return float(structural_similarity(t, v, data_range=rng))


def _spread(volume: np.ndarray) -> tuple[float, float]:
    w = np.clip(volume, 0, None)
    total = w.sum()
    if total <= 0:
        return float("nan"), float("nan")
    out = []
    for axis in (1, 2):
        prof = w.sum(axis=tuple(a for a in range(3) if a != axis))
        x = np.arange(prof.size)
        mean = (prof * x).sum() / total
        out.append(float(np.sqrt((prof * (x - mean) ** 2).sum() / total)))
    return out[0], out[1]


def elongation(volume: np.ndarray, truth: np.ndarray, *, threshold: float = 0.1) -> float:
    """Missing-wedge elongation: (spread along axis 1 / along axis 2), relative to the truth.

    Values below ``threshold`` × the truth's maximum are ignored, so background noise does not
    count as spread.

    Examples
    --------
    >>> t = np.zeros((8, 32, 32)); t[:, 12:20, 12:20] = 1
    >>> v = np.zeros_like(t); v[:, 8:24, 12:20] = 1   # smeared along axis 1
    >>> round(elongation(v, t), 2)
    2.0
    """
    v, t = _pair(volume, truth)
    cut = threshold * float(t.max())
    v = np.where(v > cut, v, 0.0)
    t = np.where(t > cut, t, 0.0)
    a_v, b_v = _spread(v)
    a_t, b_t = _spread(t)
    return (a_v / b_v) / (a_t / b_t)
