"""Random 3-D phantoms of the materials electron tomography images.

Every phantom is a float32 volume ``(n_rows, N, N)`` in ``[0, 1]`` (vacuum = 0), drawn from a
``rng``, with the particle filling a good part of the field of view and kept inside the sphere
inscribed in it (so that every projection sees all of it). Sizes are relative to the smallest
edge ``L``, edges are anti-aliased over about one voxel, orientations are uniformly random.

Kinds
-----
polyhedron   faceted nanoparticle: cube, octahedron, cuboctahedron, truncated octahedron,
             rhombic dodecahedron, tetrahedron, Marks-like decahedron or a random polytope
rod          1-3 nanorods with square, hexagonal, octagonal or round sections and flat,
             round or pointed ends
star         branched nanostar: a core with 4-12 conical spikes
core_shell   dense core (eccentric, another habit) in a lighter or denser shell
hollow       nanoshell / nanocage: a shell with openings, sometimes with a loose core
porous       particle riddled with spherical pores or a sponge-like (dealloyed) network
supported    small dense particles decorating a low-density textured support
aggregate    cluster of touching particles of different sizes and densities
atomic       atomic-resolution particle: 3-D Gaussian atoms on an fcc, bcc or hcp lattice cut
             to a faceted shape, with vacancies, strain, thermal displacements, two species
texture      generic random textures (blobs, thresholded random fields, fibres, layers)

``HELD_OUT_KINDS`` are never drawn by default (``kind=None``) nor used for training pairs, so
a benchmark can measure how a trained network generalises to shapes it never saw.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from tomocnn.sim._util import _as_rng, _random_rotation

PHANTOM_KINDS = (
    "polyhedron",
    "rod",
    "star",
    "core_shell",
    "hollow",
    "porous",
    "supported",
    "aggregate",
    "atomic",
    "texture",
)
HELD_OUT_KINDS = ("star", "hollow")
TRAINING_KINDS = tuple(k for k in PHANTOM_KINDS if k not in HELD_OUT_KINDS)

_F32 = np.float32


# --- geometry helpers ---------------------------------------------------------------------


def _centered_axes(shape):
    """Open-grid voxel coordinates (axis 0, 1, 2), origin at the centre of the volume."""
    return [
        (np.arange(n, dtype=_F32) - _F32((n - 1) / 2)).reshape(
            [n if i == k else 1 for k in range(3)]
        )
        for i, n in enumerate(shape)
    ]


def _local(shape, center=(0.0, 0.0, 0.0), rotation=None, scale=(1.0, 1.0, 1.0)):
    """Coordinates ``q = diag(1/scale) R^T (p - center)`` of every voxel, 3 full arrays."""
    axes = [a - _F32(c) for a, c in zip(_centered_axes(shape), center)]
    R = np.eye(3) if rotation is None else rotation
    out = []
    for k in range(3):
        q = axes[0] * _F32(R[0, k]) + axes[1] * _F32(R[1, k]) + axes[2] * _F32(R[2, k])
        out.append(q / _F32(scale[k]))
    return out


def _soft(d):
    """Anti-aliased inside indicator from a signed distance (voxels; negative inside)."""
    return np.clip(_F32(0.5) - d, 0.0, 1.0, dtype=_F32)


def _sdf_planes(q, normals, dists):
    """Approximate signed distance to the convex polytope ``n_i . q <= h_i``."""
    d = None
    for n, h in zip(normals, dists):
        di = q[0] * _F32(n[0]) + q[1] * _F32(n[1]) + q[2] * _F32(n[2]) - _F32(h)
        d = di if d is None else np.maximum(d, di, out=d)
    return d


def _sdf_sphere(q, r):
    return np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) - _F32(r)


def _family(vectors):
    """All sign/permutation variants of the given Miller-like vectors, normalised."""
    out = set()
    for v in vectors:
        for perm in {(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}:
            w = [v[perm[0]], v[perm[1]], v[perm[2]]]
            for sx in (1, -1):
                for sy in (1, -1):
                    for sz in (1, -1):
                        out.add((sx * w[0], sy * w[1], sz * w[2]))
    arr = np.array(sorted(out), dtype=float)
    arr = arr[np.linalg.norm(arr, axis=1) > 0]
    arr = np.unique(arr / np.linalg.norm(arr, axis=1, keepdims=True), axis=0)
    return arr


_F100 = _family([(1, 0, 0)])
_F111 = _family([(1, 1, 1)])
_F110 = _family([(1, 1, 0)])


def _fibonacci_sphere(n=400):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + math.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


_DIRECTIONS = _fibonacci_sphere()


def _circumradius(normals, dists):
    """Largest distance from the origin to the polytope ``n_i . x <= h_i`` (inf if unbounded)."""
    cos = _DIRECTIONS @ normals.T  # (n_dir, n_planes)
    if np.any(cos.max(axis=1) <= 1e-9):
        return math.inf
    # exact: the farthest vertex, vertices being feasible intersections of three planes
    i, j, k = np.array(list(itertools.combinations(range(len(normals)), 3))).T
    mats = np.stack([normals[i], normals[j], normals[k]], axis=1)
    ok = np.abs(np.linalg.det(mats)) > 1e-9
    verts = np.linalg.solve(mats[ok], np.stack([dists[i], dists[j], dists[k]], 1)[ok][..., None])
    verts = verts[..., 0]
    feasible = np.all(verts @ normals.T <= dists + 1e-6 * max(1.0, dists.max()), axis=1)
    if not feasible.any():
        return math.inf
    return float(np.linalg.norm(verts[feasible], axis=1).max())


def _habit(rng, radius):
    """Plane normals and distances of a random crystal habit whose circumradius is ``radius``."""
    normals, dists = _habit_raw(rng, radius)
    return normals, dists * (radius / _circumradius(normals, dists))


def _habit_raw(rng, radius):
    name = rng.choice(
        [
            "cube",
            "octahedron",
            "cuboctahedron",
            "truncated_octahedron",
            "dodecahedron",
            "tetrahedron",
            "decahedron",
            "random",
        ]
    )
    jitter = lambda n: 1.0 + rng.uniform(-0.08, 0.08, size=n)  # noqa: E731
    if name == "cube":
        normals, dists = _F100, radius * 0.75 * jitter(6)
    elif name == "octahedron":
        normals, dists = _F111, radius * 0.8 * jitter(8)
    elif name == "cuboctahedron":
        normals = np.concatenate([_F100, _F111])
        dists = radius * np.concatenate([0.8 * jitter(6), 0.8 * jitter(8)])
    elif name == "truncated_octahedron":
        normals = np.concatenate([_F100, _F111])
        t = rng.uniform(0.85, 0.95)
        dists = radius * np.concatenate([t * jitter(6), 0.8 * jitter(8)])
    elif name == "dodecahedron":
        normals, dists = _F110, radius * 0.8 * jitter(12)
    elif name == "tetrahedron":
        normals = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3)
        dists = radius * 0.45 * jitter(4)
    elif name == "decahedron":
        # pentagonal bipyramid with {100}-like truncation of the equator (Marks-like)
        k = np.arange(5) * 2 * math.pi / 5
        tilt = math.radians(rng.uniform(30, 40))
        up = np.stack(
            [np.cos(k) * math.cos(tilt), np.sin(k) * math.cos(tilt), np.full(5, math.sin(tilt))],
            axis=1,
        )
        down = up * np.array([1, 1, -1])
        side = np.stack([np.cos(k + math.pi / 5), np.sin(k + math.pi / 5), np.zeros(5)], axis=1)
        normals = np.concatenate([up, down, side])
        dists = radius * np.concatenate(
            [0.6 * jitter(5), 0.6 * jitter(5), rng.uniform(0.8, 1.0) * jitter(5)]
        )
    else:
        normals = rng.normal(size=(int(rng.integers(8, 20)), 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        dists = radius * rng.uniform(0.7, 1.0, size=len(normals))
        # bounding {100} and {111} planes: a few random planes need not enclose anything
        normals = np.concatenate([normals, _F100, _F111])
        dists = np.concatenate([dists, np.full(14, 1.25 * radius)])
    return normals, dists


def _aniso(rng, spread=0.15):
    """Random axis scales in ``(exp(-2 spread), 1]``: shapes get flatter, never larger."""
    s = np.exp(rng.uniform(-spread, spread, size=3))
    return tuple(s / s.max())


def _gaussian_field(shape, rng, corr):
    """Smooth zero-mean, unit-variance random field with correlation length ``corr`` voxels."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(_F32), corr, mode="wrap")
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def _offset(rng, L, room):
    """A random centre offset keeping a particle of radius ``L/2 - room`` inside."""
    v = rng.normal(size=3)
    return v / np.linalg.norm(v) * rng.uniform(0, max(room, 0.0))


