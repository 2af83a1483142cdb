"""atomseg.detect: Hough transform, column detection, refinement, matching and the baseline.

Properties on tiny synthetic maps with exact ground truth (fixed seeds, <= 128 px).
"""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial.distance import cdist
from skimage.draw import circle_perimeter
from skimage.transform import hough_circle as sk_hough_circle
from skimage.transform import hough_circle_peaks as sk_hough_circle_peaks

import atomseg.detect as detect
from atomseg.detect import (
    classical_baseline,
    detect_columns,
    hough_circle,
    match_positions,
    nearest_neighbour_distance,
    pair_centres,
    refine_positions,
)
from atomseg.detect._synthetic import _disc_map, _gaussian_image, _lattice

SHAPE = (128, 128)
RADIUS = 4.0


def _rmse(estimated, true):
    d = np.asarray(estimated, dtype=float) - np.asarray(true, dtype=float)
    return float(np.sqrt(np.mean(np.sum(d**2, axis=1))))


def _border_distance(pos, shape=SHAPE):
    pos = np.asarray(pos, dtype=float)
    return np.min(np.concatenate([pos + 0.5, np.array(shape) - 0.5 - pos], axis=1), axis=1)


def _match(columns, true, radius=RADIUS):
    return match_positions(columns, true, max_distance_px=radius)


# --------------------------------------------------------------------------------------------
# hough_circle


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("full_output", [False, True])
def test_hough_circle_equals_scikit_image_on_binary_edges(normalize, full_output):
    rng = np.random.default_rng(0)
    edges = rng.random((37, 45)) > 0.9
    radii = [1, 3, 4, 7, 10]
    ours = hough_circle(edges, radii, normalize=normalize, full_output=full_output)
    theirs = sk_hough_circle(edges, radii, normalize=normalize, full_output=full_output)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_hough_circle_finds_the_same_circles_as_scikit_image():
    edges = np.zeros((80, 90), dtype=bool)
    for centre, radius in (((20, 25), 9), ((55, 60), 12), ((60, 15), 7)):
        edges[circle_perimeter(*centre, radius, shape=edges.shape)] = True
    radii = np.arange(5, 15)
    peaks = []
    for acc in (hough_circle(edges, radii), sk_hough_circle(edges, radii)):
        _, cx, cy, rad = sk_hough_circle_peaks(
            acc, radii, min_xdistance=5, min_ydistance=5, total_num_peaks=3
        )
        peaks.append(sorted(zip(cy.tolist(), cx.tolist(), rad.tolist())))
    assert peaks[0] == peaks[1] == [(20, 25, 9), (55, 60, 12), (60, 15, 7)]


def test_hough_circle_annulus_vote_is_one_at_the_centre_of_a_disc():
    # normalised annulus vote of the gradient magnitude of a soft disc: the rim contrast
    prob = _disc_map((48, 48), [(23.3, 24.6)], 6.0, edge_px=0.5)
    edges = np.hypot(*np.gradient(prob))
    acc = hough_circle(edges, [5.0, 6.0, 7.0], kernel="annulus", width_px=2.0)
    assert acc.dtype == np.float32 and acc.shape == (3, 48, 48)
    k, r, c = np.unravel_index(acc.argmax(), acc.shape)
    assert (k, r, c) == (1, 23, 25)
    assert 0.85 < acc.max() < 1.05
    # half of the disc outside the map: half of the rim votes
    half_disc = _disc_map((48, 48), [(23.0, 0.0)], 6.0, edge_px=0.5)
    acc = hough_circle(np.hypot(*np.gradient(half_disc)), [6.0], kernel="annulus", width_px=2.0)
    assert 0.4 < acc[0, 23, 0] < 0.6


