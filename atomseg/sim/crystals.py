"""Crystal structures from lattice parameters and basis, projected along zone axes into columns.

A structure is a unit cell (lattice parameters ``a, b, c, alpha, beta, gamma``) with a basis of
atoms in fractional coordinates. Projecting it along a zone axis ``[uvw]`` (a lattice vector
``t``) gives a 2-D periodic arrangement of atomic *columns*: every atom whose position differs
only by a multiple of ``t`` sits in the same column. :func:`project_structure` finds a unit cell
of that 2-D lattice, the columns in it, and for each column the atomic numbers and depths (as a
fraction of the repeat length ``|t|``) of the atoms it holds in one repeat. How many atoms a
column holds in a slab of thickness ``T`` then follows exactly from those depths (see
:func:`column_atom_counts`), which gives thin edges of 1-3 atoms and mixed columns (Sr-O in
SrTiO3 [110]) for free.

Lattice parameters are room-temperature literature values (R. W. G. Wyckoff, *Crystal
Structures*, 2nd ed., Wiley 1963; CRC Handbook of Chemistry and Physics, "Lattice constants";
for the layered dichalcogenides, Wilson & Yoffe, Adv. Phys. 18, 193 (1969)). Cells that are
orthorhombic or rhombohedral in reality (DyScO3, LaAlO3, BiFeO3) are used in their pseudo-cubic
form.

Zone axes are written as strings: three indices for cubic and tetragonal cells (``"110"``,
``"-110"``), four Miller-Bravais indices for hexagonal cells (``"11-20"``, ``"1-100"``,
``"0001"``).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ELEMENTS",
    "ProjectedCell",
    "list_structures",
    "project_structure",
    "column_atom_counts",
]

#: atomic numbers of the elements used by the structure table.
ELEMENTS: dict[str, int] = {
    "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Na": 11, "Mg": 12, "Al": 13, "Si": 14,
    "P": 15, "S": 16, "Cl": 17, "K": 19, "Ca": 20, "Sc": 21, "Ti": 22, "V": 23, "Cr": 24,
    "Mn": 25, "Fe": 26, "Co": 27, "Ni": 28, "Cu": 29, "Zn": 30, "Ga": 31, "Ge": 32,
    "As": 33, "Se": 34, "Sr": 38, "Y": 39, "Zr": 40, "Nb": 41, "Mo": 42, "Ru": 44,
    "Pd": 46, "Ag": 47, "Cd": 48, "In": 49, "Sn": 50, "Sb": 51, "Te": 52, "Ba": 56,
    "La": 57, "Ce": 58, "Dy": 66, "Hf": 72, "Ta": 73, "W": 74, "Re": 75, "Ir": 77,
    "Pt": 78, "Au": 79, "Pb": 82, "Bi": 83, "Th": 90, "U": 92,
}  # fmt: skip

# Zone axes offered per family: the low-index axes used in practice whose projected columns stay
# at least ~0.6 Å apart (bcc/diamond [112], wurtzite [1-100] and rutile [110] put columns
# 0.5-0.8 Å apart, beyond any probe, and are left out).
_CUBIC_AXES = ("100", "110", "111")
_FCC_AXES = ("100", "110", "111", "112")
_HEX_AXES = ("0001", "11-20", "1-100")
_WURTZITE_AXES = ("0001", "11-20")
_TETRAGONAL_AXES = ("001", "100")
#: columns closer than this in projection are one column (e.g. the split O sites of spinels).
_MERGE_ANGSTROM = 0.35

_F = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


def _shift(sites, d):
    return tuple((s, tuple((f + e) % 1.0 for f, e in zip(p, d))) for s, p in sites)


def _fcc(el):
    return tuple((el, p) for p in _F)


def _bcc(el):
    return ((el, (0.0, 0.0, 0.0)), (el, (0.5, 0.5, 0.5)))


def _diamond(a, b):  # diamond (a == b) or zincblende: two fcc lattices shifted by (1/4, 1/4, 1/4)
    return _fcc(a) + _shift(_fcc(b), (0.25, 0.25, 0.25))


def _rocksalt(a, b):
    return _fcc(a) + _shift(_fcc(b), (0.5, 0.0, 0.0))


def _fluorite(a, x):
    q = (0.25, 0.75)
    return _fcc(a) + tuple((x, p) for p in itertools.product(q, q, q))


def _perovskite(a, b, x):
    return (
        (a, (0.0, 0.0, 0.0)),
        (b, (0.5, 0.5, 0.5)),
        (x, (0.5, 0.5, 0.0)),
        (x, (0.5, 0.0, 0.5)),
        (x, (0.0, 0.5, 0.5)),
    )


def _spinel(a, b, x, u):
    # Fd-3m, origin choice 1 (A on 8a at the origin): A on a diamond lattice, B on 16d, X on 32e.
    asites = _fcc(a) + _shift(_fcc(a), (0.25, 0.25, 0.25))
    bsites = ()
    for d in (
        (5 / 8, 5 / 8, 5 / 8),
        (5 / 8, 7 / 8, 7 / 8),
        (7 / 8, 5 / 8, 7 / 8),
        (7 / 8, 7 / 8, 5 / 8),
    ):
        bsites += _shift(_fcc(b), d)
    xsites = ()
    for d in (
        (u, u, u), (u, -u, -u), (-u, u, -u), (-u, -u, u),
        (0.25 - u, 0.25 - u, 0.25 - u), (0.25 - u, 0.25 + u, 0.25 + u),
        (0.25 + u, 0.25 - u, 0.25 + u), (0.25 + u, 0.25 + u, 0.25 - u),
    ):  # fmt: skip
        xsites += _shift(_fcc(x), d)
    return asites + bsites + xsites


def _hcp(el):
    return ((el, (1 / 3, 2 / 3, 0.25)), (el, (2 / 3, 1 / 3, 0.75)))


def _wurtzite(a, b, u):
    return (
        (a, (1 / 3, 2 / 3, 0.0)),
        (a, (2 / 3, 1 / 3, 0.5)),
        (b, (1 / 3, 2 / 3, u)),
        (b, (2 / 3, 1 / 3, 0.5 + u)),
    )


def _rutile(a, x, u):
    return (
        (a, (0.0, 0.0, 0.0)),
        (a, (0.5, 0.5, 0.5)),
        (x, (u, u, 0.0)),
        (x, (1 - u, 1 - u, 0.0)),
        (x, (0.5 + u, 0.5 - u, 0.5)),
        (x, (0.5 - u, 0.5 + u, 0.5)),
    )


def _mx2_2h(m, x, z):
    # 2H-MoS2 type, P6_3/mmc: M on 2c, X on 4f (z ~ 0.62); one layer is c/2 thick.
    return (
        (m, (1 / 3, 2 / 3, 0.25)),
        (m, (2 / 3, 1 / 3, 0.75)),
        (x, (1 / 3, 2 / 3, z)),
        (x, (2 / 3, 1 / 3, z - 0.5)),
        (x, (2 / 3, 1 / 3, 1 - z)),
        (x, (1 / 3, 2 / 3, 1.5 - z)),
    )


def _graphite():  # Bernal (AB) stacking
    return (
        ("C", (0.0, 0.0, 0.25)),
        ("C", (0.0, 0.0, 0.75)),
        ("C", (1 / 3, 2 / 3, 0.25)),
        ("C", (2 / 3, 1 / 3, 0.75)),
    )


def _hbn():  # AA' stacking: B over N
    return (
        ("B", (1 / 3, 2 / 3, 0.25)),
        ("B", (2 / 3, 1 / 3, 0.75)),
        ("N", (1 / 3, 2 / 3, 0.75)),
        ("N", (2 / 3, 1 / 3, 0.25)),
    )


@dataclass(frozen=True)
class _Structure:
    name: str
    family: str
    lattice: tuple[float, float, float, float, float, float]
    sites: tuple
    zone_axes: tuple[str, ...]
    layer_angstrom: float | None = None  # thickness of one layer seen along [0001]


def _cubic(a):
    return (a, a, a, 90.0, 90.0, 90.0)


def _hexagonal(a, c):
    return (a, a, c, 90.0, 90.0, 120.0)


def _tetragonal(a, c):
    return (a, a, c, 90.0, 90.0, 90.0)


def _table() -> dict[str, _Structure]:
    s: list[_Structure] = []
    cub, hexa, tet = _CUBIC_AXES, _HEX_AXES, _TETRAGONAL_AXES
    for el, a in [("Al", 4.0495), ("Ni", 3.5240), ("Cu", 3.6149), ("Pd", 3.8907),
                  ("Ag", 4.0853), ("Ir", 3.8390), ("Pt", 3.9242), ("Au", 4.0782),
                  ("Pb", 4.9508)]:  # fmt: skip
        s.append(_Structure(el, "fcc", _cubic(a), _fcc(el), _FCC_AXES))
    for el, a in [("V", 3.0240), ("Cr", 2.8846), ("Fe", 2.8665), ("Nb", 3.3004),
                  ("Mo", 3.1470), ("Ta", 3.3013), ("W", 3.1652)]:  # fmt: skip
        s.append(_Structure(el, "bcc", _cubic(a), _bcc(el), cub))
    for el, a, c in [("Mg", 3.2094, 5.2105), ("Ti", 2.9508, 4.6855), ("Co", 2.5071, 4.0695),
                     ("Zn", 2.6649, 4.9468), ("Zr", 3.2320, 5.1470), ("Ru", 2.7059, 4.2815),
                     ("Re", 2.7610, 4.4560)]:  # fmt: skip
        s.append(_Structure(el, "hcp", _hexagonal(a, c), _hcp(el), hexa))
    for el, a in [("C", 3.5668), ("Si", 5.4310), ("Ge", 5.6579)]:
        s.append(_Structure(el if el != "C" else "diamond", "diamond", _cubic(a),
                            _diamond(el, el), cub))  # fmt: skip
    for name, a_el, b_el, a in [("GaAs", "Ga", "As", 5.6533), ("GaP", "Ga", "P", 5.4505),
                                ("InP", "In", "P", 5.8687), ("InAs", "In", "As", 6.0583),
                                ("GaSb", "Ga", "Sb", 6.0959), ("InSb", "In", "Sb", 6.4794),
                                ("ZnS", "Zn", "S", 5.4093), ("ZnSe", "Zn", "Se", 5.6676),
                                ("CdTe", "Cd", "Te", 6.4810)]:  # fmt: skip
        s.append(_Structure(name, "zincblende", _cubic(a), _diamond(a_el, b_el), cub))
    for name, a_el, b_el, a, c, u in [("GaN", "Ga", "N", 3.189, 5.185, 0.377),
                                      ("AlN", "Al", "N", 3.112, 4.982, 0.382),
                                      ("InN", "In", "N", 3.538, 5.704, 0.377),
                                      ("ZnO", "Zn", "O", 3.2498, 5.2066, 0.382),
                                      ("CdSe", "Cd", "Se", 4.2999, 7.0109, 0.376)]:  # fmt: skip
        s.append(
            _Structure(name, "wurtzite", _hexagonal(a, c), _wurtzite(a_el, b_el, u), _WURTZITE_AXES)
        )
    for name, a_el, b_el, a in [("MgO", "Mg", "O", 4.2117), ("NiO", "Ni", "O", 4.1771),
                                ("CaO", "Ca", "O", 4.8105), ("NaCl", "Na", "Cl", 5.6402),
                                ("PbTe", "Pb", "Te", 6.4620), ("PbS", "Pb", "S", 5.9360),
                                ("TiN", "Ti", "N", 4.2420)]:  # fmt: skip
        s.append(_Structure(name, "rocksalt", _cubic(a), _rocksalt(a_el, b_el), _FCC_AXES))
    for name, a_el, b_el, a in [("SrTiO3", "Sr", "Ti", 3.9050), ("BaTiO3", "Ba", "Ti", 4.0000),
                                ("LaAlO3", "La", "Al", 3.7900), ("KTaO3", "K", "Ta", 3.9885),
                                ("SrRuO3", "Sr", "Ru", 3.9300), ("BiFeO3", "Bi", "Fe", 3.9650),
                                ("DyScO3", "Dy", "Sc", 3.9460)]:  # fmt: skip
        s.append(_Structure(name, "perovskite", _cubic(a), _perovskite(a_el, b_el, "O"), cub))
    s.append(_Structure("PbTiO3", "perovskite", _tetragonal(3.9040, 4.1520),
                        _perovskite("Pb", "Ti", "O"), tet))  # fmt: skip
    for name, a_el, x_el, a in [("CeO2", "Ce", "O", 5.4110), ("CaF2", "Ca", "F", 5.4626),
                                ("ZrO2", "Zr", "O", 5.0700), ("HfO2", "Hf", "O", 5.0800),
                                ("ThO2", "Th", "O", 5.5970),
                                ("UO2", "U", "O", 5.4704)]:  # fmt: skip
        s.append(_Structure(name, "fluorite", _cubic(a), _fluorite(a_el, x_el), cub))
    for name, a_el, b_el, a, u in [("MgAl2O4", "Mg", "Al", 8.0830, 0.387),
                                   ("Fe3O4", "Fe", "Fe", 8.3960, 0.380),
                                   ("Co3O4", "Co", "Co", 8.0840, 0.388),
                                   ("ZnFe2O4", "Zn", "Fe", 8.4410, 0.385)]:  # fmt: skip
        s.append(_Structure(name, "spinel", _cubic(a), _spinel(a_el, b_el, "O", u), cub))
    for name, m, x, a, c, z in [("MoS2", "Mo", "S", 3.160, 12.294, 0.621),
                                ("WS2", "W", "S", 3.153, 12.323, 0.622),
                                ("MoSe2", "Mo", "Se", 3.288, 12.900, 0.621),
                                ("WSe2", "W", "Se", 3.282, 12.960, 0.621)]:  # fmt: skip
        s.append(_Structure(name, "layered", _hexagonal(a, c), _mx2_2h(m, x, z), hexa, c / 2))
    s.append(_Structure("graphite", "layered", _hexagonal(2.464, 6.711), _graphite(), ("0001",),
                        6.711 / 2))  # fmt: skip
    s.append(_Structure("hBN", "layered", _hexagonal(2.504, 6.661), _hbn(), ("0001",), 6.661 / 2))
    for name, a_el, a, c, u in [("TiO2", "Ti", 4.5937, 2.9587, 0.3053),
                                ("SnO2", "Sn", 4.7373, 3.1864, 0.3070),
                                ("RuO2", "Ru", 4.4910, 3.1060, 0.3060)]:  # fmt: skip
        s.append(_Structure(name, "rutile", _tetragonal(a, c), _rutile(a_el, "O", u), tet))
    return {x.name: x for x in s}


_STRUCTURES = _table()


def list_structures() -> dict[str, dict]:
    """Return the built-in structures with their family, lattice and zone axes.

    Returns
    -------
    dict
        ``{name: {"family": str, "lattice": (a, b, c, alpha, beta, gamma), "zone_axes":
        tuple of str}}``, lengths in Å and angles in degrees.

    Examples
    --------
    >>> from atomseg.sim import list_structures
    >>> info = list_structures()
    >>> info["GaAs"]["family"], info["GaAs"]["zone_axes"]
    ('zincblende', ('100', '110', '111'))
    >>> sorted({v["family"] for v in info.values()})[:4]
    ['bcc', 'diamond', 'fcc', 'fluorite']
    """
    return {
        k: {"family": v.family, "lattice": v.lattice, "zone_axes": v.zone_axes}
        for k, v in _STRUCTURES.items()
    }


def _structure(name: str) -> _Structure:
    try:
        return _STRUCTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown structure {name!r}; known structures: {', '.join(sorted(_STRUCTURES))}"
        ) from None


def _lattice_matrix(a, b, c, alpha, beta, gamma) -> np.ndarray:
    """Rows are the cell vectors a1, a2, a3 in Cartesian Å."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(c * c - cx * cx - cy * cy)
    return np.array([[a, 0, 0], [b * np.cos(ga), b * np.sin(ga), 0], [cx, cy, cz]])


