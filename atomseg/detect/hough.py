"""Circular Hough transform and column detection on a segmentation (probability) map."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import scipy.fft
from scipy import ndimage
from scipy.spatial import cKDTree

from ._validation import _as_image, _fraction, _positive
from .refine import _centroid, _disc_fit, _neighbour_slabs, _Windows

#: a column cut by the border is voted on the visible part of its rim, counted as at least
#: this fraction of the whole (a corner column shows a quarter: its vote is at most doubled).
_MIN_SEEN_RIM = 0.5

__all__ = ["hough_circle", "detect_columns"]

_KERNELS = ("perimeter", "annulus")
_REFINE = ("probability", "image", "none")
_HOUGH_WIDTH_PX = 0.75  # half-width of the annulus that locates the columns
_COLUMNS = ["row", "col", "score", "radius", "intensity"]


def hough_circle(
    edges: np.ndarray,
    radii,
    *,
    normalize: bool = True,
    full_output: bool = False,
    kernel: str = "perimeter",
    width_px: float = 1.0,
) -> np.ndarray:
    """Circular Hough transform by FFT convolution of the edge map with ring kernels.

    Every edge pixel votes, with its value as weight, for all centres at distance ``radius`` from
    it; the accumulator is the cross-correlation of the edge map with a ring, computed for all
    radii at once with real FFTs (single precision) on a zero-padded grid, so votes never wrap
    around and cost does not depend on the number of edge pixels.

    With ``kernel="perimeter"`` the ring is the digital circle of
    :func:`skimage.draw.circle_perimeter` (its points repeated where the octants join counted
    twice, as scikit-image does) and, for a binary edge map, the accumulator equals
    :func:`skimage.transform.hough_circle` (same shape, same values up to float32 rounding).
    ``kernel="annulus"`` is an anti-aliased annulus ``radius +- width_px`` for real-valued radii:
    with ``normalize=True`` each pixel's weight is divided by the circumference ``2 pi rho`` at
    its distance ``rho``, so the vote is the angular mean of the edge strength integrated across
    the annulus. For a gradient-magnitude edge map of a disc of height 1 this vote is 1 at its
    centre (whatever the sharpness of its rim, as long as the rim lies within the annulus), and
    the fraction of the rim seen when the disc is partly hidden.

    Parameters
    ----------
    edges : ndarray, shape (n_rows, n_cols)
        Edge map (binary or weighted, e.g. a gradient magnitude).
    radii : float or sequence of float, shape (n_radii,)
        Circle radii in pixels, > 0. Must be whole numbers for ``kernel="perimeter"``.
    normalize : bool, optional
        Divide the votes by the ring length: the number of perimeter pixels (``"perimeter"``, as
        scikit-image) or ``2 pi rho`` (``"annulus"``).
    full_output : bool, optional
        Also return centres outside the image: the output grows by ``R`` pixels on each side, with
        ``R`` the largest radius (``"perimeter"``) or ``ceil(max(radii) + width_px)``
        (``"annulus"``); centre ``(row, col)`` of the image is at ``(row + R, col + R)``.
    kernel : {"perimeter", "annulus"}, optional
        Ring kernel, see above.
    width_px : float, optional
        Half-width of the annulus in pixels, >= 0.5 and smaller than the smallest radius
        (``"annulus"`` only).

    Returns
    -------
    accumulator : ndarray of float32, shape (n_radii, n_rows, n_cols)
        Votes per radius and centre, shape ``(n_radii, n_rows + 2 R, n_cols + 2 R)`` with
        ``full_output``.

    Raises
    ------
    ValueError
        If ``edges`` is not a 2-D finite array, a radius is not positive (or not whole for
        ``"perimeter"``), ``kernel`` is unknown or ``width_px`` is out of range.

    See Also
    --------
    detect_columns : column detection built on the ``"annulus"`` kernel.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import circle_perimeter
    >>> edges = np.zeros((40, 50))
    >>> edges[circle_perimeter(18, 30, 7)] = 1
    >>> acc = hough_circle(edges, [5, 6, 7, 8, 9])
    >>> acc.shape
    (5, 40, 50)
    >>> [int(i) for i in np.unravel_index(acc.argmax(), acc.shape)]  # radius 7 px at (18, 30)
    [2, 18, 30]
    >>> float(acc.max())  # every pixel of the ring voted
    1.0
    """
    img = _as_image(edges, "edges", dtype=np.float32)
    radii = _as_radii(radii)
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if kernel == "perimeter":
        if not np.all(radii == np.round(radii)):
            raise ValueError(
                f"radii must be whole numbers for kernel='perimeter', got {radii.tolist()}; "
                "use kernel='annulus' for real-valued radii"
            )
        width = 0.0
        half = int(radii.max())
    else:
        width = _positive(width_px, "width_px")
        if width < 0.5 or width >= radii.min():
            raise ValueError(
                f"width_px must be >= 0.5 and smaller than the smallest radius "
                f"({radii.min():g}), got {width:g}"
            )
        half = int(np.ceil(radii.max() + width))
    n_rows, n_cols = img.shape
    full_shape = (n_rows + 2 * half, n_cols + 2 * half)
    fshape = tuple(scipy.fft.next_fast_len(s, real=True) for s in full_shape)
    spectra = _kernel_spectra(tuple(radii.tolist()), kernel, width, bool(normalize), half, fshape)
    product = scipy.fft.rfft2(img, s=fshape) * spectra
    acc = scipy.fft.irfft2(product, s=fshape)
    if full_output:
        return np.ascontiguousarray(acc[:, : full_shape[0], : full_shape[1]])
    return np.ascontiguousarray(acc[:, half : half + n_rows, half : half + n_cols])


def _as_radii(radii) -> np.ndarray:
    try:
        out = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"radii must be a number or a 1-D sequence of numbers, got {radii!r}"
        ) from exc
    if out.ndim != 1 or out.size == 0:
        raise ValueError(
            f"radii must be a number or a non-empty 1-D sequence, got shape {out.shape}"
        )
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError(f"radii must be positive and finite, got {out.tolist()}")
    return out


def _ring_kernel(radius: float, kernel: str, width: float, normalize: bool, half: int):
    """Ring of ``radius`` on a (2 half + 1)^2 grid centred at (half, half)."""
    size = 2 * half + 1
    if kernel == "perimeter":
        from skimage.draw import circle_perimeter

        k = np.zeros((size, size))
        rr, cc = circle_perimeter(half, half, int(radius))
        np.add.at(k, (rr, cc), 1.0)  # points repeated at the octant joins vote twice, as in skimage
        return k / rr.size if normalize else k
    off = np.arange(-half, half + 1)
    rho = np.hypot(off[:, None], off[None, :])
    a = np.clip(np.minimum(rho - (radius - width), radius + width - rho) + 0.5, 0.0, 1.0)
    if not normalize:
        return a
    k = a / (2 * np.pi * np.maximum(rho, 0.5))
    return k * (2 * width / k.sum())  # the discrete kernel integrates to 2 width, as the ideal one


@functools.lru_cache(maxsize=16)
def _kernel_spectra(radii: tuple, kernel: str, width: float, normalize: bool, half: int, fshape):
    """Real FFTs (n_radii, *fshape rfft) of the flipped ring kernels, cached for image stacks."""
    kernels = np.stack([_ring_kernel(r, kernel, width, normalize, half) for r in radii])
    # correlation = convolution with the point-reflected kernel
    kernels = kernels[:, ::-1, ::-1].astype(np.float32)
    spectra = scipy.fft.rfft2(kernels, s=fshape)
    spectra.flags.writeable = False
    return spectra


def detect_columns(
    probability: np.ndarray,
    *,
    radius_px: float | None = None,
    radii=None,
    threshold: float = 0.5,
    min_distance_px: float | None = None,
    image: np.ndarray | None = None,
    min_score: float = 0.3,
    refine: str = "probability",
    rim_width_px: float | None = None,
    border_tolerance_px: float = 0.0,
) -> pd.DataFrame:
    """Detect atomic columns in a segmentation map with a circular Hough transform.

    1. Edge map: gradient magnitude of the probability map (central differences, one-sided at
       the image border, so the border itself is no edge). It needs no threshold and keeps the
       soft rim of the segmented discs.
    2. Hough accumulator (:func:`hough_circle`, ``kernel="annulus"``, half-width 0.75 px) for
       ``radii`` over centres up to ``max(radii) + 1`` px outside the image (the edge map is
       zero-padded), so that columns cut by the border are found and columns centred outside
       the image do not create peaks inside it.
    3. Candidates: 3x3 local maxima of the vote (best over radii) centred inside the image or
       less than ``radius_px`` outside it, and (for columns cut by the border, whose vote may be
       a shoulder rather than a peak) local maxima of the Gaussian-smoothed probability less
       than ``radius_px + rim_width_px`` from the border and ``min_distance_px`` from any vote
       peak; kept where the mean probability around them is >= ``threshold``; candidates closer
       than ``min_distance_px`` are suppressed, keeping the strongest vote.
    4. Sub-pixel position, from the quadratic interpolation of the Hough peak (``refine="none"``)
       refined on the probability map (``"probability"``, default): iterated weighted centroid
       in a window of radius ``radius_px + rim_width_px`` kept symmetric about the centre (see
       :func:`~atomseg.detect.refine_positions`) and cut at the bisectors with neighbours closer
       than twice that, which is exact for any centro-symmetric disc profile and keeps close pairs
       apart; for columns whose window the border cuts, a least-squares fit of a soft disc
       ``a / (1 + exp((d - r) / s))`` to their visible part. Columns whose centre ends up
       outside the image by more than ``border_tolerance_px`` are dropped; those closer are
       moved onto the image's edge. ``"image"`` then moves each column to the centroid of
       the (window-minimum subtracted) ``image`` in a window of radius ``radius_px``, unless that
       moves it by more than half a radius.
    5. Per column: ``vote``, the normalised annulus vote of :func:`hough_circle` at the refined
       centre with a half-width ``rim_width_px``: the contrast of the rim averaged around it,
       about 1 for a whole disc of probability 1 whatever the sharpness of its rim, the visible
       fraction of the rim for a column cut by the border; ``radius``, the mean distance of the
       rim from the centre weighted by that vote (the annulus re-centred on it once);
       ``score = sqrt(vote * mean probability within 0.75 radius_px)``, in [0, 1];
       ``intensity`` = mean of ``image`` (of the probability
       without one) in the disc of radius ``radius_px`` (the same disc for every column, so
       intensities compare). Columns with ``score < min_score`` are dropped and refined columns
       closer than ``min_distance_px`` merged, keeping the highest score.

    Parameters
    ----------
    probability : ndarray, shape (n_rows, n_cols)
        Segmentation map with values in [0, 1]: about 1 on discs around the column centres.
    radius_px : float, optional
        Expected disc radius in pixels of the map. When None, it is the median of ``radii`` if
        given, else estimated as ``sqrt(A / pi)`` with ``A`` the median area of the connected
        components of ``probability > threshold`` (components touching the border and specks of
        fewer than 3 pixels are ignored when others exist).
    radii : sequence of float, optional
        Radii (pixels) searched by the Hough transform. Default:
        ``radius_px * (0.85, 1.0, 1.15)``.
    threshold : float, optional
        Probability threshold in [0, 1]: a column centre must have at least this probability;
        also used to estimate the radius.
    min_distance_px : float, optional
        Minimum distance between two columns in pixels. Default: ``radius_px``.
    image : ndarray, shape (n_rows, n_cols), optional
        The image that was segmented (e.g. normalised ADF intensity), for ``intensity`` and for
        ``refine="image"``.
    min_score : float, optional
        Minimum score in [0, 1] of a reported column.
    refine : {"probability", "image", "none"}, optional
        Sub-pixel refinement, see step 4. ``"image"`` needs ``image``.
    rim_width_px : float, optional
        Half-width (pixels) of the band around the disc edge that the score vote integrates and
        by which the refinement window exceeds the disc. Default:
        ``min(max(1.5, 0.4 * radius_px), 0.9 * min(radii))``.
    border_tolerance_px : float, optional
        A column cut by the border whose refined centre lies outside the image extent
        ``[-0.5, n - 0.5]`` by at most this many pixels is kept, its position moved onto the
        extent's edge (a network trained not to mirror the border can place a column centred on
        the border a pixel outside); 0 (default) drops every centre outside.

    Returns
    -------
    columns : pandas.DataFrame
        One row per column with ``row``, ``col`` (sub-pixel, pixels of the input map),
        ``score`` (in [0, 1]), ``radius`` (pixels) and ``intensity``, sorted by ``row`` then
        ``col``. Empty (with these columns) when nothing is found.

    Raises
    ------
    ValueError
        If ``probability`` is not a 2-D finite array with values in [0, 1], ``image`` does not
        have its shape, a radius or distance is not positive, ``threshold`` or ``min_score`` is
        outside [0, 1], or ``refine`` is unknown or needs the missing ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.mgrid[:48, :48]
    >>> centres = [(10.3, 12.7), (30.6, 25.2), (20.0, 40.45)]
    >>> dist = np.min([np.hypot(rr - r, cc - c) for r, c in centres], axis=0)
    >>> probability = 1 / (1 + np.exp((dist - 4.0) / 0.5))  # soft discs of radius 4 px
    >>> columns = detect_columns(probability, radius_px=4)
    >>> columns[["row", "col"]].round(2)
        row    col
    0  10.3  12.70
    1  20.0  40.45
    2  30.6  25.20
    >>> bool(columns["score"].min() > 0.9)
    True
    """
    prob = _as_image(probability, "probability")
    lo, hi = float(prob.min()), float(prob.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"probability must lie in [0, 1], got values in [{lo:g}, {hi:g}]")
    prob = np.clip(prob, 0.0, 1.0)
    threshold = _fraction(threshold, "threshold")
    min_score = _fraction(min_score, "min_score")
    if refine not in _REFINE:
        raise ValueError(f"refine must be one of {_REFINE}, got {refine!r}")
    img = None
    if image is not None:
        img = _as_image(image, "image")
        if img.shape != prob.shape:
            raise ValueError(
                f"image must have the shape of probability {prob.shape}, got {img.shape}"
            )
    elif refine == "image":
        raise ValueError("refine='image' needs the image (image=None was given)")

    min_dist = _positive(min_distance_px, "min_distance_px", allow_none=True)
    width = _positive(rim_width_px, "rim_width_px", allow_none=True)
    tolerance = float(border_tolerance_px)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"border_tolerance_px must be >= 0, got {border_tolerance_px!r}")
    if radii is not None:
        radii = _as_radii(radii)
        radius = _positive(radius_px, "radius_px", allow_none=True) or float(np.median(radii))
    else:
        radius = _positive(radius_px, "radius_px", allow_none=True)
        if radius is None:
            radius = _estimate_radius(prob, threshold)
            if radius is None:  # no segmented column at all
                return _empty()
            if radius < 1.0:
                raise ValueError(
                    f"the segmented columns are too small for the Hough transform: estimated "
                    f"radius {radius:.2f} px < 1 px (check threshold, or give radius_px)"
                )
        radii = radius * np.array([0.85, 1.0, 1.15])
    if radius < 1.0 or radii.min() <= 0.6:
        raise ValueError(
            f"column radii must be >= 1 px for the Hough transform, got radius_px={radius:g} "
            f"and radii down to {radii.min():g}"
        )
    if width is None:
        width = float(min(max(1.5, 0.4 * radius), 0.9 * radii.min()))
    if min_dist is None:
        min_dist = radius

    # 1-2. edge map and Hough votes over an extended (zero-padded) grid of centres
    grad_row, grad_col = np.gradient(prob)
    edges = np.hypot(grad_row, grad_col)
    hough_width = min(_HOUGH_WIDTH_PX, 0.9 * radii.min())
    acc = hough_circle(edges, radii, kernel="annulus", width_px=hough_width, full_output=True)
    half = (acc.shape[1] - prob.shape[0]) // 2
    best = acc.max(axis=0)

    # 3. candidates: 3x3 local maxima of the vote, centred inside the image or less than a
    # radius outside it (the vote of a column cut by the border is poorly localised across the
    # border: its refined centre decides), on the segmentation, then duplicate suppression
    n_rows, n_cols = prob.shape
    margin = min(half, int(np.ceil(radius)))
    region = best[half - margin : half + n_rows + margin, half - margin : half + n_cols + margin]
    pr, pc = _local_maxima(region, max(min_score**2, 1e-3))
    pr, pc = pr + (half - margin), pc + (half - margin)
    # the vote of a column cut by the border can be a shoulder rather than a peak: add the
    # maxima of the smoothed probability near the border that no vote peak is close to
    br, bc = _border_candidates(prob, radius, threshold, depth=radius + width)
    if br.size:
        if pr.size:
            far, _ = cKDTree(np.stack([pr, pc], axis=1) - half).query(np.stack([br, bc], axis=1))
            br, bc = br[far >= min_dist], bc[far >= min_dist]
        pr, pc = np.concatenate([pr, br + half]), np.concatenate([pc, bc + half])
    box = max(1, int(radius / 2.5))
    on_column = _box_mean(prob, pr - half, pc - half, box) >= threshold
    pr, pc = pr[on_column], pc[on_column]
    votes = best[pr, pc]
    keep = _suppress(np.stack([pr, pc], axis=1).astype(float), votes, min_dist)
    pr, pc, votes = pr[keep], pc[keep], votes[keep]

    # 4. sub-pixel positions
    pos = np.stack([pr, pc], axis=1) - float(half)
    pos += np.stack([_parabola(best, pr, pc, axis=0), _parabola(best, pr, pc, axis=1)], axis=1)
    pad_width = int(np.ceil(radii.max() + width)) + 2
    padded_prob = np.pad(prob.astype(np.float32), pad_width)
    if refine in ("probability", "image"):
        pos = _refine_on_probability(prob, pos, radius, width, (padded_prob, pad_width))
    pos = _onto_image(pos, prob.shape, tolerance)  # drops a failed fit (NaN)
    if refine == "image" and len(pos):
        slabs = _neighbour_slabs(pos, 2 * radius + 1)
        on_image = _centroid(img, pos, radius, background="min", slabs=slabs)
        ok = np.hypot(*(on_image - pos).T) <= radius / 2
        pos[ok] = on_image[ok]
    pos = _onto_image(pos, prob.shape, tolerance)
    if len(pos) == 0:
        return _empty()

    # 5. per-column measures
    mean_prob, votes, intensity, col_radius = _column_measures(
        (padded_prob, pad_width), edges, img, pos, radius, width
    )
    score = np.sqrt(np.clip(votes, 0.0, 1.0) * np.clip(mean_prob, 0.0, 1.0))
    keep = score >= min_score
    keep[keep] = _suppress(pos[keep], score[keep], min_dist)
    keep = np.flatnonzero(keep)
    keep = keep[np.lexsort((pos[keep, 1], pos[keep, 0]))]
    return pd.DataFrame(
        {
            "row": pos[keep, 0],
            "col": pos[keep, 1],
            "score": score[keep],
            "radius": col_radius[keep],
            "intensity": intensity[keep],
        },
        columns=_COLUMNS,
    )


def _is_inside(pos: np.ndarray, shape, tolerance: float = 0.0) -> np.ndarray:
    """Whether each (row, col) lies within the image extent [-0.5, n - 0.5] widened by
    ``tolerance``."""
    lo, hi = -0.5 - tolerance, np.array(shape) - 0.5 + tolerance
    return np.all((pos >= lo) & (pos <= hi), axis=1)


def _onto_image(pos: np.ndarray, shape, tolerance: float) -> np.ndarray:
    """The positions within ``tolerance`` of the image extent, moved onto it; others dropped."""
    pos = pos[_is_inside(pos, shape, tolerance)]
    return np.clip(pos, -0.5, np.array(shape, float) - 0.5)


def _local_maxima(values: np.ndarray, floor: float):
    """Indices (rows, cols) of the pixels >= floor that equal the maximum of their 3x3 block."""
    m = values.copy()
    np.maximum(m[1:], values[:-1], out=m[1:])
    np.maximum(m[:-1], values[1:], out=m[:-1])
    m2 = m.copy()
    np.maximum(m2[:, 1:], m[:, :-1], out=m2[:, 1:])
    np.maximum(m2[:, :-1], m[:, 1:], out=m2[:, :-1])
    return np.nonzero((values == m2) & (values >= floor))


def _border_candidates(prob: np.ndarray, radius: float, threshold: float, depth: float):
    """Local maxima >= ``threshold`` of the smoothed map less than ``depth`` px from its border.

    Only four strips along the border are smoothed (Gaussian, sigma ``radius / 2.5``).
    """
    sigma = max(0.5, radius / 2.5)
    keep_depth = int(np.ceil(depth))
    strip = keep_depth + int(np.ceil(3 * sigma)) + 2
    n_rows, n_cols = prob.shape
    if 2 * strip >= min(n_rows, n_cols):
        views = [(prob, 0, 0)]
    else:
        views = [
            (prob[:strip], 0, 0),
            (prob[-strip:], n_rows - strip, 0),
            (prob[:, :strip], 0, 0),
            (prob[:, -strip:], 0, n_cols - strip),
        ]
    rows, cols = [], []
    for view, r0, c0 in views:
        smooth = ndimage.gaussian_filter(view.astype(np.float32), sigma, mode="nearest")
        r, c = _local_maxima(smooth, threshold)
        rows.append(r + r0)
        cols.append(c + c0)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    near = np.minimum(np.minimum(rows, n_rows - 1 - rows), np.minimum(cols, n_cols - 1 - cols))
    flat = np.unique((rows * n_cols + cols)[near < keep_depth])
    return flat // n_cols, flat % n_cols


def _box_mean(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    """Mean of ``img`` over the (2 half + 1)^2 box around each pixel (edges replicated)."""
    off = np.arange(-half, half + 1)
    r = np.clip(rows[:, None] + off, 0, img.shape[0] - 1)
    c = np.clip(cols[:, None] + off, 0, img.shape[1] - 1)
    return img[r[:, :, None], c[:, None, :]].mean(axis=(1, 2))


def _refine_on_probability(prob, pos, radius, width, padded):
    """Centroid of the probability map; soft-disc fit for columns the border cuts.

    The symmetric-window centroid is exact for any centro-symmetric profile, and the windows are
    cut at the bisectors with close neighbours; but it has nothing to go on across the border
    once the window is cut inside the rim. There a soft-disc model fitted to the visible part of
    the column locates the centre (possibly outside the image: such columns are dropped later,
    as are candidates the fit rejects).
    """
    window = radius + width
    border = np.min(np.concatenate([pos + 0.5, np.array(prob.shape) - 0.5 - pos], axis=1), axis=1)
    near = border < window
    out = np.empty_like(pos)
    if (~near).any():
        slabs = [
            (unit[~near], half_width[~near])
            for unit, half_width in _neighbour_slabs(pos, 2 * window)
        ]
        out[~near] = _centroid(
            prob, pos[~near], window, background=None, slabs=slabs, padded=padded, tol_px=5e-3
        )
    if near.any():
        out[near] = _disc_fit(prob, pos[near], radius, window)  # NaN: not a column
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({name: np.zeros(0) for name in _COLUMNS}, columns=_COLUMNS)


def _estimate_radius(prob: np.ndarray, threshold: float) -> float | None:
    """sqrt(median area / pi) of the connected components of ``prob > threshold``."""
    labels, n = ndimage.label(prob > threshold)
    if n == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    interior = np.ones(n, dtype=bool)
    interior[border[border > 0] - 1] = False
    for mask in (interior & (areas >= 3), areas >= 3):
        if mask.any():
            return float(np.sqrt(np.median(areas[mask]) / np.pi))
    return float(np.sqrt(np.median(areas) / np.pi))


def _suppress(pos: np.ndarray, priority: np.ndarray, min_dist: float) -> np.ndarray:
    """Greedy non-maximum suppression: keep the best of points closer than ``min_dist``."""
    keep = np.ones(len(pos), dtype=bool)
    if len(pos) < 2:
        return keep
    pairs = cKDTree(pos).query_pairs(min_dist * (1 - 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return keep
    order = np.argsort(-priority, kind="stable")
    rank = np.empty(len(pos), dtype=np.intp)
    rank[order] = np.arange(len(pos))
    # orient every pair from the better-ranked to the worse-ranked point
    swap = rank[pairs[:, 0]] > rank[pairs[:, 1]]
    pairs[swap] = pairs[swap, ::-1]
    pairs = pairs[np.argsort(rank[pairs[:, 0]], kind="stable")]
    starts = np.searchsorted(rank[pairs[:, 0]], np.arange(len(pos) + 1))
    for r in np.unique(rank[pairs[:, 0]]):
        i = order[r]
        if keep[i]:
            keep[pairs[starts[r] : starts[r + 1], 1]] = False
    return keep


def _parabola(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, axis: int) -> np.ndarray:
    """Sub-pixel offset of a peak along ``axis`` from a parabola through 3 samples."""
    step = (1, 0) if axis == 0 else (0, 1)
    size = values.shape[axis]
    idx = rows if axis == 0 else cols
    lo = np.maximum(idx - 1, 0)
    hi = np.minimum(idx + 1, size - 1)
    f0 = values[rows, cols]
    fm = values[lo, cols] if step[0] else values[rows, lo]
    fp = values[hi, cols] if step[0] else values[rows, hi]
    return parabola_vertex(fm, f0, fp)


def parabola_vertex(fm, f0, fp) -> np.ndarray:
    """Offset (within ±0.5) of the vertex of the parabola through ``(-1, fm), (0, f0), (1, fp)``
    from 0; 0 where the three do not make a maximum. Elementwise."""
    fm, f0, fp = np.asarray(fm, float), np.asarray(f0, float), np.asarray(fp, float)
    denom = fm - 2 * f0 + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.where(denom < 0, 0.5 * (fm - fp) / denom, 0.0)
    return np.clip(off, -0.5, 0.5)


def _weighted_mean(values, weight):
    total = weight.sum(axis=(1, 2)).astype(np.float64)
    return np.einsum("nij,nij->n", values, weight).astype(np.float64) / np.maximum(total, 1e-12)


def _column_measures(padded_prob, edges, img, pos, radius, width):
    """Mean probability in the core, mean image in the disc, vote and radius of each column.

    The core is the disc of radius ``0.75 radius`` (the soft rim of the segmented disc is left
    to the vote); ``intensity`` is the mean of ``img`` (of the probability when None) over the
    disc of ``radius``. The vote is the normalised annulus vote of :func:`hough_circle`
    (half-width ``width``) at the sub-pixel centre; the column radius is the mean distance of
    the rim weighted by that vote (exact for a rim symmetric about its radius, and using only
    the visible rim of a column cut by the border), re-centring the annulus on it once. A
    column cut by the border is scored on the part of its rim inside the image (at least
    ``_MIN_SEEN_RIM`` of it counts as seen), so that it scores like a whole one.
    """
    padded_prob, pad_width = padded_prob
    half = int(np.ceil(1.5 * radius + width)) + 1
    win = _Windows(edges.shape, pos, half, max(half, pad_width))
    dist = win.distance()
    inside = win.in_image()
    core = win.disc(0.75 * radius, dist)
    disc = win.disc(radius, dist)
    if inside is not None:
        core *= inside
        disc *= inside
    if pad_width != win.pad_width:
        padded_prob = np.pad(padded_prob, win.pad_width - pad_width)
    values = win.gather(padded_prob)
    mean_prob = _weighted_mean(values, core)
    intensity = _weighted_mean(values if img is None else win.gather(win.pad(img)), disc)

    edge_values = win.gather(win.pad(edges))
    inv_circumference = 1.0 / (2 * np.pi * np.maximum(dist, 0.5))

    def vote_and_radius(index, band_radius):
        r = band_radius.astype(np.float32)[:, None, None]
        d = dist[index]
        ring = np.minimum(d - (r - width), (r + width) - d) + 0.5
        np.clip(ring, 0.0, 1.0, out=ring)
        ring *= inv_circumference[index]
        full = ring.sum(axis=(1, 2))
        if inside is not None:  # a column cut by the border votes with the rim it shows
            ring *= inside[index]
            full *= np.maximum(ring.sum(axis=(1, 2)) / np.maximum(full, 1e-12), _MIN_SEEN_RIM)
        ring *= (2 * width / full)[:, None, None]
        ring *= edge_values[index]
        vote = ring.sum(axis=(1, 2)).astype(np.float64)
        moment = np.einsum("nij,nij->n", ring, d).astype(np.float64)
        rim = np.full(len(vote), radius)
        ok = vote > 1e-6
        rim[ok] = np.clip(moment[ok] / vote[ok], 0.5 * radius, 1.5 * radius)
        return vote, rim

    everyone = np.arange(len(pos))
    vote, col_radius = vote_and_radius(everyone, np.full(len(pos), radius))
    # re-centre the annulus on the rim where it is off by more than a fifth of its half-width
    off = np.flatnonzero(np.abs(col_radius - radius) > 0.2 * width)
    if off.size:
        vote[off], col_radius[off] = vote_and_radius(off, col_radius[off])
    return mean_prob, vote, intensity, col_radius