def test_hough_circle_full_output_offsets_the_centres():
    edges = np.zeros((30, 30))
    edges[circle_perimeter(2, 27, 6, shape=edges.shape)] = 1  # circle cut by two borders
    acc = hough_circle(edges, [6], full_output=True)
    assert acc.shape == (1, 42, 42)
    assert np.unravel_index(acc[0].argmax(), acc[0].shape) == (2 + 6, 27 + 6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"edges": np.zeros((5, 5, 5)), "radii": [2]}, "2-D"),
        ({"edges": np.full((8, 8), np.nan), "radii": [2]}, "NaN"),
        ({"edges": np.zeros((8, 8)), "radii": [0]}, "positive"),
        ({"edges": np.zeros((8, 8)), "radii": []}, "non-empty"),
        ({"edges": np.zeros((8, 8)), "radii": [2.5]}, "whole numbers"),
        ({"edges": np.zeros((8, 8)), "radii": [2], "kernel": "ring"}, "kernel"),
        ({"edges": np.zeros((8, 8)), "radii": [2], "kernel": "annulus", "width_px": 3}, "width"),
        ({"edges": np.zeros((8, 8)), "radii": [2], "kernel": "annulus", "width_px": 0.2}, "width"),
    ],
)
def test_hough_circle_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hough_circle(**kwargs)


# --------------------------------------------------------------------------------------------
# detect_columns


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("edge_px", [0.5, 1.0])
def test_detect_columns_is_subpixel_accurate_on_noise_free_discs(seed, edge_px):
    true = _lattice(SHAPE, 3 * RADIUS, rng=seed, jitter_px=0.5, margin_px=0.5)
    prob = _disc_map(SHAPE, true, RADIUS, edge_px=edge_px)
    columns = detect_columns(prob, radius_px=RADIUS)
    assert list(columns.columns) == ["row", "col", "score", "radius", "intensity"]
    m = _match(columns, true)
    assert m["fp"] == 0 and m["fn"] == 0
    assert m["rmse_px"] <= 0.05  # border columns included
    assert np.all((columns["score"] > 0) & (columns["score"] <= 1))
    assert np.allclose(columns["radius"], RADIUS, atol=0.5)


def test_detect_columns_under_noise():
    rng = np.random.default_rng(3)
    true = _lattice(SHAPE, 3 * RADIUS, rng=rng, jitter_px=0.5, margin_px=0.5)
    prob = np.clip(_disc_map(SHAPE, true, RADIUS, edge_px=0.7) + rng.normal(0, 0.1, SHAPE), 0, 1)
    columns = detect_columns(prob, radius_px=RADIUS)
    m = _match(columns, true)
    assert m["f1"] >= 0.97
    assert m["rmse_px"] <= 0.15


def test_detect_columns_estimates_the_radius():
    true = _lattice(SHAPE, 15, rng=4, jitter_px=0.5, margin_px=0.5)
    prob = _disc_map(SHAPE, true, 5.0, edge_px=0.6)
    columns = detect_columns(prob)  # radius from the median segmented area
    m = _match(columns, true, radius=5.0)
    assert m["fn"] == 0 and m["fp"] == 0 and m["rmse_px"] <= 0.05
    assert abs(columns["radius"].median() - 5.0) < 0.5


@pytest.mark.parametrize("separation", [2.0, 2.5])
def test_detect_columns_separates_close_pairs(separation):
    rng = np.random.default_rng(5)
    for _ in range(10):
        centre = rng.uniform(28, 36, size=2)
        angle = rng.uniform(0, np.pi)
        half = separation * RADIUS / 2 * np.array([np.cos(angle), np.sin(angle)])
        true = np.array([centre - half, centre + half])
        columns = detect_columns(_disc_map((64, 64), true, RADIUS, edge_px=0.6), radius_px=RADIUS)
        m = _match(columns, true)
        assert len(columns) == 2 and m["tp"] == 2
        found = columns[["row", "col"]].to_numpy()[m["matches"][np.argsort(m["matches"][:, 1]), 0]]
        measured = np.hypot(*(found[1] - found[0]))
        assert abs(measured - separation * RADIUS) < 0.1  # close pairs are not pulled together
        assert m["rmse_px"] < 0.1


