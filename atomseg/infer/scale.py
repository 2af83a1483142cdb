"""The scale of an uncalibrated image, from its lattice.

The network expects a pixel size (``model.json``: 0.15 Å). Images without a calibration
(screenshots, PNG exports) can be sampled much more finely or coarsely, and columns a few pixels
wide, or fifty, are harder to segment. The brightest lattice reflection of an atomic-resolution
image is one of the lowest orders, whose plane spacing lies near 2–3 Å for nearly every crystal
and zone axis (median 2.7 Å over the simulated library, quartiles 2.3 and 3.2 Å), so
``REFERENCE_SPACING_ANGSTROM / spacing_px`` is a usable guess of the pixel size for resampling
(never for reporting positions in Å).

That guess is the start of :func:`search_pixel_size`, which is what ``atomseg.locate`` uses on
an uncalibrated image: the network itself is run at a few pixel sizes around the guess, and
the one in the middle of the range where (nearly) the most columns are found, and found again
at the neighbouring pixel sizes, is taken.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "REFERENCE_SPACING_ANGSTROM",
    "check_pixel_size",
    "search_pixel_size",
    "guess_pixel_size",
    "lattice_spacing_px",
]

#: plane spacing assumed for the brightest reflection, Å (median over the simulated library)
REFERENCE_SPACING_ANGSTROM = 2.7
#: the search tries the lattice guess times 2 ** (k / 4) for these k (0.71 to 2 times it: a
#: guess too fine by 2x, e.g. from a long period, loses far more columns than one too coarse)
SEARCH_STEPS = (-2, -1, 0, 1, 2, 3, 4)
#: candidates whose (stable) column count is at least this share of the largest: the plateau
SEARCH_PLATEAU = 0.95
#: the search runs on a crop that the coarsest candidate resamples to at most this many
#: pixels a side (its network pass costs the most): 384 at 0.15 Å/px is 58 Å, and the crop
#: spans at least half that (the candidates reach twice the guess)
SEARCH_CROP_PX = 384
#: the search crop is the image centre unless a window elsewhere has more than 1 / this share
#: of its contrast at the lattice's scale (a particle in a corner of a field of vacuum)
SEARCH_CENTRE_SHARE = 0.5
#: an image whose whole field shows no lattice is guessed from its busiest window of this side
SEARCH_GUESS_WINDOW_PX = 512
#: the guess is clipped to the pixel sizes the model was trained on, Å
GUESS_RANGE_ANGSTROM = (0.05, 0.5)
#: a reflection counts when its power exceeds this multiple of the band's median power
_MIN_PEAK_RATIO = 30.0
#: a given pixel size is doubted when the brightest reflection's period would be outside this
#: (Å): over 172 simulated library images with a lattice it spans 1.24–17.4 Å (particles give
#: the long ones); a pixel size in nm typed as Å puts it at 0.1–0.6 Å
PLAUSIBLE_SPACING_ANGSTROM = (0.9, 50.0)
#: no atomic columns are resolved on coarser pixels, Å
MAX_ATOMIC_PIXEL_ANGSTROM = 2.0


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
    img = img - _wide_blur(img, min(h, w) / 16.0)
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


def _wide_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (reflecting edges); from ``sigma`` = 64 px on a copy block-averaged by
    ``sigma // 32`` and interpolated back (a 2048² image: 0.35 s instead of 3.7)."""
    f = int(sigma // 32) if sigma >= 32 else 1
    if f <= 1:
        return ndimage.gaussian_filter(img, sigma, mode="reflect")
    h, w = img.shape
    small = ndimage.gaussian_filter(_block_mean(img, f), sigma / f, mode="reflect")
    zoom = (h / small.shape[0], w / small.shape[1])
    return ndimage.zoom(small, zoom, order=1, mode="nearest", grid_mode=True)


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    """Means of ``f`` x ``f`` blocks (the last rows and columns that do not fill one dropped)."""
    h, w = img.shape
    return img[: h - h % f, : w - w % f].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


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


def check_pixel_size(image: np.ndarray, pixel_size_angstrom: float) -> str | None:
    """Say why a given pixel size looks wrong for an atomic-resolution image, or None.

    Two checks: pixels coarser than ``MAX_ATOMIC_PIXEL_ANGSTROM`` (no column is resolved
    there: a size in pm or nm typed as Å?), and the period of the image's brightest lattice
    reflection (:func:`lattice_spacing_px`, on the central 256² at most) outside
    ``PLAUSIBLE_SPACING_ANGSTROM`` at that pixel size (a size in nm typed as Å makes a 2.7 Å
    lattice 0.27 Å). Images without a clear lattice pass the second check. ``locate``,
    ``segment`` and ``locate_stack`` (its middle frame) warn with this message.

    Examples
    --------
    >>> import numpy as np
    >>> r, c = np.mgrid[0:128, 0:128]
    >>> lattice = np.cos(2 * np.pi * r / 18.0) + np.cos(2 * np.pi * c / 18.0)  # 2.7 Å at 0.15
    >>> check_pixel_size(lattice, 0.15) is None
    True
    >>> print(check_pixel_size(lattice, 0.015))  # doctest: +NORMALIZE_WHITESPACE
    at pixel_size_angstrom=0.015 the image's lattice period would be 0.27 Å, outside the
    0.9-50 Å of crystals: is the pixel size in Å (not nm or pm)?
    """
    p = float(pixel_size_angstrom)
    if p > MAX_ATOMIC_PIXEL_ANGSTROM:
        return (
            f"pixel_size_angstrom={p:g} is coarser than {MAX_ATOMIC_PIXEL_ANGSTROM:g} Å, where no "
            "atomic column is resolved: is the pixel size in Å (not nm or pm)?"
        )
    img = np.asarray(image)
    h, w = img.shape
    r0, c0 = max((h - 256) // 2, 0), max((w - 256) // 2, 0)
    d = lattice_spacing_px(img[r0 : r0 + 256, c0 : c0 + 256])
    lo, hi = PLAUSIBLE_SPACING_ANGSTROM
    if d is not None and not lo <= d * p <= hi:
        return (
            f"at pixel_size_angstrom={p:g} the image's lattice period would be {d * p:.2g} Å, "
            f"outside the {lo:g}-{hi:g} Å of crystals: is the pixel size in Å (not nm or pm)?"
        )
    return None


def _plateau_middle(counts, share: float) -> int | None:
    """Index in the middle of the run of ``counts`` >= ``share`` x max that holds the max."""
    n = np.asarray(counts, dtype=float)
    if n.size == 0 or n.max() <= 0:
        return None
    ok = n >= share * n.max()
    lo = hi = int(np.argmax(n))
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(n) - 1 and ok[hi + 1]:
        hi += 1
    return (lo + hi + 1) // 2


def _stable_counts(found: list[np.ndarray], tolerance: float = 0.25) -> list[int]:
    """Per candidate scale: its detections that the neighbouring scales find too.

    ``found``: (n, 2) positions per candidate, in order of pixel size. A detection counts when
    both neighbouring candidates (one at either end) have one within ``tolerance`` x the median
    nearest-neighbour distance of its own candidate's detections (at least 1 px). Columns split
    in two or made up at a wrong scale move from one scale to the next; real ones stay.
    """
    from scipy.spatial import cKDTree

    trees = [cKDTree(pos) if len(pos) else None for pos in found]
    counts = []
    for k, pos in enumerate(found):
        if len(pos) < 2:
            counts.append(len(pos))
            continue
        dist, _ = trees[k].query(pos, k=2)
        tol = max(tolerance * float(np.median(dist[:, 1])), 1.0)
        ok = np.ones(len(pos), dtype=bool)
        for j in (k - 1, k + 1):
            if 0 <= j < len(found):
                if trees[j] is None:
                    ok[:] = False
                    break
                d, _ = trees[j].query(pos)
                ok &= d <= tol
        counts.append(int(ok.sum()))
    return counts


def _candidates(centre: float) -> list[float]:
    lo, hi = GUESS_RANGE_ANGSTROM
    return sorted({float(np.clip(centre * 2 ** (k / 4), lo, hi)) for k in SEARCH_STEPS})


def _search_crop(image: np.ndarray, guess: float | None, model_px: float):
    """The crop the search runs on, and the candidate pixel sizes (Å), for a guess or None."""
    centre = model_px if guess is None else guess
    candidates = _candidates(centre)
    side = max(int(SEARCH_CROP_PX * model_px / candidates[-1]), 32)
    r0, c0 = _busiest_window(image, side, REFERENCE_SPACING_ANGSTROM / centre)
    return image[r0 : r0 + side, c0 : c0 + side], candidates


def _busiest_window(
    image: np.ndarray, side: int, period_px: float, centre_share: float = SEARCH_CENTRE_SHARE
) -> tuple[int, int]:
    """Top-left corner of the ``side``-wide window the scale is guessed or searched on.

    The image centre, unless a window elsewhere holds more than ``1 / centre_share`` times its
    lattice-scale contrast (the image band-passed between ``period_px`` / 6 and
    ``period_px``, squared and summed): a particle in a corner of a field of vacuum.
    Candidate windows are spaced a quarter of ``side`` apart; large images are block-averaged
    first (to about 1024 px a side, keeping 3 pixels per period).
    """
    h, w = image.shape
    sh, sw = min(side, h), min(side, w)
    centre = ((h - sh) // 2, (w - sw) // 2)
    if (sh, sw) == (h, w):
        return centre
    f = int(max(1, min(np.ceil(max(h, w) / 1024), period_px // 3)))
    img = _block_mean(np.asarray(image, dtype=np.float32), f)
    sigma = max(float(period_px) / f, 3.0)
    band = ndimage.gaussian_filter(img, sigma / 6.0) - ndimage.gaussian_filter(img, sigma)
    summed = np.pad(np.cumsum(np.cumsum(band.astype(np.float64) ** 2, 0), 1), ((1, 0), (1, 0)))
    bh, bw = min(sh // f, img.shape[0]), min(sw // f, img.shape[1])

    def energy(r, c):  # r, c in full-resolution pixels
        r, c = min(r // f, img.shape[0] - bh), min(c // f, img.shape[1] - bw)
        return summed[r + bh, c + bw] - summed[r, c + bw] - summed[r + bh, c] + summed[r, c]

    rows = np.unique(np.r_[np.arange(0, h - sh + 1, max(sh // 4, 1)), h - sh])
    cols = np.unique(np.r_[np.arange(0, w - sw + 1, max(sw // 4, 1)), w - sw])
    best = max((energy(r, c), int(r), int(c)) for r in rows for c in cols)
    if energy(*centre) >= centre_share * best[0]:
        return centre
    return best[1], best[2]


def search_pixel_size(
    image: np.ndarray, *, model="default", device: str = "auto", threshold: float | None = None
) -> float | None:
    """Choose the pixel size (Å) to resample an uncalibrated image by, with the network.

    Starts from :func:`guess_pixel_size` (or the model's pixel size when the image shows no
    clear lattice) and runs :func:`atomseg.locate` at that pixel size times ``2 ** (k / 4)``
    for ``k`` in ``SEARCH_STEPS`` (0.71 to 2 times it, within 0.05–0.5 Å), on a crop that the
    coarsest candidate resamples to ``SEARCH_CROP_PX`` pixels a side: the image centre, or the
    window with the most contrast at the lattice's scale where that is more than twice the
    centre's (a particle in a corner of a field of vacuum; when the whole image shows no
    lattice, the guess is taken from its busiest window of ``SEARCH_GUESS_WINDOW_PX``). At each
    candidate it counts the columns that the neighbouring candidates find too (within a quarter
    of the column spacing): too fine a scale makes the columns look small, and faint ones
    beside bright ones are dismissed as unresolved; too coarse a one splits irregular columns
    into pieces that move from scale to scale. The counts have a plateau between, and the
    candidate in its middle (counts >= ``SEARCH_PLATEAU`` x the largest, around it) is
    returned. The rule was chosen on simulated dev images and checked on others and on the
    real images (the README's atomseg section; ``docs/atomseg_history.md``, 0.11.0). It is a
    scale for the network, not a calibration: never report Å from it.

    Returns None when the model has no pixel size, or when no candidate finds a column and the
    image shows no lattice (the image is then run as it is).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    model : str, path or ColumnModel
    device : str
    threshold : float, optional
        As for :func:`atomseg.locate`.

    Examples
    --------
    DyScO₃ [100] at 0.1 Å/px, whose lattice guess is a third too fine:

    >>> from atomseg.sim import simulate_image
    >>> s = simulate_image(shape=(192, 192), seed=2, structure="DyScO3", zone_axis="100",
    ...                    scene="slab", dose_e_per_A2=1e5, pixel_size_angstrom=0.1)
    >>> round(guess_pixel_size(s.image), 3)
    0.067
    >>> 0.08 <= search_pixel_size(s.image) <= 0.15
    True
    """
    from atomseg.infer.columns import _check_image, _get_model, _locate

    image = _check_image(image)
    model = _get_model(model, device)
    if model.pixel_size_angstrom is None:
        return None
    model_px = float(model.pixel_size_angstrom)
    guess = guess_pixel_size(image)
    side = SEARCH_GUESS_WINDOW_PX
    if guess is None and max(image.shape) > side:  # a small crystal in a large field
        r0, c0 = _busiest_window(image, side, REFERENCE_SPACING_ANGSTROM / model_px, 1.0)
        guess = guess_pixel_size(image[r0 : r0 + side, c0 : c0 + side])
    crop, candidates = _search_crop(image, guess, model_px)
    if crop.max() == crop.min():  # a constant window (its busiest): nothing to search on
        return guess
    found = [  # without locate's warnings: candidates far off would draw check_pixel_size's
        _locate(crop, p, model, threshold)[0][["row", "col"]].to_numpy(dtype=float)
        for p in candidates
    ]
    k = _plateau_middle(_stable_counts(found), SEARCH_PLATEAU)
    if k is None:
        return guess
    return candidates[k]
