"""ADF/HAADF-STEM image formation: probe, incoherent imaging, scan distortions, detector noise.

The image model (fast, linear, incoherent)
------------------------------------------
An ADF image is modelled as the convolution of an *object function* with the probe intensity:

``I(r) = sum_j sigma_j * P(r - r_j) * (1 - d) + [sum_j sigma_j * G_w(r - r_j)] * d + B(r)``

- ``sigma_j`` is the scattering cross-section of column ``j`` into the detector,
  ``sigma_ref * S_sat * (1 - exp(-s_j / S_sat))`` with ``s_j = sum_atoms (Z / 79) ** n`` its
  scattering power in Au-atom equivalents, ``n`` (``z_exponent``) between ~1.4 and 2, and
  ``S_sat`` (``saturation_atoms``) a saturation that makes the intensity rise sub-linearly with
  the number of atoms, sooner for heavy columns (channelling and absorption, qualitatively).
  ``sigma_ref`` = 0.01 Å² is the cross-section of one Au atom (screened Rutherford scattering
  beyond ~70 mrad at 300 kV).
- ``P`` is the intensity of an aberrated probe: ``|FT^-1[A(k) exp(-i chi(k))]|²`` with an
  aperture of semi-angle ``alpha`` and ``chi`` from defocus ``C1``, two-fold astigmatism ``A1``
  and spherical aberration ``C3``, blurred by a Gaussian source of FWHM ``source_size``.
- ``G_w`` is a broad Gaussian (width ``diffuse_width``): probe tails and the thermal-diffuse
  background, which grow with the local projected mass, so thickness steps also
  show as background steps. ``d`` is its fraction.
- ``B`` is a slowly varying background; amorphous films enter the object as random atoms.

The expected number of detected electrons per pixel is ``dose * pixel_size² * I`` (``I`` is a
fraction of the beam); detection is Poisson, then gain, dark offset and Gaussian read noise,
then optionally an 8-bit export (percentile clipping and quantisation).

Rendering: column cross-sections are splatted onto the pixel grid with bilinear weights (whose
first moment is exact) and convolved with the probe by FFT; since the probe is centrosymmetric
(only even aberrations), the intensity centroid of an isolated column is exactly its
ground-truth position.

Limits of the model, as a microscopist should read them: no dynamical scattering
(multislice/Bloch waves), so no cross-talk between neighbouring columns, no thickness-dependent
column shape or depth-dependent defocus, and no light-element or ABF-like contrast; no odd
aberrations (coma, three-fold astigmatism), which would shift apparent positions; specimen tilt
is ignored; the bilinear splat slightly broadens columns at coarse sampling (pixel > probe
FWHM / 2); scan distortions move the columns but do not shear each column's shape, and line
jitter tears columns without moving their ground-truth positions; the detector has no
afterglow or excess noise. It is meant for training and testing column finders, not for
quantitative ADF analysis.

Conventions: positions are ``(row, col)`` in pixels, pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["electron_wavelength_angstrom", "probe_intensity", "scan_positions"]

#: scattering cross-section into the ADF detector of one Au atom, Å².
SIGMA_REF_ANGSTROM2 = 0.01


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage, kV.

    Returns
    -------
    float
        Wavelength, Å.

    Examples
    --------
    >>> from atomseg.sim import electron_wavelength_angstrom
    >>> round(electron_wavelength_angstrom(300), 5)
    0.01969
    """
    if not voltage_kv > 0:
        raise ValueError(f"voltage_kv must be > 0, got {voltage_kv}")
    v = voltage_kv * 1e3
    return float(12.2643 / np.sqrt(v * (1 + 0.97848e-6 * v)))


def _probe_extent_angstrom(lam, alpha, c1, cs, a1, source_fwhm=0.0):
    geo = (abs(c1) + abs(a1)) * alpha + abs(cs) * alpha**3
    return 3.5 * lam / alpha + 1.5 * geo + 1.5 * source_fwhm + 1.0