# --- kinds --------------------------------------------------------------------------------


def _polyhedron(shape, rng):
    L = min(shape)
    radius = L * rng.uniform(0.25, 0.42)
    normals, dists = _habit(rng, radius)
    q = _local(shape, _offset(rng, L, 0.44 * L - radius), _random_rotation(rng), _aniso(rng))
    vol = _soft(_sdf_planes(q, normals, dists)) * _F32(rng.uniform(0.6, 1.0))
    return vol


def _rod(shape, rng):
    L = min(shape)
    vol = np.zeros(shape, _F32)
    n_rods = int(rng.choice([1, 1, 1, 2, 3]))
    for _ in range(n_rods):
        half = L * rng.uniform(0.25, 0.42) / (1.0 if n_rods == 1 else 1.3)
        r = max(1.5, half / rng.uniform(1.8, 5.0))
        c = _offset(rng, L, 0.44 * L - half)
        q = _local(shape, c, _random_rotation(rng))
        sides = int(rng.choice([0, 4, 6, 8]))
        if sides:
            a = np.arange(sides) * 2 * math.pi / sides + rng.uniform(0, math.pi)
            d_sec = _sdf_planes(q, np.stack([np.cos(a), np.sin(a), 0 * a], 1), np.full(sides, r))
        else:
            d_sec = np.sqrt(q[0] * q[0] + q[1] * q[1]) - _F32(r)
        end = rng.choice(["flat", "round", "pointed"])
        if end == "round":
            z = np.clip(q[2], -(half - r), half - r)
            d = np.sqrt(q[0] ** 2 + q[1] ** 2 + (q[2] - z) ** 2) - _F32(r)
            d = np.maximum(d, d_sec - 0.5 * r) if sides else d
        elif end == "pointed":
            tip = np.abs(q[2]) - _F32(half - r) + np.sqrt(q[0] ** 2 + q[1] ** 2) - _F32(r)
            d = np.maximum(d_sec, np.maximum(np.abs(q[2]) - _F32(half), tip / _F32(1.5)))
        else:
            d = np.maximum(d_sec, np.abs(q[2]) - _F32(half))
        np.maximum(vol, _soft(d) * _F32(rng.uniform(0.6, 1.0)), out=vol)
    return vol


