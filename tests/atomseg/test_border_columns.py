"""Columns cut by the image border: columns-v4 does not report those centred outside the image."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from atomseg.infer import locate
from atomseg.sim import simulate_image

M = 32  # the image is the middle of a larger simulated one: columns just outside it are known


def _srtio3(**kw):
    """A SrTiO3 [100] slab at 0.15 Å/px and 1e5 e/Å², with a margin of M px all round."""
    return simulate_image(
        shape=(128 + 2 * M, 128 + 2 * M),
        structure="SrTiO3",
        zone_axis="100",
        scene="slab",
        pixel_size_angstrom=0.15,
        dose_e_per_A2=1e5,
        **kw,
    )


@pytest.fixture(scope="module")
def cropped():
    s = _srtio3(seed=7)
    image = s.image[M:-M, M:-M]
    cols = s.columns[s.columns["n_atoms"] >= 1]
    return image, cols[["row", "col"]].to_numpy(float) - M


def _outside_reported(image, centres, model):
    table = locate(image, pixel_size_angstrom=0.15, model=model)
    found = table[["row", "col"]].to_numpy()
    _, j = cKDTree(centres).query(found)
    nearest = centres[j]
    h, w = image.shape
    depth = np.minimum.reduce(
        [nearest[:, 0] + 0.5, h - 0.5 - nearest[:, 0], nearest[:, 1] + 0.5, w - 0.5 - nearest[:, 1]]
    )
    return int(np.sum(depth < -1.0)), len(table)  # centred over 1 px outside the image


def test_columns_centred_outside_the_image_are_not_reported(cropped):
    image, centres = cropped
    outside_v4, n_v4 = _outside_reported(image, centres, "columns-v4")
    outside_v3, _ = _outside_reported(image, centres, "columns-v3")
    assert outside_v4 == 0 < outside_v3  # reflect padding shows them as whole columns
    assert n_v4 > 40  # it still finds the columns inside


def test_columns_centred_on_the_first_row_and_column_are_found():
    # a crystal scanned from a column at its origin (as multislice images are): a half column
    # on every lattice site of the first row and column; edge replication makes the network
    # place them up to a radius outside, and the card keeps such centres on the edge
    s = _srtio3(
        rng=7, rotation_deg=0.0, line_jitter_angstrom=0.0, drift_shear=0.0, drift_stretch=0.0
    )
    cols = s.columns[(s.columns["n_atoms"] >= 1) & (s.columns["z"] >= 11)]
    centres = cols[["row", "col"]].to_numpy(float)
    r0, c0 = np.round(centres[np.argmin(np.hypot(*(centres - M).T))]).astype(int)
    image = s.image[r0 : r0 + 128, c0 : c0 + 128]
    centres = centres - [r0, c0]
    on_edge = np.all(centres > -0.5, axis=1) & np.all(centres < 127.5, axis=1)
    on_edge &= (np.abs(centres) < 0.5).sum(axis=1) == 1  # first row or column, not the corner
    corner = np.all(np.abs(centres) < 0.5, axis=1)
    table = locate(image, pixel_size_angstrom=0.15)
    tree = cKDTree(table[["row", "col"]].to_numpy())
    d, _ = tree.query(centres[on_edge])
    assert on_edge.sum() >= 8 and np.sum(d < 1.5) >= on_edge.sum() - 1
    # the quarter column in the corner: the network hardly marks it; the lattice does
    assert corner.sum() == 1 and tree.query(centres[corner])[0][0] < 1.5


def test_border_sites_are_the_lattice_sites_on_the_border_with_no_candidate():
    import pandas as pd

    from atomseg.infer.columns import _border_sites

    rr, cc = np.mgrid[0:8, 0:8] * 9.0  # a square lattice filling a 64 x 64 image
    lattice = np.stack([rr.ravel(), cc.ravel()], axis=1)
    missing = [(0.0, 0.0), (0.0, 27.0), (36.0, 36.0)]  # corner, edge, interior
    keep = ~np.isin(lattice.view(complex).ravel(), np.array(missing).view(complex).ravel())
    table = pd.DataFrame(lattice[keep], columns=["row", "col"]).assign(
        score=1.0, radius=2.5, intensity=1.0
    )
    low = table.iloc[:0]
    prob = np.zeros((64, 64), np.float32)
    sites = _border_sites(table, low, prob, prob, 1.0, (64, 64))
    assert sorted(map(tuple, np.round(sites[["row", "col"]].to_numpy(), 6).tolist())) == [
        (0.0, 0.0),
        (0.0, 27.0),
    ]  # once each; not the interior site, not the sites of columns already found
    assert len(_border_sites(table, table, prob, prob, 1.0, (64, 64))) == 2
    few = table.iloc[:5]  # too few columns to define a lattice
    assert len(_border_sites(few, low, prob, prob, 1.0, (64, 64))) == 0
