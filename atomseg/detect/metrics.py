"""Matching predicted columns to a ground truth."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._validation import _as_positions, _positive

__all__ = ["match_positions", "nearest_neighbour_distance", "pair_centres"]

#: a pair is isolated (a dumbbell) when each column's partner is closer than this share of
#: the distance to its next neighbour: Si / GaAs [110] dumbbells are at 0.58 (1.36 / 2.35 Å)
PAIR_RATIO = 0.7


def match_positions(predicted, true, *, max_distance_px: float, ignore=None) -> dict:
    """Match predicted to true column positions one-to-one within a distance.

    The matching maximises the number of pairs closer than ``max_distance_px`` and, among those,
    minimises the sum of distances: Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) run separately on each connected group of
    candidate pairs found with a KD-tree, so it scales to many thousands of columns. Each
    prediction and each true column is used at most once.

    Parameters
    ----------
    predicted : ndarray, shape (n_pred, 2)
        Predicted ``(row, col)`` in pixels (a DataFrame with ``row`` and ``col`` works too).
    true : ndarray, shape (n_true, 2)
        True ``(row, col)`` in pixels.
    max_distance_px : float
        Largest distance (pixels) at which a prediction counts as finding a column; the
        benchmarks use 0.3 times :func:`nearest_neighbour_distance` of the true columns.
    ignore : ndarray, shape (n_ignore, 2), optional
        "Don't care" positions (columns that exist but are not asked for, such as light or
        unresolved ones): an unmatched prediction within ``max_distance_px`` of one is not a
        false positive (counted in ``ignored`` instead).

    Returns
    -------
    result : dict
        ``tp``, ``fp``, ``fn`` (int): matched pairs, unmatched predictions, unmatched true columns.
        ``precision = tp / n_pred``, ``recall = tp / n_true`` (1.0 when the denominator is 0),
        ``f1 = 2 tp / (2 tp + fp + fn)`` (1.0 when both sets are empty), ``rmse_px``: root mean
        square distance of the matched pairs (NaN when ``tp == 0``), ``ignored`` (int):
        unmatched predictions on ``ignore`` positions, and ``matches``: int array of shape
        (tp, 2) of ``(predicted index, true index)``, sorted by predicted index.

    Raises
    ------
    ValueError
        If the positions are not of shape (n, 2) and finite, or ``max_distance_px`` is not
        positive.

    Examples
    --------
    >>> true = [[10.0, 10.0], [10.0, 20.0], [30.0, 15.0]]
    >>> predicted = [[10.1, 19.9], [10.2, 10.0], [50.0, 50.0]]
    >>> result = match_positions(predicted, true, max_distance_px=2.0)
    >>> result["tp"], result["fp"], result["fn"]
    (2, 1, 1)
    >>> result["matches"].tolist()
    [[0, 1], [1, 0]]
    >>> round(result["rmse_px"], 3), round(result["f1"], 3)
    (0.173, 0.667)
    >>> match_positions(predicted, true, max_distance_px=2.0, ignore=[[50.5, 50.0]])["fp"]
    0
    """
    pred = _as_positions(predicted, "predicted")
    ref = _as_positions(true, "true")
    max_dist = _positive(max_distance_px, "max_distance_px")
    n_pred, n_true = len(pred), len(ref)
    matches = _match(pred, ref, max_dist)
    tp = len(matches)
    fp, fn = n_pred - tp, n_true - tp
    ignored = 0
    if ignore is not None and fp:
        ign = _as_positions(ignore, "ignore")
        if len(ign):
            unmatched = np.setdiff1d(np.arange(n_pred), matches[:, 0])
            d, _ = cKDTree(ign).query(pred[unmatched])
            ignored = int(np.sum(d <= max_dist))
            fp -= ignored
            n_pred -= ignored
    if tp:
        d = pred[matches[:, 0]] - ref[matches[:, 1]]
        rmse = float(np.sqrt(np.mean(np.sum(d**2, axis=1))))
    else:
        rmse = float("nan")
    return {
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "precision": tp / n_pred if n_pred else 1.0,
        "recall": tp / n_true if n_true else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0,
        "rmse_px": rmse,
        "ignored": ignored,
        "matches": matches,
    }


def _match(pred: np.ndarray, ref: np.ndarray, max_dist: float) -> np.ndarray:
    """Maximum-cardinality, minimum-distance one-to-one matching within ``max_dist``."""
    empty = np.zeros((0, 2), dtype=np.intp)
    if len(pred) == 0 or len(ref) == 0:
        return empty
    dist = cKDTree(pred).sparse_distance_matrix(cKDTree(ref), max_dist, output_type="coo_matrix")
    # sparse_distance_matrix drops pairs at distance exactly 0: add them back
    i0, j0 = _coincident(pred, ref)
    rows = np.concatenate([dist.row, i0]).astype(np.intp)
    cols = np.concatenate([dist.col, j0]).astype(np.intp)
    vals = np.concatenate([dist.data, np.zeros(len(i0))])
    if rows.size == 0:
        return empty
    # connected groups of the bipartite graph (predictions 0..n_pred-1, true n_pred..)
    n_pred = len(pred)
    graph = coo_matrix((np.ones(rows.size), (rows, cols + n_pred)), shape=(n_pred + len(ref),) * 2)
    _, label = connected_components(graph, directed=False)
    group = label[rows]
    out = []
    # groups of a single pair (the usual case) match directly
    counts = np.bincount(group)
    single = counts[group] == 1
    out.append(np.stack([rows[single], cols[single]], axis=1))
    for g in np.unique(group[~single]):
        sel = group == g
        r_ids, r_inv = np.unique(rows[sel], return_inverse=True)
        c_ids, c_inv = np.unique(cols[sel], return_inverse=True)
        big = 1e6 * (1 + max_dist)
        cost = np.full((len(r_ids), len(c_ids)), big)
        cost[r_inv, c_inv] = vals[sel]
        ri, ci = linear_sum_assignment(cost)
        ok = cost[ri, ci] < big
        out.append(np.stack([r_ids[ri[ok]], c_ids[ci[ok]]], axis=1))
    matches = np.concatenate(out).astype(np.intp)
    return matches[np.argsort(matches[:, 0], kind="stable")]


def _coincident(pred: np.ndarray, ref: np.ndarray):
    """Index pairs of exactly coincident predicted and true positions."""
    d, j = cKDTree(ref).query(pred, k=1)
    i = np.flatnonzero(d == 0)
    if i.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    pairs = cKDTree(ref).query_ball_point(pred[i], r=0.0)
    ii = np.concatenate([np.full(len(p), k) for k, p in zip(i, pairs)])
    jj = np.concatenate([np.asarray(p, dtype=np.intp) for p in pairs])
    return ii.astype(np.intp), jj


def nearest_neighbour_distance(positions) -> float:
    """Median distance from each column to its nearest neighbour.

    Parameters
    ----------
    positions : ndarray, shape (n, 2)
        ``(row, col)`` in pixels, ``n >= 2`` (a DataFrame with ``row`` and ``col`` works too).

    Returns
    -------
    distance_px : float
        Median nearest-neighbour distance in pixels.

    Raises
    ------
    ValueError
        If fewer than two positions are given or they are not of shape (n, 2) and finite.

    Examples
    --------
    >>> nearest_neighbour_distance([[0, 0], [0, 3], [10, 0], [10, 4]])  # distances 3, 3, 4, 4
    3.5
    """
    pos = _as_positions(positions, "positions")
    if len(pos) < 2:
        raise ValueError(
            f"need at least 2 positions for a nearest-neighbour distance, got {len(pos)}"
        )
    d, _ = cKDTree(pos).query(pos, k=2)
    return float(np.median(d[:, 1]))


def pair_centres(positions, asked, *, ratio: float = PAIR_RATIO) -> np.ndarray:
    """Centres of the isolated pairs (dumbbells) of columns of which neither is asked for.

    A pair is two columns that are each other's nearest neighbour, both closer to each other
    than ``ratio`` times the distance to their next neighbour: the dumbbells of Si, GaAs or
    GaN, or two columns pressed together at an interface. Where neither column is asked for
    (too faint at the dose to be told apart, or closer than the probe resolves), the pair
    images as one blob, and a finder that marks the blob marks it at the pair's centre: the
    benchmarks count a detection there as "don't care" (``ignore`` of
    :func:`match_positions`), not as a false column, whichever method made it.

    Parameters
    ----------
    positions : ndarray, shape (n, 2)
        ``(row, col)`` of every column present, in pixels (a DataFrame with ``row`` and
        ``col`` works too).
    asked : ndarray of bool, shape (n,)
        Which of them a finder is asked to find.
    ratio : float
        The isolation criterion (0 < ratio <= 1), default :data:`PAIR_RATIO`.

    Returns
    -------
    centres : ndarray, shape (m, 2)
        The midpoints of the pairs of which neither column is asked for, in pixels.

    Raises
    ------
    ValueError
        If the positions are not of shape (n, 2) and finite, ``asked`` does not have one entry
        per position, or ``ratio`` is not in (0, 1].

    Examples
    --------
    Two dumbbells 1.4 apart, 4 from each other; only one column of the second is asked for:

    >>> pos = [[0, 0], [0, 1.4], [4, 0], [4, 1.4]]
    >>> pair_centres(pos, [False, False, True, False]).tolist()
    [[0.0, 0.7]]
    """
    pos = _as_positions(positions, "positions")
    care = np.asarray(asked, dtype=bool).reshape(-1)
    if len(care) != len(pos):
        raise ValueError(f"asked has {len(care)} entries for {len(pos)} positions")
    if not 0 < float(ratio) <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if len(pos) < 2:
        return np.zeros((0, 2))
    k = min(3, len(pos))
    d, j = cKDTree(pos).query(pos, k=k)
    nxt = d[:, 2] if k == 3 else np.full(len(pos), np.inf)  # a lone pair: nothing else near
    i, partner = np.arange(len(pos)), j[:, 1]
    alone = d[:, 1] < ratio * nxt
    pair = (j[partner, 1] == i) & alone & alone[partner] & (i < partner)
    pair &= ~care & ~care[partner]
    return 0.5 * (pos[i[pair]] + pos[partner[pair]])