def _star(shape, rng):
    L = min(shape)
    r_core = L * rng.uniform(0.08, 0.16)
    r_tip = L * rng.uniform(0.32, 0.43)
    q = _local(shape, rng.uniform(-0.02, 0.02, 3) * L, _random_rotation(rng))
    d = _sdf_sphere(q, r_core)
    n_spikes = int(rng.integers(4, 13))
    for _ in range(n_spikes):
        a = rng.normal(size=3)
        a /= np.linalg.norm(a)
        length = r_tip * rng.uniform(0.7, 1.0)
        base = r_core * rng.uniform(0.35, 0.7)
        t = q[0] * _F32(a[0]) + q[1] * _F32(a[1]) + q[2] * _F32(a[2])
        radial = np.sqrt(np.maximum(q[0] ** 2 + q[1] ** 2 + q[2] ** 2 - t * t, 0))
        cone = radial - _F32(base) * np.clip(1 - t / _F32(length), 0, 1)
        cone = np.maximum(cone, np.maximum(-t, t - _F32(length)))
        np.minimum(d, cone, out=d)
    return _soft(d) * _F32(rng.uniform(0.6, 1.0))


def _core_shell(shape, rng):
    L = min(shape)
    radius = L * rng.uniform(0.28, 0.42)
    rot = _random_rotation(rng)
    c = _offset(rng, L, 0.44 * L - radius)
    scale = _aniso(rng, 0.1)
    q = _local(shape, c, rot, scale)
    if rng.random() < 0.5:
        d_out, inradius = _sdf_sphere(q, radius), radius
    else:
        normals, dists = _habit(rng, radius)
        d_out, inradius = _sdf_planes(q, normals, dists), float(dists.min())
    inradius *= min(scale)
    core_r = inradius * rng.uniform(0.4, 0.85)
    v = rng.normal(size=3)
    core_c = c + v / np.linalg.norm(v) * rng.uniform(0, 0.5) * (inradius - core_r)
    qc = _local(shape, core_c, _random_rotation(rng))
    if rng.random() < 0.5:
        d_in = _sdf_sphere(qc, core_r)
    else:
        d_in = _sdf_planes(qc, *_habit(rng, core_r))
    d_in = np.maximum(d_in, d_out + 1.0)  # the core stays inside the shell
    rho_core = rng.uniform(0.6, 1.0)
    rho_shell = rng.uniform(0.15, 0.5) if rng.random() < 0.7 else rng.uniform(0.7, 1.0)
    return _soft(d_out) * _F32(rho_shell) + _soft(d_in) * _F32(rho_core - rho_shell)


