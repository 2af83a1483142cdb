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


def _turned(points, degrees):
    """``points`` rotated by ``degrees`` about the origin."""
    t = np.deg2rad(degrees)
    return points @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])


def _distance_to(points, sites):
    """Distance from each point to the nearest site."""
    return np.min(np.hypot(*(points[:, None] - sites[None]).transpose(2, 0, 1)), axis=1)


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
    d = _distance_to(strays, sites)
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


def test_lattice_only_candidates_never_pass_the_gate_alone():
    from atomseg.detect.lattice import gate_columns

    p = _hexagonal(n=8)
    stray = np.array([[40.0, 43.0]])  # a clear blob, off the lattice
    candidates = np.concatenate([p, p[[10]] + 0.2, stray])
    cnr = np.full(len(candidates), 9.0)
    only = np.zeros(len(candidates), bool)
    only[len(p) :] = True
    plain = gate_columns(candidates, cnr, 5.0)
    assert plain[len(p) :].all()
    gated = gate_columns(candidates, cnr, 5.0, floor=3.0, lattice_only=only)
    # a second-pass candidate on a lattice site enters; the clear one off the lattice does not
    assert gated[: len(p)].all() and gated[len(p)] and not gated[-1]
    assert not gate_columns(candidates, cnr, 5.0, lattice_only=only)[len(p) :].any()


def test_rounds_follow_a_run_of_faint_columns_from_the_clear_ones():
    from atomseg.detect.lattice import gate_columns

    p = _hexagonal(n=12)
    centre = np.array([p[:, 0].mean(), p[:, 1].mean()])
    faint = np.hypot(*(p - centre).T) < 2.2 * 9.0  # a patch of faint columns, two rows deep
    cnr = np.where(faint, 4.0, 9.0)
    one = gate_columns(p, cnr, 5.0, floor=3.0, min_votes=3)
    more = gate_columns(p, cnr, 5.0, floor=3.0, min_votes=3, rounds=4)
    assert one[faint].mean() < 1.0 and more[faint].all()


def test_rounds_none_follows_faint_columns_until_none_is_added():
    from atomseg.detect.lattice import gate_columns

    p = _hexagonal(n=14)
    centre = np.array([p[:, 0].mean(), p[:, 1].mean()])
    faint = np.hypot(*(p - centre).T) < 4.2 * 9.0  # four rows deep
    cnr = np.where(faint, 4.0, 9.0)
    two = gate_columns(p, cnr, 5.0, floor=3.0, min_votes=3, rounds=2)
    assert (
        two[faint].mean() < 1.0
        and gate_columns(p, cnr, 5.0, floor=3.0, min_votes=3, rounds=None).all()
    )


def test_a_grain_with_few_clear_columns_is_kept_on_its_own_lattice():
    from scipy.spatial import Delaunay, cKDTree

    from atomseg.detect.lattice import gate_columns

    rng = np.random.default_rng(5)
    clear = _hexagonal(n=12, spacing=9.0, rng=rng, jitter=0.2)  # a grain of clear columns
    # beside it a turned grain (spacing 7), a tenth of it clear
    grain = _turned(_hexagonal(n=12, spacing=7.0, rng=rng, jitter=0.2), 20.0) + [0.0, 180.0]
    strays = rng.uniform([-40, 0], [130, 330], (120, 2))  # noise candidates anywhere
    p = np.concatenate([clear, grain, strays])
    faint = np.where(rng.random(len(grain)) < 0.1, 9.0, 4.0)
    cnr = np.concatenate([np.full(len(clear), 9.0), faint, np.full(len(strays), 4.0)])
    keep = gate_columns(p, cnr, 5.0, floor=3.0, rounds=None)
    # the clear columns' lattice is the first grain's: the turned grain's own translations,
    # shared by its faint columns, keep it
    assert keep[len(clear) : len(clear) + len(grain)].mean() > 0.95
    # strays between the clear grain's columns and in the vacuum stay out
    d = cKDTree(np.concatenate([clear, grain])).query(strays)[0]
    between = (Delaunay(clear).find_simplex(strays) >= 0) & (d > 2.0)
    vacuum = (Delaunay(grain).find_simplex(strays) < 0) & (Delaunay(clear).find_simplex(strays) < 0)
    vacuum &= d > 9.0
    stray_kept = keep[len(clear) + len(grain) :]
    assert between.sum() > 5 and vacuum.sum() > 40
    assert not stray_kept[between].any() and not stray_kept[vacuum].any()