def test_detect_columns_finds_columns_at_the_border():
    rng = np.random.default_rng(6)
    n = 64
    # columns 0.6 to 3 px inside each border, and one centred outside the image
    depth = rng.uniform(0.6, 3.0, size=4) - 0.5
    along = rng.uniform(12, 52, size=4)
    true = np.array(
        [[depth[0], along[0]], [n - 1 - depth[1], along[1]], [along[2], depth[2]],
         [along[3], n - 1 - depth[3]], [32.2, 31.7]]
    )  # fmt: skip
    outside = np.array([[-2.5, 30.0]])
    prob = _disc_map((n, n), np.concatenate([true, outside]), RADIUS, edge_px=0.6)
    columns = detect_columns(prob, radius_px=RADIUS)
    m = _match(columns, true)
    assert m["tp"] == 5 and m["fp"] == 0  # the outside column is not reported
    assert m["rmse_px"] < 0.1
    scores = columns["score"].to_numpy()[m["matches"][np.argsort(m["matches"][:, 1]), 0]]
    # a cut column is voted on the rim it shows: it scores like a whole one (it scored ~20 %
    # lower when the hidden rim counted as missing, and a score cut then dropped border columns)
    assert np.all(scores[:4] > 0.97 * scores[4])


def test_border_tolerance_keeps_a_column_placed_just_outside_on_the_edge():
    n = 64
    # a segmentation that puts the border column 0.8 px outside (as a network trained not to
    # mirror the border can): dropped by default, moved onto the edge with a tolerance
    centres = np.array([[-0.8 - 0.5, 30.0], [-3.5, 12.0], [32.0, 32.0]])
    prob = _disc_map((n, n), centres, RADIUS, edge_px=0.6)
    strict = detect_columns(prob, radius_px=RADIUS)
    assert strict["row"].min() > 10  # only the inner column
    tolerant = detect_columns(prob, radius_px=RADIUS, border_tolerance_px=1.5)
    edge = tolerant[tolerant["row"] < 10]
    assert len(edge) == 1  # the one 3 px outside stays out
    assert edge["row"].iloc[0] == -0.5 and abs(edge["col"].iloc[0] - 30.0) < 0.2
    assert tolerant["row"].min() >= -0.5
    with pytest.raises(ValueError, match="border_tolerance_px"):
        detect_columns(prob, radius_px=RADIUS, border_tolerance_px=-1)


def test_detect_columns_intensity_and_image_refinement():
    rng = np.random.default_rng(7)
    true = _lattice((96, 96), 12, rng=rng, jitter_px=0.3, margin_px=6)
    amplitude = rng.choice([0.5, 1.0], size=len(true))
    image = _gaussian_image((96, 96), true, 1.5, amplitudes=amplitude, background=0.1)
    # a segmentation whose discs are all off by the same 0.4 px: the image corrects it
    prob = _disc_map((96, 96), true + [0.4, 0.0], RADIUS, edge_px=0.6)
    on_prob = detect_columns(prob, radius_px=RADIUS, image=image)
    on_image = detect_columns(prob, radius_px=RADIUS, image=image, refine="image")
    m_prob, m_image = _match(on_prob, true), _match(on_image, true)
    assert m_prob["tp"] == m_image["tp"] == len(true)
    assert m_prob["rmse_px"] > 0.35
    assert m_image["rmse_px"] < 0.05
    bright = amplitude[m_image["matches"][:, 1]] == 1.0
    intensity = on_image["intensity"].to_numpy()[m_image["matches"][:, 0]]
    assert intensity[bright].min() > intensity[~bright].max()
    # without an image, intensity is the mean probability in the disc
    plain = detect_columns(prob, radius_px=RADIUS)
    assert np.all((plain["intensity"] > 0.5) & (plain["intensity"] <= 1))


def test_detect_columns_refine_none_is_within_a_fraction_of_a_pixel():
    true = _lattice(SHAPE, 3 * RADIUS, rng=8, jitter_px=0.5, margin_px=6)
    prob = _disc_map(SHAPE, true, RADIUS, edge_px=0.6)
    m = _match(detect_columns(prob, radius_px=RADIUS, refine="none"), true)
    assert m["fn"] == 0 and m["fp"] == 0 and m["rmse_px"] < 0.25