def _hollow(shape, rng):
    L = min(shape)
    radius = L * rng.uniform(0.28, 0.42)
    q = _local(shape, _offset(rng, L, 0.44 * L - radius), _random_rotation(rng), _aniso(rng, 0.1))
    thick = rng.uniform(1.5, max(2.0, 0.25 * radius))
    if rng.random() < 0.5:
        d_out = _sdf_sphere(q, radius)
        d_in = _sdf_sphere(q, radius - thick)
    else:
        normals, dists = _habit(rng, radius)
        d_out = _sdf_planes(q, normals, dists)
        d_in = _sdf_planes(q, normals, dists - thick)
    d = np.maximum(d_out, -d_in)
    for _ in range(int(rng.integers(0, 7))):  # openings of a nanocage
        v = rng.normal(size=3)
        v = v / np.linalg.norm(v) * radius
        hole = _sdf_sphere(
            [q[0] - _F32(v[0]), q[1] - _F32(v[1]), q[2] - _F32(v[2])],
            rng.uniform(0.15, 0.4) * radius,
        )
        np.maximum(d, -hole, out=d)
    vol = _soft(d) * _F32(rng.uniform(0.5, 1.0))
    if rng.random() < 0.3:  # yolk-shell: a loose core resting inside
        r_y = (radius - thick) * rng.uniform(0.3, 0.6)
        v = rng.normal(size=3)
        v = v / np.linalg.norm(v) * (radius - thick - r_y - 1)
        qy = [q[0] - _F32(v[0]), q[1] - _F32(v[1]), q[2] - _F32(v[2])]
        np.maximum(vol, _soft(_sdf_sphere(qy, r_y)) * _F32(rng.uniform(0.6, 1.0)), out=vol)
    return vol


