"""The generator's configuration (parameter distributions) and its per-image parameters.

A *configuration* says how parameters are drawn: ranges, probabilities and the mix of scenes.
:func:`load_config` merges a user's dict or JSON file into :data:`DEFAULT_CONFIG` and rejects
unknown keys. The *parameters* of one image (``Sample.params``) are the values actually drawn;
together with the image's ``seed`` they re-make it exactly, whatever the configuration was.

Configuration keys (ranges are ``[low, high]``; ``log`` marks log-uniform draws):

============================== ==============================================================
``pixel_size_angstrom``          [0.05, 0.5] full range, Å/px (log)
``pixel_size_core_angstrom``     [0.08, 0.3] where most images fall (log)
``pixel_size_core_fraction``     0.75, fraction drawn from the core range
``dose_e_per_A2``                [1e2, 1e6] electron dose, e/Å² (log)
``scene_weights``                relative weights of slab, wedge, steps, particle, interface,
                                 grain_boundary
``structures``                   null (all) or a list of structure names; a family is drawn
                                 uniformly first, then a structure of it
``zone_axes``                    null (all) or a list of allowed zone axes (``"110"``, ...)
``thickness_angstrom``           [20, 400] crystal thickness (log)
``lattice_scale``                [0.98, 1.02] relative lattice parameter
``support_probability``          0.5, particles on an amorphous support (else in vacuum)
``support_thickness_angstrom``   [20, 150] (log; carbon, or Si-like with probability 0.2)
``surface_layer_probability``    0.3, amorphous surface layer on other scenes
``surface_layer_thickness_angstrom`` [5, 40] (log)
``vacancy_probability``          0.3; then ``vacancy_fraction`` [0, 0.08] of atoms removed
``column_vacancy_probability``   0.05; then ``column_vacancy_fraction`` [0, 0.03] of columns
``roughness_probability``        0.5; then ``roughness_fraction`` [0, 0.3] of columns ±1 atom
``position_jitter_angstrom``     [0, 0.04] static displacements (Gaussian sigma)
``z_exponent``                   [1.4, 2.0]
``saturation_atoms``             [10, 60] Au-atom equivalents (log)
``corrected_probability``        0.8, aberration-corrected probe (else Cs ~ 1 mm)
``voltage_kv``                   {"300": 0.4, "200": 0.35, "80": 0.15, "60": 0.1}
``convergence_mrad``             [18, 35] for corrected probes
``source_size_angstrom``         [0.4, 1.4] FWHM of the effective source (with vibrations); in
                                 90 % of images at most 0.85 x the closest column distance
``diffuse_fraction``             [0.05, 0.35]; ``diffuse_width_angstrom`` [1, 6] (probe tails and
                                 thermal-diffuse background)
``background_probability``       0.8; then ``background_level`` [0, 0.3] and
                                 ``background_variation`` [0, 0.3] (fractions of the bright
                                 column signal)
``scan_distortion_probability``  0.6; then ``line_jitter_angstrom`` [0, 0.12],
                                 ``drift_shear`` [-0.03, 0.03], ``drift_stretch`` [-0.03, 0.03],
                                 ``flyback_px`` [0, 3]
``detector_gain``                [0.5, 50] counts per electron (log); ``read_noise_e`` [0, 0.5]
``clip_8bit_probability``        0.3, 8-bit export (clipped, quantised)
``label_disc_radius_angstrom``   0.4; ``label_gaussian_sigma_angstrom`` 0.3
``label_min_disc_radius_px``     1.5; ``label_max_disc_fraction`` 0.4 (of the nearest-neighbour
                                 distance); ``label_min_z`` 1 (lighter columns get no label)
``label_min_separation_px``      3.0: a column is labelled only if it is *resolved*: its nearest
                                 labelled neighbour is at least this many pixels away and at
                                 least the probe's size, ``hypot(0.51 λ/α, source FWHM)``
                                 (unresolved columns merge into one blob nobody can locate)
``label_min_snr``                5.0: a resolved column is *detectable* (label 1) only if its
                                 ideal-observer signal-to-noise ratio at the image's dose is
                                 at least this (Rose criterion); weaker resolved columns are
                                 marked "don't care" (label 2) in the mask, 0 marks them all 1
============================== ==============================================================
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from atomseg.sim.crystals import _STRUCTURES, project_structure
from atomseg.sim.imaging import electron_wavelength_angstrom
from atomseg.sim.specimen import SCENES

__all__ = ["DEFAULT_CONFIG", "GENERATOR_VERSION", "PARAM_KEYS", "load_config"]

#: bumped whenever the same parameters and seed would give a different image.
GENERATOR_VERSION = "3"  # 2: unresolved columns get no label; 3: undetectable ones "don't care"

DEFAULT_CONFIG: dict[str, Any] = {
    "pixel_size_angstrom": [0.05, 0.5],
    "pixel_size_core_angstrom": [0.08, 0.3],
    "pixel_size_core_fraction": 0.75,
    "dose_e_per_A2": [1e2, 1e6],
    "scene_weights": {
        "slab": 0.2,
        "wedge": 0.15,
        "steps": 0.1,
        "particle": 0.3,
        "interface": 0.12,
        "grain_boundary": 0.13,
    },
    "structures": None,
    "zone_axes": None,
    "thickness_angstrom": [20.0, 400.0],
    "lattice_scale": [0.98, 1.02],
    "support_probability": 0.5,
    "support_thickness_angstrom": [20.0, 150.0],
    "surface_layer_probability": 0.3,
    "surface_layer_thickness_angstrom": [5.0, 40.0],
    "vacancy_probability": 0.3,
    "vacancy_fraction": [0.0, 0.08],
    "column_vacancy_probability": 0.05,
    "column_vacancy_fraction": [0.0, 0.03],
    "roughness_probability": 0.5,
    "roughness_fraction": [0.0, 0.3],
    "position_jitter_angstrom": [0.0, 0.04],
    "z_exponent": [1.4, 2.0],
    "saturation_atoms": [10.0, 60.0],
    "corrected_probability": 0.8,
    "voltage_kv": {"300": 0.4, "200": 0.35, "80": 0.15, "60": 0.1},
    "convergence_mrad": [18.0, 35.0],
    "source_size_angstrom": [0.4, 1.4],
    "diffuse_fraction": [0.05, 0.35],
    "diffuse_width_angstrom": [1.0, 6.0],
    "background_probability": 0.8,
    "background_level": [0.0, 0.3],
    "background_variation": [0.0, 0.3],
    "scan_distortion_probability": 0.6,
    "line_jitter_angstrom": [0.0, 0.12],
    "drift_shear": [-0.03, 0.03],
    "drift_stretch": [-0.03, 0.03],
    "flyback_px": [0.0, 3.0],
    "detector_gain": [0.5, 50.0],
    "read_noise_e": [0.0, 0.5],
    "clip_8bit_probability": 0.3,
    "label_disc_radius_angstrom": 0.4,
    "label_gaussian_sigma_angstrom": 0.3,
    "label_min_disc_radius_px": 1.5,
    "label_max_disc_fraction": 0.4,
    "label_min_z": 1,
    "label_min_separation_px": 3.0,
    "label_min_snr": 5.0,
}

_LOG_RANGES = {
    "pixel_size_angstrom", "pixel_size_core_angstrom", "dose_e_per_A2", "thickness_angstrom",
    "support_thickness_angstrom", "surface_layer_thickness_angstrom", "saturation_atoms",
    "detector_gain",
}  # fmt: skip
_SIGNED_RANGES = {"drift_shear", "drift_stretch"}
_POSITIVE_SCALARS = {
    "label_disc_radius_angstrom", "label_gaussian_sigma_angstrom", "label_min_disc_radius_px",
    "label_max_disc_fraction", "label_min_separation_px",
}  # fmt: skip

#: every key of ``Sample.params``, in the order they are drawn.
PARAM_KEYS = (
    "seed", "pixel_size_angstrom", "scene",
    "structure", "zone_axis", "rotation_deg", "lattice_scale", "origin_frac", "mirror",
    "depth_offset_frac", "thickness_angstrom", "thickness_slope",
    "structure2", "zone_axis2", "rotation2_deg", "lattice_scale2", "origin2_frac", "mirror2",
    "depth_offset2_frac", "thickness2_angstrom",
    "edge_angle_deg", "edge_offset_angstrom", "wedge_slope", "boundary_gap_angstrom",
    "step_offsets_angstrom", "step_thicknesses_angstrom",
    "particle_center_angstrom", "particle_facet_angles_deg", "particle_facet_distances_angstrom",
    "amorphous_thickness_angstrom", "amorphous_z", "support_edge_angle_deg",
    "support_edge_offset_angstrom",
    "vacancy_fraction", "column_vacancy_fraction", "roughness_fraction",
    "position_jitter_angstrom",
    "aberration_corrected", "voltage_kv", "convergence_mrad", "defocus_angstrom", "cs_mm",
    "astigmatism_angstrom", "astigmatism_angle_deg", "source_size_angstrom",
    "z_exponent", "saturation_atoms", "diffuse_fraction", "diffuse_width_angstrom",
    "background_level", "background_variation", "background_ramp",
    "dose_e_per_A2", "detector_gain", "dark_offset", "read_noise_e", "noise",
    "line_jitter_angstrom", "line_jitter_correlation", "drift_shear", "drift_stretch",
    "flyback_px", "flyback_decay_px", "clip_8bit", "clip_percentiles",
    "label_disc_radius_angstrom", "label_gaussian_sigma_angstrom", "label_min_z",
    "label_min_disc_radius_px", "label_max_disc_fraction", "label_min_separation_px",
    "label_min_snr",
)  # fmt: skip
_CRYSTAL2_KEYS = (
    "structure2", "zone_axis2", "rotation2_deg", "lattice_scale2", "origin2_frac", "mirror2",
    "depth_offset2_frac", "thickness2_angstrom",
)  # fmt: skip
_GEOMETRY_KEYS = (
    "edge_angle_deg", "edge_offset_angstrom", "wedge_slope", "boundary_gap_angstrom",
    "step_offsets_angstrom", "step_thicknesses_angstrom", "particle_center_angstrom",
    "particle_facet_angles_deg", "particle_facet_distances_angstrom",
)  # fmt: skip
#: keys computed while rendering; accepted on input and ignored (they are recomputed).
DERIVED_KEYS = ("label_disc_radius_px", "label_gaussian_sigma_px", "generator_version")


def _known_key(key: str, known, what: str) -> None:
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown {what} {key!r}{hint}")


def load_config(config: dict | str | os.PathLike | None = None) -> dict[str, Any]:
    """Return a complete, validated generator configuration.

    Parameters
    ----------
    config : dict or path or None
        Keys to override in :data:`DEFAULT_CONFIG` (a dict, or a JSON file holding one);
        None gives the defaults. Dict values (``scene_weights``, ``voltage_kv``) replace the
        default dict as a whole.

    Returns
    -------
    dict
        The full configuration.

    Raises
    ------
    ValueError
        For an unknown key (named in the message) or an invalid value.
    FileNotFoundError
        If a path is given that does not exist.

    Examples
    --------
    >>> from atomseg.sim import load_config
    >>> cfg = load_config({"dose_e_per_A2": [1e4, 1e5], "structures": ["Au", "Pt"]})
    >>> cfg["dose_e_per_A2"], cfg["z_exponent"]
    ([10000.0, 100000.0], [1.4, 2.0])
    >>> load_config({"dose": [1, 2]})
    Traceback (most recent call last):
    ...
    ValueError: unknown config key 'dose'...
    """
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if config is None:
        return cfg
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict or a JSON file, got {type(config).__name__}")
    for key, value in config.items():
        _known_key(key, DEFAULT_CONFIG, "config key")
        cfg[key] = copy.deepcopy(value)
    _validate_config(cfg)
    return cfg


def _validate_config(cfg: dict) -> None:
    for key, default in DEFAULT_CONFIG.items():
        value = cfg[key]
        if isinstance(default, list):
            ok = (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
                and value[0] <= value[1]
            )
            if not ok:
                raise ValueError(
                    f"config {key!r} must be [low, high] with low <= high, got {value!r}"
                )
            if key in _LOG_RANGES and value[0] <= 0:
                raise ValueError(f"config {key!r} must be positive, got {value!r}")
            if key not in _SIGNED_RANGES and value[0] < 0:
                raise ValueError(f"config {key!r} must not be negative, got {value!r}")
            cfg[key] = [float(v) for v in value]
        elif (
            key.endswith("_probability")
            or key.endswith("_fraction")
            and not isinstance(default, list)
        ):
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"config {key!r} must be a probability in [0, 1], got {value!r}")
        elif key in _POSITIVE_SCALARS:
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"config {key!r} must be > 0, got {value!r}")
    for key in ("vacancy_fraction", "column_vacancy_fraction", "roughness_fraction"):
        if cfg[key][1] > 1:
            raise ValueError(f"config {key!r} must lie in [0, 1], got {cfg[key]!r}")
    v = cfg["label_min_snr"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
        raise ValueError(f"config 'label_min_snr' must be a number >= 0, got {v!r}")
    if not isinstance(cfg["label_min_z"], int) or cfg["label_min_z"] < 0:
        raise ValueError(
            f"config 'label_min_z' must be an integer >= 0, got {cfg['label_min_z']!r}"
        )
    for key, known in (("scene_weights", SCENES), ("voltage_kv", None)):
        w = cfg[key]
        if not isinstance(w, dict) or not w:
            raise ValueError(f"config {key!r} must be a non-empty dict of weights, got {w!r}")
        for k, v in w.items():
            if known is not None:
                _known_key(k, known, f"scene in config {key!r}:")
            else:
                try:
                    kv = float(k)
                except ValueError:
                    kv = -1.0
                if not kv > 0:
                    raise ValueError(f"config 'voltage_kv' keys must be voltages in kV, got {k!r}")
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"config {key!r}: weight of {k!r} must be >= 0, got {v!r}")
        if sum(w.values()) <= 0:
            raise ValueError(f"config {key!r}: weights must not all be zero")
    if cfg["structures"] is not None:
        if isinstance(cfg["structures"], str) or not isinstance(cfg["structures"], (list, tuple)):
            raise ValueError("config 'structures' must be null or a list of structure names")
        for name in cfg["structures"]:
            _known_key(name, _STRUCTURES, "structure in config 'structures':")
    if cfg["zone_axes"] is not None and (
        isinstance(cfg["zone_axes"], str) or not isinstance(cfg["zone_axes"], (list, tuple))
    ):
        raise ValueError("config 'zone_axes' must be null or a list of zone axes like '110'")
    if not _choices(cfg):
        raise ValueError(f"config: no structure offers any of the zone axes {cfg['zone_axes']!r}")


def _choices(cfg) -> dict[str, tuple[str, ...]]:
    """Allowed structures with their allowed zone axes."""
    names = cfg["structures"] if cfg["structures"] is not None else list(_STRUCTURES)
    out = {}
    for name in names:
        axes = _STRUCTURES[name].zone_axes
        if cfg["zone_axes"] is not None:
            axes = tuple(a for a in axes if a in cfg["zone_axes"])
        if axes:
            out[name] = axes
    return out


def _plain(v):
    """JSON-friendly Python scalars and lists."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def draw_params(seed: int, shape, cfg: dict, overrides: dict) -> dict[str, Any]:
    """Draw one image's parameters from ``cfg`` with ``seed``; ``overrides`` win (private API)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    out: dict[str, Any] = {"seed": int(seed)}

    def pick(name, draw):
        out[name] = _plain(overrides[name]) if name in overrides else _plain(draw())
        return out[name]

    def unif(rng_key):
        lo, hi = cfg[rng_key]
        return float(rng.uniform(lo, hi))

    def logu(lo, hi):
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    def logr(rng_key):
        return logu(*cfg[rng_key])

    def gated(prob_key, draw):
        on = rng.random() < cfg[prob_key]
        return (lambda: draw()) if on else (lambda: 0.0)

    def weighted(d):
        keys = list(d)
        w = np.array([d[k] for k in keys], float)
        return keys[int(rng.choice(len(keys), p=w / w.sum()))]

    choices = _choices(cfg)

    def draw_structure(exclude=None, system=None):
        names = [n for n in choices if n != exclude]
        if system is not None:
            same = [n for n in names if _STRUCTURES[n].lattice[3:] == system]
            names = same or names
        if not names:
            names = list(choices)
        families = sorted({_STRUCTURES[n].family for n in names})
        fam = families[int(rng.integers(len(families)))]
        members = [n for n in names if _STRUCTURES[n].family == fam]
        return members[int(rng.integers(len(members)))]

    def axes_of(name):
        return choices.get(name) or _STRUCTURES[name].zone_axes

    h, w = shape
    p = pick(
        "pixel_size_angstrom",
        lambda: (
            logr("pixel_size_core_angstrom")
            if rng.random() < cfg["pixel_size_core_fraction"]
            else logr("pixel_size_angstrom")
        ),
    )
    scene = pick("scene", lambda: weighted(cfg["scene_weights"]))
    field = min(h, w) * float(p)  # Å across the shorter side
    structure = pick("structure", draw_structure)
    axes = axes_of(structure) if structure in _STRUCTURES else ("?",)
    zone = pick("zone_axis", lambda: axes[int(rng.integers(len(axes)))])
    pick("rotation_deg", lambda: rng.uniform(0, 360))
    scale = pick("lattice_scale", lambda: unif("lattice_scale"))
    pick("origin_frac", lambda: rng.uniform(0, 1, 2))
    pick("mirror", lambda: bool(rng.random() < 0.5))
    try:
        layer = project_structure(structure, zone).layer_angstrom
    except (ValueError, TypeError):
        layer = None  # reported by _check_params
    pick("depth_offset_frac", lambda: 0.0 if layer else rng.uniform(0, 1))

    # Scene geometry (drawn before the thickness, which may depend on it).
    geo: dict[str, Any] = {}
    two = scene in ("interface", "grain_boundary")
    radius = None
    if scene in ("wedge", "steps") or two:
        geo["edge_angle_deg"] = lambda: rng.uniform(0, 360)
    if scene == "wedge":
        geo["edge_offset_angstrom"] = lambda: rng.uniform(-0.4, 0.3) * field
        geo["wedge_slope"] = lambda: logu(0.1, 2.0)
    elif scene == "particle":
        radius = max(8.0, float(rng.uniform(0.3, 1.2)) * field / 2)
        n_f = int(rng.integers(5, 11))
        base = rng.uniform(0, 360)
        ang = (base + 360.0 * np.arange(n_f) / n_f + rng.uniform(-0.3, 0.3, n_f) * 360 / n_f) % 360
        dist = radius * rng.uniform(0.85, 1.1, n_f)
        off = rng.uniform(-0.4, 0.4, 2) * field
        geo["particle_center_angstrom"] = lambda: off
        geo["particle_facet_angles_deg"] = lambda: ang
        geo["particle_facet_distances_angstrom"] = lambda: dist
        # the thickness plateau is reached a fraction 0.2-1 of the way to the particle centre
        geo["wedge_slope"] = lambda: out["thickness_angstrom"] / (rng.uniform(0.2, 1.0) * radius)
    elif two:
        geo["edge_offset_angstrom"] = lambda: rng.uniform(-0.3, 0.3) * field
        geo["boundary_gap_angstrom"] = lambda: rng.uniform(-0.5, 0.5)  # < 0: overlap band

    def thick():
        if layer:
            return int(rng.integers(1, 7)) * layer * scale
        if radius is not None:
            lo, hi = cfg["thickness_angstrom"]
            return float(np.clip(2 * radius * rng.uniform(0.4, 1.0), lo, hi))
        return logr("thickness_angstrom")

    t = pick("thickness_angstrom", thick)
    slope = (lambda: rng.normal(0, 0.05, 2)) if scene in ("slab",) or two else (lambda: None)
    pick("thickness_slope", slope)
    if two:
        s1 = structure if structure in _STRUCTURES else None
        if scene == "grain_boundary":
            same_axis = rng.random() < 0.7
            s2 = pick("structure2", lambda: s1)
            ax2 = axes_of(s2) if s2 in _STRUCTURES else ("?",)
            pick("zone_axis2", lambda: zone if same_axis else ax2[int(rng.integers(len(ax2)))])
            d_rot = rng.uniform(5, 45) * rng.choice([-1, 1])
            pick("rotation2_deg", lambda: (out["rotation_deg"] + d_rot) % 360)
            pick("lattice_scale2", lambda: scale)
            pick("origin2_frac", lambda: rng.uniform(0, 1, 2))
            pick("mirror2", lambda: (not out["mirror"]) if rng.random() < 0.3 else out["mirror"])
            pick("depth_offset2_frac", lambda: 0.0 if layer else rng.uniform(0, 1))
            pick("thickness2_angstrom", lambda: t * rng.uniform(0.8, 1.2))
        else:
            system = _STRUCTURES[s1].lattice[3:] if s1 and rng.random() < 0.7 else None
            s2 = pick("structure2", lambda: draw_structure(exclude=s1, system=system))
            ax2 = axes_of(s2) if s2 in _STRUCTURES else ("?",)
            aligned = rng.random() < 0.5 and zone in ax2
            pick("zone_axis2", lambda: zone if aligned else ax2[int(rng.integers(len(ax2)))])
            pick("rotation2_deg", lambda: out["rotation_deg"] if aligned else rng.uniform(0, 360))
            pick("lattice_scale2", lambda: unif("lattice_scale"))
            pick("origin2_frac", lambda: rng.uniform(0, 1, 2))
            pick("mirror2", lambda: bool(rng.random() < 0.5))
            try:
                layer2 = project_structure(out["structure2"], out["zone_axis2"]).layer_angstrom
            except (ValueError, TypeError):
                layer2 = None
            pick("depth_offset2_frac", lambda: 0.0 if layer2 else rng.uniform(0, 1))
            pick(
                "thickness2_angstrom",
                lambda: int(rng.integers(1, 7)) * layer2 if layer2 else t * rng.uniform(0.6, 1.4),
            )
    else:
        for k in _CRYSTAL2_KEYS:
            pick(k, lambda: None)
    for k in _GEOMETRY_KEYS:
        g = geo.get(k)
        pick(k, g if callable(g) else (lambda: None))
    if scene == "steps":
        n_steps = int(rng.integers(1, 5))
        offs = np.sort(rng.uniform(-0.45, 0.45, n_steps)) * field
        base = 0.0 if rng.random() < 0.3 else t * rng.uniform(0.2, 0.6)
        levels = base + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 0.5, n_steps) * t)])
        if layer:
            levels = np.maximum(np.round(levels / (layer * scale)), np.arange(n_steps + 1))
            levels = levels * layer * scale
        out["step_offsets_angstrom"] = _plain(overrides.get("step_offsets_angstrom", offs))
        out["step_thicknesses_angstrom"] = _plain(
            overrides.get("step_thicknesses_angstrom", levels)
        )
    # Amorphous film: a support under particles, a surface layer elsewhere.
    if scene == "particle":
        am = gated("support_probability", lambda: logr("support_thickness_angstrom"))
    else:
        am = gated("surface_layer_probability", lambda: logr("surface_layer_thickness_angstrom"))
    am_t = pick("amorphous_thickness_angstrom", am)
    pick("amorphous_z", lambda: 6 if rng.random() < 0.8 else 14)
    edge = am_t and scene == "particle" and rng.random() < 0.25
    pick("support_edge_angle_deg", lambda: rng.uniform(0, 360) if edge else None)
    pick("support_edge_offset_angstrom", lambda: rng.uniform(-0.4, 0.4) * field if edge else None)
    # Defects.
    pick("vacancy_fraction", gated("vacancy_probability", lambda: unif("vacancy_fraction")))
    pick(
        "column_vacancy_fraction",
        gated("column_vacancy_probability", lambda: unif("column_vacancy_fraction")),
    )
    pick("roughness_fraction", gated("roughness_probability", lambda: unif("roughness_fraction")))
    pick("position_jitter_angstrom", lambda: unif("position_jitter_angstrom"))
    # Probe.
    corrected = pick(
        "aberration_corrected", lambda: bool(rng.random() < cfg["corrected_probability"])
    )
    if corrected:
        kv = pick("voltage_kv", lambda: float(weighted(cfg["voltage_kv"])))
        lam = electron_wavelength_angstrom(kv) if kv and kv > 0 else 0.02
        a = pick("convergence_mrad", lambda: unif("convergence_mrad"))
        a = (a if a and a > 0 else 25.0) * 1e-3
        pick("defocus_angstrom", lambda: float(np.clip(rng.normal(0, 0.3), -1, 1)) * lam / a**2)
        pick("cs_mm", lambda: rng.normal(0, 0.3) * lam / a**4 * 1e-7)
    else:
        kv = pick("voltage_kv", lambda: float([200.0, 300.0][int(rng.integers(2))]))
        lam = electron_wavelength_angstrom(kv) if kv and kv > 0 else 0.02
        cs = pick("cs_mm", lambda: rng.uniform(0.5, 1.3))
        cs_a = max(abs(cs), 1e-3) * 1e7
        a = pick(
            "convergence_mrad", lambda: (4 * lam / cs_a) ** 0.25 * 1e3 * rng.uniform(0.85, 1.1)
        )
        a = (a if a and a > 0 else 10.0) * 1e-3
        pick("defocus_angstrom", lambda: -math.sqrt(cs_a * lam) * rng.uniform(0.8, 1.2))
    pick("astigmatism_angstrom", lambda: min(abs(rng.normal(0, 0.15)), 0.5) * lam / a**2)
    pick("astigmatism_angle_deg", lambda: rng.uniform(0, 180))
    # Mostly keep the effective source below the closest column distance, so that most images
    # resolve their columns (a microscopist would not try to locate unresolved ones).
    src_lo, src_hi = cfg["source_size_angstrom"]
    if rng.random() < 0.9:
        src_hi = min(src_hi, max(src_lo, 0.85 * _closest_columns(out)))
    pick("source_size_angstrom", lambda: rng.uniform(src_lo, src_hi))
    # Contrast.
    pick("z_exponent", lambda: unif("z_exponent"))
    pick("saturation_atoms", lambda: logr("saturation_atoms"))
    pick("diffuse_fraction", lambda: unif("diffuse_fraction"))
    pick("diffuse_width_angstrom", lambda: unif("diffuse_width_angstrom"))
    bg = rng.random() < cfg["background_probability"]
    pick("background_level", lambda: unif("background_level") if bg else 0.0)
    pick("background_variation", lambda: unif("background_variation") if bg else 0.0)
    pick("background_ramp", lambda: rng.uniform(-0.15, 0.15, 2) if bg else [0.0, 0.0])
    # Detector.
    pick("dose_e_per_A2", lambda: logr("dose_e_per_A2"))
    gain = pick("detector_gain", lambda: logr("detector_gain"))
    pick("dark_offset", lambda: rng.uniform(0, 50) * (gain if gain else 1.0))
    pick("read_noise_e", lambda: unif("read_noise_e"))
    pick("noise", lambda: True)
    # Scan.
    sc = rng.random() < cfg["scan_distortion_probability"]
    pick("line_jitter_angstrom", lambda: unif("line_jitter_angstrom") if sc else 0.0)
    pick("line_jitter_correlation", lambda: rng.uniform(0, 0.9) if sc else 0.0)
    pick("drift_shear", lambda: unif("drift_shear") if sc else 0.0)
    pick("drift_stretch", lambda: unif("drift_stretch") if sc else 0.0)
    pick("flyback_px", lambda: unif("flyback_px") if sc else 0.0)
    pick("flyback_decay_px", lambda: rng.uniform(3, 20))
    pick("clip_8bit", lambda: bool(rng.random() < cfg["clip_8bit_probability"]))
    pick("clip_percentiles", lambda: [rng.uniform(0, 1), rng.uniform(98.5, 100)])
    # Labels.
    for k in (
        "label_disc_radius_angstrom", "label_gaussian_sigma_angstrom", "label_min_z",
        "label_min_disc_radius_px", "label_max_disc_fraction", "label_min_separation_px",
        "label_min_snr",
    ):  # fmt: skip
        pick(k, lambda k=k: cfg[k])
    _check_params(out)
    return out


def _closest_columns(p) -> float:
    """Shortest projected column distance (Å) of the image's crystal(s); inf if unknown."""
    d = np.inf
    for sfx in ("", "2"):
        try:
            cell = project_structure(p.get("structure" + sfx), p.get("zone_axis" + sfx))
            d = min(d, cell.min_column_distance_angstrom() * float(p.get("lattice_scale" + sfx)))
        except (ValueError, TypeError, KeyError):
            pass
    return d


