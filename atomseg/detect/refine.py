"""Sub-pixel refinement of column positions (centroid and Gaussian fit)."""

from __future__ import annotations

import numpy as np

from ._validation import _as_image, _as_positions, _positive

__all__ = ["refine_positions"]

_METHODS = ("centroid", "gaussian")


def refine_positions(
    image: np.ndarray,
    positions: np.ndarray,
    *,
    radius_px: float,
    method: str = "centroid",
    max_iter: int = 30,
    tol_px: float = 1e-3,
) -> np.ndarray:
    """Refine column positions to sub-pixel accuracy.

    Each position is refined from the pixels of ``image`` within ``radius_px`` of it (a disc
    window with an anti-aliased rim).

    ``"centroid"``
        Iterated intensity-weighted centroid: the window minimum is subtracted (negative weights
        clipped to zero) and the window is re-centred on the centroid until it moves less than
        ``tol_px``. The window is kept symmetric about the current centre: near the image
        border only the pixels whose mirror image is also inside the image are used, and a
        window is cut at the perpendicular bisector with each of its (up to two) nearest
        neighbours closer than ``2 * radius_px + 1`` (and at its mirror image), so that a column
        is pulled neither inwards nor towards a close neighbour. No model is assumed: the fixed
        point is the centre of symmetry of the column. Within about ``radius_px`` of the border
        the window shrinks to a few pixels across it and the position across the border stays
        near its start: prefer ``"gaussian"`` there.
    ``"gaussian"``
        Least-squares fit of an isotropic Gaussian on a constant background,
        ``amplitude * exp(-d**2 / (2 * sigma**2)) + background``, to the window pixels
        (Levenberg-Marquardt, vectorised over all columns), started from the centroid. A fit that
        fails (non-finite, non-positive amplitude, width outside ``(0.1, 3) * radius_px`` or a
        centre that leaves the window) keeps the centroid position. Best on images of roughly
        Gaussian columns, including columns cut by the border (only the pixels inside the
        image are fitted); the fit window is not cut between close neighbours.

    Parameters
    ----------
    image : ndarray, shape (n_rows, n_cols)
        Image (or probability map) with bright columns on a darker background.
    positions : ndarray, shape (n, 2)
        Starting ``(row, col)`` positions in pixels, e.g. whole-pixel peaks. A DataFrame with
        ``row`` and ``col`` columns is accepted too.
    radius_px : float
        Radius of the window in pixels: about the column radius, small enough not to reach the
        neighbouring columns.
    method : {"centroid", "gaussian"}, optional
        Refinement method, see above.
    max_iter : int, optional
        Maximum number of iterations.
    tol_px : float, optional
        Stop once no position moves by more than this (``"centroid"``).

    Returns
    -------
    refined : ndarray, shape (n, 2)
        Refined ``(row, col)`` in pixels of ``image``, clipped to the image extent
        ``[-0.5, n_rows - 0.5] x [-0.5, n_cols - 0.5]``.

    Raises
    ------
    ValueError
        If ``image`` is not a 2-D finite array, ``positions`` not of shape (n, 2), ``radius_px``
        not positive or ``method`` unknown.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.mgrid[:32, :32]
    >>> image = np.exp(-((rr - 12.3) ** 2 + (cc - 20.6) ** 2) / (2 * 2.0**2))
    >>> refine_positions(image, [[12, 21]], radius_px=4).round(1)
    array([[12.3, 20.6]])
    >>> refine_positions(image, [[12, 21]], radius_px=4, method="gaussian").round(3)
    array([[12.3, 20.6]])
    """
    img = _as_image(image, "image")
    pos = _as_positions(positions, "positions")
    radius = _positive(radius_px, "radius_px")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not isinstance(max_iter, int | np.integer) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    tol = _positive(tol_px, "tol_px")
    if len(pos) == 0:
        return np.zeros((0, 2))
    slabs = _neighbour_slabs(pos, 2 * radius + 1)
    refined = _centroid(
        img, pos, radius, max_iter=max_iter, tol_px=tol, background="min", slabs=slabs
    )
    if method == "gaussian":
        refined = _gaussian_fit(img, refined, radius, max_iter=max_iter)
    return refined


def _clip_to_image(pos: np.ndarray, shape) -> np.ndarray:
    hi = np.array(shape, dtype=float) - 0.5
    return np.clip(pos, -0.5, hi)


