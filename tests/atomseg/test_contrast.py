"""The detection gate's contrast-to-noise ratio and noise estimate (atomseg.detect.contrast)."""

import numpy as np
import pytest

from atomseg.detect.contrast import contrast_to_noise, noise_sigma


def _lattice(spacing, bright, faint, noise, seed=0, size=96):
    """Bright columns on a square lattice, faint ones at the cell centres, Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    grid = np.arange(spacing / 2, size, spacing)
    bright_rc = np.array([(r, c) for r in grid for c in grid])
    faint_rc = bright_rc[(bright_rc < size - spacing).all(1)] + spacing / 2
    image = np.zeros((size, size))
    for (r, c), amp in [(p, bright) for p in bright_rc] + [(p, faint) for p in faint_rc]:
        image += amp * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.5**2))
    return image + rng.normal(0.0, noise, image.shape), bright_rc, faint_rc


@pytest.mark.parametrize("counts", [0.05, 0.5, 20.0])
def test_noise_sigma_is_the_standard_deviation_of_counting_noise(counts):
    # at low dose most 2x2 blocks of a counting image are equal: a median estimate gives ~0
    image = np.random.default_rng(1).poisson(counts, (256, 256)).astype(np.float32)
    assert noise_sigma(image) == pytest.approx(np.sqrt(counts), rel=0.08)


def test_noise_sigma_ignores_smooth_columns():
    yy, xx = np.mgrid[:256, :256]
    columns = 100 * np.cos(yy / 8.0) ** 2 * np.cos(xx / 8.0) ** 2  # 25 px apart
    noise = np.random.default_rng(2).normal(0, 2.0, columns.shape)
    assert noise_sigma(columns + noise) == pytest.approx(2.0, rel=0.1)


def test_a_faint_column_between_bright_ones_is_measured_against_the_floor():
    image, bright, faint = _lattice(spacing=16, bright=100.0, faint=10.0, noise=2.0)
    rows = np.concatenate([bright[:, 0], faint[:, 0]])
    cols = np.concatenate([bright[:, 1], faint[:, 1]])
    cnr = contrast_to_noise(image, rows, cols, radius_px=2.0)
    faint_cnr = cnr[len(bright) :]
    # the faint columns' 5x5 box stands ~9 noise sigmas above the floor between the columns,
    # though it is darker than the mean of its surroundings (which holds 4 bright columns)
    assert np.median(faint_cnr) > 6
    assert np.median(cnr[: len(bright)]) > 50
    # without them in the image, the same places show nothing
    empty, _, _ = _lattice(spacing=16, bright=100.0, faint=0.0, noise=2.0)
    empty_cnr = contrast_to_noise(empty, rows, cols, radius_px=2.0)[len(bright) :]
    assert abs(np.median(empty_cnr)) < 2


def test_contrast_to_noise_of_pure_noise_is_about_zero_plus_minus_one():
    rng = np.random.default_rng(3)
    image = rng.poisson(5.0, (200, 200)).astype(float)
    rows, cols = rng.uniform(10, 190, (2, 300))
    cnr = contrast_to_noise(image, rows, cols, radius_px=2.0)
    assert abs(np.mean(cnr)) < 0.3
    assert 0.7 < np.std(cnr) < 1.4


def test_border_contrast_is_the_full_measurement_near_the_border():
    from atomseg.detect.contrast import border_contrast_to_noise

    rng = np.random.default_rng(1)
    for _ in range(50):
        h, w = rng.integers(20, 160, 2)
        image = rng.normal(0, 1, (h, w)) + 5 * (rng.random((h, w)) > 0.9)
        n = int(rng.integers(1, 60))
        rows, cols = rng.uniform(-1, h, n), rng.uniform(-1, w, n)
        radius = rng.uniform(1.0, 6.0)
        depth = np.minimum.reduce([rows + 0.5, cols + 0.5, h - 0.5 - rows, w - 0.5 - cols])
        which = np.flatnonzero(depth < radius)
        full = contrast_to_noise(image, rows, cols, radius)[which]
        near = border_contrast_to_noise(image, rows, cols, radius, which)
        np.testing.assert_allclose(near, full, rtol=0, atol=1e-9)