def test_detect_columns_on_an_empty_map():
    for kwargs in ({}, {"radius_px": 3.0}):
        columns = detect_columns(np.zeros((32, 32)), **kwargs)
        assert isinstance(columns, pd.DataFrame) and len(columns) == 0
        assert list(columns.columns) == ["row", "col", "score", "radius", "intensity"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probability": np.zeros((4, 4, 4))}, "2-D"),
        ({"probability": np.full((16, 16), 1.5)}, r"\[0, 1\]"),
        ({"probability": np.full((16, 16), np.inf)}, "infinite"),
        ({"probability": np.zeros((16, 16)), "radius_px": -1}, "radius_px"),
        ({"probability": np.zeros((16, 16)), "radius_px": 0.5}, ">= 1 px"),
        ({"probability": np.zeros((16, 16)), "threshold": 2}, "threshold"),
        ({"probability": np.zeros((16, 16)), "min_score": -0.1}, "min_score"),
        ({"probability": np.zeros((16, 16)), "min_distance_px": 0}, "min_distance_px"),
        ({"probability": np.zeros((16, 16)), "refine": "magic"}, "refine"),
        ({"probability": np.zeros((16, 16)), "refine": "image"}, "needs the image"),
        ({"probability": np.zeros((16, 16)), "image": np.zeros((8, 8))}, "shape"),
        ({"probability": np.zeros((16, 16)), "radii": [3, -1]}, "radii"),
    ],
)
def test_detect_columns_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        detect_columns(**kwargs)


# --------------------------------------------------------------------------------------------
# refine_positions


@pytest.mark.parametrize("method", ["centroid", "gaussian"])
def test_refine_positions_noise_free_gaussian_columns(method):
    rng = np.random.default_rng(9)
    true = rng.uniform(10, 38, size=(12, 2))
    errors = []
    for p in true:  # one isolated column per image
        image = _gaussian_image((48, 48), [p], 1.8, background=0.2)
        start = np.rint(p + rng.uniform(-0.7, 0.7, size=2))[None]
        errors.append(refine_positions(image, start, radius_px=4.0, method=method)[0] - p)
    rmse = float(np.sqrt(np.mean(np.sum(np.square(errors), axis=1))))
    assert rmse <= (0.05 if method == "centroid" else 0.005)


def test_refine_positions_under_noise_and_at_the_border():
    rng = np.random.default_rng(10)
    true = _lattice((96, 96), 12, rng=rng, jitter_px=0.3)
    image = _gaussian_image((96, 96), true, 1.8, background=0.1)
    noisy = image + rng.normal(0, 0.05, image.shape)
    start = np.rint(true + rng.uniform(-0.5, 0.5, true.shape))
    for method, limit in (("centroid", 0.15), ("gaussian", 0.15)):
        refined = refine_positions(noisy, start, radius_px=4.0, method=method)
        inner = _border_distance(true, (96, 96)) > 5
        assert _rmse(refined[inner], true[inner]) < limit
    # the Gaussian fit also places the columns cut by the border
    refined = refine_positions(image, start, radius_px=4.0, method="gaussian")
    assert _rmse(refined, true) < 0.01


def test_refine_positions_accepts_tables_and_empty_input():
    image = _gaussian_image((32, 32), [(15.3, 16.8)], 1.5)
    table = pd.DataFrame({"row": [15.0], "col": [17.0]})
    assert refine_positions(image, table, radius_px=3).shape == (1, 2)
    assert refine_positions(image, np.zeros((0, 2)), radius_px=3).shape == (0, 2)


def test_refine_positions_does_not_merge_close_pairs():
    true = np.array([[20.2, 16.4], [20.7, 25.6]])  # 9.2 px apart, windows of radius 5 overlap
    image = _gaussian_image((40, 40), true, 1.5)
    refined = refine_positions(image, np.rint(true), radius_px=5.0)
    assert _rmse(refined, true) < 0.05