def probe_intensity(
    *,
    pixel_size_angstrom: float,
    voltage_kv: float = 300.0,
    convergence_mrad: float = 25.0,
    defocus_angstrom: float = 0.0,
    cs_mm: float = 0.0,
    astigmatism_angstrom: float = 0.0,
    astigmatism_angle_deg: float = 0.0,
    half_width_px: int | None = None,
) -> np.ndarray:
    """Probe intensity sampled on the pixel grid, centred, summing to 1.

    ``chi(k) = pi lambda k² (C1 + A1 cos 2(phi - phi_A)) + pi/2 C3 lambda³ k⁴`` inside an aperture
    of semi-angle ``convergence_mrad``; the wave is computed on a grid fine enough for the
    aperture, so coarse pixels sample the true intensity (with its aliasing), not a blurred one.

    Parameters
    ----------
    pixel_size_angstrom : float
        Pixel size, Å.
    voltage_kv, convergence_mrad : float
        Accelerating voltage (kV) and probe semi-angle (mrad).
    defocus_angstrom, cs_mm : float
        Defocus C1 (Å; negative is underfocus) and spherical aberration C3 (mm).
    astigmatism_angstrom, astigmatism_angle_deg : float
        Two-fold astigmatism A1 (Å) and its direction.
    half_width_px : int, optional
        Half width of the returned window; by default large enough for the probe.

    Returns
    -------
    ndarray, shape (2 * h + 1, 2 * h + 1)
        The probe intensity; its centre pixel is the probe position. It is centrosymmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.sim import probe_intensity
    >>> p = probe_intensity(pixel_size_angstrom=0.1, convergence_mrad=25, half_width_px=20)
    >>> p.shape, round(float(p.sum()), 6), bool(np.allclose(p, p[::-1, ::-1]))
    ((41, 41), 1.0, True)
    """
    p = float(pixel_size_angstrom)
    if not p > 0:
        raise ValueError(f"pixel_size_angstrom must be > 0, got {pixel_size_angstrom}")
    if not convergence_mrad > 0:
        raise ValueError(f"convergence_mrad must be > 0, got {convergence_mrad}")
    lam = electron_wavelength_angstrom(voltage_kv)
    alpha = convergence_mrad * 1e-3
    cs = cs_mm * 1e7
    if half_width_px is None:
        ext = _probe_extent_angstrom(lam, alpha, defocus_angstrom, cs, astigmatism_angstrom)
        half_width_px = int(np.clip(np.ceil(ext / p), 4, 160))
    h = int(half_width_px)
    m = 2 * h + 1
    s = max(1, int(np.ceil(p / (0.9 * lam / (2 * alpha)))))  # fine grid resolves the aperture
    n = m * s
    k = sfft.fftfreq(n, d=p / s)
    ky, kx = k[:, None], k[None, :]
    k2 = kx * kx + ky * ky
    aperture = k2 <= (alpha / lam) ** 2
    kxa, kya, k2a = (
        np.broadcast_to(kx, k2.shape)[aperture],
        np.broadcast_to(ky, k2.shape)[aperture],
        k2[aperture],
    )
    phi_a = 2 * np.radians(astigmatism_angle_deg)
    # A1 cos 2(phi - phi_A) k² = A1 ((kx² - ky²) cos 2phi_A + 2 kx ky sin 2phi_A)
    astig = astigmatism_angstrom * (
        (kxa * kxa - kya * kya) * np.cos(phi_a) + 2 * kxa * kya * np.sin(phi_a)
    )
    chi = np.pi * lam * (defocus_angstrom * k2a + astig) + 0.5 * np.pi * cs * lam**3 * k2a * k2a
    pupil = np.zeros(k2.shape, np.complex64)
    pupil[aperture] = np.exp(-1j * chi)
    wave = sfft.ifft2(pupil, workers=1)
    inten = (wave.real**2 + wave.imag**2)[::s, ::s].astype(np.float64)
    inten = sfft.fftshift(inten)
    inten = 0.5 * (inten + inten[::-1, ::-1])  # exact centrosymmetry despite rounding
    return inten / inten.sum()


