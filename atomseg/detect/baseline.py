"""Classical (non-learnt) column finder, the reference the U-net has to beat."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from ._validation import _as_image, _fraction, _positive
from .refine import refine_positions

__all__ = ["classical_baseline"]


def classical_baseline(
    image: np.ndarray,
    *,
    spacing_px: float,
    threshold: float = 0.2,
    refine: str = "gaussian",
) -> pd.DataFrame:
    """Find bright columns by smoothing, local maxima and sub-pixel refinement.

    1. Gaussian smoothing with ``sigma = spacing_px / 6`` (matched to columns a few pixels wide;
       it averages the noise without merging neighbours).
    2. Local maxima of the smoothed image at least ``max(1, round(spacing_px / 2))`` pixels apart
       and at least ``threshold`` of the way from the smoothed image's minimum to its maximum
       (:func:`skimage.feature.peak_local_max` with ``threshold_rel`` on the minimum-subtracted
       image), borders included.
    3. Sub-pixel refinement on the raw image (:func:`~atomseg.detect.refine_positions`) in a
       window of radius ``spacing_px / 3``: iterated centroid, then (default) a Gaussian fit,
       which is as good as the centroid in the interior and much better for columns cut by the
       border (the centroid window has to stay symmetric there).

    Parameters
    ----------
    image : ndarray, shape (n_rows, n_cols)
        ADF/HAADF-STEM image, columns bright.
    spacing_px : float
        Expected nearest-neighbour distance of the columns in pixels.
    threshold : float, optional
        Relative peak threshold in [0, 1], see step 2.
    refine : {"centroid", "gaussian"}, optional
        Refinement method of step 3 (``"centroid"`` stops after the centroid).

    Returns
    -------
    columns : pandas.DataFrame
        ``row``, ``col`` (sub-pixel, pixels of ``image``), one row per column.

    Raises
    ------
    ValueError
        If ``image`` is not a 2-D finite array, ``spacing_px`` not positive or ``threshold``
        outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.mgrid[:40, :40]
    >>> image = sum(
    ...     np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 1.5**2))
    ...     for r in (6.2, 16.2, 26.2, 36.2)
    ...     for c in (5.7, 15.7, 25.7, 35.7)
    ... )
    >>> columns = classical_baseline(image, spacing_px=10)
    >>> len(columns)
    16
    >>> columns[["row", "col"]].round(2).iloc[0].tolist()
    [6.2, 5.7]
    """
    from skimage.feature import peak_local_max

    img = _as_image(image, "image")
    spacing = _positive(spacing_px, "spacing_px")
    threshold = _fraction(threshold, "threshold")
    smooth = ndimage.gaussian_filter(img, spacing / 6, mode="nearest")
    smooth -= smooth.min()
    peaks = peak_local_max(
        smooth,
        min_distance=max(1, int(round(spacing / 2))),
        threshold_rel=threshold,
        exclude_border=False,
    )
    peaks = peaks[np.lexsort((peaks[:, 1], peaks[:, 0]))]
    pos = refine_positions(img, peaks.astype(float), radius_px=spacing / 3, method=refine)
    return pd.DataFrame({"row": pos[:, 0], "col": pos[:, 1]}, columns=["row", "col"])
