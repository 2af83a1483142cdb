"""One synthetic image with its ground truth, and libraries of them in HDF5.

:func:`simulate_image` draws every parameter of one image from a configuration (see
:mod:`atomseg.sim.params`) and renders it (:mod:`atomseg.sim.imaging`); :func:`write_library`
streams many of them into an HDF5 file, in parallel and resumably.

HDF5 library layout (``format_version`` 3)
------------------------------------------
=========================== ======================================================================
``/images``                 (N, H, W) float32, chunks (1, H, W), lzf + shuffle (h5py's fast
                            filter): the images in detector counts (0-255 for 8-bit exports)
``/masks``                  (N, H, W) uint8, same chunking: 1 inside the disc of each labelled
                            and detectable column, 2 ("don't care") inside the disc of each
                            labelled column too weak to detect at the image's dose
``/gaussians``              (N, H, W) float16, same chunking: max of unit-peak Gaussians
``/pixel_size_angstrom``    (N,) float32
``/dose_e_per_A2``          (N,) float32
``/columns``                (M,) compound ``image`` int32, ``row`` float32, ``col`` float32,
                            ``z`` int16, ``n_atoms`` int16, ``labelled`` uint8 (1: heavy enough
                            and resolved), ``snr`` float32 (ideal-observer signal-to-noise
                            ratio at the image's dose; format 3): every column with >= 1 atom
                            whose centre lies in its image, all images concatenated in order
``/column_offsets``         (N + 1,) int64: image ``i`` owns ``columns[offsets[i]:offsets[i+1]]``
``/params``                 (N,) variable-length UTF-8 JSON: every generator parameter and the
                            image seed (:func:`remake` turns one back into the image)
root attributes             ``seed``, ``n_target``, ``shape``, ``n_done`` (images finished, in
                            order), ``generator_version``, ``format_version``, ``config`` (JSON)
=========================== ======================================================================

The seed of image ``i`` is derived from ``(seed, i)`` alone (``numpy.random.SeedSequence(seed,
spawn_key=(i,))``), so a library of 100 images is the first 100 images of one of 10,000 with
the same seed and configuration, and a resumed library equals an uninterrupted one. A library
is written to ``<output>.partial`` and renamed to ``<output>`` once complete; running the same
command again resumes the partial file, and reports a complete file as done.

Positions are ``(row, col)`` in pixels of the image, pixel centres at integer coordinates.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy.spatial import cKDTree

from atomseg.sim.crystals import ELEMENTS
from atomseg.sim.imaging import (
    SIGMA_REF_ANGSTROM2,
    _detect,
    _enclosed_radius,
    _export_8bit,
    _label_maps,
    _line_jitter,
    _smooth_field,
    _splat,
    _transfer,
    electron_wavelength_angstrom,
    probe_intensity,
    scan_positions,
)
from atomseg.sim.params import (
    GENERATOR_VERSION,
    check_overrides,
    draw_params,
    load_config,
)
from atomseg.sim.specimen import _AMORPHOUS_DENSITY, _amorphous_thickness, build_specimen

__all__ = [
    "Sample",
    "simulate_image",
    "remake",
    "write_library",
    "read_library_sample",
    "save_sample_grid",
]

FORMAT_VERSION = 3  # 2: /columns has ``labelled``; 3: and ``snr``
_SYMBOLS = {v: k for k, v in ELEMENTS.items()}
_COLUMN_DTYPE = np.dtype(
    [
        ("image", "<i4"),
        ("row", "<f4"),
        ("col", "<f4"),
        ("z", "<i2"),
        ("n_atoms", "<i2"),
        ("labelled", "u1"),
        ("snr", "<f4"),
    ]
)


@dataclass
class Sample:
    """One synthetic image with its ground truth.

    Attributes
    ----------
    image : ndarray, shape (H, W), float32
        The image in detector counts (arbitrary units; 0-255 for 8-bit exports).
    columns : pandas.DataFrame
        One row per column with at least one atom whose centre lies in the image: ``row``,
        ``col`` (pixels, sub-pixel), ``z`` (heaviest element present), ``n_atoms`` and
        ``species`` (symbol of ``z``), ``labelled`` (``z >= label_min_z`` and resolved, see
        ``label_min_separation_px``), ``snr`` (the ideal-observer signal-to-noise ratio of the
        column's own signal at the image's dose, see :func:`column_snr`) and ``detectable``
        (labelled and ``snr >= label_min_snr``): the columns a finder is asked to find; and,
        for freshly simulated images (not library reads), ``position_crb_px``: the Cramér-Rao
        bound of its position error (radial RMS, pixels, neighbours taken as known).
    mask : ndarray, shape (H, W), uint8
        1 inside a disc of radius ``params["label_disc_radius_px"]`` around every detectable
        column, 2 ("don't care") around labelled columns too weak to detect, 0 elsewhere;
        columns just outside the image included.
    gaussian : ndarray, shape (H, W), float32
        Maximum over detectable columns of ``exp(-d² / 2 sigma²)``, sigma =
        ``params["label_gaussian_sigma_px"]``.
    pixel_size_angstrom : float
        Pixel size, Å.
    params : dict
        Every generator parameter (JSON-serialisable) including ``seed``;
        ``remake(params, shape=image.shape)`` re-makes this sample exactly.
    outside_columns : pandas.DataFrame or None
        ``row``, ``col``, ``z``, ``n_atoms`` of the columns centred outside the image but
        within one column spacing (and the probe's reach) of it, part of which can show at its
        border: not asked for, but really there (a finder that reports one on the border is not
        wrong). Freshly simulated images only (None for library reads).
    """

    image: np.ndarray
    columns: Any
    mask: np.ndarray
    gaussian: np.ndarray
    pixel_size_angstrom: float
    params: dict = field(repr=False)
    outside_columns: Any = field(default=None, repr=False)

    @property
    def positions(self) -> np.ndarray:
        """Column positions, shape (n, 2), ``(row, col)`` in pixels."""
        return self.columns[["row", "col"]].to_numpy(dtype=np.float64)

    @property
    def dose_e_per_A2(self) -> float:
        """Electron dose of the image, e/Å²."""
        return float(self.params["dose_e_per_A2"])

    def truth(self, min_z: int) -> dict:
        """What a finder is asked to find in this image, and what it may find at no cost.

        A column is *asked* for when it holds an atom of ``z >= min_z``, is resolved and
        detectable (``labelled`` and ``detectable``); the benchmarks and ``atomseg demo`` count
        against it. Positions (n, 2) in pixels: ``true`` (the asked ones; ``asked`` is their
        mask in :attr:`columns`), ``resolved`` (every resolved one, weak ones included),
        ``dont_care`` (present but not asked for, or centred just outside the image, and the
        centre of each dumbbell of which neither column is asked for, where a finder sees one
        blob, see :func:`atomseg.detect.pair_centres`: a detection there is neither a hit nor a
        false one) and ``dont_care_resolved`` (the same for a truth of every resolved column:
        present but not resolved, or just outside, and the centres of unresolved dumbbells).

        Examples
        --------
        >>> s = simulate_image(shape=(64, 64), seed=3, dose_e_per_A2=1e5, scene="slab")
        >>> t = s.truth(11)
        >>> len(t["true"]) == int(t["asked"].sum()) <= len(t["resolved"])
        True
        """
        from atomseg.detect.metrics import pair_centres

        c = self.columns
        present = c["n_atoms"] >= 1
        resolved = present & c["labelled"] & (c["z"] >= min_z)
        asked = resolved & c["detectable"]
        out = self.outside_columns
        if out is None:
            out = c.iloc[:0]
        there = out["n_atoms"] >= 1
        outside = out.loc[there, ["row", "col"]].to_numpy(float)

        def at(mask):
            return c.loc[mask, ["row", "col"]].to_numpy(float)

        # the dumbbells among the columns of z >= min_z (those just outside included)
        heavy = present & (c["z"] >= min_z)
        beyond = out.loc[there & (out["z"] >= min_z), ["row", "col"]].to_numpy(float)
        pts = np.concatenate([at(heavy), beyond])
        none = np.zeros(len(beyond), bool)

        def blobs(mask):
            return pair_centres(pts, np.concatenate([mask[heavy].to_numpy(bool), none]))

        return {
            "asked": asked,
            "true": at(asked),
            "resolved": at(resolved),
            "dont_care": np.concatenate([at(present & ~asked), outside, blobs(asked)]),
            "dont_care_resolved": np.concatenate(
                [at(present & ~resolved), outside, blobs(resolved)]
            ),
        }

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Sample({p['structure']} [{p['zone_axis']}], {p['scene']}, shape={self.image.shape},"
            f" {self.pixel_size_angstrom:.3f} Å/px, {len(self.columns)} columns,"
            f" dose {p['dose_e_per_A2']:.3g} e/Å², seed={p['seed']})"
        )


def _check_shape(shape) -> tuple[int, int]:
    try:
        ok = len(shape) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape
        )
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"shape must be two positive integers (H, W), got {shape!r}")
    if min(shape) < 8 or max(shape) > 4096:
        raise ValueError(f"shape must lie between 8 and 4096 pixels per side, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _seed_from(rng) -> int:
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng seed must be >= 0, got {rng}")
    gen = np.random.default_rng(rng)
    return int(gen.integers(0, 2**63 - 1))


def _image_seed(library_seed: int, index: int) -> int:
    ss = np.random.SeedSequence(int(library_seed), spawn_key=(int(index),))
    a, b = ss.generate_state(2, np.uint32)
    return int((int(a) << 31) ^ int(b)) & (2**63 - 1)


def _stream(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))


def _render(params: dict, shape: tuple[int, int]) -> dict[str, Any]:
    """Render one image and its labels from a complete parameter set (numpy only)."""
    h, w = shape
    p = float(params["pixel_size_angstrom"])
    seed = int(params["seed"])
    n_exp = float(params["z_exponent"])
    kernel = probe_intensity(
        pixel_size_angstrom=p,
        voltage_kv=params["voltage_kv"],
        convergence_mrad=params["convergence_mrad"],
        defocus_angstrom=params["defocus_angstrom"],
        cs_mm=params["cs_mm"],
        astigmatism_angstrom=params["astigmatism_angstrom"],
        astigmatism_angle_deg=params["astigmatism_angle_deg"],
    )
    src_px = params["source_size_angstrom"] / p
    label_px = max(
        params["label_disc_radius_angstrom"] / p,
        params["label_min_disc_radius_px"],
        4 * max(params["label_gaussian_sigma_angstrom"] / p, 1.0),
    )
    probe_px = np.hypot(_enclosed_radius(kernel, 0.995), 1.5 * src_px)  # probe (+) source blur
    margin = int(min(max(probe_px, label_px) + 3, 256))
    hc = sfft.next_fast_len(h + 2 * margin, real=True)
    wc = sfft.next_fast_len(w + 2 * margin, real=True)
    # Specimen region that can land on the canvas after the scan distortion.
    shear, stretch = params["drift_shear"], params["drift_stretch"]
    extra_r = abs(stretch) * (h + margin) + 2
    extra_c = abs(shear) * (h + margin) * (1 + abs(stretch)) + params["flyback_px"] + 2
    bounds = (
        (-margin - extra_r) * p,
        (hc - margin + extra_r) * p,
        (-margin - extra_c) * p,
        (wc - margin + extra_c) * p,
    )
    spec = build_specimen(params, shape=shape, bounds_angstrom=bounds, rng=_stream(seed, 1))
    rows, cols = scan_positions(
        spec["row_angstrom"] / p,
        spec["col_angstrom"] / p,
        drift_shear=shear,
        drift_stretch=stretch,
        flyback_px=params["flyback_px"],
        flyback_decay_px=params["flyback_decay_px"],
    )
    sat = float(params["saturation_atoms"])
    strength = spec["zn"] / 79.0**n_exp  # scattering power in Au-atom equivalents
    sigma = SIGMA_REF_ANGSTROM2 * sat * -np.expm1(-strength / sat)  # Å² per column
    obj = _splat((hc, wc), rows + margin, cols + margin, sigma / (p * p)).astype(np.float32)
    t_am = float(params["amorphous_thickness_angstrom"] or 0.0)
    centre = ((h - 1) / 2 * p, (w - 1) / 2 * p)
    if t_am > 0:  # amorphous film: random atoms, Poisson-distributed per pixel
        arng = _stream(seed, 2)
        lam_px = _AMORPHOUS_DENSITY * t_am * p * p
        w_atom = SIGMA_REF_ANGSTROM2 * (float(params["amorphous_z"]) / 79.0) ** n_exp / (p * p)
        if lam_px < 1.0:  # sparse: draw the atoms themselves
            n_am = arng.poisson(lam_px * hc * wc)
            ar = arng.random(n_am) * hc
            ac = arng.random(n_am) * wc
            t_at = _amorphous_thickness(
                params, (ar - margin - 0.5) * p, (ac - margin - 0.5) * p, centre_angstrom=centre
            )
            ok = t_at > 0
            flat = ar[ok].astype(np.int64) * wc + ac[ok].astype(np.int64)
            atoms = np.bincount(flat, minlength=hc * wc).reshape(hc, wc)
        else:
            rr = ((np.arange(hc) - margin) * p)[:, None]
            cc = ((np.arange(wc) - margin) * p)[None, :]
            t_map = _amorphous_thickness(params, rr, cc, centre_angstrom=centre)
            atoms = _detect(np.broadcast_to(_AMORPHOUS_DENSITY * p * p * t_map, (hc, wc)), arng)
        obj += (atoms * w_atom).astype(np.float32)
    transfer = _transfer(
        (hc, wc),
        p,
        kernel,
        source_fwhm=params["source_size_angstrom"],
        diffuse_fraction=params["diffuse_fraction"],
        diffuse_width=params["diffuse_width_angstrom"],
    )
    clean = sfft.irfft2(sfft.rfft2(obj, workers=1) * transfer, s=(hc, wc), workers=1)
    inner = (slice(margin, margin + h), slice(margin, margin + w))
    ref = float(np.percentile(clean[inner][::2, ::2], 99.5))
    ref = max(ref, 1e-6)
    lvl, var = params["background_level"], params["background_variation"]
    ramp = params["background_ramp"] or [0.0, 0.0]
    noise = bool(params["noise"])
    jit = params["line_jitter_angstrom"] / p if noise else 0.0
    # Crop to the image (plus a few pixels for the line jitter) before the per-pixel work.
    k = int(min(np.ceil(6 * jit) + 2, margin)) if jit > 0 else 0
    clean = clean[margin : margin + h, margin - k : margin + w + k]
    if lvl or var or any(ramp):
        yy = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
        xx = (np.arange(-k, w + k, dtype=np.float32) / w - 0.5)[None, :]
        bg = lvl + ramp[0] * yy + ramp[1] * xx
        if var:
            bg = bg + var * _smooth_field(clean.shape, _stream(seed, 3))
        clean = clean + np.float32(ref) * np.maximum(bg, 0.0)
    if jit > 0:
        rho = float(params["line_jitter_correlation"])
        white = _stream(seed, 4).normal(0.0, jit, h)
        shifts = np.empty(h)
        acc = white[0]
        shifts[0] = acc
        for i in range(1, h):  # AR(1): correlated line-to-line jitter
            acc = rho * acc + np.sqrt(1 - rho * rho) * white[i]
            shifts[i] = acc
        clean = _line_jitter(clean, np.clip(shifts, -k + 1, k - 1))[:, k : k + w]
    expected = np.maximum(clean * np.float32(params["dose_e_per_A2"] * p * p), 0.0)
    gain = np.float32(params["detector_gain"])
    if noise:
        nrng = _stream(seed, 5)
        image = _detect(expected, nrng) * gain + np.float32(params["dark_offset"])
        if params["read_noise_e"] > 0:
            image += nrng.standard_normal(shape, np.float32) * np.float32(
                params["read_noise_e"] * gain
            )
    else:
        image = expected * gain + np.float32(params["dark_offset"])
    if params["clip_8bit"]:
        image = _export_8bit(image, *params["clip_percentiles"])
    # Labels: columns heavy enough (label_min_z) and resolved from their neighbours.
    labelled = _resolved(params, rows, cols, spec, (h, w), margin)
    spacing = np.full(len(rows), np.inf)  # each column's nearest labelled neighbour
    if labelled.sum() > 1:
        d, _ = cKDTree(np.stack([rows[labelled], cols[labelled]], axis=1)).query(
            np.stack([rows, cols], axis=1), k=2
        )
        spacing = np.where(labelled, d[:, 1], d[:, 0])
    snr = np.full(len(rows), np.inf)  # noise-free images: every column is detectable
    crb = np.zeros(len(rows))  # ... and every position is exact
    if noise:
        sharp = _transfer(
            (hc, wc), p, kernel, source_fwhm=params["source_size_angstrom"],
            diffuse_fraction=0.0, diffuse_width=1.0,
        )  # fmt: skip
        variance = expected + np.float32(params["read_noise_e"] ** 2)
        electrons = sigma * float(params["dose_e_per_A2"]) * (1 - float(params["diffuse_fraction"]))
        fields = dict(transfer=sharp, canvas_shape=(hc, wc))
        snr = column_snr(
            variance, rows, cols, electrons, spacing_px=spacing, exact=labelled, **fields
        )
        crb = position_crb(variance, rows, cols, electrons, **fields)
    detectable = labelled & (snr >= float(params.get("label_min_snr", 0.0)))
    # nearest-neighbour distance of the labelled columns in the image
    core = labelled & (rows > -3) & (rows < h + 2) & (cols > -3) & (cols < w + 2)
    nn = float(np.percentile(spacing[core], 2)) if labelled.sum() > 1 and core.sum() > 1 else np.inf
    r_disc = min(
        max(params["label_disc_radius_angstrom"] / p, params["label_min_disc_radius_px"]),
        params["label_max_disc_fraction"] * nn,
    )
    r_disc = max(r_disc, 1.0)
    g_sig = max(min(max(params["label_gaussian_sigma_angstrom"] / p, 1.0), 0.25 * nn), 0.5)
    mask, gaussian = _label_maps(
        shape, rows[detectable], cols[detectable], disc_radius_px=r_disc, gaussian_sigma_px=g_sig
    )
    weak = labelled & ~detectable
    if weak.any():  # too weak to find at this dose: "don't care" (2) where no column says 1
        dont_care, _ = _label_maps(
            shape, rows[weak], cols[weak], disc_radius_px=r_disc, gaussian_sigma_px=g_sig
        )
        mask[(dont_care == 1) & (mask == 0)] = 2
    inside = (rows >= -0.5) & (rows < h - 0.5) & (cols >= -0.5) & (cols < w - 0.5)
    order = np.lexsort((cols[inside], rows[inside]))
    # centred outside, within one column spacing of the image (and the probe's reach): part of
    # them shows at the border
    reach = min(float(margin), nn) if np.isfinite(nn) else float(margin)
    near = ~inside & (rows > -0.5 - reach) & (rows < h - 0.5 + reach)
    near &= (cols > -0.5 - reach) & (cols < w - 0.5 + reach)
    return {
        "outside_rows": rows[near],
        "outside_cols": cols[near],
        "outside_z": spec["z"][near],
        "outside_n_atoms": spec["n_atoms"][near],
        "image": image.astype(np.float32, copy=False),
        "mask": mask,
        "gaussian": gaussian,
        "rows": rows[inside][order],
        "cols": cols[inside][order],
        "z": spec["z"][inside][order],
        "n_atoms": spec["n_atoms"][inside][order],
        "labelled": labelled[inside][order],
        "snr": snr[inside][order].astype(np.float32),
        "position_crb_px": crb[inside][order],
        "label_disc_radius_px": float(r_disc),
        "label_gaussian_sigma_px": float(g_sig),
    }


def _inverse_variance_f(variance, canvas_shape) -> np.ndarray:
    """rfft2 of 1 / variance on the canvas, zero outside the image."""
    h, w = variance.shape
    inv = np.zeros(canvas_shape, np.float64)
    inv[:h, :w] = 1.0 / np.maximum(variance, 1e-6)
    return sfft.rfft2(inv, workers=1)


def _weighted_energy(inv_f, kern, rows, cols) -> np.ndarray:
    """``sum_r kern(r - r_j)² / V(r)`` at each column ``j`` (``kern`` centred at the origin)."""
    from scipy.ndimage import map_coordinates

    acc = sfft.irfft2(inv_f * sfft.rfft2(kern * kern, workers=1), s=kern.shape, workers=1)
    return map_coordinates(acc, [rows, cols], order=1, mode="grid-wrap")


def column_snr(
    variance, rows, cols, electrons, *, spacing_px, transfer, canvas_shape, exact=None
) -> np.ndarray:
    """Ideal-observer signal-to-noise ratio of each column's own contrast (private API).

    A column ``j`` adds ``N_j h(r - r_j)`` detected electrons to pixel ``r`` (``N_j`` its
    electrons into the sharp probe image, ``h`` the sharp point response: probe and source
    size, not the diffuse halo). What tells the column apart from its surroundings is that
    signal minus its own average over a disc of diameter ``spacing_px[j]`` (its nearest
    neighbour's distance): ``c_j = N_j (h - h * u_j)``. A probe as wide as the spacing leaves
    little contrast, a sharp one nearly all. Against noise of variance ``V(r)`` (Poisson: the
    expected counts of the whole image, the column included, plus read noise²), the best linear
    detector that knows that shape has ``SNR_j² = sum_r c_j(r)² / V(r)``; Rose's criterion
    (SNR >= 5) marks a column that can be told from the noise reliably. Pixels outside the
    image contribute nothing, so columns at the border are weaker. ``transfer`` is the rfft2
    transfer function of ``h`` on ``canvas_shape``, larger than the image by the probe's radius
    on each side. Spacings are rounded to 10 % steps (one convolution per step); columns not in
    ``exact`` (a boolean mask; default all) borrow the nearest step the exact ones need.
    """
    hc, wc = canvas_shape
    inv_f = _inverse_variance_f(variance, canvas_shape)
    rr = np.minimum(np.arange(hc), hc - np.arange(hc))[:, None].astype(np.float64)
    cc = np.minimum(np.arange(wc), wc - np.arange(wc))[None, :].astype(np.float64)
    r2 = rr * rr + cc * cc
    # spacings in 10 % steps (one convolution per step); no neighbour: no surroundings
    spacing = np.asarray(spacing_px, np.float64)
    finite = np.isfinite(spacing) & (spacing < min(hc, wc))
    step = np.zeros(len(spacing), np.int64)
    step[finite] = np.round(np.log(np.maximum(spacing[finite], 1.0)) / np.log(1.1)).astype(int)
    step[~finite] = -1
    exact = np.ones(len(spacing), bool) if exact is None else np.asarray(exact, bool)
    needed = np.unique(step[exact])
    if len(needed) and not exact.all():  # the others: the nearest step computed anyway
        pos = np.clip(np.searchsorted(needed, step[~exact]), 0, len(needed) - 1)
        lower = needed[np.maximum(pos - 1, 0)]
        upper = needed[pos]
        near = np.where(np.abs(step[~exact] - lower) < np.abs(step[~exact] - upper), lower, upper)
        step[~exact] = near
    at = np.zeros(len(spacing))
    for k in np.unique(step):
        tf = transfer
        if k >= 0:
            disc = (r2 <= (0.5 * 1.1**k) ** 2).astype(np.float64)
            tf = transfer * (1.0 - sfft.rfft2(disc / disc.sum(), workers=1))
        sel = step == k
        kern = sfft.irfft2(tf, s=(hc, wc), workers=1)
        at[sel] = _weighted_energy(inv_f, kern, rows[sel], cols[sel])
    return np.asarray(electrons, np.float64) * np.sqrt(np.maximum(at, 0.0))


def position_crb(variance, rows, cols, electrons, *, transfer, canvas_shape) -> np.ndarray:
    """Cramér-Rao bound of each column's position error, pixels (radial RMS; private API).

    For a column ``N h(r - r_j)`` of known shape and strength in noise of variance ``V(r)``,
    the Fisher information of its row is ``N² sum_r (dh/drow)² / V`` (and likewise its
    column); no unbiased estimator locates it better than ``sqrt(1/I_row + 1/I_col)``. The
    neighbours are taken as known, so the bound is optimistic where columns overlap.
    """
    hc, wc = canvas_shape
    inv_f = _inverse_variance_f(variance, canvas_shape)
    info = []
    for k in (sfft.fftfreq(hc)[:, None], sfft.rfftfreq(wc)[None, :]):
        grad = sfft.irfft2(transfer * (2j * np.pi * k), s=(hc, wc), workers=1)
        info.append(_weighted_energy(inv_f, grad, rows, cols))
    n2 = np.asarray(electrons, np.float64) ** 2
    with np.errstate(divide="ignore"):
        return np.sqrt(1.0 / (n2 * np.maximum(info[0], 0)) + 1.0 / (n2 * np.maximum(info[1], 0)))


def probe_size_angstrom(params: dict) -> float:
    """Size (FWHM, Å) of the effective probe: diffraction limit ``0.51 λ/α`` (+) source size.

    Examples
    --------
    >>> round(probe_size_angstrom({"voltage_kv": 300, "convergence_mrad": 25,
    ...                            "source_size_angstrom": 0.5}), 2)
    0.64
    """
    lam = electron_wavelength_angstrom(float(params["voltage_kv"]))
    alpha = float(params["convergence_mrad"]) * 1e-3
    return float(np.hypot(0.51 * lam / alpha, float(params["source_size_angstrom"])))


def _resolved(params, rows, cols, spec, shape, margin) -> np.ndarray:
    """Columns to label: ``z >= label_min_z``, >= 1 atom, near the image, and resolved.

    Resolved: the nearest other such column is at least ``label_min_separation_px`` pixels
    and at least the probe size away; closer columns image as one blob and get no label.
    """
    h, w = shape
    heavy = (spec["z"] >= int(params["label_min_z"])) & (spec["n_atoms"] >= 1)
    near = (rows > -margin) & (rows < h + margin) & (cols > -margin) & (cols < w + margin)
    cand = np.flatnonzero(heavy & near)
    out = np.zeros(len(rows), bool)
    if len(cand) < 2:
        out[cand] = True
        return out
    p = float(params["pixel_size_angstrom"])
    limit = max(float(params["label_min_separation_px"]), probe_size_angstrom(params) / p)
    pts = np.stack([rows[cand], cols[cand]], axis=1)
    d, _ = cKDTree(pts).query(pts, k=2)
    out[cand] = d[:, 1] >= limit
    return out


def _simulate(shape, seed, cfg, overrides):
    params = draw_params(seed, shape, cfg, overrides)
    out = _render(params, shape)
    params["label_disc_radius_px"] = out.pop("label_disc_radius_px")
    params["label_gaussian_sigma_px"] = out.pop("label_gaussian_sigma_px")
    params["generator_version"] = GENERATOR_VERSION
    return params, out


def _to_sample(params, out) -> Sample:
    import pandas as pd

    z = np.asarray(out["z"], np.int16)
    columns = pd.DataFrame(
        {
            "row": np.asarray(out["rows"], np.float64),
            "col": np.asarray(out["cols"], np.float64),
            "z": z,
            "n_atoms": np.asarray(out["n_atoms"], np.int32),
            "species": [_SYMBOLS.get(int(v), "?") for v in z],
            "labelled": np.asarray(out["labelled"], bool),
        }
    )
    snr = out.get("snr")
    columns["snr"] = np.asarray(snr if snr is not None else np.full(len(z), np.inf), np.float32)
    columns["detectable"] = columns["labelled"] & (
        columns["snr"] >= float(params.get("label_min_snr", 0.0))
    )
    outside = None
    if "position_crb_px" in out:  # freshly simulated (libraries do not store it)
        columns["position_crb_px"] = np.asarray(out["position_crb_px"], np.float64)
        outside = pd.DataFrame(
            {
                "row": np.asarray(out["outside_rows"], np.float64),
                "col": np.asarray(out["outside_cols"], np.float64),
                "z": np.asarray(out["outside_z"], np.int16),
                "n_atoms": np.asarray(out["outside_n_atoms"], np.int32),
            }
        )
    return Sample(
        image=out["image"],
        columns=columns,
        mask=out["mask"],
        gaussian=np.asarray(out["gaussian"], np.float32),
        pixel_size_angstrom=float(params["pixel_size_angstrom"]),
        params=params,
        outside_columns=outside,
    )


def simulate_image(
    *,
    shape: tuple[int, int] = (256, 256),
    rng: int | np.random.Generator | None = None,
    config: dict | str | os.PathLike | None = None,
    **overrides: Any,
) -> Sample:
    """Simulate one ADF/HAADF-STEM image with exact ground truth.

    Every parameter (structure, zone axis, geometry, probe, dose, noise, distortions, labels) is
    drawn from ``config``; any of them can be fixed by passing it as a keyword (the keys of
    ``Sample.params``). The image model is a fast linear, incoherent approximation (column
    cross-sections convolved with an aberrated probe); see :mod:`atomseg.sim.imaging` for what
    it leaves out (no dynamical scattering or cross-talk, no odd aberrations, no tilt).

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W), 8 to 4096 pixels per side.
    rng : int or numpy.random.Generator or None
        Source of the image seed (``params["seed"]``), unless ``seed`` is given.
    config : dict or path or None
        Parameter distributions, see :func:`load_config`.
    **overrides
        Fixed parameters, e.g. ``structure="GaAs", zone_axis="110", pixel_size_angstrom=0.1,
        dose_e_per_A2=1e5, noise=False, seed=7``. Unknown names raise ValueError.

    Returns
    -------
    Sample
        ``image``, ``columns``, ``mask``, ``gaussian``, ``pixel_size_angstrom`` and ``params``.

    Raises
    ------
    ValueError
        For a bad shape, an unknown parameter or an invalid value (a pixel size <= 0, a
        negative dose, an unknown structure or zone axis, ...).

    Examples
    --------
    >>> from atomseg.sim import simulate_image
    >>> s = simulate_image(shape=(64, 64), rng=1, structure="GaAs", zone_axis="110",
    ...                    pixel_size_angstrom=0.1, scene="slab")
    >>> s.image.shape, s.image.dtype, s.mask.dtype, s.params["structure"]
    ((64, 64), dtype('float32'), dtype('uint8'), 'GaAs')
    >>> list(s.columns.columns)
    ['row', 'col', 'z', 'n_atoms', 'species', 'labelled', 'snr', 'detectable', 'position_crb_px']
    >>> sorted(set(s.columns["species"]))
    ['As', 'Ga']
    >>> simulate_image(shape=(64, 64), pixel_size_angstrom=-1)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'pixel_size_angstrom' must be > 0, got -1
    """
    shape = _check_shape(shape)
    cfg = load_config(config)
    overrides = check_overrides(overrides)
    seed = overrides.pop("seed", None)
    if seed is None:
        seed = _seed_from(rng)
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"parameter 'seed' must be a non-negative integer, got {seed!r}")
    params, out = _simulate(shape, int(seed), cfg, overrides)
    return _to_sample(params, out)


def remake(params: dict | str, *, shape: tuple[int, int]) -> Sample:
    """Re-make a sample exactly from its parameters (a dict or the JSON stored in a library).

    Parameters
    ----------
    params : dict or str
        ``Sample.params`` or one entry of a library's ``/params``.
    shape : (int, int)
        The image shape.

    Returns
    -------
    Sample

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.sim import remake, simulate_image
    >>> s = simulate_image(shape=(48, 48), rng=3)
    >>> np.array_equal(remake(s.params, shape=(48, 48)).image, s.image)
    True
    """
    if isinstance(params, (str, bytes)):
        params = json.loads(params)
    return simulate_image(shape=shape, **params)


# ----------------------------------------------------------------------------------------------
# Libraries


def _worker_init(shape, cfg, ignore_sigint=False):
    global _WORKER
    _WORKER = (shape, cfg)
    if ignore_sigint:  # Ctrl-C is handled by the parent, which flushes and stops the pool
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _record(task):
    """Simulate one library image (runs in a worker)."""
    index, seed = task
    shape, cfg = _WORKER
    params, out = _simulate(shape, seed, cfg, {})
    cols = np.empty(len(out["rows"]), _COLUMN_DTYPE)
    cols["image"] = index
    cols["row"] = out["rows"]
    cols["col"] = out["cols"]
    cols["z"] = out["z"]
    cols["n_atoms"] = np.minimum(out["n_atoms"], np.iinfo(np.int16).max)
    cols["labelled"] = out["labelled"]
    cols["snr"] = np.minimum(out["snr"], np.finfo(np.float32).max)
    return (
        index,
        out["image"],
        out["mask"],
        out["gaussian"].astype(np.float16),
        cols,
        float(params["pixel_size_angstrom"]),
        float(params["dose_e_per_A2"]),
        json.dumps(params, separators=(",", ":")),
    )


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _create(path: Path, *, n, seed, shape, cfg):
    import h5py

    f = h5py.File(path, "w")
    h, w = shape
    img_opts = {"chunks": (1, h, w), "compression": "lzf", "shuffle": True}
    f.create_dataset("images", (n, h, w), np.float32, **img_opts)
    f.create_dataset("masks", (n, h, w), np.uint8, **img_opts)
    f.create_dataset("gaussians", (n, h, w), np.float16, **img_opts)
    f.create_dataset("pixel_size_angstrom", (n,), np.float32)
    f.create_dataset("dose_e_per_A2", (n,), np.float32)
    f.create_dataset(
        "columns", (0,), _COLUMN_DTYPE, maxshape=(None,), chunks=(16384,), compression="lzf",
        shuffle=True,
    )  # fmt: skip
    f.create_dataset("column_offsets", (n + 1,), np.int64)
    f.create_dataset("params", (n,), h5py.string_dtype("utf-8"))
    f.attrs.update(
        {
            "seed": int(seed),
            "n_target": int(n),
            "shape": np.array(shape, np.int64),
            "n_done": 0,
            "generator_version": GENERATOR_VERSION,
            "format_version": FORMAT_VERSION,
            "config": json.dumps(cfg, sort_keys=True),
            "conventions": "(row, col) in pixels of each image; pixel centres at integers",
        }
    )
    return f


def _check_existing(f, path, *, n, seed, shape, cfg, complete):
    a = f.attrs
    got = {
        "n": int(a.get("n_target", -1)),
        "seed": int(a.get("seed", -1)),
        "shape": tuple(int(x) for x in a.get("shape", ())),
    }
    want = {"n": int(n), "seed": int(seed), "shape": tuple(shape)}
    for key in want:
        if got[key] != want[key]:
            what = "complete library" if complete else "unfinished library"
            raise ValueError(
                f"{path} is a {what} with {key}={got[key]!r}, not {want[key]!r}; "
                "write to a new path" + ("" if complete else " or delete the .partial file")
            )
    if json.loads(a.get("config", "null")) != json.loads(json.dumps(cfg, sort_keys=True)):
        raise ValueError(f"{path} was written with a different configuration; use a new path")
    if str(a.get("generator_version")) != GENERATOR_VERSION:
        raise ValueError(
            f"{path} was written by generator version {a.get('generator_version')}, this is "
            f"{GENERATOR_VERSION}; use a new path"
        )


def write_library(
    output: str | os.PathLike,
    *,
    n: int,
    seed: int = 0,
    shape: tuple[int, int] = (256, 256),
    config: dict | str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
    flush_every: int = 64,
) -> Path:
    """Write a library of ``n`` simulated images with ground truth to an HDF5 file.

    The layout is described in :mod:`atomseg.sim.library`. The file is written as
    ``<output>.partial`` and renamed when complete; an interrupted run (Ctrl-C, SIGTERM, an
    exception) flushes what it has and resumes from there when called again with the same
    arguments, giving the same file as an uninterrupted run. A hard kill (SIGKILL, power loss)
    in the middle of a write can leave the ``.partial`` file unreadable; delete it then. A
    finished ``output`` with the same ``n``, ``seed``, ``shape`` and configuration is reported
    as done and left alone; a different one raises ValueError.

    Parameters
    ----------
    output : path
        The HDF5 file to write.
    n : int
        Number of images.
    seed : int
        Library seed; image ``i`` gets a seed derived from ``(seed, i)``.
    shape : (int, int)
        Image shape.
    config : dict or path or None
        Parameter distributions, see :func:`load_config`.
    workers : int, optional
        Worker processes (default: the available cores; 1 runs in this process).
    progress : bool
        Show a progress bar (tqdm) on stderr.
    flush_every : int
        Images between flushes (and resume points).

    Returns
    -------
    pathlib.Path
        The finished library.

    Examples
    --------
    >>> import h5py, tempfile, os
    >>> from atomseg.sim import write_library
    >>> path = os.path.join(tempfile.mkdtemp(), "lib.h5")
    >>> out = write_library(path, n=2, seed=1, shape=(32, 32), workers=1)
    >>> with h5py.File(out) as f:
    ...     f["images"].shape, int(f.attrs["n_done"]), int(f["column_offsets"][0])
    ((2, 32, 32), 2, 0)
    """
    import h5py

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    shape = _check_shape(shape)
    cfg = load_config(config)
    if workers is None:
        workers = _default_workers()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer or None, got {workers!r}")
    final = Path(output)
    partial = final.with_name(final.name + ".partial")
    if final.exists():
        with h5py.File(final, "r") as f:
            _check_existing(f, final, n=n, seed=seed, shape=shape, cfg=cfg, complete=True)
            done = int(f.attrs.get("n_done", 0))
        if done != n:
            raise ValueError(f"{final} holds {done} of {n} images but is not marked partial")
        if progress:
            print(f"{final}: complete ({n} images), nothing to do", file=sys.stderr)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    if partial.exists():
        try:
            f = h5py.File(partial, "r+")
        except OSError as exc:
            raise OSError(
                f"cannot resume {partial} (damaged by a hard kill?): {exc}; delete it to start over"
            ) from None
        try:
            _check_existing(f, partial, n=n, seed=seed, shape=shape, cfg=cfg, complete=False)
        except ValueError:
            f.close()
            raise
        start = int(f.attrs["n_done"])
        f["columns"].resize((int(f["column_offsets"][start]),))
    else:
        f = _create(partial, n=n, seed=seed, shape=shape, cfg=cfg)
        start = 0
    tasks = [(i, _image_seed(seed, i)) for i in range(start, n)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=start, desc=f"simulate {final.name}", unit="img")
    pool = None
    old_term = _trap_sigterm()
    try:
        if workers <= 1 or len(tasks) <= 1:
            _worker_init(shape, cfg)
            results = map(_record, tasks)
        else:
            import multiprocessing as mp

            if sys.platform.startswith("linux"):
                ctx = mp.get_context("forkserver")
                ctx.set_forkserver_preload(["atomseg.sim.library"])  # workers start warm
            else:  # pragma: no cover
                ctx = mp.get_context("spawn")
            pool = ctx.Pool(int(workers), initializer=_worker_init, initargs=(shape, cfg, True))
            chunk = max(1, min(8, len(tasks) // (4 * workers)))
            results = pool.imap(_record, tasks, chunksize=chunk)
        _consume(f, results, start, flush_every, bar)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
        done = int(f.attrs["n_done"])
        f.close()
        if old_term is not None:
            import signal

            signal.signal(signal.SIGTERM, old_term)
    if done == n:
        os.replace(partial, final)
    return final


def _trap_sigterm():
    """Turn SIGTERM into KeyboardInterrupt (so the file is flushed); return the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    return signal.signal(signal.SIGTERM, _raise)


def _consume(f, results, start, flush_every, bar):
    images, masks, gaussians = f["images"], f["masks"], f["gaussians"]
    pix, dose, par, offsets, columns = (
        f["pixel_size_angstrom"],
        f["dose_e_per_A2"],
        f["params"],
        f["column_offsets"],
        f["columns"],
    )
    n_cols = int(offsets[start])
    buf: list = []
    last = time.monotonic()

    def flush():
        nonlocal buf, n_cols, last
        if not buf:
            return
        i0 = buf[0][0]
        i1 = buf[-1][0] + 1
        cols = np.concatenate([b[4] for b in buf])
        columns.resize((n_cols + len(cols),))
        columns[n_cols:] = cols
        counts = np.cumsum([len(b[4]) for b in buf])
        offsets[i0 + 1 : i1 + 1] = n_cols + counts
        offsets[i0] = n_cols
        n_cols += len(cols)
        pix[i0:i1] = [b[5] for b in buf]
        dose[i0:i1] = [b[6] for b in buf]
        par[i0:i1] = [b[7] for b in buf]
        f.attrs["n_done"] = i1
        f.flush()
        buf = []
        last = time.monotonic()

    try:
        for rec in results:
            i = rec[0]
            images[i] = rec[1]
            masks[i] = rec[2]
            gaussians[i] = rec[3]
            buf.append(rec)
            if bar is not None:
                bar.update(1)
            if len(buf) >= flush_every or time.monotonic() - last > 10:
                flush()
    finally:
        flush()


def read_library_sample(path: str | os.PathLike, index: int) -> Sample:
    """Read one finished image of a library with its ground truth.

    Parameters
    ----------
    path : path
        Library file (complete or ``.partial``).
    index : int
        Image index, ``0 <= index < n_done``.

    Returns
    -------
    Sample
        As :func:`simulate_image` returns it; ``gaussian`` is float32 again.

    Examples
    --------
    >>> import tempfile, os
    >>> from atomseg.sim import read_library_sample, write_library
    >>> path = write_library(os.path.join(tempfile.mkdtemp(), "lib.h5"), n=2, seed=5,
    ...                      shape=(32, 32), workers=1)
    >>> s = read_library_sample(path, 1)
    >>> s.image.shape, s.params["seed"] > 0, list(s.columns.columns)[:4]
    ((32, 32), True, ['row', 'col', 'z', 'n_atoms'])
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"library not found: {path}")
    with h5py.File(path, "r") as f:
        done = int(f.attrs.get("n_done", 0))
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer, got {index!r}")
        if not 0 <= index < done:
            raise IndexError(f"index {index} out of range: {path} holds {done} finished images")
        a, b = (int(x) for x in f["column_offsets"][index : index + 2])
        cols = f["columns"][a:b]
        params = json.loads(f["params"][index])
        out = {
            "image": f["images"][index],
            "mask": f["masks"][index],
            "gaussian": f["gaussians"][index].astype(np.float32),
            "rows": cols["row"].astype(np.float64),
            "cols": cols["col"].astype(np.float64),
            "z": cols["z"],
            "n_atoms": cols["n_atoms"],
        }
        if "labelled" in (cols.dtype.names or ()):
            out["labelled"] = cols["labelled"].astype(bool)
        else:  # format 1: every column of Z >= label_min_z was labelled
            out["labelled"] = cols["z"] >= int(params.get("label_min_z", 1))
        if "snr" in (cols.dtype.names or ()):
            out["snr"] = cols["snr"]
    return _to_sample(params, out)


def _library_len(path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f.attrs.get("n_done", 0))


def save_sample_grid(
    library_path: str | os.PathLike,
    png_path: str | os.PathLike,
    *,
    n: int = 12,
    indices: list[int] | None = None,
    n_cols: int = 4,
) -> Path:
    """Save a PNG grid of library images with their ground-truth columns overlaid.

    Each panel shows the image (1st-99.8th percentile stretch); the right half carries the true
    column positions coloured by atomic number, so the left half shows the bare image.

    Parameters
    ----------
    library_path : path
        A library written by :func:`write_library`.
    png_path : path
        The PNG to write.
    n : int
        Number of panels (the first ``n`` images) unless ``indices`` is given.
    indices : sequence of int, optional
        Which images to show.
    n_cols : int
        Panels per row.

    Returns
    -------
    pathlib.Path
        ``png_path``.

    Examples
    --------
    >>> import tempfile, os
    >>> from atomseg.sim import save_sample_grid, write_library
    >>> d = tempfile.mkdtemp()
    >>> lib = write_library(os.path.join(d, "lib.h5"), n=2, shape=(32, 32), workers=1)
    >>> save_sample_grid(lib, os.path.join(d, "grid.png")).name
    'grid.png'
    """
    n_done = _library_len(library_path)
    if indices is None:
        indices = range(min(int(n), n_done))
    samples = [read_library_sample(library_path, int(i)) for i in indices]
    return _plot_grid(samples, png_path, n_cols=n_cols)


def _plot_grid(samples, png_path, *, n_cols=4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not samples:
        raise ValueError("no samples to plot")
    n_cols = max(1, min(int(n_cols), len(samples)))
    n_rows = int(np.ceil(len(samples) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.5 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), samples):
        img = s.image
        lo, hi = np.percentile(img, [1, 99.8])
        ax.imshow(
            img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest"
        )
        h, w = img.shape
        c = s.columns
        right = c[c["col"] >= w / 2]
        if len(right):
            dens = len(c) / (h * w) * 256 * 256
            size = float(np.clip(3000 / max(dens, 1.0), 0.5, 12))
            ax.scatter(right["col"], right["row"], s=size, c=right["z"], cmap="turbo", vmin=5,
                       vmax=92, linewidths=0, alpha=0.9)  # fmt: skip
        ax.axvline(w / 2 - 0.5, color="w", lw=0.4, alpha=0.6)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        p = s.params
        za = p["zone_axis"]
        title = f"{p['structure']} [{za}] {p['scene']}"
        if p["scene"] == "interface":
            title = f"{p['structure']}[{za}] / {p['structure2']}[{p['zone_axis2']}]"
        ax.set_title(
            f"{title}\n{s.pixel_size_angstrom:.3f} Å/px, {p['dose_e_per_A2']:.1e} e/Å²"
            + (", 8-bit" if p["clip_8bit"] else ""),
            fontsize=8,
        )
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