def _num(params, key, *, low=None, high=None, low_open=False, optional=False):
    v = params.get(key)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"parameter {key!r} must be a finite number, got {v!r}")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"parameter {key!r} must be {'>' if low_open else '>='} {low}, got {v!r}")
    if high is not None and v > high:
        raise ValueError(f"parameter {key!r} must be <= {high}, got {v!r}")


def _check_params(p: dict) -> None:
    """Raise ValueError with a clear message for an invalid parameter set."""
    _num(p, "pixel_size_angstrom", low=0, low_open=True)
    if not isinstance(p["scene"], str) or p["scene"] not in SCENES:
        raise ValueError(f"unknown scene {p['scene']!r}; choose one of {', '.join(SCENES)}")
    for k in (0, 1):
        sfx = "" if k == 0 else "2"
        name = p.get("structure" + sfx)
        if k == 1 and p["scene"] not in ("interface", "grain_boundary"):
            continue
        if not isinstance(name, str):
            raise ValueError(f"parameter 'structure{sfx}' must be a structure name, got {name!r}")
        project_structure(name, p.get("zone_axis" + sfx))  # ValueError if unknown
        _num(p, "lattice_scale" + sfx, low=0.5, high=2.0)
        _num(p, "rotation" + sfx + "_deg")
        _num(p, "depth_offset" + sfx + "_frac")
        _num(p, "thickness" + sfx + "_angstrom", low=0)
    _num(p, "dose_e_per_A2", low=0, low_open=True)
    _num(p, "voltage_kv", low=0, low_open=True)
    _num(p, "convergence_mrad", low=0, low_open=True, high=200)
    for k in ("defocus_angstrom", "cs_mm", "astigmatism_angle_deg", "dark_offset"):
        _num(p, k)
    for k in ("astigmatism_angstrom", "source_size_angstrom", "read_noise_e",
              "amorphous_thickness_angstrom", "position_jitter_angstrom",
              "line_jitter_angstrom", "flyback_px", "background_level", "background_variation",
              "diffuse_width_angstrom"):  # fmt: skip
        _num(p, k, low=0)
    for k in ("vacancy_fraction", "column_vacancy_fraction", "roughness_fraction",
              "diffuse_fraction", "line_jitter_correlation"):  # fmt: skip
        _num(p, k, low=0, high=1)
    _num(p, "z_exponent", low=0, low_open=True)
    _num(p, "saturation_atoms", low=0, low_open=True)
    _num(p, "detector_gain", low=0, low_open=True)
    _num(p, "flyback_decay_px", low=0, low_open=True)
    if abs(p["drift_stretch"]) >= 0.5 or abs(p["drift_shear"]) >= 1:
        raise ValueError("parameters 'drift_stretch'/'drift_shear' are too large (|x| < 0.5 / 1)")
    if p["flyback_px"] >= p["flyback_decay_px"]:
        raise ValueError("parameter 'flyback_px' must be smaller than 'flyback_decay_px'")
    for k in ("label_disc_radius_angstrom", "label_gaussian_sigma_angstrom",
              "label_min_disc_radius_px", "label_max_disc_fraction",
              "label_min_separation_px"):  # fmt: skip
        _num(p, k, low=0, low_open=True)
    _num(p, "label_min_snr", low=0)
    scene = p["scene"]
    if scene in ("wedge", "particle"):
        _num(p, "wedge_slope", low=0, low_open=True)
    if scene in ("wedge", "steps", "interface", "grain_boundary"):
        _num(p, "edge_angle_deg")
    if scene in ("wedge", "interface", "grain_boundary"):
        _num(p, "edge_offset_angstrom")
    if scene == "steps":
        offs, lev = p.get("step_offsets_angstrom"), p.get("step_thicknesses_angstrom")
        if not isinstance(offs, list) or not isinstance(lev, list) or len(lev) != len(offs) + 1:
            raise ValueError(
                "parameters 'step_thicknesses_angstrom' must have one more entry than "
                "'step_offsets_angstrom'"
            )
        if any(x < 0 for x in lev):
            raise ValueError("parameter 'step_thicknesses_angstrom' must not be negative")
    if scene == "particle":
        a, d = p.get("particle_facet_angles_deg"), p.get("particle_facet_distances_angstrom")
        if not isinstance(a, list) or not isinstance(d, list) or len(a) != len(d) or len(a) < 3:
            raise ValueError("a particle needs >= 3 facet angles and as many facet distances")
    if not (isinstance(p["clip_percentiles"], list) and len(p["clip_percentiles"]) == 2
            and 0 <= p["clip_percentiles"][0] < p["clip_percentiles"][1] <= 100):  # fmt: skip
        raise ValueError(
            "parameter 'clip_percentiles' must be [low, high] with 0 <= low < high <= 100"
        )


def check_overrides(overrides: dict) -> dict:
    """Reject unknown keys; drop derived keys (private API)."""
    out = {}
    for key, value in overrides.items():
        if key in DERIVED_KEYS:
            if key == "generator_version" and str(value) != GENERATOR_VERSION:
                warnings.warn(
                    f"parameters come from generator version {value}, this is "
                    f"{GENERATOR_VERSION}: the image may differ",
                    stacklevel=3,
                )
            continue
        _known_key(key, PARAM_KEYS, "parameter")
        out[key] = value
    return out