def test_a_lattice_whose_clear_columns_are_scattered_is_kept_on_its_own_translations():
    from atomseg.detect.lattice import gate_columns

    rng = np.random.default_rng(2)
    p = _hexagonal(n=14, spacing=9.0, rng=rng, jitter=0.2)
    clear = rng.random(len(p)) < 0.1  # scattered over the lattice: they repeat no translation
    assert clear.sum() >= 12 and len(lattice_vectors(p[clear], tolerance=0.15)) == 0
    strays = rng.uniform(-60, 0, (40, 2))  # noise candidates beside the crystal
    cnr = np.concatenate([np.where(clear, 9.0, 4.0), np.full(len(strays), 4.0)])
    candidates = np.concatenate([p, strays])
    keep = gate_columns(candidates, cnr, 5.0, floor=3.0, rounds=None)
    assert keep[: len(p)].mean() > 0.95 and not keep[len(p) :].any()
    few = np.where(np.arange(len(p)) < 11, 9.0, 4.0)  # under 12 clear columns: no lattice
    assert gate_columns(p, few, 5.0, floor=3.0, rounds=None).sum() == 11


def test_fainter_columns_need_more_of_the_lattice_to_agree():
    from atomseg.detect.lattice import gate_columns

    rng = np.random.default_rng(7)
    p = _hexagonal(n=12, rng=rng, jitter=0.3)
    faint = rng.random(len(p)) < 0.25  # a quarter of the lattice reads contrast-to-noise 2
    strays = rng.uniform(0, 100, (300, 2))  # noise candidates, as faint, anywhere
    candidates = np.concatenate([p, strays])
    cnr = np.concatenate([np.where(faint, 2.0, 9.0), np.full(len(strays), 2.0)])
    rule = dict(floor=3.0, rounds=None)
    assert not gate_columns(candidates, cnr, 5.0, **rule)[: len(p)][faint].any()
    keep = gate_columns(candidates, cnr, 5.0, faint_floor=1.5, faint_votes=4, **rule)
    assert keep[: len(p)][faint].mean() > 0.9
    # a stray away from every lattice site (the lattice continued past its edge) stays out
    sites = _hexagonal(n=14, first=-2)
    d = _distance_to(strays, sites)
    off = d > 0.3 * 9.0
    assert off.sum() > 100 and not keep[len(p) :][off].any()
    # candidates below the faint floor never enter
    cnr[: len(p)][faint] = 1.0
    assert not gate_columns(candidates, cnr, 5.0, faint_floor=1.5, **rule)[: len(p)][faint].any()


def test_a_grain_seen_only_faintly_supports_itself_and_noise_does_not():
    from atomseg.detect.lattice import gate_columns

    rng = np.random.default_rng(11)

    def turned(n, first=0, jitter=0.0):  # a turned grain of spacing 7 beside the first one
        points = _hexagonal(n=n, spacing=7.0, rng=rng, jitter=jitter, first=first)
        return _turned(points, 25.0) + [0.0, 150.0]

    clear = _hexagonal(n=10, spacing=9.0, rng=rng, jitter=0.2)  # a grain of clear columns
    grain = turned(12, jitter=0.2)  # with no clear column at all
    strays = rng.uniform([-40, -40], [130, 300], (80, 2))  # noise candidates, as faint
    p = np.concatenate([clear, grain, strays])
    cnr = np.concatenate([np.full(len(clear), 9.0), np.full(len(grain) + len(strays), 4.0)])
    rule = dict(floor=3.0, rounds=None)
    on_grain = slice(len(clear), len(clear) + len(grain))
    # only kept columns vote: the faint grain repeats none of the clear grain's translations
    assert gate_columns(p, cnr, 5.0, **rule)[on_grain].mean() < 0.5
    keep = gate_columns(p, cnr, 5.0, mutual_votes=3, **rule)
    assert keep[on_grain].mean() > 0.95
    # strays away from both lattices (continued past their edges) stay out: noise does not
    # repeat a lattice
    sites = np.concatenate([_hexagonal(n=12, spacing=9.0, first=-2), turned(14, first=-2)])
    off = _distance_to(strays, sites) > 0.3 * 7.0
    assert off.sum() > 40 and not keep[len(clear) + len(grain) :][off].any()
    # an image of noise alone keeps nothing, however many faint candidates it holds
    noise = rng.uniform(0, 300, (600, 2))
    assert not gate_columns(noise, np.full(len(noise), 4.0), 5.0, mutual_votes=3, **rule).any()