def _inside(coord, size):
    """Whether pixel coordinates lie within the image extent [-0.5, size - 0.5]."""
    return (coord >= -0.5) & (coord <= size - 0.5)


class _Windows:
    """Square windows of (2 half + 1)^2 pixels around ``rint(pos)`` for many positions.

    ``gather`` reads them from the image zero-padded by ``pad_width`` (>= half; see ``pad``);
    ``d_row`` and ``d_col`` (n, k) are the offsets of the pixel centres from the (sub-pixel)
    positions. Positions outside the image are anchored at the nearest pixel.
    """

    def __init__(self, shape, pos, half, pad_width=None):
        self.shape, self.half = shape, half
        self.pad_width = half if pad_width is None else pad_width
        anchor = np.clip(np.rint(pos).astype(np.intp), 0, np.array(shape) - 1)
        off = np.arange(-half, half + 1)
        self.rows = anchor[:, :1] + off
        self.cols = anchor[:, 1:] + off
        stride = shape[1] + 2 * self.pad_width
        base = (off * stride)[:, None] + off[None, :]  # (k, k) offsets in the padded image
        start = (anchor[:, 0] + self.pad_width) * stride + (anchor[:, 1] + self.pad_width)
        self.flat = start[:, None, None] + base
        self.d_row = (self.rows - pos[:, :1]).astype(np.float32)
        self.d_col = (self.cols - pos[:, 1:]).astype(np.float32)

    def pad(self, img):
        return np.pad(img.astype(np.float32, copy=False), self.pad_width)

    def gather(self, padded):
        return padded.ravel().take(self.flat)

    def distance(self):
        d = np.square(self.d_row)[:, :, None] + np.square(self.d_col)[:, None, :]
        return np.sqrt(d, out=d)

    def disc(self, radius, distance=None):
        """Anti-aliased disc weights: 1 inside ``radius``, 0 outside, linear over 1 px."""
        d = self.distance() if distance is None else distance.copy()
        np.subtract(np.float32(np.asarray(radius) + 0.5), d, out=d)
        return np.clip(d, 0.0, 1.0, out=d)

    def in_image(self):
        """(n, k, k) mask of the pixels inside the image, or None when all are."""
        ok_r = _inside(self.rows, self.shape[0])
        ok_c = _inside(self.cols, self.shape[1])
        if ok_r.all() and ok_c.all():
            return None
        return ok_r[:, :, None] & ok_c[:, None, :]


def _centroid(
    img, pos, radius, *, max_iter=30, tol_px=1e-3, background="min", slabs=None, padded=None
):
    """Iterated symmetric-window weighted centroid (see :func:`refine_positions`).

    ``background``: "min" subtracts each window's minimum, a number subtracts that value, None
    nothing; negative values are clipped to zero. ``slabs`` (from :func:`_neighbour_slabs`): also
    cut each window by the perpendicular bisectors with its nearest neighbours, mirrored about the
    centre, so that a close neighbour does not pull the column towards it. ``padded``: optional
    ``(image padded as by _Windows.pad, pad width)``.
    """
    n_rows, n_cols = img.shape
    half = int(np.ceil(radius)) + 1
    pos = _clip_to_image(np.array(pos, dtype=float), img.shape)
    if len(pos) == 0:
        return pos
    if padded is None:
        padded = (_Windows(img.shape, pos[:1], half).pad(img), half)
    padded, pad_width = padded
    active = np.arange(len(pos))
    for _ in range(max_iter):
        if active.size == 0:
            break
        p = pos[active]
        win = _Windows(img.shape, p, half, pad_width)
        values = win.gather(padded)
        weight = win.disc(radius)
        if slabs is not None:
            for unit, half_width in slabs:
                sel = np.flatnonzero(half_width[active] < 1e6)  # columns with a near neighbour
                if sel.size == 0:
                    continue
                every = sel.size == len(active)
                u, h = unit[active[sel]], half_width[active[sel]]
                d_row = win.d_row if every else win.d_row[sel]
                d_col = win.d_col if every else win.d_col[sel]
                proj = d_row[:, :, None] * u[:, :1, None] + d_col[:, None, :] * u[:, 1:, None]
                np.abs(proj, out=proj)
                np.subtract(h[:, None, None] + 0.5, proj, out=proj)
                np.clip(proj, 0.0, 1.0, out=proj)
                if every:
                    weight *= proj
                else:
                    weight[sel] *= proj
        # use only pixels inside the image whose mirror about the centre is inside too
        ok_r = _inside(win.rows, n_rows) & _inside(2 * p[:, :1] - win.rows, n_rows)
        ok_c = _inside(win.cols, n_cols) & _inside(2 * p[:, 1:] - win.cols, n_cols)
        if not (ok_r.all() and ok_c.all()):
            weight *= ok_r[:, :, None] & ok_c[:, None, :]
        if background == "min":
            floor = np.where(weight > 0, values, np.inf).min(axis=(1, 2))
            values -= floor[:, None, None]
            np.clip(values, 0.0, None, out=values)
        elif background is not None:
            values -= np.float32(background)
            np.clip(values, 0.0, None, out=values)
        weight *= values
        ones = np.ones(weight.shape[2], dtype=weight.dtype)
        row_mass = weight @ ones  # (n, k), much faster than sum(axis=2)
        col_mass = ones @ weight
        total = row_mass.sum(axis=1)
        good = total > 0
        safe = np.where(good, total, 1.0)
        shift = np.stack(
            [(row_mass * win.d_row).sum(axis=1) / safe, (col_mass * win.d_col).sum(axis=1) / safe],
            axis=1,
        )
        shift[~good] = 0.0
        new = _clip_to_image(p + shift, img.shape)
        moved = np.max(np.abs(new - p), axis=1)
        pos[active] = new
        active = active[(moved >= tol_px) & good]
    return pos