_IMG, _POS = np.zeros((8, 8)), [[1, 1]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.zeros(5), "positions": _POS, "radius_px": 2}, "2-D"),
        ({"image": _IMG, "positions": [[1, 1, 1]], "radius_px": 2}, r"\(n, 2\)"),
        ({"image": _IMG, "positions": [[np.nan, 1]], "radius_px": 2}, "NaN"),
        ({"image": _IMG, "positions": _POS, "radius_px": 0}, "radius_px"),
        ({"image": _IMG, "positions": _POS, "radius_px": 2, "method": "x"}, "method"),
        ({"image": _IMG, "positions": _POS, "radius_px": 2, "max_iter": -1}, "max_iter"),
    ],
)
def test_refine_positions_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        refine_positions(**kwargs)


# --------------------------------------------------------------------------------------------
# match_positions, nearest_neighbour_distance


def test_match_positions_is_one_to_one_and_counts():
    true = np.array([[10.0, 10.0], [10.0, 20.0], [30.0, 30.0]])
    predicted = np.array([[10.1, 10.0], [9.9, 10.1], [10.0, 20.3], [50.0, 50.0]])
    m = match_positions(predicted, true, max_distance_px=1.0)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 2, 1)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert len(set(m["matches"][:, 0])) == len(set(m["matches"][:, 1])) == 2
    d = predicted[m["matches"][:, 0]] - true[m["matches"][:, 1]]
    assert m["rmse_px"] == pytest.approx(np.sqrt(np.mean(np.sum(d**2, axis=1))))


def test_match_positions_maximises_the_number_of_matches():
    # greedy nearest-first would pair (A, T1) and leave B and T0 unmatched
    true = np.array([[0.0, 0.0], [0.0, 2.0]])
    predicted = np.array([[0.0, 1.1], [0.0, 3.0]])
    m = match_positions(predicted, true, max_distance_px=1.15)
    assert m["tp"] == 2
    assert m["matches"].tolist() == [[0, 0], [1, 1]]


@pytest.mark.parametrize("seed", range(5))
def test_match_positions_equals_the_dense_optimum(seed):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 20, size=(25, 2))
    predicted = np.concatenate(
        [true[:20] + rng.normal(0, 0.8, (20, 2)), rng.uniform(0, 20, (6, 2))]
    )
    max_distance = 1.5
    m = match_positions(predicted, true, max_distance_px=max_distance)
    dist = cdist(predicted, true)
    feasible = dist <= max_distance
    cardinality = np.sum(maximum_bipartite_matching(csr_matrix(feasible), perm_type="column") >= 0)
    assert m["tp"] == cardinality
    cost = np.where(feasible, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    ok = feasible[rows, cols]
    assert dist[m["matches"][:, 0], m["matches"][:, 1]].sum() == pytest.approx(
        dist[rows[ok], cols[ok]].sum()
    )
    assert np.all(dist[m["matches"][:, 0], m["matches"][:, 1]] <= max_distance)


def test_match_positions_edge_cases():
    same = np.array([[1.0, 2.0], [5.0, 5.0]])
    m = match_positions(same, same, max_distance_px=0.5)  # coincident points match
    assert m["tp"] == 2 and m["rmse_px"] == 0.0 and m["f1"] == 1.0
    m = match_positions(np.zeros((0, 2)), same, max_distance_px=1)
    assert (m["tp"], m["fp"], m["fn"], m["recall"], m["f1"]) == (0, 0, 2, 0.0, 0.0)
    assert np.isnan(m["rmse_px"]) and m["matches"].shape == (0, 2)
    m = match_positions(np.zeros((0, 2)), np.zeros((0, 2)), max_distance_px=1)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="max_distance_px"):
        match_positions(same, same, max_distance_px=0)
    with pytest.raises(ValueError, match="without the column"):
        match_positions(pd.DataFrame({"x": [1.0]}), same, max_distance_px=1)


def _dumbbells(n=4, gap=1.4, spacing=4.0):
    """An n x n lattice of vertical dumbbells: columns 2k and 2k + 1 are a pair."""
    centres = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    centres = centres * spacing + 10.0
    pos = np.repeat(centres, 2, axis=0)
    pos[0::2, 0] -= gap / 2
    pos[1::2, 0] += gap / 2
    return pos, centres


