"""Lattice support: does the lattice of the clearly seen columns predict a faint candidate?

A crystal repeats. Where most columns stand well out of the noise, the translations between
neighbouring clear columns (the lattice vectors) say where the others must be; a faint
candidate that the network marks *and* that sits where two of those translations of clear
columns land is a column the contrast gate alone would drop. Noise does not sit on the lattice
(a noise blob lands on a lattice site only by chance, within a fifth of a spacing), and an image
of noise has too few clear columns to define one. Where the clear columns are nearly all one
grain's, the translations that all the candidates share (a faint grain's own) vote too, and
(``mutual_votes``) a grain seen only faintly keeps the candidates that its own faint ones vote
for.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .metrics import nearest_neighbour_distance

__all__ = ["lattice_vectors", "lattice_support", "gate_columns"]


def lattice_vectors(
    positions, *, tolerance: float = 0.2, min_share: float = 0.2, neighbours: int = 6
) -> np.ndarray:
    """The translations that repeat between neighbouring columns.

    Parameters
    ----------
    positions : array-like, shape (n, 2)
        Column positions (row, col), pixels.
    tolerance : float
        Two translations within ``tolerance`` × the median nearest-neighbour distance are one.
    min_share : float
        A translation is kept when at least this share of the columns have it (to one of their
        ``neighbours`` nearest columns).
    neighbours : int
        How many nearest neighbours of each column are looked at.

    Returns
    -------
    ndarray, shape (k, 2)
        The lattice vectors (row, col), most frequent first, both signs; empty when there are
        fewer than 3 columns or none repeats.

    Examples
    --------
    >>> rr, cc = np.mgrid[0:5, 0:5]
    >>> square = np.stack([rr.ravel() * 10.0, cc.ravel() * 10.0], axis=1)
    >>> v = lattice_vectors(square)
    >>> sorted(map(tuple, np.round(v[np.hypot(*v.T) < 11]).astype(int).tolist()))
    [(-10, 0), (0, -10), (0, 10), (10, 0)]
    """
    p = np.asarray(positions, np.float64).reshape(-1, 2)
    if len(p) < 3:
        return np.zeros((0, 2))
    k = min(neighbours + 1, len(p))
    d, j = cKDTree(p).query(p, k=k)
    spacing = float(np.median(d[:, 1]))
    if not spacing > 0:
        return np.zeros((0, 2))
    vec = (p[j[:, 1:]] - p[:, None, :]).reshape(-1, 2)
    radius = tolerance * spacing
    # count the translations on a grid of cells one radius wide (each cell with its 8
    # neighbours, so that a cluster cut by a cell edge still counts whole), then take the
    # most frequent cells in turn, each mode the mean of the translations within a radius
    cells, inverse, counts = np.unique(
        np.floor(vec / radius).astype(np.int64), axis=0, return_inverse=True, return_counts=True
    )
    index = {tuple(c): i for i, c in enumerate(cells.tolist())}
    near = np.zeros(len(cells), np.int64)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            for i, (r, c) in enumerate(cells.tolist()):
                k = index.get((r + dr, c + dc))
                if k is not None:
                    near[i] += counts[k]
    tree = cKDTree(vec)
    modes: list[np.ndarray] = []
    for i in np.argsort(-near, kind="stable"):
        if near[i] < min_share * len(p):
            break
        centre = vec[inverse.ravel() == i].mean(axis=0)
        members = tree.query_ball_point(centre, radius)
        if len(members) < min_share * len(p):
            continue
        mode = vec[members].mean(axis=0)
        if modes and np.min(np.hypot(*(np.array(modes) - mode).T)) < radius:
            continue
        modes.append(mode)
    return np.array(modes).reshape(-1, 2)


def lattice_support(
    positions, strong, *, tolerance: float = 0.2, min_strong: int = 12, min_share: float = 0.2
) -> np.ndarray:
    """How many lattice translations of the strong columns land on each position.

    The lattice vectors are those of the strong columns (:func:`lattice_vectors`); a position
    gets one vote for each vector ``v`` that takes some strong column onto it (within
    ``tolerance`` × the strong columns' median nearest-neighbour distance).

    Parameters
    ----------
    positions : array-like, shape (n, 2)
        All candidate positions (row, col), pixels.
    strong : array-like of bool, shape (n,)
        The candidates seen clearly (e.g. contrast-to-noise ratio >= 5).
    tolerance, min_share : float
        See :func:`lattice_vectors`.
    min_strong : int
        Fewer strong columns than this define no lattice: every vote is 0.

    Returns
    -------
    ndarray of int, shape (n,)
        Votes per position.

    Examples
    --------
    >>> rr, cc = np.mgrid[0:6, 0:6]
    >>> lattice = np.stack([rr.ravel() * 8.0, cc.ravel() * 8.0], axis=1)
    >>> candidates = np.concatenate([lattice, [[20.0, 20.0]]])  # the last one is off the lattice
    >>> strong = np.ones(len(candidates), bool)
    >>> strong[[14, 36]] = False  # a faint lattice column (16, 16), and the stray one
    >>> votes = lattice_support(candidates, strong)
    >>> int(votes[14]) >= 2, int(votes[36])
    (True, 0)
    """
    p = np.asarray(positions, np.float64).reshape(-1, 2)
    strong = np.asarray(strong, bool)
    lattice = _strong_lattice(p[strong], tolerance, min_strong, min_share)
    if lattice is None:
        return np.zeros(len(p), int)
    return _votes(p, p[strong], *lattice)


#: fewer clear columns than this define no lattice (an image of noise)
_MIN_STRONG = 12


def _strong_lattice(strong, tolerance, min_strong=_MIN_STRONG, min_share=0.2):
    """(vectors, radius) of the strong columns' lattice, or None where they define none."""
    if len(strong) < max(min_strong, 3):
        return None
    vectors = lattice_vectors(strong, tolerance=tolerance, min_share=min_share)
    if len(vectors) == 0:
        return None
    return vectors, tolerance * nearest_neighbour_distance(strong)


def _grain_vectors(vectors, candidates, tolerance, radius) -> np.ndarray:
    """The lattice vectors of all the ``candidates`` that ``vectors`` (the clear ones') lack.

    In an image of two grains the clear columns may nearly all be one grain's (heavy columns
    of one crystal beside a light one): their lattice vectors say nothing of the other grain,
    whose faint columns still share its translations with one another (noise does not repeat).
    """
    extra = [
        v
        for v in lattice_vectors(candidates, tolerance=tolerance)
        if len(vectors) == 0 or np.min(np.hypot(*(np.asarray(vectors) - v).T)) >= radius
    ]
    return np.asarray(extra).reshape(-1, 2)


def _other_grains(vectors, candidates, tolerance, radius, min_votes, grains) -> np.ndarray:
    """``vectors`` plus the lattice vectors of the grains they leave unexplained.

    The candidates on which fewer than ``min_votes`` of ``vectors`` land are another grain's
    (turned, or of another crystal) or noise; where a grain is a minority of all candidates its
    translations are shared by too few of them to count, but among those left over they do. In
    turn, until no grain is left or ``grains`` have been looked for.
    """
    for _ in range(grains):
        if len(vectors) == 0:
            break
        rest = candidates[_votes(candidates, candidates, vectors, radius) < min_votes]
        if len(rest) < _MIN_STRONG:
            break
        extra = _grain_vectors(vectors, rest, tolerance, radius)
        if len(extra) == 0:
            break
        vectors = np.concatenate([vectors, extra])
    return vectors


def _votes(positions, voters, vectors, radius) -> np.ndarray:
    """How many of ``vectors`` take one of ``voters`` onto each position (within ``radius``)."""
    positions = np.asarray(positions, float).reshape(-1, 2)
    vectors = np.asarray(vectors, float).reshape(-1, 2)
    if len(positions) == 0 or len(vectors) == 0 or len(voters) == 0:
        return np.zeros(len(positions), int)
    sources = (positions[None, :, :] - vectors[:, None, :]).reshape(-1, 2)
    d, _ = cKDTree(voters).query(sources, distance_upper_bound=radius, workers=-1)
    return (d.reshape(len(vectors), len(positions)) < radius).sum(axis=0)


def gate_columns(
    positions,
    cnr,
    min_cnr: float,
    *,
    floor: float | None = None,
    tolerance: float = 0.15,
    min_votes: int = 2,
    rounds: int | None = 1,
    lattice_only=None,
    faint_floor: float | None = None,
    faint_votes: int = 4,
    mutual_votes: int | None = None,
    grains: int = 0,
) -> np.ndarray:
    """Which candidates to keep: contrast-to-noise ``>= min_cnr``, or ``>= floor`` on the lattice.

    Parameters
    ----------
    positions : array-like, shape (n, 2)
        Candidate positions (row, col), pixels.
    cnr : array-like, shape (n,)
        Their contrast-to-noise ratios (:func:`atomseg.detect.contrast_to_noise`).
    min_cnr : float
        The gate: candidates at or above it are kept (and define the lattice).
    floor : float, optional
        Candidates from ``floor`` up to the gate are kept where at least ``min_votes`` lattice
        translations of the kept ones land on them (within ``tolerance`` × the kept ones'
        nearest-neighbour distance); the translations are those of the kept columns and those
        all the candidates from ``floor`` up share (a grain with few clear columns, or clear
        columns scattered over the lattice), then (``grains``) those that the candidates left
        unexplained by these share; fewer than 12 kept columns define no lattice (an image of
        noise). None: the gate alone.
    rounds : int or None
        Rounds of the lattice rule: in each after the first, the faint candidates kept so far
        vote too (the lattice vectors and tolerance stay the same), so a run of faint columns
        is followed from the clear ones; None: until a round keeps no new one.
    lattice_only : array-like of bool, shape (n,), optional
        Candidates that can enter on the lattice only, however clear (e.g. those the network
        marks with less confidence).
    faint_floor : float, optional
        Candidates from ``faint_floor`` up to ``floor`` are kept where at least ``faint_votes``
        translations land on them: the fainter a candidate, the more of the lattice must
        agree (a faint sublattice, such as Ca beside O in CaO, whose columns the image shows
        at a contrast-to-noise ratio of 2-4 each). They neither define the lattice nor vote
        until kept. None: ``floor`` is the last word.
    faint_votes : int
        See ``faint_floor``; never fewer than ``min_votes`` (a lower value counts as it).
    mutual_votes : int, optional
        Before the rounds, candidates from ``floor`` up are also kept where at least this many
        translations of *other candidates from* ``floor`` *up* (not only of kept columns) land
        on them: the columns of a grain seen only faintly (all of them between the floor and
        the gate, as Ca in CaO or In in InP at a contrast-to-noise ratio of 3-6) support one
        another, as noise, which does not repeat the lattice, does not. Such candidates also
        define the lattice where fewer than 12 columns are clear, if 12 or more reach the
        floor. Never fewer than ``min_votes``. None: only kept columns vote.
    grains : int
        How many more grains to look for: the translations that the candidates on which fewer
        than ``min_votes`` of the vectors found so far land share among themselves (a smaller
        grain, turned, whose translations too few of all the candidates share) are added, in
        turn, until no grain is left or this many have been added. 0: none.

    Returns
    -------
    ndarray of bool, shape (n,)

    Examples
    --------
    >>> rr, cc = np.mgrid[0:6, 0:6]
    >>> p = np.stack([rr.ravel() * 8.0, cc.ravel() * 8.0], axis=1)
    >>> cnr = np.full(len(p), 9.0)
    >>> cnr[14] = 4.0  # a faint column on the lattice
    >>> bool(gate_columns(p, cnr, 5.0)[14]), bool(gate_columns(p, cnr, 5.0, floor=3.0)[14])
    (False, True)
    >>> rr, cc = np.mgrid[0:7, 0:7]  # a 3 x 3 block of faint columns in a 7 x 7 lattice
    >>> p = np.stack([rr.ravel() * 8.0, cc.ravel() * 8.0], axis=1)
    >>> cnr = np.where(((abs(rr - 3) <= 1) & (abs(cc - 3) <= 1)).ravel(), 4.0, 9.0)
    >>> rule = dict(floor=3.0, min_votes=4)  # the centre one has too few clear neighbours ...
    >>> int(gate_columns(p, cnr, 5.0, **rule).sum())
    48
    >>> int(gate_columns(p, cnr, 5.0, rounds=2, **rule).sum())  # ... until its faint ones vote
    49
    >>> cnr = np.full(len(p), 9.0)
    >>> cnr[24] = 2.0  # fainter still, but clear columns all around vote for it
    >>> bool(gate_columns(p, cnr, 5.0, floor=3.0)[24])
    False
    >>> bool(gate_columns(p, cnr, 5.0, floor=3.0, faint_floor=1.5, faint_votes=4)[24])
    True
    >>> cnr = np.full(len(p), 4.0)  # a grain seen only faintly: no clear column at all
    >>> int(gate_columns(p, cnr, 5.0, floor=3.0).sum())
    0
    >>> int(gate_columns(p, cnr, 5.0, floor=3.0, mutual_votes=3).sum())
    49
    """
    p = np.asarray(positions, np.float64).reshape(-1, 2)
    cnr = np.asarray(cnr, np.float64)
    only = np.zeros(len(p), bool) if lattice_only is None else np.asarray(lattice_only, bool)
    keep = (cnr >= min_cnr) & ~only
    if floor is None:
        return keep
    lowest = floor if faint_floor is None else min(float(faint_floor), floor)
    faint = np.flatnonzero(~keep & (cnr >= lowest))
    seen = keep | (cnr >= floor)
    # too few clear columns (or, where faint ones vote too, too few from the floor): no lattice
    enough = seen.sum() if mutual_votes is not None else keep.sum()
    if len(faint) == 0 or enough < _MIN_STRONG:
        return keep
    seen_at = p[seen]
    lattice = _strong_lattice(p[keep], tolerance)
    if lattice is None:  # the clear ones, too few or scattered, repeat no translation
        lattice = (np.zeros((0, 2)), tolerance * nearest_neighbour_distance(seen_at))
    vectors, radius = lattice
    vectors = np.concatenate([vectors, _grain_vectors(vectors, seen_at, tolerance, radius)])
    vectors = _other_grains(vectors, seen_at, tolerance, radius, min_votes, int(grains))
    if len(vectors) == 0:
        return keep
    if mutual_votes is not None:  # the faint grain's own columns vote for one another
        pool = faint[cnr[faint] >= floor]
        votes = _votes(p[pool], seen_at, vectors, radius)
        new = pool[votes >= max(int(mutual_votes), min_votes)]
        keep[new] = True
        faint = np.setdiff1d(faint, new)
    need = np.where(cnr >= floor, min_votes, max(int(faint_votes), min_votes))
    for _ in range(len(faint) if rounds is None else max(int(rounds), 1)):
        new = faint[_votes(p[faint], p[keep], vectors, radius) >= need[faint]]
        if len(new) == 0:
            break
        keep[new] = True
        faint = np.setdiff1d(faint, new)
    return keep
