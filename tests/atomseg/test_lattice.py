"""atomseg.detect.lattice: lattice vectors of the clear columns, support for faint ones."""

import numpy as np

from atomseg.detect.lattice import lattice_support, lattice_vectors


def _hexagonal(n=10, spacing=9.0, rng=None, jitter=0.0, first=0):
    a1 = np.array([0.0, spacing])
    a2 = np.array([spacing * np.sqrt(3) / 2, spacing / 2])
    ij = np.stack(np.meshgrid(np.arange(first, n), np.arange(first, n)), axis=-1).reshape(-1, 2)
    p = ij[:, :1] * a1 + ij[:, 1:] * a2 + 5.0
    if rng is not None:
        p = p + rng.normal(0, jitter, p.shape)
    return p


def test_lattice_vectors_of_a_hexagonal_lattice():
    p = _hexagonal(rng=np.random.default_rng(0), jitter=0.3)
    v = lattice_vectors(p)
    short = v[np.hypot(*v.T) < 10]
    assert len(short) == 6  # the six nearest-neighbour translations, both signs
    assert np.allclose(np.sort(np.hypot(*short.T)), 9.0, atol=0.2)
    assert len(lattice_vectors(p[:2])) == 0


def test_random_points_have_no_lattice():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 100, (120, 2))
    assert len(lattice_vectors(p)) == 0
    votes = lattice_support(p, np.ones(len(p), bool))
    assert votes.max() == 0


def test_faint_lattice_columns_get_votes_and_strays_do_not():
    rng = np.random.default_rng(2)
    p = _hexagonal(rng=rng, jitter=0.3)
    faint = rng.choice(len(p), 25, replace=False)  # a quarter of the lattice is faint
    strays = rng.uniform(10, 80, (200, 2))  # noise candidates anywhere
    candidates = np.concatenate([p, strays])
    strong = np.zeros(len(candidates), bool)
    strong[: len(p)] = True
    strong[faint] = False
    votes = lattice_support(candidates, strong, tolerance=0.15)
    assert np.mean(votes[faint] >= 2) > 0.9
    # strays get votes only near a lattice site (the lattice continued two rows past its edge)
    sites = _hexagonal(n=12, first=-2)
    d = np.min(np.hypot(*(strays[:, None] - sites[None]).transpose(2, 0, 1)), axis=1)
    off = d > 0.3 * 9.0
    assert np.all(votes[len(p) :][off] < 2)


def test_too_few_strong_columns_define_no_lattice():
    p = _hexagonal(n=3)
    strong = np.zeros(len(p), bool)
    strong[:5] = True
    assert lattice_support(p, strong, min_strong=12).max() == 0


def test_locate_gate_keeps_faint_columns_on_the_lattice_only():
    import pandas as pd

    from atomseg.detect.contrast import contrast_to_noise
    from atomseg.infer.columns import _lattice_gate

    rng = np.random.default_rng(3)
    p = _hexagonal(n=12, spacing=10.0)
    p = p[(p[:, 0] < 100) & (p[:, 1] < 125)]
    amp = np.full(len(p), 12.0)
    faint = rng.choice(len(p), 12, replace=False)
    amp[faint] = 2.2
    # a faint blob, in a hollow between three columns
    centre = p[np.argmin(np.hypot(*(p - [50.0, 60.0]).T))]
    stray = (centre + (np.array([0.0, 10.0]) + np.array([10.0 * np.sqrt(3) / 2, 5.0])) / 3)[None]
    yy, xx = np.mgrid[:110, :130]
    image = np.zeros(yy.shape)
    for (r, c), a in zip(np.concatenate([p, stray]), np.append(amp, 1.1)):
        image += a * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.5**2))
    image += rng.normal(0, 1.0, image.shape)
    rows_cols = np.concatenate([p, stray])
    table = pd.DataFrame({"row": rows_cols[:, 0], "col": rows_cols[:, 1], "radius": 2.0})
    cnr = contrast_to_noise(image, table["row"], table["col"], 2.0)
    faint_cnr = cnr[faint]
    assert np.median(faint_cnr) < 5  # the plain gate would drop most of them
    plain = _lattice_gate(image, table, 5.0, {})
    gated = _lattice_gate(image, table, 5.0, {"lattice_min_contrast_to_noise": 3.0})
    kept_faint = faint[faint_cnr >= 3]
    assert plain[kept_faint].mean() < 0.5 and gated[kept_faint].all()
    assert 3 <= cnr[-1] < 5 and not gated[-1], cnr[-1]  # faint, off the lattice: stays out