def test_pair_centres_are_the_dumbbells_no_column_of_which_is_asked_for():
    pos, centres = _dumbbells()
    found = pair_centres(pos, np.zeros(len(pos), bool))
    assert np.allclose(np.sort(found, axis=0), np.sort(centres, axis=0))
    assert len(pair_centres(pos, np.ones(len(pos), bool))) == 0
    asked = np.zeros(len(pos), bool)
    asked[[0, 3]] = True  # one column of the first two dumbbells: not a blob any more
    found = pair_centres(pos, asked)
    assert len(found) == len(centres) - 2
    assert cdist(found, centres[:2]).min() > 1
    # the pairs must be isolated: a square lattice (ratio 1) has none
    square = _lattice((64, 64), 7.5, rng=0)
    assert len(pair_centres(square, np.zeros(len(square), bool))) == 0
    triangle = [[0.0, 0.0], [0.0, 1.0], [0.87, 0.5]]  # a third column as near: no pair
    assert len(pair_centres(triangle, [False] * 3)) == 0
    assert pair_centres([[0.0, 0.0], [0.0, 1.0]], [False, False]).tolist() == [[0.0, 0.5]]
    assert pair_centres([[0.0, 0.0]], [False]).shape == (0, 2)


def test_pair_centres_are_dont_care_in_the_matching():
    pos, centres = _dumbbells()
    blobs = centres + 0.1  # one detection per blob, none of whose columns is asked for
    plain = match_positions(blobs, np.zeros((0, 2)), max_distance_px=0.42, ignore=pos)
    assert plain["fp"] == len(blobs)  # 0.7 from either column: false under the columns alone
    ignore = np.concatenate([pos, pair_centres(pos, np.zeros(len(pos), bool))])
    m = match_positions(blobs, np.zeros((0, 2)), max_distance_px=0.42, ignore=ignore)
    assert m["fp"] == 0 and m["ignored"] == len(blobs)


def test_pair_centres_validates():
    pos, _ = _dumbbells(n=2)
    with pytest.raises(ValueError, match="asked has 3 entries for 8"):
        pair_centres(pos, [True] * 3)
    with pytest.raises(ValueError, match="ratio"):
        pair_centres(pos, np.zeros(len(pos), bool), ratio=1.5)
    with pytest.raises(ValueError, match="finite"):
        pair_centres([[np.nan, 0.0], [1.0, 1.0]], [False, False])


def test_nearest_neighbour_distance():
    assert nearest_neighbour_distance(_lattice((64, 64), 7.5, rng=0)) == pytest.approx(7.5)
    with pytest.raises(ValueError, match="at least 2"):
        nearest_neighbour_distance([[1.0, 1.0]])


# --------------------------------------------------------------------------------------------
# classical_baseline


def test_classical_baseline_on_noisy_gaussian_columns():
    rng = np.random.default_rng(11)
    true = _lattice(SHAPE, 10, rng=rng, jitter_px=0.3)
    image = _gaussian_image(SHAPE, true, 1.5, background=0.1) + rng.normal(0, 0.05, SHAPE)
    columns = classical_baseline(image, spacing_px=10)
    assert list(columns.columns) == ["row", "col"]
    m = match_positions(columns, true, max_distance_px=0.3 * nearest_neighbour_distance(true))
    assert m["f1"] >= 0.99 and m["rmse_px"] < 0.15
    with pytest.raises(ValueError, match="spacing_px"):
        classical_baseline(image, spacing_px=-1)
    with pytest.raises(ValueError, match="threshold"):
        classical_baseline(image, spacing_px=10, threshold=1.5)


# --------------------------------------------------------------------------------------------
# the subpackage


def test_public_api_is_documented():
    assert sorted(detect.__all__) == sorted(
        [
            "hough_circle",
            "detect_columns",
            "refine_positions",
            "match_positions",
            "nearest_neighbour_distance",
            "pair_centres",
            "classical_baseline",
            "contrast_to_noise",
            "noise_sigma",
            "gate_columns",
            "lattice_vectors",
            "lattice_support",
        ]
    )
    for name in detect.__all__:
        doc = getattr(detect, name).__doc__
        assert "Parameters" in doc and "Returns" in doc and "Examples" in doc, name