def _porous(shape, rng):
    L = min(shape)
    radius = L * rng.uniform(0.3, 0.42)
    c = _offset(rng, L, 0.44 * L - radius)
    q = _local(shape, c, _random_rotation(rng), _aniso(rng))
    d = _sdf_sphere(q, radius) if rng.random() < 0.4 else _sdf_planes(q, *_habit(rng, radius))
    body = _soft(d)
    if rng.random() < 0.5:  # spherical pores (mesoporous)
        n = int(rng.integers(10, 60))
        pts = c + rng.uniform(-1, 1, size=(n, 3)) * radius
        rad = rng.uniform(1.0, max(1.5, 0.18 * radius), size=n)
        pores = np.full(shape, np.inf, _F32)
        axes = _centered_axes(shape)
        for p, r in zip(pts, rad):
            lo = [max(0, int(p[k] + (shape[k] - 1) / 2 - r - 2)) for k in range(3)]
            hi = [min(shape[k], int(p[k] + (shape[k] - 1) / 2 + r + 3)) for k in range(3)]
            if any(h <= l for h, l in zip(hi, lo)):
                continue
            sl = tuple(slice(lo[k], hi[k]) for k in range(3))
            dz = axes[0][lo[0] : hi[0]] - _F32(p[0])
            dy = axes[1][:, lo[1] : hi[1]] - _F32(p[1])
            dx = axes[2][:, :, lo[2] : hi[2]] - _F32(p[2])
            dist = np.sqrt(dz * dz + dy * dy + dx * dx) - _F32(r)
            np.minimum(pores[sl], dist, out=pores[sl])
        body *= 1.0 - _soft(pores)
    else:  # sponge: a thresholded random field (dealloyed nanoporous metal)
        field = _gaussian_field(shape, rng, rng.uniform(1.5, 3.5))
        level = rng.uniform(-0.6, 0.3)
        body *= np.clip((field - _F32(level)) * _F32(2.0), 0, 1)
    return body * _F32(rng.uniform(0.6, 1.0))


def _supported(shape, rng):
    L = min(shape)
    rot = _random_rotation(rng)
    radii = np.array([rng.uniform(0.28, 0.37), rng.uniform(0.22, 0.37), rng.uniform(0.1, 0.3)])
    radii *= L
    q = _local(shape, rng.uniform(-0.03, 0.03, 3) * L, rot)
    # ellipsoid support with a wavy, textured surface (carbon / oxide)
    rr = np.sqrt((q[0] / radii[0]) ** 2 + (q[1] / radii[1]) ** 2 + (q[2] / radii[2]) ** 2)
    wave = _gaussian_field(shape, rng, rng.uniform(3, 6)) * _F32(0.08)
    d = (rr - _F32(1.0) + wave) * _F32(radii.min())
    rho_support = rng.uniform(0.1, 0.35)
    texture = 1 + _F32(rng.uniform(0.0, 0.3)) * _gaussian_field(shape, rng, rng.uniform(1, 3))
    vol = _soft(d) * _F32(rho_support) * np.clip(texture, 0, None)
    # decorating particles at the support surface
    n = int(rng.integers(3, 26))
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    surf = u / np.sqrt(((u / radii) ** 2).sum(axis=1, keepdims=True))  # on the ellipsoid
    sizes = rng.uniform(1.2, max(1.5, 0.06 * L), size=n)
    centres = (rot @ (surf * (1 + rng.uniform(-0.05, 0.1, size=(n, 1)))).T).T
    reach = np.linalg.norm(centres, axis=1) + sizes
    centres *= np.minimum(1.0, (0.45 * L - sizes) / np.maximum(reach - sizes, 1e-6))[:, None]
    rho = rng.uniform(0.7, 1.0)
    axes = _centered_axes(shape)
    for c, r in zip(centres, sizes):
        lo = [max(0, int(c[k] + (shape[k] - 1) / 2 - r - 2)) for k in range(3)]
        hi = [min(shape[k], int(c[k] + (shape[k] - 1) / 2 + r + 3)) for k in range(3)]
        if any(h <= l for h, l in zip(hi, lo)):
            continue
        dz = axes[0][lo[0] : hi[0]] - _F32(c[0])
        dy = axes[1][:, lo[1] : hi[1]] - _F32(c[1])
        dx = axes[2][:, :, lo[2] : hi[2]] - _F32(c[2])
        blob = _soft(np.sqrt(dz * dz + dy * dy + dx * dx) - _F32(r)) * _F32(rho)
        sl = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        np.maximum(vol[sl], blob, out=vol[sl])
    return vol


