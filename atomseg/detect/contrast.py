"""How far each detected column stands out of the image's noise.

A network can see a column in pure noise (a lattice it expects); the image itself can say
whether there is anything there. For each column, the contrast is the mean of the image in a
box around it minus the mean in the ring of boxes around that, and the noise is the image's
own, estimated robustly from its finest diagonal wavelet detail (the median absolute deviation
of the Haar HH coefficients; Donoho & Johnstone, Biometrika 81, 425 (1994)), which smooth
signal such as columns a few pixels wide barely enters.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["noise_sigma", "contrast_to_noise"]


def noise_sigma(image: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise of an image.

    ``1.4826 × median |HH|`` of the orthonormal Haar diagonal detail ``(a - b - c + d) / 2``
    of each 2×2 block: white noise of standard deviation ``s`` gives ``s``; a smooth image
    (columns several pixels wide) adds little.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Any image, in its own units.

    Returns
    -------
    float
        Noise standard deviation in the image's units (0 for a noise-free, piecewise-smooth
        image).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:256, :256]
    >>> smooth = 100 * np.cos(yy / 6.0) * np.cos(xx / 6.0)
    >>> round(noise_sigma(smooth + rng.normal(0, 3.0, smooth.shape)))
    3
    """
    x = np.asarray(image, np.float64)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(1.4826 * np.median(np.abs(hh)))


def contrast_to_noise(image: np.ndarray, rows, cols, radius_px: float) -> np.ndarray:
    """Contrast-to-noise ratio of the image at each column.

    ``(mean in the (2a+1)² box - mean in the ring out to the (6a+3)² box) / (sigma ×
    sqrt(1/n_box + 1/n_ring))`` with ``a = max(1, round(radius_px))`` and ``sigma`` from
    :func:`noise_sigma`: about 0 ± 1 where the image holds only noise, large for a column
    that is really there. A noise-free image gives ``inf`` for any positive contrast.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The image the columns were found in (columns bright).
    rows, cols : array-like
        Column positions, pixels of ``image`` (sub-pixel; rounded to the nearest pixel).
    radius_px : float
        Column radius in pixels (the detection table's ``radius``).

    Returns
    -------
    ndarray, shape (n,)
        Contrast-to-noise ratio per column.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = 50 * np.exp(-((yy - 32) ** 2 + (xx - 20) ** 2) / 8.0) + rng.normal(0, 2, (64, 64))
    >>> cnr = contrast_to_noise(image, [32, 32], [20, 48], radius_px=2)
    >>> bool(cnr[0] > 20), bool(abs(cnr[1]) < 4)
    (True, True)
    """
    x = np.asarray(image, np.float64)
    rows = np.asarray(rows, np.float64)
    cols = np.asarray(cols, np.float64)
    if len(rows) == 0:
        return np.zeros(0)
    a = max(1, int(round(float(radius_px))))
    b = 3 * a + 1
    n_in, n_out = (2 * a + 1) ** 2, (2 * b + 1) ** 2
    inner = ndimage.uniform_filter(x, size=2 * a + 1, mode="reflect")
    outer = ndimage.uniform_filter(x, size=2 * b + 1, mode="reflect")
    r = np.clip(np.round(rows).astype(int), 0, x.shape[0] - 1)
    c = np.clip(np.round(cols).astype(int), 0, x.shape[1] - 1)
    box = inner[r, c]
    ring = (outer[r, c] * n_out - box * n_in) / (n_out - n_in)
    sigma = noise_sigma(x) * np.sqrt(1.0 / n_in + 1.0 / (n_out - n_in))
    with np.errstate(divide="ignore", invalid="ignore"):
        cnr = (box - ring) / sigma
    return np.where(np.isnan(cnr), 0.0, cnr)