def _enclosed_radius(kernel: np.ndarray, fraction: float) -> int:
    h = kernel.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    r = np.maximum(np.abs(yy), np.abs(xx)).ravel()
    sums = np.bincount(r, weights=kernel.ravel())
    return int(np.searchsorted(np.cumsum(sums), fraction * kernel.sum()))


def _transfer(canvas_shape, pixel_size, kernel, *, source_fwhm, diffuse_fraction, diffuse_width):
    """rfft2-domain transfer function of probe + source blur + diffuse background."""
    hc, wc = canvas_shape
    h = kernel.shape[0] // 2
    if 2 * h + 1 > min(hc, wc):  # crop symmetrically to the canvas
        h2 = (min(hc, wc) - 1) // 2
        kernel = kernel[h - h2 : h + h2 + 1, h - h2 : h + h2 + 1]
        kernel = kernel / kernel.sum()
        h = h2
    kc = np.zeros(canvas_shape, np.float32)
    off = np.arange(-h, h + 1)
    kc[np.ix_(off % hc, off % wc)] = kernel
    otf = sfft.rfft2(kc, workers=1)
    ky2 = sfft.fftfreq(hc, d=pixel_size) ** 2
    kx2 = sfft.rfftfreq(wc, d=pixel_size) ** 2

    def gauss(sig):  # separable: exp(-2 pi² sig² (ky² + kx²))
        c = -2 * np.pi**2 * sig * sig
        return (np.exp(c * ky2)[:, None] * np.exp(c * kx2)[None, :]).astype(np.float32)

    out = otf * gauss(source_fwhm / 2.3548)
    if diffuse_fraction > 0:
        out *= np.float32(1 - diffuse_fraction)
        out += np.float32(diffuse_fraction) * gauss(diffuse_width)
    return out


def _splat(canvas_shape, rows, cols, weights) -> np.ndarray:
    """Bilinear splat of point weights at sub-pixel (row, col) onto a grid."""
    hc, wc = canvas_shape
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr = rows - r0
    fc = cols - c0
    idx, w = [], []
    for dr, dc, ww in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < hc) & (cc >= 0) & (cc < wc)
        idx.append(rr[ok] * wc + cc[ok])
        w.append((weights * ww)[ok])
    flat = np.bincount(np.concatenate(idx), np.concatenate(w), minlength=hc * wc)
    return flat.reshape(canvas_shape)


