"""Columns cut by the image border: columns-v4 does not report those centred outside the image."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from atomseg.infer import locate
from atomseg.sim import simulate_image

M = 32  # the image is the middle of a larger simulated one: columns just outside it are known


@pytest.fixture(scope="module")
def cropped():
    s = simulate_image(
        shape=(128 + 2 * M, 128 + 2 * M),
        seed=7,
        structure="SrTiO3",
        zone_axis="100",
        scene="slab",
        pixel_size_angstrom=0.15,
        dose_e_per_A2=1e5,
    )
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
