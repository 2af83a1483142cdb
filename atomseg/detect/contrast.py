"""How far each detected column stands out of the image's noise.

A network can see a column in pure noise (a lattice it expects); the image itself can say
whether there is anything there. For each column, the contrast is the mean of the image in a
box around it minus the local background: the mean of the surrounding box *away from every
column* (pixels within two column radii of any listed column are left out, so that a faint
column between bright ones, such as Mg beside Al in spinel, is measured against the floor
between columns and not against its neighbours). The noise is the image's own, estimated from
its finest diagonal wavelet detail (the Haar HH coefficients), which smooth signal such as
columns a few pixels wide barely enters: their trimmed root mean square, not their median
absolute deviation (Donoho & Johnstone, Biometrika 81, 425 (1994)), because at low dose most
2×2 blocks of a counting image are equal and the median collapses to the read noise alone.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["noise_sigma", "contrast_to_noise"]

#: share of the Haar coefficients :func:`noise_sigma` keeps (the largest are signal)
_KEEP = 0.98
#: variance of a unit normal kept within its central 98 % (|z| <= 2.326):
#: 1 - 2 z phi(z) / (2 Phi(z) - 1)
_TRIMMED_VARIANCE = 0.8735
#: pixels this many column radii from any listed column are background (contrast_to_noise)
_EXCLUDE_RADII = 2.0


def noise_sigma(image: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise of an image.

    The root mean square of the orthonormal Haar diagonal detail ``(a - b - c + d) / 2`` of
    each 2×2 block, leaving out the largest 2 % (edges, sharp columns) and scaled so that
    white Gaussian noise of standard deviation ``s`` gives ``s``. Pixel noise of any
    distribution (sparse electron counts included) gives its standard deviation; a smooth
    image (columns several pixels wide) adds little.

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
    >>> counts = rng.poisson(0.05, (256, 256))  # sparse counts: standard deviation 0.22
    >>> round(noise_sigma(counts), 1)
    0.2
    """
    x = np.asarray(image, np.float64)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    hh = np.abs(x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]).ravel() / 2.0
    if hh.size == 0:
        return 0.0
    kept = hh[hh <= np.quantile(hh, _KEEP)]
    return float(np.sqrt(np.mean(kept**2) / _TRIMMED_VARIANCE))


def contrast_to_noise(image: np.ndarray, rows, cols, radius_px: float) -> np.ndarray:
    """Contrast-to-noise ratio of the image at each column.

    ``(mean in the (2a+1)² box - background) / (sigma × sqrt(1/n_box + 1/n_background))``
    with ``a = max(1, round(radius_px))``, ``sigma`` from :func:`noise_sigma` and the
    background the mean of the ``n_background`` pixels of the (6a+3)² box around the column
    that lie more than two radii from every listed column (where fewer than ``n_box`` are
    left, in a dense lattice, the whole ring around the box). About 0 ± 1 where the image
    holds only noise, large for a column that is really there, also a faint one among bright
    neighbours (pass all the columns found, so that none counts as another's background). A
    noise-free image gives ``inf`` for any positive contrast.

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
    return _cnr(x, rows, cols, float(radius_px), noise_sigma(x))


def border_contrast_to_noise(image: np.ndarray, rows, cols, radius_px: float, which) -> np.ndarray:
    """:func:`contrast_to_noise` of the columns ``which`` (indices), all near the image border,
    the others listed as in it; the same values, measured on strips along the border only.

    A column's value depends on the pixels within its background box and on the listed columns
    within two radii of those; a strip along the border as deep as the deepest of ``which``
    plus that reach holds them all, and its far edge is beyond every box.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(0, 1, (96, 96))
    >>> rows, cols = [1.0, 40.0, 60.0, 94.6], [30.0, 2.0, 60.0, 50.0]
    >>> full = contrast_to_noise(image, rows, cols, 2.5)
    >>> near = border_contrast_to_noise(image, rows, cols, 2.5, [0, 1, 3])
    >>> bool(np.allclose(near, full[[0, 1, 3]]))
    True
    """
    x = np.asarray(image, np.float64)
    rows = np.asarray(rows, np.float64)
    cols = np.asarray(cols, np.float64)
    which = np.asarray(which, int)
    out = np.zeros(len(which))
    if len(which) == 0:
        return out
    h, w = x.shape
    sigma = noise_sigma(x)
    a = max(1, int(round(float(radius_px))))
    reach = 3 * a + 1 + int(np.ceil(_EXCLUDE_RADII * max(float(radius_px), 1.0))) + 2
    r = np.clip(np.round(rows).astype(int), 0, h - 1)
    c = np.clip(np.round(cols).astype(int), 0, w - 1)
    depth = np.stack([r, c, h - 1 - r, w - 1 - c], axis=1)[which]
    side = np.argmin(depth, axis=1)  # 0: top, 1: left, 2: bottom, 3: right
    for k in range(4):
        mine = np.flatnonzero(side == k)
        if len(mine) == 0:
            continue
        d = int(depth[mine, k].max()) + reach + 1
        n = h if k % 2 == 0 else w
        if d >= n:  # a small image: the strip is all of it
            lo, hi = 0, n
        else:
            lo, hi = (0, d) if k < 2 else (n - d, n)
        across = r if k % 2 == 0 else c  # the pixel index across the strip
        inside = np.flatnonzero((across >= lo) & (across < hi))  # sorted: searchsorted below
        crop = x[lo:hi] if k % 2 == 0 else x[:, lo:hi]
        rr = rows - lo if k % 2 == 0 else rows
        cc = cols if k % 2 == 0 else cols - lo
        values = _cnr(crop, rr[inside], cc[inside], float(radius_px), sigma)
        out[mine] = values[np.searchsorted(inside, which[mine])]
    return out


def _cnr(x, rows, cols, radius_px, noise) -> np.ndarray:
    """:func:`contrast_to_noise` with the image's noise sigma given."""
    a = max(1, int(round(float(radius_px))))
    b = 3 * a + 1
    n_in, n_out = (2 * a + 1) ** 2, (2 * b + 1) ** 2
    r = np.clip(np.round(rows).astype(int), 0, x.shape[0] - 1)
    c = np.clip(np.round(cols).astype(int), 0, x.shape[1] - 1)
    # background: pixels more than two radii from every listed column
    centres = np.ones(x.shape, bool)
    centres[r, c] = False
    far = ndimage.distance_transform_edt(centres) > _EXCLUDE_RADII * max(float(radius_px), 1.0)
    far = far.astype(np.float64)
    box = ndimage.uniform_filter(x, size=2 * a + 1, mode="reflect")[r, c]
    n_far = ndimage.uniform_filter(far, size=2 * b + 1, mode="reflect")[r, c] * n_out
    sum_far = ndimage.uniform_filter(x * far, size=2 * b + 1, mode="reflect")[r, c] * n_out
    outer = ndimage.uniform_filter(x, size=2 * b + 1, mode="reflect")[r, c]
    ring = (outer * n_out - box * n_in) / (n_out - n_in)
    dense = n_far < n_in - 0.5  # too little background left: the whole ring
    n_bg = np.where(dense, n_out - n_in, np.round(n_far))
    background = np.where(dense, ring, sum_far / np.maximum(n_far, 1e-12))
    sigma = noise * np.sqrt(1.0 / n_in + 1.0 / n_bg)
    with np.errstate(divide="ignore", invalid="ignore"):
        cnr = (box - background) / sigma
    return np.where(np.isnan(cnr), 0.0, cnr)