def scan_positions(
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    drift_shear: float = 0.0,
    drift_stretch: float = 0.0,
    flyback_px: float = 0.0,
    flyback_decay_px: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Where specimen points appear in a distorted scan, in image pixels.

    The beam at image pixel ``(i, j)`` sits at specimen position ``(i * (1 + drift_stretch),
    j - flyback_px * exp(-max(j, 0) / flyback_decay_px) + drift_shear * i)``
    (pixels): slow drift stretches and shears the frame, and the beam lags at the start of each
    line after the flyback. This returns the inverse map.

    Parameters
    ----------
    rows, cols : ndarray, shape (n,)
        Specimen positions in (undistorted) pixels.
    drift_shear, drift_stretch : float
        Column shift per row and relative row spacing change.
    flyback_px, flyback_decay_px : float
        Amplitude and decay length (pixels) of the line-start lag.

    Returns
    -------
    rows, cols : ndarray, shape (n,)
        Positions in the distorted image, pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.sim import scan_positions
    >>> r, c = scan_positions(np.array([100.0]), np.array([3.0]), drift_shear=0.01,
    ...                       flyback_px=2.0, flyback_decay_px=5.0)
    >>> float(r[0]), round(float(c[0] - 2.0 * np.exp(-c[0] / 5.0) + 0.01 * r[0]), 9)
    (100.0, 3.0)
    """
    rows = np.asarray(rows, dtype=float)
    cols = np.asarray(cols, dtype=float)
    i = rows / (1.0 + drift_stretch)
    x = cols - drift_shear * i
    j = x.copy()
    if flyback_px:
        tau = float(flyback_decay_px)
        for _ in range(30):  # Newton on j - A exp(-max(j, 0) / tau) = x (monotonic, A < tau)
            e = flyback_px * np.exp(-np.maximum(j, 0.0) / tau)
            step = (j - e - x) / (1.0 + np.where(j > 0, e / tau, 0.0))
            j -= step
            if np.max(np.abs(step), initial=0.0) < 1e-10:
                break
    return i, j


def _line_jitter(img: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift each row by ``shifts[i]`` pixels (linear interpolation, edges clamped)."""
    h, w = img.shape
    x = np.arange(w, dtype=np.float32)[None, :] - shifts.astype(np.float32)[:, None]
    x0 = np.floor(x)
    f = x - x0
    x0 = x0.astype(np.int64)
    base = (np.arange(h) * w)[:, None]
    flat = img.ravel()
    a = np.take(flat, base + np.clip(x0, 0, w - 1))
    b = np.take(flat, base + np.clip(x0 + 1, 0, w - 1))
    return a + f * (b - a)


def _smooth_field(shape, rng, n_terms=3) -> np.ndarray:
    """A slowly varying random field in about [-1, 1] (sum of separable cosines)."""
    h, w = shape
    y = np.linspace(0, 1, h)
    x = np.linspace(0, 1, w)
    out = np.zeros(shape, np.float32)
    for _ in range(n_terms):
        fy, fx = rng.uniform(0.2, 1.5, 2)
        py, px = rng.uniform(0, 2 * np.pi, 2)
        out += np.outer(np.cos(2 * np.pi * fy * y + py), np.cos(2 * np.pi * fx * x + px) / n_terms)
    return out


def _detect(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts with mean ``expected``; pixels above 30 counts use the normal limit."""
    out = np.empty(expected.shape, np.float32)
    big = expected >= 30.0
    if big.any():
        lam = expected[big]
        out[big] = np.round(lam + np.sqrt(lam) * rng.standard_normal(lam.shape, np.float32))
    small = ~big
    if small.any():
        out[small] = rng.poisson(expected[small])
    return out


def _export_8bit(img: np.ndarray, lo_pct: float, hi_pct: float) -> np.ndarray:
    lo, hi = np.percentile(img[::2, ::2], [lo_pct, hi_pct])
    if not hi > lo:
        hi = lo + 1.0
    return np.clip(np.round((img - lo) * (255.0 / (hi - lo))), 0, 255)


def _label_maps(shape, rows, cols, *, disc_radius_px, gaussian_sigma_px):
    """Disc mask (uint8) and max-of-Gaussians map (float32, peak 1) for the given positions."""
    h, w = shape
    mask = np.zeros(h * w, np.uint8)
    gauss = np.zeros(h * w, np.float32)
    k = int(np.ceil(max(disc_radius_px, 4.0 * gaussian_sigma_px))) + 1
    keep = (rows > -k) & (rows < h + k) & (cols > -k) & (cols < w + k)
    rows, cols = rows[keep], cols[keep]
    if len(rows) == 0:
        return mask.reshape(shape), gauss.reshape(shape)
    off = np.arange(-k, k + 1)
    rr = np.round(rows).astype(np.int64)[:, None] + off  # (n, 2k+1)
    cc = np.round(cols).astype(np.int64)[:, None] + off
    dr2 = ((rr - rows[:, None]) ** 2).astype(np.float32)
    dc2 = ((cc - cols[:, None]) ** 2).astype(np.float32)
    d2 = dr2[:, :, None] + dc2[:, None, :]  # (n, 2k+1, 2k+1)
    ok = ((rr >= 0) & (rr < h))[:, :, None] & ((cc >= 0) & (cc < w))[:, None, :]
    ok &= d2 <= np.float32(max(16.0 * gaussian_sigma_px**2, disc_radius_px**2))
    idx = (rr * w)[:, :, None] + cc[:, None, :]
    idx, d2 = idx[ok], d2[ok]
    mask[idx[d2 <= disc_radius_px**2]] = 1
    g = np.exp(d2 * np.float32(-0.5 / gaussian_sigma_px**2))
    np.maximum.at(gauss, idx, g)
    return mask.reshape(shape), gauss.reshape(shape)