def _parse_zone_axis(zone_axis: str, hexagonal: bool) -> tuple[int, int, int]:
    text = str(zone_axis).strip("[]<> ")
    found = re.findall(r"-?\d", text)
    digits = [int(d) for d in found] if "".join(found) == text else []
    if hexagonal and len(digits) == 4:
        u, v, t, w = digits
        if u + v + t != 0:
            raise ValueError(f"zone axis {zone_axis!r}: Miller-Bravais indices need u + v + t = 0")
        uvw = (u - t, v - t, w)
    elif not hexagonal and len(digits) == 3:
        uvw = tuple(digits)
    else:
        n = 4 if hexagonal else 3
        raise ValueError(f"zone axis {zone_axis!r}: expected {n} single-digit indices like "
                         f"{'11-20' if hexagonal else '110'}")  # fmt: skip
    g = math.gcd(*uvw)
    if g == 0:
        raise ValueError(f"zone axis {zone_axis!r} is the zero vector")
    return tuple(int(x // g) for x in uvw)


def _unimodular_completion(t: tuple[int, int, int]) -> np.ndarray:
    """Integer matrix with determinant 1 and ``t`` as its last row."""
    rng = range(-2, 3)
    cands = [np.array(v) for v in itertools.product(rng, rng, rng) if any(v)]
    cands.sort(key=lambda v: (int(np.abs(v).sum()), tuple(-v)))
    tv = np.array(t)
    for p in cands:
        for q in cands:
            d = round(np.linalg.det(np.array([p, q, tv])))
            if d == 1:
                return np.array([p, q, tv])
    raise ValueError(f"no unimodular completion for {t}")  # pragma: no cover


def _merge_close_columns(frac, cell2, step, atom_z, atom_depth):
    """Merge columns closer than ``_MERGE_ANGSTROM`` (periodic images included)."""
    n = len(frac)
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)])
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            d = (frac[j][None, :] + shifts - frac[i][None, :]) @ cell2
            k = int(np.argmin(np.linalg.norm(d, axis=1)))
            if np.linalg.norm(d[k]) < _MERGE_ANGSTROM:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[rj] = ri
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    if len(groups) == n:
        return frac, atom_z, atom_depth
    k = max(int((atom_z[g] > 0).sum()) for g in groups.values())
    new_frac, new_z, new_depth = (
        [],
        np.zeros((len(groups), k), np.int16),
        np.zeros((len(groups), k)),
    )
    for gi, (root, members) in enumerate(groups.items()):
        pos, w, zs, ds = [], [], [], []
        for mbr in members:
            # unwrap the member next to the root
            d = frac[mbr] - frac[root]
            cand = d[None, :] + shifts
            sh = shifts[int(np.argmin(np.linalg.norm(cand @ cell2, axis=1)))]
            pos.append(frac[mbr] + sh)
            keep = atom_z[mbr] > 0
            w.append(float(np.sum(atom_z[mbr][keep].astype(float) ** 1.7)))
            zs.extend(atom_z[mbr][keep].tolist())
            ds.extend((atom_depth[mbr][keep] + sh @ step).tolist())
        new_frac.append(np.mod(np.average(pos, axis=0, weights=w), 1.0))
        new_z[gi, : len(zs)] = zs
        new_depth[gi, : len(ds)] = ds
    return np.array(new_frac), new_z, new_depth