def _neighbour_slabs(pos, reach):
    """Unit vectors (n, 2) to, and half distances (n,) from, the two nearest neighbours.

    Neighbours farther than ``reach`` get a zero vector and an infinite half-distance (no cut).
    """
    from scipy.spatial import cKDTree

    n = len(pos)
    k = min(3, n)
    dist, idx = cKDTree(pos).query(pos, k=k)
    slabs = []
    for j in range(1, k):
        d, other = dist[:, j], idx[:, j]
        near = np.isfinite(d) & (d <= reach) & (d > 0)
        unit = np.zeros((n, 2), dtype=np.float32)
        unit[near] = (pos[other[near]] - pos[near]) / d[near, None]
        half_width = np.where(near, d / 2, 1e6).astype(np.float32)
        slabs.append((unit, half_width))
    return slabs


def _fit_windows(img, start, radius):
    """Pixels (n, k*k) in the disc windows of ``radius`` around ``start`` (float64, for fits).

    Returns the values, the weights (anti-aliased disc, zero outside the image) and the row and
    col offsets of the pixels from the start positions.
    """
    win = _Windows(img.shape, start, int(np.ceil(radius)) + 1)
    n = len(start)
    values = win.gather(np.pad(img, win.half)).reshape(n, -1)
    weight = win.disc(radius)
    inside = win.in_image()
    if inside is not None:
        weight *= inside
    shape = win.flat.shape
    y = np.broadcast_to((win.rows - start[:, :1])[:, :, None], shape).reshape(n, -1)
    x = np.broadcast_to((win.cols - start[:, 1:])[:, None, :], shape).reshape(n, -1)
    return values, weight.reshape(n, -1).astype(float), y, x


def _gaussian_fit(img, start, radius, *, max_iter=30):
    """Vectorised Levenberg-Marquardt fit of an isotropic Gaussian + background per window."""
    n = len(start)
    values, weight, y, x = _fit_windows(img, start, radius)
    v = values
    vmax = np.where(weight > 0, v, -np.inf).max(axis=1)
    vmin = np.where(weight > 0, v, np.inf).min(axis=1)
    # parameters: amplitude, row offset, col offset, sigma, background
    theta = np.stack([vmax - vmin, np.zeros(n), np.zeros(n), np.full(n, radius / 2), vmin], axis=1)

    def residual_and_jacobian(t, index):
        amp, r0, c0, sig, bg = (t[:, i : i + 1] for i in range(5))
        sig = np.maximum(np.abs(sig), 0.05)
        dy, dx = y[index] - r0, x[index] - c0
        d2 = dy**2 + dx**2
        e = np.exp(-d2 / (2 * sig**2))
        ae = amp * e
        jac = np.stack(
            [e, ae * dy / sig**2, ae * dx / sig**2, ae * d2 / sig**3, np.ones_like(e)], axis=-1
        )
        return v[index] - (ae + bg), jac

    theta = _levenberg_marquardt(residual_and_jacobian, theta, weight, max_iter=max_iter)
    theta[:, 3] = np.abs(theta[:, 3])
    refined = start + theta[:, 1:3]
    amp, sig = theta[:, 0], theta[:, 3]
    failed = (
        ~np.all(np.isfinite(theta), axis=1)
        | (amp <= 0)
        | (sig < 0.1 * radius)
        | (sig > 3 * radius)
        | (np.hypot(theta[:, 1], theta[:, 2]) > radius)
    )
    refined[failed] = start[failed]
    return _clip_to_image(refined, img.shape)