def _aggregate(shape, rng):
    L = min(shape)
    n = int(rng.integers(3, 9))
    r = L * rng.uniform(0.07, 0.14, size=n)
    centres = [np.zeros(3)]
    for i in range(1, n):  # each new particle touches a previous one
        j = int(rng.integers(0, i))
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        centres.append(centres[j] + v * (r[i] + r[j]) * rng.uniform(0.8, 1.0))
    centres = np.array(centres)
    centres -= centres.mean(axis=0)
    extent = np.max(np.linalg.norm(centres, axis=1) + r)
    s = min(1.0, 0.44 * L / extent)
    vol = np.zeros(shape, _F32)
    for c, ri in zip(centres * s, r * s):
        q = _local(shape, c, _random_rotation(rng), _aniso(rng, 0.1))
        d = _sdf_sphere(q, ri) if rng.random() < 0.4 else _sdf_planes(q, *_habit(rng, ri))
        np.maximum(vol, _soft(d) * _F32(rng.uniform(0.4, 1.0)), out=vol)
    return vol


_LATTICES = {
    # basis (fractional), conventional cell vectors (rows), nearest-neighbour distance / a
    "fcc": (
        np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
        np.eye(3),
        1 / math.sqrt(2),
    ),
    "bcc": (np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3), math.sqrt(3) / 2),
    "hcp": (
        np.array([[0, 0, 0], [1 / 3, 2 / 3, 0.5]]),
        np.array([[1, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [0, 0, math.sqrt(8 / 3)]]),
        1.0,
    ),
}


def _lattice_habit(rng, lattice, radius):
    """Crystallographic facets of ``lattice`` (crystal frame), circumradius ``radius``."""
    if lattice == "hcp":
        k = np.arange(6) * math.pi / 3
        prism = np.stack([np.cos(k), np.sin(k), np.zeros(6)], axis=1)
        basal = np.array([[0, 0, 1.0], [0, 0, -1.0]])
        normals = np.concatenate([prism, basal])
        dists = radius * np.concatenate(
            [rng.uniform(0.8, 1.0) * (1 + rng.uniform(-0.1, 0.1, 6)), rng.uniform(0.5, 0.9, 2)]
        )
        return normals, dists * (radius / _circumradius(normals, dists))
    if lattice == "fcc":
        fam = [(_F111, 0.85), (_F100, rng.uniform(0.85, 1.05))]
        if rng.random() < 0.3:
            fam.append((_F110, rng.uniform(0.95, 1.1)))
    else:
        fam = [(_F110, 0.85), (_F100, rng.uniform(0.8, 1.0))]
    normals = np.concatenate([f for f, _ in fam])
    dists = radius * np.concatenate(
        [np.full(len(f), t) * (1 + rng.uniform(-0.08, 0.08, len(f))) for f, t in fam]
    )
    return normals, dists * (radius / _circumradius(normals, dists))


