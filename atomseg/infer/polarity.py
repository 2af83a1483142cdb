"""Is an image the right way round? ADF/HAADF columns are bright on a darker background.

A bright-field or annular bright-field image shows the columns dark on a bright background.
The network, trained on ADF images, then finds the bright gaps between the columns as
columns (the real Au image of the README, inverted: 462 "columns", none of them an atom).
:func:`check_polarity` says so; ``locate``, ``segment`` and ``locate_stack`` (its middle frame)
warn with its message.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from atomseg.infer.scale import lattice_spacing_px

#: lattice-scale skewness below which an image reads as dark columns on a bright background.
#: Chosen on 1,288 simulated ADF images (dev sets at 1e3-1e5 e/Å² and 600 library images, 930
#: of them with a clear lattice): 2 of the 930 fall below it (a dark grain boundary and dark
#: features that outweigh columns too faint for any to be found), and the inverted copies of
#: 724 of the 761 with ten or more columns found do (the real images: Au 0.65, DyScO₃ 1.28).
INVERTED_SKEWNESS = -0.5

#: side of the central crop the skewness is measured on (as for ``check_pixel_size``)
POLARITY_CROP_PX = 256


def polarity_skewness(image: np.ndarray) -> float | None:
    """Skewness of the image band-passed around its lattice period, or None without a lattice.

    Columns are compact peaks between broad, flat gaps, so the image, once its background and
    noise are filtered out (a Gaussian of a twentieth of the lattice period,
    :func:`atomseg.infer.lattice_spacing_px`, minus one of the period), has a long tail of
    bright values: its skewness is positive for ADF/HAADF images and negative for the same
    image inverted (BF/ABF contrast). Measured on the central 256² crop of a 2-D image,
    clipped to its 0.1-99.9 % percentiles (a dead or hot pixel would own the third moment),
    a period in from its edges; None when the crop shows no clear lattice (vacuum, noise,
    too small).

    Examples
    --------
    >>> import numpy as np
    >>> r, c = np.mgrid[0:128, 0:128]
    >>> columns = np.exp(-(np.sin(np.pi * r / 12) ** 2 + np.sin(np.pi * c / 12) ** 2) / 0.1)
    >>> polarity_skewness(columns) > 1
    True
    >>> polarity_skewness(-columns) < -1
    True
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    r0, c0 = max((h - POLARITY_CROP_PX) // 2, 0), max((w - POLARITY_CROP_PX) // 2, 0)
    img = img[r0 : r0 + POLARITY_CROP_PX, c0 : c0 + POLARITY_CROP_PX]
    img = np.clip(img, *np.percentile(img, [0.1, 99.9]))  # a dead or hot pixel weighs nothing
    period = lattice_spacing_px(img)
    if period is None:
        return None
    band = ndimage.gaussian_filter(img, period / 20.0) - ndimage.gaussian_filter(img, period)
    m = int(period)
    if min(band.shape) > 4 * m:
        band = band[m:-m, m:-m]
    v = band.ravel() - band.mean()
    var = float(np.mean(v**2))
    if var <= 0:
        return None
    return float(np.mean(v**3) / var**1.5)


def check_polarity(image: np.ndarray) -> str | None:
    """Say why an image looks inverted (columns dark, as in BF/ABF images), or None.

    The image is taken as inverted when :func:`polarity_skewness` is below
    ``INVERTED_SKEWNESS``. Some ADF images do read so (a dark grain boundary or voids that
    outweigh faint columns; 2 of 930 simulated ADF images with a lattice), and some come
    close (spinels along [100], whose empty channels are dark holes in a bright network:
    -0.35 to -0.49 for three Co₃O₄ and ZnFe₂O₄ images): the message says it may be wrong.

    Examples
    --------
    >>> import numpy as np
    >>> r, c = np.mgrid[0:128, 0:128]
    >>> columns = np.exp(-(np.sin(np.pi * r / 12) ** 2 + np.sin(np.pi * c / 12) ** 2) / 0.1)
    >>> check_polarity(columns) is None
    True
    >>> print(check_polarity(columns.max() - columns))  # doctest: +ELLIPSIS
    the image looks inverted: its lattice shows dark features on a bright background ...
    """
    skew = polarity_skewness(image)
    if skew is None or skew >= INVERTED_SKEWNESS:
        return None
    return (
        "the image looks inverted: its lattice shows dark features on a bright background "
        f"(skewness {skew:.2f} at the lattice's scale), as bright-field and ABF images show "
        "columns; atomseg expects ADF/HAADF contrast, columns bright, and would find the gaps "
        "between dark columns. For a BF/ABF image pass its negative (image.max() - image; "
        "atomseg detect --invert); ignore this for an ADF image whose dark voids, channels "
        "or boundaries outweigh its columns."
    )