def _disc_fit(prob, start, radius, window_px, *, max_iter=30):
    """Vectorised Levenberg-Marquardt fit of a soft disc to a probability map.

    Model ``amplitude / (1 + exp((d - disc_radius) / edge))`` with ``d`` the distance to the
    centre, fitted to the in-image pixels within ``window_px`` of the start position (the window
    stays put). Returns the centres, NaN where the fit failed (non-finite, non-positive amplitude
    or radius, or a centre farther than ``window_px`` from the start).
    """
    n = len(start)
    v, weight, y, x = _fit_windows(prob, start, window_px)
    amp0 = np.maximum(np.where(weight > 0, v, 0.0).max(axis=1), 1e-3)
    # parameters: amplitude, row offset, col offset, disc radius, edge width
    theta = np.stack(
        [amp0, np.zeros(n), np.zeros(n), np.full(n, float(radius)), np.full(n, 0.5)], axis=1
    )

    def residual_and_jacobian(t, index):
        amp, r0, c0, rad, edge = (t[:, i : i + 1] for i in range(5))
        rad, edge = np.abs(rad), np.maximum(np.abs(edge), 0.05)
        dy, dx = y[index] - r0, x[index] - c0
        d = np.sqrt(dy**2 + dx**2)
        z = np.clip((d - rad) / edge, -40, 40)
        f = 1.0 / (1.0 + np.exp(z))
        dfdz = -f * (1 - f)  # derivative of the logistic with respect to z
        safe_d = np.maximum(d, 1e-9)
        g = amp * dfdz / edge  # d model / d d
        jac = np.stack([f, -g * dy / safe_d, -g * dx / safe_d, -g, -g * z], axis=-1)
        return v[index] - amp * f, jac

    theta = _levenberg_marquardt(residual_and_jacobian, theta, weight, max_iter=max_iter)
    theta[:, 3:] = np.abs(theta[:, 3:])
    centre = start + theta[:, 1:3]
    failed = (
        ~np.all(np.isfinite(theta), axis=1)
        | (theta[:, 0] <= 0)
        | (theta[:, 3] <= 0)
        | (np.hypot(theta[:, 1], theta[:, 2]) > window_px)
    )
    centre[failed] = np.nan
    return centre


def _levenberg_marquardt(residual_and_jacobian, theta, weight, *, max_iter=30):
    """Weighted least squares for many small independent problems at once.

    ``residual_and_jacobian(theta, index)`` returns the residuals (m, n_pixels) and the Jacobian
    (m, n_pixels, n_par) of the problems ``index``; a problem stops once its centre moves by less
    than 1e-4 px or its damping has grown past 1e6 (no progress).
    """
    theta = theta.copy()
    n, n_par = theta.shape
    everyone = np.arange(n)
    res, jac = residual_and_jacobian(theta, everyone)
    cost = np.sum(weight * res**2, axis=1)
    lam = np.full(n, 1e-3)
    eye = np.eye(n_par)
    active = everyone
    for _ in range(max_iter):
        if active.size == 0:
            break
        w, r, j = weight[active], res[active], jac[active]
        jw = j * w[:, :, None]
        jtj = np.matmul(jw.transpose(0, 2, 1), j)
        jtr = np.matmul(jw.transpose(0, 2, 1), r[:, :, None])[..., 0]
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        a = jtj + (lam[active, None] * diag + 1e-12)[:, :, None] * eye
        try:
            step = np.linalg.solve(a, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = theta[active] + step
        res_t, jac_t = residual_and_jacobian(trial, active)
        new = np.sum(w * res_t**2, axis=1)
        better = np.isfinite(new) & (new < cost[active])
        idx = active[better]
        theta[idx], res[idx], jac[idx], cost[idx] = (
            trial[better],
            res_t[better],
            jac_t[better],
            new[better],
        )
        lam[active] = np.where(better, lam[active] / 3, lam[active] * 4)
        done = (better & (np.abs(step[:, 1:3]).max(axis=1) < 1e-4)) | (lam[active] > 1e6)
        active = active[~done]
    return theta
