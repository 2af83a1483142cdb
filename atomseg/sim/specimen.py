"""Specimens: crystals cut into slabs, wedges, steps, faceted particles and bicrystals.

A specimen is one or two projected crystals (:mod:`atomseg.sim.crystals`) tiled over the field
of view, a projected-thickness map that says how thick the crystal is at each column, and an
optional amorphous film (support or surface contamination). The thickness map turns into an
exact number of atoms per column (so the thin edge of a particle holds 1-3 atoms per column),
after which vacancies, surface roughness (one atom more or less) and small static displacements
are applied.

Geometry is in Å in the specimen frame: ``(row, col)`` components, origin at the centre of the
top-left pixel, the image centre at ``((H - 1) / 2, (W - 1) / 2) * pixel_size``. Directions are
angles in degrees measured from the ``col`` axis towards the ``row`` axis, so the unit vector of
``angle`` is ``(sin(angle), cos(angle))`` in ``(row, col)``.

Scenes (``params["scene"]``):

``slab``
    Constant thickness with a gentle gradient (``thickness_slope``).
``wedge``
    Thickness rising linearly (``wedge_slope`` Å per Å) from a straight edge at
    ``edge_offset_angstrom`` along ``edge_angle_deg`` up to ``thickness_angstrom``; vacuum on the
    other side.
``steps``
    Terraces: thickness ``step_thicknesses_angstrom[k]`` between the straight step lines at
    ``step_offsets_angstrom`` (the first terrace may be vacuum).
``particle``
    A faceted convex particle (facets as half-planes) in vacuum or on an amorphous support;
    thickness rises with slope ``wedge_slope`` from every facet up to ``thickness_angstrom``.
``interface`` / ``grain_boundary``
    Two crystals (different structures, or the same structure rotated, tilted to another zone
    axis or mirrored = twin) meeting at a straight boundary with a small gap.

Layered structures seen along [0001] are cut into whole layers (monolayer, bilayer, ...).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from atomseg.sim.crystals import ProjectedCell, column_atom_counts, project_structure

__all__ = ["SCENES", "build_specimen", "thickness_map"]

#: the scene kinds :func:`build_specimen` understands.
SCENES = ("slab", "wedge", "steps", "particle", "interface", "grain_boundary")

#: number density of amorphous films (carbon at ~2 g/cm³), atoms per Å³.
_AMORPHOUS_DENSITY = 0.1


def _unit(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([np.sin(a), np.cos(a)])


def _tile(cell: ProjectedCell, *, rotation_deg, lattice_scale, origin_frac, mirror, anchor, bounds):
    """Column positions (Å) of a crystal covering ``bounds = (r0, r1, c0, c1)``.

    Returns rows, cols, column index within the cell and the depth phase of each column.
    """
    v = cell.cell_angstrom * float(lattice_scale)
    if mirror:
        v = v * np.array([1.0, -1.0])
    a = np.radians(rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    v = v @ rot.T
    inv = np.linalg.inv(v)
    r0, r1, c0, c1 = bounds
    corners = np.array([[r0, c0], [r0, c1], [r1, c0], [r1, c1]]) - anchor
    f = corners @ inv - np.asarray(origin_frac)
    lo = np.floor(f.min(axis=0)) - 1
    hi = np.ceil(f.max(axis=0)) + 1
    n1 = np.arange(lo[0], hi[0] + 1)
    n2 = np.arange(lo[1], hi[1] + 1)
    nn = np.stack(np.meshgrid(n1, n2, indexing="ij"), axis=-1).reshape(-1, 1, 2)
    frac = nn + cell.frac[None, :, :] + np.asarray(origin_frac)  # (cells, columns, 2)
    pos = frac @ v + anchor
    kind = np.broadcast_to(np.arange(cell.n_columns), frac.shape[:2])
    phase = np.broadcast_to(nn @ cell.depth_step, frac.shape[:2])
    pos = pos.reshape(-1, 2)
    kind = kind.reshape(-1)
    phase = phase.reshape(-1)
    keep = (pos[:, 0] >= r0) & (pos[:, 0] <= r1) & (pos[:, 1] >= c0) & (pos[:, 1] <= c1)
    return pos[keep, 0], pos[keep, 1], kind[keep], phase[keep]


def thickness_map(
    params: dict,
    rows_angstrom: np.ndarray,
    cols_angstrom: np.ndarray,
    *,
    centre_angstrom: tuple[float, float],
    crystal: int = 0,
) -> np.ndarray:
    """Projected thickness (Å) of crystal ``crystal`` (0 or 1) at the given specimen points.

    Parameters
    ----------
    params : dict
        Generator parameters (see :func:`atomseg.sim.simulate_image`).
    rows_angstrom, cols_angstrom : ndarray, shape (n,)
        Points in the specimen frame, Å.
    centre_angstrom : (float, float)
        The image centre in the specimen frame, Å.
    crystal : int
        0 for the first crystal, 1 for the second (interfaces and grain boundaries).

    Returns
    -------
    ndarray, shape (n,)
        Thickness in Å, 0 where that crystal is absent.

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.sim import thickness_map
    >>> p = {"scene": "wedge", "thickness_angstrom": 50.0, "edge_angle_deg": 0.0,
    ...      "edge_offset_angstrom": 0.0, "wedge_slope": 0.5}
    >>> thickness_map(p, np.zeros(4), np.array([-10.0, 4.0, 40.0, 400.0]),
    ...               centre_angstrom=(0.0, 0.0)).tolist()
    [0.0, 2.0, 20.0, 50.0]
    """
    r = np.asarray(rows_angstrom, dtype=float) - centre_angstrom[0]
    c = np.asarray(cols_angstrom, dtype=float) - centre_angstrom[1]
    scene = params["scene"]
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")

    def sloped(t0):
        s = params.get("thickness_slope") or (0.0, 0.0)
        return np.maximum(t0 + s[0] * r + s[1] * c, 0.0)

    if scene in ("interface", "grain_boundary"):
        n = _unit(params["edge_angle_deg"])
        d = n[0] * r + n[1] * c - params["edge_offset_angstrom"]
        half = 0.5 * params.get("boundary_gap_angstrom", 0.0)
        if crystal == 0:
            return np.where(d < -half, sloped(params["thickness_angstrom"]), 0.0)
        return np.where(d > half, sloped(params["thickness2_angstrom"]), 0.0)
    if crystal != 0:
        return np.zeros_like(r)
    t = float(params["thickness_angstrom"])
    if scene == "slab":
        return sloped(t)
    if scene == "wedge":
        n = _unit(params["edge_angle_deg"])
        d = n[0] * r + n[1] * c - params["edge_offset_angstrom"]
        return np.clip(d * params["wedge_slope"], 0.0, t)
    if scene == "steps":
        n = _unit(params["edge_angle_deg"])
        d = n[0] * r + n[1] * c
        k = np.searchsorted(np.asarray(params["step_offsets_angstrom"], float), d)
        return np.asarray(params["step_thicknesses_angstrom"], float)[k]
    # particle: convex polygon given by facet half-planes around its centre
    pr, pc = params["particle_center_angstrom"]
    ang = np.radians(np.asarray(params["particle_facet_angles_deg"], float))
    dist = np.asarray(params["particle_facet_distances_angstrom"], float)
    inside = dist[None, :] - (
        (r - pr)[:, None] * np.sin(ang)[None, :] + (c - pc)[:, None] * np.cos(ang)[None, :]
    )
    d_in = inside.min(axis=1) if len(ang) else np.full_like(r, np.inf)
    return np.clip(d_in * params["wedge_slope"], 0.0, t)


_CRYSTAL_KEYS = (
    ("structure", "zone_axis", "rotation_deg", "lattice_scale", "origin_frac", "mirror",
     "depth_offset_frac"),
    ("structure2", "zone_axis2", "rotation2_deg", "lattice_scale2", "origin2_frac", "mirror2",
     "depth_offset2_frac"),
)  # fmt: skip


def build_specimen(
    params: dict,
    *,
    shape: tuple[int, int],
    bounds_angstrom: tuple[float, float, float, float],
    rng: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Columns of the specimen inside ``bounds_angstrom`` with their contents.

    Parameters
    ----------
    params : dict
        Generator parameters (see :func:`atomseg.sim.simulate_image`).
    shape : (int, int)
        Image shape; the image centre anchors the geometry.
    bounds_angstrom : (float, float, float, float)
        ``(row_min, row_max, col_min, col_max)`` of the region to fill, specimen frame, Å.
    rng : int or numpy.random.Generator or None
        Random numbers for vacancies, roughness and static displacements.

    Returns
    -------
    dict of ndarray, each shape (n,)
        ``row_angstrom``, ``col_angstrom``, ``z`` (heaviest element present), ``n_atoms``,
        ``zn`` (sum over atoms of Z ** z_exponent), ``species`` (str) and ``crystal`` (0/1), for
        every column that holds at least one atom.

    Examples
    --------
    >>> from atomseg.sim import build_specimen
    >>> p = {"scene": "slab", "structure": "Au", "zone_axis": "100", "rotation_deg": 0.0,
    ...      "lattice_scale": 1.0, "origin_frac": [0.0, 0.0], "mirror": False,
    ...      "depth_offset_frac": 0.0, "thickness_angstrom": 40.0, "thickness_slope": [0, 0],
    ...      "z_exponent": 1.7, "pixel_size_angstrom": 0.2}
    >>> s = build_specimen(p, shape=(64, 64), bounds_angstrom=(0, 12.6, 0, 12.6), rng=0)
    >>> sorted(set(s["n_atoms"].tolist())), sorted(set(s["z"].tolist()))
    ([10], [79])
    """
    rng = np.random.default_rng(rng)
    p = float(params["pixel_size_angstrom"])
    centre = ((shape[0] - 1) / 2 * p, (shape[1] - 1) / 2 * p)
    two = params["scene"] in ("interface", "grain_boundary")
    parts = []
    for k in (0, 1) if two else (0,):
        s, za, rot, scale, origin, mirror, depth0 = (params[x] for x in _CRYSTAL_KEYS[k])
        cell = project_structure(s, za)
        r, c, kind, phase = _tile(
            cell, rotation_deg=rot, lattice_scale=scale, origin_frac=origin, mirror=mirror,
            anchor=np.array(centre), bounds=bounds_angstrom,
        )  # fmt: skip
        t = thickness_map(params, r, c, centre_angstrom=centre, crystal=k)
        period = cell.period_angstrom * scale
        if cell.layer_angstrom is not None:  # whole layers only
            layer = cell.layer_angstrom * scale
            t = np.floor(t / layer + 0.5) * layer - 1e-6 * layer
            depth0 = 0.0
        keep = t > 0
        r, c, kind, phase, t = r[keep], c[keep], kind[keep], phase[keep], t[keep]
        az = cell.atom_z[kind]
        counts = column_atom_counts(
            phase, cell.atom_depth[kind], az > 0, start_angstrom=depth0 * period,
            thickness_angstrom=t, period_angstrom=period,
        )  # fmt: skip
        parts.append((r, c, az, counts, np.asarray(cell.species, dtype=object)[kind], k))
    if two and len(parts[0][0]) and len(parts[1][0]):
        # No two columns of the two crystals closer than 0.6 x the shorter in-crystal distance.
        dmin = 0.6 * min(
            project_structure(
                params[_CRYSTAL_KEYS[k][0]], params[_CRYSTAL_KEYS[k][1]]
            ).min_column_distance_angstrom()
            for k in (0, 1)
        )
        tree = cKDTree(np.stack(parts[0][:2], axis=1))
        d, _ = tree.query(np.stack(parts[1][:2], axis=1), distance_upper_bound=dmin)
        ok = ~np.isfinite(d)
        r, c, az, counts, sp, k = parts[1]
        parts[1] = (r[ok], c[ok], az[ok], counts[ok], sp[ok], k)
    width = max(pt[2].shape[1] for pt in parts)

    def pad(a):
        return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    r = np.concatenate([pt[0] for pt in parts])
    c = np.concatenate([pt[1] for pt in parts])
    az = np.concatenate([pad(pt[2]) for pt in parts]).astype(np.int64)
    counts = np.concatenate([pad(pt[3]) for pt in parts]).astype(np.int64)
    species = np.concatenate([pt[4] for pt in parts])
    crystal = np.concatenate([np.full(len(pt[0]), pt[5], np.int8) for pt in parts])
    # Point defects: atoms removed at random, then whole columns removed.
    f = float(params.get("vacancy_fraction", 0.0) or 0.0)
    if f > 0:
        counts = counts - rng.binomial(counts, f)
    fr = float(params.get("roughness_fraction", 0.0) or 0.0)
    if fr > 0 and len(counts):
        # surface roughness: one atom more or less on the most populated site of the column
        hit = rng.random(len(counts)) < fr
        step = np.where(rng.random(len(counts)) < 0.5, -1, 1) * hit
        j = np.argmax(counts, axis=1)
        rows = np.arange(len(counts))
        counts[rows, j] = np.maximum(counts[rows, j] + step, 0)
    fc = float(params.get("column_vacancy_fraction", 0.0) or 0.0)
    if fc > 0:
        counts[rng.random(len(counts)) < fc] = 0
    n_atoms = counts.sum(axis=1)
    keep = n_atoms > 0
    r, c, az, counts, n_atoms = r[keep], c[keep], az[keep], counts[keep], n_atoms[keep]
    species, crystal = species[keep], crystal[keep]
    jit = float(params.get("position_jitter_angstrom", 0.0) or 0.0)
    if jit > 0:
        r = r + rng.normal(0.0, jit, len(r))
        c = c + rng.normal(0.0, jit, len(c))
    zn = (az.astype(float) ** float(params["z_exponent"]) * counts).sum(axis=1)
    z = np.where(counts > 0, az, 0).max(axis=1) if len(az) else np.zeros(0, np.int64)
    return {
        "row_angstrom": r,
        "col_angstrom": c,
        "z": z.astype(np.int16),
        "n_atoms": n_atoms.astype(np.int32),
        "zn": zn,
        "species": species.astype(str),
        "crystal": crystal,
    }


def _amorphous_thickness(params: dict, rows_angstrom, cols_angstrom, *, centre_angstrom):
    """Thickness (Å) of the amorphous film at the given points."""
    t = float(params.get("amorphous_thickness_angstrom", 0.0) or 0.0)
    out = np.full(np.broadcast(rows_angstrom, cols_angstrom).shape, t)
    if t <= 0 or params.get("support_edge_angle_deg") is None:
        return out
    n = _unit(params["support_edge_angle_deg"])
    d = (
        n[0] * (np.asarray(rows_angstrom) - centre_angstrom[0])
        + n[1] * (np.asarray(cols_angstrom) - centre_angstrom[1])
        - params["support_edge_offset_angstrom"]
    )
    return np.where(d > 0, out, 0.0)
