"""The scale of an uncalibrated image, from its lattice.

The network expects a pixel size (``model.json``: 0.15 Å). Images without a calibration
(screenshots, PNG exports) can be sampled much more finely or coarsely, and columns a few pixels
wide, or fifty, are harder to segment. The brightest lattice reflection of an atomic-resolution
image is one of the lowest orders, whose plane spacing lies near 2–3 Å for nearly every crystal
and zone axis (median 2.7 Å over the simulated library, quartiles 2.3 and 3.2 Å), so
``REFERENCE_SPACING_ANGSTROM / spacing_px`` is a usable guess of the pixel size for resampling
(never for reporting positions in Å).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["REFERENCE_SPACING_ANGSTROM", "lattice_spacing_px", "guess_pixel_size"]

#: plane spacing assumed for the brightest reflection, Å (median over the simulated library)
REFERENCE_SPACING_ANGSTROM = 2.7
#: the guess is clipped to the pixel sizes the model was trained on, Å
GUESS_RANGE_ANGSTROM = (0.05, 0.5)
#: a reflection counts when its power exceeds this multiple of the band's median power
_MIN_PEAK_RATIO = 30.0


def lattice_spacing_px(image: np.ndarray) -> float | None:
    """Return the period (pixels) of the brightest lattice reflection, or None if there is none.

    The image is flattened (a wide Gaussian background is removed) and Hann-windowed; the
    strongest peak of its power spectrum with a period between 2.5 pixels and a quarter of the
    image is taken, if it stands out from the band's median power.

    Parameters
    ----------
    image : ndarray, shape (H, W)

    Returns
    -------
    float or None

    Examples
    --------
    >>> import numpy as np
    >>> r, c = np.mgrid[0:128, 0:128]
    >>> lattice = np.cos(2 * np.pi * r / 8.0) + np.cos(2 * np.pi * c / 8.0)
    >>> round(lattice_spacing_px(lattice), 1)
    8.0
    >>> lattice_spacing_px(np.random.default_rng(0).random((128, 128))) is None
    True
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    if min(h, w) < 16:
        return None
    img = img - ndimage.gaussian_filter(img, min(h, w) / 16.0, mode="reflect")
    img = img * np.hanning(h)[:, None] * np.hanning(w)[None, :]
    power = np.abs(np.fft.rfft2(img)) ** 2
    power = ndimage.gaussian_filter(power, 0.7, mode="wrap")
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.hypot(fy, fx)
    band = (freq >= 4.0 / min(h, w)) & (freq <= 1.0 / 2.5)
    if not band.any():
        return None
    values = np.where(band, power, 0.0)
    iy, ix = np.unravel_index(int(np.argmax(values)), values.shape)
    if values[iy, ix] < _MIN_PEAK_RATIO * max(float(np.median(power[band])), 1e-300):
        return None
    # sub-bin refinement: power-weighted mean frequency of the peak's 3x3 neighbourhood
    ys = np.arange(iy - 1, iy + 2) % h
    xs = np.clip(np.arange(ix - 1, ix + 2), 0, power.shape[1] - 1)
    wts = power[np.ix_(ys, xs)]
    f = float(np.sum(wts * freq[np.ix_(ys, xs)]) / np.sum(wts))
    return 1.0 / f


def guess_pixel_size(image: np.ndarray) -> float | None:
    """Guess the pixel size (Å) of an uncalibrated image from its lattice, for resampling only.

    ``REFERENCE_SPACING_ANGSTROM / lattice_spacing_px(image)``, clipped to 0.05–0.5 Å; None
    when the image shows no clear lattice. Expect a factor of up to ~1.5 either way: it puts
    the columns at a size the network knows well, it does not calibrate the image.

    Examples
    --------
    >>> import numpy as np
    >>> r, c = np.mgrid[0:128, 0:128]
    >>> lattice = np.cos(2 * np.pi * r / 10.0) + np.cos(2 * np.pi * c / 10.0)
    >>> round(guess_pixel_size(lattice), 3)
    0.27
    """
    d = lattice_spacing_px(image)
    if d is None:
        return None
    lo, hi = GUESS_RANGE_ANGSTROM
    return float(np.clip(REFERENCE_SPACING_ANGSTROM / d, lo, hi))