def _atomic(shape, rng):
    from scipy import ndimage

    L = min(shape)
    lattice = str(rng.choice(["fcc", "fcc", "bcc", "hcp"]))
    basis, cell, nn_over_a = _LATTICES[lattice]
    d_nn = L * rng.uniform(0.055, 0.09)
    a = d_nn / nn_over_a
    radius = L * rng.uniform(0.3, 0.42)
    normals, dists = _lattice_habit(rng, lattice, radius)
    # lattice points in the crystal frame (voxels), shifted by a random fraction of a cell
    m = int(math.ceil(radius / a)) + 2
    ijk = np.stack(np.meshgrid(*[np.arange(-m, m + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (ijk[:, None, :] + basis[None, :, :]).reshape(-1, 3) + rng.uniform(0, 1, 3)
    pos = frac @ cell * a
    pos -= pos.mean(axis=0)
    inside = np.all(pos @ normals.T <= dists, axis=1)
    pos = pos[inside]
    # strain: radial relaxation and a smooth wave, plus thermal (Debye-Waller) jitter
    rn = np.linalg.norm(pos, axis=1, keepdims=True)
    pos = pos * (1 + rng.uniform(-0.04, 0.04) * rn / radius)
    k = rng.normal(size=3) * 2 * math.pi / (radius * rng.uniform(1.5, 4))
    pos += rng.normal(size=3) * 0.06 * d_nn * np.sin(pos @ k + rng.uniform(0, 2 * math.pi))[:, None]
    pos += rng.normal(0, rng.uniform(0.01, 0.04) * d_nn, size=pos.shape)
    # vacancies and a second species (random alloy or segregated to the surface/core)
    keep = rng.random(len(pos)) >= rng.uniform(0.0, 0.06)
    pos, rn = pos[keep], rn[keep, 0]
    weight = np.ones(len(pos))
    if rng.random() < 0.6:
        z2 = rng.uniform(0.35, 0.8)
        mode = rng.choice(["alloy", "shell", "core"])
        if mode == "alloy":
            second = rng.random(len(pos)) < rng.uniform(0.2, 0.6)
        else:
            cut = np.quantile(rn, rng.uniform(0.3, 0.7))
            second = rn > cut if mode == "shell" else rn <= cut
        weight[second] = z2
    pos = pos @ _random_rotation(rng).T + _offset(rng, L, 0.44 * L - radius)
    # render: trilinear splat, then a Gaussian (the splat adds a variance of 1/6 per axis)
    vol = np.zeros(shape, _F32)
    idx = pos + (np.array(shape) - 1) / 2
    base = np.floor(idx).astype(int)
    fr = idx - base
    for corner in range(8):
        o = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        w = np.prod(np.where(o, fr, 1 - fr), axis=1) * weight
        ii = base + o
        ok = np.all((ii >= 0) & (ii < np.array(shape)), axis=1)
        np.add.at(vol, (ii[ok, 0], ii[ok, 1], ii[ok, 2]), w[ok])
    sigma = d_nn * rng.uniform(0.17, 0.24)
    vol = ndimage.gaussian_filter(vol, math.sqrt(max(sigma**2 - 1 / 6, 0.15)), truncate=3.0)
    return vol / _F32(max(vol.max(), 1e-6)) * _F32(rng.uniform(0.7, 1.0))


def _texture(shape, rng):
    L = min(shape)
    kind = rng.choice(["blobs", "field", "fibres", "layers"])
    if kind == "blobs":
        vol = np.zeros(shape, _F32)
        for _ in range(int(rng.integers(5, 30))):
            r = L * rng.uniform(0.03, 0.15)
            c = rng.uniform(-1, 1, 3) * (0.42 * L - r) / math.sqrt(3)
            q = _local(shape, c, _random_rotation(rng), _aniso(rng, 0.5))
            vol += _soft(_sdf_sphere(q, r)) * _F32(rng.uniform(0.1, 0.6))
    elif kind == "field":
        field = _gaussian_field(shape, rng, rng.uniform(1.0, 5.0))
        if rng.random() < 0.5:
            vol = np.clip((field - _F32(rng.uniform(-0.5, 1.0))) * _F32(rng.uniform(1, 4)), 0, 1)
        else:
            vol = np.clip(_F32(0.5) + _F32(0.25) * field, 0, 1)
    elif kind == "fibres":
        vol = np.zeros(shape, _F32)
        for _ in range(int(rng.integers(2, 12))):
            r = rng.uniform(0.8, max(1.0, 0.05 * L))
            q = _local(shape, rng.uniform(-0.2, 0.2, 3) * L, _random_rotation(rng))
            d = np.maximum(np.sqrt(q[0] ** 2 + q[1] ** 2) - _F32(r), np.abs(q[2]) - _F32(0.4 * L))
            if rng.random() < 0.4:  # a tube (nanotube)
                d = np.maximum(d, _F32(r * 0.5) - np.sqrt(q[0] ** 2 + q[1] ** 2))
            np.maximum(vol, _soft(d) * _F32(rng.uniform(0.3, 1.0)), out=vol)
    else:
        q = _local(shape, (0, 0, 0), _random_rotation(rng))
        period = rng.uniform(3, 10)
        layers = 0.5 + 0.5 * np.cos(q[2] * _F32(2 * math.pi / period))
        vol = np.clip((layers - _F32(rng.uniform(0.2, 0.7))) * _F32(3), 0, 1)
        vol *= _F32(rng.uniform(0.3, 1.0))
    if rng.random() < 0.7:  # a soft envelope: a particle-like object in vacuum
        q = _local(shape, (0, 0, 0), _random_rotation(rng), _aniso(rng, 0.3))
        env = _soft(_sdf_sphere(q, L * rng.uniform(0.3, 0.43)) / _F32(rng.uniform(1, 4)))
        vol = vol * env
    else:  # keep the field of view's inscribed sphere (every projection sees everything)
        q = _local(shape)
        vol = vol * _soft(_sdf_sphere(q, 0.46 * L))
    return vol


_GENERATORS = {
    "polyhedron": _polyhedron,
    "rod": _rod,
    "star": _star,
    "core_shell": _core_shell,
    "hollow": _hollow,
    "porous": _porous,
    "supported": _supported,
    "aggregate": _aggregate,
    "atomic": _atomic,
    "texture": _texture,
}


def _check_shape(size) -> tuple[int, int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        shape = (int(size),) * 3
    else:
        try:
            shape = tuple(int(s) for s in size)
        except TypeError:
            raise TypeError(
                f"size must be an int or a shape (n_rows, N, N), got {size!r}"
            ) from None
        if len(shape) != 3:
            raise ValueError(f"size must be an int or a 3-tuple (n_rows, N, N), got {size!r}")
        if shape[1] != shape[2]:
            raise ValueError(f"slices must be square, shape (n_rows, N, N), got {shape}")
    if min(shape) < 8:
        raise ValueError(f"phantoms need at least 8 voxels along every axis, got {shape}")
    return shape


def random_phantom(
    size: int | tuple[int, int, int] = 64,
    *,
    kind: str | tuple[str, ...] | None = None,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """A random 3-D phantom of a nanomaterial, as imaged by electron tomography.

    Parameters
    ----------
    size : int or tuple of int
        Edge of a cubic volume, or a shape ``(n_rows, N, N)`` (at least 8 along each axis).
    kind : str or sequence of str, optional
        One of :data:`PHANTOM_KINDS` (see the module docstring), or a sequence of kinds to
        draw from. None draws from the training kinds (all but :data:`HELD_OUT_KINDS`).
    rng : int or numpy.random.Generator, optional
        Random numbers; the same seed gives the same phantom.

    Returns
    -------
    volume : ndarray, shape (n_rows, N, N)
        float32 density in ``[0, 1]`` (vacuum 0).

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.sim import random_phantom
    >>> vol = random_phantom(32, kind="core_shell", rng=0)
    >>> vol.shape, vol.dtype, bool(vol.min() >= 0 and vol.max() <= 1)
    ((32, 32, 32), dtype('float32'), True)
    >>> bool(np.array_equal(vol, random_phantom(32, kind="core_shell", rng=0)))
    True
    """
    shape = _check_shape(size)
    gen = _as_rng(rng)
    if kind is None:
        kind = TRAINING_KINDS
    if not isinstance(kind, str):
        kinds = tuple(kind)
        bad = [k for k in kinds if k not in PHANTOM_KINDS]
        if not kinds or bad:
            raise ValueError(f"unknown phantom kind(s) {bad or kinds}; choose from {PHANTOM_KINDS}")
        kind = str(kinds[int(gen.integers(len(kinds)))])
    elif kind not in PHANTOM_KINDS:
        raise ValueError(f"unknown phantom kind {kind!r}; choose one of {PHANTOM_KINDS}")
    vol = _GENERATORS[kind](shape, gen)
    return np.clip(vol, 0.0, 1.0).astype(_F32, copy=False)