def test_a_small_turned_grain_gets_its_own_lattice_vectors():
    from atomseg.detect.lattice import gate_columns

    rng = np.random.default_rng(12)
    big = _hexagonal(n=22, spacing=9.0, rng=rng, jitter=0.2)  # a large grain of clear columns
    small = _turned(_hexagonal(n=8, spacing=7.0, rng=rng, jitter=0.2), 35.0) + [0.0, 300.0]
    p = np.concatenate([big, small])  # the small grain is an eighth of the candidates
    cnr = np.concatenate([np.full(len(big), 9.0), np.where(rng.random(len(small)) < 0.2, 9.0, 4.0)])
    # its translations are shared by too few of all the candidates to count, but by nearly
    # all of those the big grain's translations leave unexplained
    assert len(lattice_vectors(p, tolerance=0.15)) == 6
    assert gate_columns(p, cnr, 5.0, floor=3.0, rounds=None)[len(big) :].mean() < 0.5
    keep = gate_columns(p, cnr, 5.0, floor=3.0, rounds=None, grains=4)
    assert keep[len(big) :].mean() > 0.95
    strays = rng.uniform([0, 250], [60, 370], (60, 2))  # noise among them stays out
    sites = _turned(_hexagonal(n=12, spacing=7.0, first=-2), 35.0) + [0.0, 300.0]
    off = _distance_to(strays, sites) > 0.3 * 7.0
    both = np.concatenate([p, strays])
    kept = gate_columns(
        both, np.r_[cnr, np.full(len(strays), 4.0)], 5.0, floor=3.0, rounds=None, grains=4
    )
    assert off.sum() > 30 and not kept[len(p) :][off].any()


def test_second_pass_adds_only_new_sites():
    import pandas as pd

    from atomseg.infer.columns import _new_sites, _with_lattice_candidates

    p = _hexagonal(n=5)
    first = pd.DataFrame({"row": p[:-3, 0], "col": p[:-3, 1], "score": 0.9, "radius": 2.0})
    low = pd.DataFrame({"row": p[:, 0] + 0.4, "col": p[:, 1], "score": 0.5, "radius": 2.0})
    assert len(_new_sites(first, low)) == 3  # the three sites the first pass missed
    both, only = _with_lattice_candidates(first, low)
    assert len(both) == len(p) and only.sum() == 3 and not only[: len(first)].any()
    assert len(_new_sites(first.iloc[:1], low)) == 0  # one column: no spacing to judge by


def test_default_model_second_pass_adds_lattice_columns_and_drops_none():
    import copy
    import warnings

    from scipy.spatial import cKDTree

    from atomseg.infer import locate
    from atomseg.models import load_model
    from atomseg.sim import simulate_image

    model = load_model("default", device="cpu")
    assert model.config["detection"]["lattice_threshold"] < model.config["detection"]["threshold"]
    single = copy.copy(model)
    single.config = copy.deepcopy(model.config)
    single.config["detection"].pop("lattice_threshold")
    s = simulate_image(shape=(160, 160), seed=5, dose_e_per_A2=1e4, scene="slab")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = locate(s.image, pixel_size_angstrom=s.pixel_size_angstrom, model=model)
        one = locate(s.image, pixel_size_angstrom=s.pixel_size_angstrom, model=single)
    assert len(two) > len(one)
    d, _ = cKDTree(two[["row", "col"]]).query(one[["row", "col"]])
    assert d.max() < 1e-6  # the first pass's columns all stay, where they were
    cols = np.concatenate([s.columns[["row", "col"]], s.outside_columns[["row", "col"]]])
    new = two[cKDTree(one[["row", "col"]]).query(two[["row", "col"]])[0] > 1e-6]
    d_true, _ = cKDTree(cols).query(new[["row", "col"]])
    # the added ones sit on real columns (two of them on the edge, centred just outside it)
    assert d_true.max() < 2.0, d_true