@dataclass(frozen=True, eq=False)
class ProjectedCell:
    """A structure projected along a zone axis: a 2-D cell of atomic columns.

    Attributes
    ----------
    structure, zone_axis : str
        What was projected.
    cell_angstrom : ndarray, shape (2, 2)
        Rows are the two in-plane cell vectors as ``(row, col)`` components in Å (a reduced
        basis: the shortest pair of vectors).
    period_angstrom : float
        Repeat length ``|t|`` along the beam; column contents are given per repeat.
    frac : ndarray, shape (n_columns, 2)
        Column positions in fractions of the two cell vectors.
    atom_z : ndarray, shape (n_columns, k)
        Atomic numbers of the atoms of each column in one repeat (0 pads short columns).
    atom_depth : ndarray, shape (n_columns, k)
        Their depths as a fraction of the repeat, in [0, 1).
    depth_step : ndarray, shape (2,)
        Depth change (fraction of the repeat) per in-plane cell vector; a column in the cell
        translated by ``(n1, n2)`` has its depths shifted by ``n1 * depth_step[0] + n2 *
        depth_step[1]``.
    species : tuple of str
        Elements of each column, heaviest first, joined by ``+`` (``"Sr+O"``).
    layer_angstrom : float or None
        Thickness of one layer for layered structures seen along ``[0001]``, else None.
    """

    structure: str
    zone_axis: str
    cell_angstrom: np.ndarray
    period_angstrom: float
    frac: np.ndarray
    atom_z: np.ndarray
    atom_depth: np.ndarray
    depth_step: np.ndarray
    species: tuple
    layer_angstrom: float | None

    @property
    def n_columns(self) -> int:
        """Number of columns in the 2-D cell."""
        return len(self.frac)

    @property
    def atoms_per_period(self) -> np.ndarray:
        """Atoms per repeat of each column, shape (n_columns,)."""
        return (self.atom_z > 0).sum(axis=1)

    @property
    def area_angstrom2(self) -> float:
        """Area of the 2-D cell in Å²."""
        return float(abs(np.linalg.det(self.cell_angstrom)))

    def min_column_distance_angstrom(self) -> float:
        """Shortest distance between two columns of the projected crystal, in Å."""
        if "_dmin" in self.__dict__:
            return self.__dict__["_dmin"]
        pos = self.frac @ self.cell_angstrom
        shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ self.cell_angstrom
        allpos = (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        d = np.linalg.norm(pos[:, None, :] - allpos[None, :, :], axis=-1)
        d[d < 1e-6] = np.inf
        self.__dict__["_dmin"] = float(d.min())  # cache (the dataclass is frozen)
        return self.__dict__["_dmin"]


@functools.cache
def project_structure(structure: str, zone_axis: str) -> ProjectedCell:
    """Project a built-in structure along a zone axis into a 2-D cell of atomic columns.

    Parameters
    ----------
    structure : str
        A name from :func:`list_structures` (``"Au"``, ``"GaAs"``, ``"SrTiO3"``, ...).
    zone_axis : str
        One of the structure's zone axes (``"110"``; ``"11-20"`` for hexagonal cells).

    Returns
    -------
    ProjectedCell
        The 2-D cell, its columns and their contents per repeat along the beam.

    Raises
    ------
    ValueError
        For an unknown structure or a zone axis the structure does not offer.

    Examples
    --------
    Silicon seen along [110] shows the famous dumbbells, 1.36 Å apart:

    >>> from atomseg.sim import project_structure
    >>> cell = project_structure("Si", "110")
    >>> round(cell.min_column_distance_angstrom(), 2)
    1.36
    >>> cell.n_columns, cell.atoms_per_period.tolist()
    (4, [2, 2, 2, 2])
    """
    st = _structure(structure)
    if zone_axis not in st.zone_axes:
        raise ValueError(
            f"zone axis {zone_axis!r} not available for {structure}; "
            f"choose one of {', '.join(st.zone_axes)}"
        )
    hexagonal = st.lattice[5] == 120.0
    t = _parse_zone_axis(zone_axis, hexagonal)
    lat = _lattice_matrix(*st.lattice)
    m = _unimodular_completion(t)
    new = m.astype(float) @ lat  # rows b1, b2, b3 = t
    period = float(np.linalg.norm(new[2]))
    e3 = new[2] / period
    # In-plane orthonormal frame: e1 along the projection of b1.
    p1 = new[0] - (new[0] @ e3) * e3
    e1 = p1 / np.linalg.norm(p1)
    e2 = np.cross(e3, e1)
    frac_old = np.array([p for _, p in st.sites], dtype=float)
    z = np.array([ELEMENTS[s] for s, _ in st.sites])
    frac_new = frac_old @ np.linalg.inv(m.astype(float))
    frac_new = np.mod(np.round(frac_new, 9), 1.0)
    cell2 = np.array([[b @ e1, b @ e2] for b in new[:2]])  # (x, y) per in-plane vector
    step = np.array([b @ e3 for b in new[:2]]) / period
    # Lagrange-Gauss reduction of the 2-D basis, tracking the integer transform.
    u = np.eye(2, dtype=int)
    for _ in range(100):
        if np.linalg.norm(cell2[0]) > np.linalg.norm(cell2[1]):
            cell2, u = cell2[::-1].copy(), u[::-1].copy()
        mu = round(float(cell2[1] @ cell2[0] / (cell2[0] @ cell2[0])))
        if mu == 0:
            break
        cell2[1] -= mu * cell2[0]
        u[1] -= mu * u[0]
    if np.linalg.det(u) < 0:  # keep a right-handed pair
        cell2[1], u[1] = -cell2[1], -u[1]
    step = u @ step
    inv_u = np.linalg.inv(u.astype(float))
    f2 = np.mod(np.round(frac_new[:, :2] @ inv_u, 9), 1.0)
    f2[f2 > 1 - 1e-7] = 0.0
    # Depth of each atom within its column (fraction of the period), measured from the cell
    # column representative: depth = f3 + in-plane contribution of the wrapped coordinates.
    depth = frac_new[:, 2] + f2 @ step
    # Group atoms into columns.
    key = np.round(f2 * 1e6).astype(np.int64)
    _, inverse = np.unique(key[:, 0] * 10_000_000 + key[:, 1], return_inverse=True)
    inverse = inverse.ravel()
    n_col = inverse.max() + 1
    k = np.bincount(inverse).max()
    atom_z = np.zeros((n_col, k), dtype=np.int16)
    atom_depth = np.zeros((n_col, k))
    frac = np.zeros((n_col, 2))
    fill = np.zeros(n_col, dtype=int)
    for i in range(len(z)):
        c = inverse[i]
        atom_z[c, fill[c]] = z[i]
        atom_depth[c, fill[c]] = depth[i]
        frac[c] = f2[i]
        fill[c] += 1
    frac, atom_z, atom_depth = _merge_close_columns(frac, cell2, step, atom_z, atom_depth)
    atom_depth = np.mod(atom_depth, 1.0)
    order = np.lexsort((frac[:, 1], frac[:, 0]))
    frac, atom_z, atom_depth = frac[order], atom_z[order], atom_depth[order]
    symbols = {v: k for k, v in ELEMENTS.items()}
    species = tuple(
        "+".join(symbols[int(v)] for v in sorted({int(x) for x in row if x > 0}, reverse=True))
        for row in atom_z
    )
    # (x, y) -> (row, col) components: row = y, col = x.
    cell_rc = cell2[:, ::-1].copy()
    layer = st.layer_angstrom if (hexagonal and t == (0, 0, 1)) else None
    return ProjectedCell(
        structure=st.name,
        zone_axis=zone_axis,
        cell_angstrom=cell_rc,
        period_angstrom=period,
        frac=frac,
        atom_z=atom_z,
        atom_depth=atom_depth,
        depth_step=np.round(np.asarray(step, dtype=float), 12),
        species=species,
        layer_angstrom=layer,
    )


def column_atom_counts(
    depth_phase: np.ndarray,
    atom_depth: np.ndarray,
    atom_present: np.ndarray,
    *,
    start_angstrom: float | np.ndarray,
    thickness_angstrom: np.ndarray,
    period_angstrom: float,
) -> np.ndarray:
    """Count the atoms of each column that lie inside a slab.

    An atom of a column sits at depths ``(phase + atom_depth + m) * period`` for all integers
    ``m``; the slab is ``start <= depth < start + thickness``.

    Parameters
    ----------
    depth_phase : ndarray, shape (n,)
        Depth offset of each column (fraction of the period).
    atom_depth : ndarray, shape (n, k)
        Depth of each atom of the column's repeat (fraction of the period).
    atom_present : ndarray of bool, shape (n, k)
        False for padding entries.
    start_angstrom : float or ndarray, shape (n,)
        Depth of the slab's entrance surface.
    thickness_angstrom : ndarray, shape (n,)
        Slab thickness at each column (0 for vacuum).
    period_angstrom : float
        Repeat length along the beam.

    Returns
    -------
    ndarray of int, shape (n, k)
        Number of atoms of each kind in each column.

    Examples
    --------
    A column with one atom per 2.88 Å repeat in a 10 Å slab holds 3 or 4 atoms:

    >>> import numpy as np
    >>> from atomseg.sim import column_atom_counts
    >>> column_atom_counts(np.array([0.0, 0.5]), np.zeros((2, 1)), np.ones((2, 1), bool),
    ...                    start_angstrom=0.0, thickness_angstrom=np.array([10.0, 10.0]),
    ...                    period_angstrom=2.88).ravel().tolist()
    [4, 3]
    """
    ph = np.mod(np.round(depth_phase[:, None] + atom_depth, 9), 1.0)  # no 0.99999... phases
    s = np.asarray(start_angstrom, dtype=float)
    s = s[:, None] if s.ndim == 1 else s
    a = s / period_angstrom - ph
    b = (s + np.asarray(thickness_angstrom, dtype=float)[:, None]) / period_angstrom - ph
    n = np.ceil(b) - np.ceil(a)
    n = np.where(atom_present, np.maximum(n, 0), 0)
    return n.astype(np.int32)
