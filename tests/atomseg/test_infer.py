"""segment / locate / locate_stack: shapes, coordinate mapping, stacks and bad input."""

import numpy as np
import pandas as pd
import pytest

from atomseg.infer import check_pixel_size, locate, locate_stack, segment
from atomseg.models import ColumnModel
from atomseg.models.unet import UNet

PX_MODEL = 0.15


class OracleModel(ColumnModel):
    """A 'network' that segments bright blobs perfectly: isolates the pipeline around it."""

    def predict(self, images):
        return np.clip((np.asarray(images) - 0.25) / 0.5, 0, 1).astype(np.float32)


def _oracle():
    return OracleModel(
        UNet(4, 3),
        {"pixel_size_angstrom": PX_MODEL, "label_radius_angstrom": 0.4, "detection": {}},
    )


def _lattice_image(shape=(96, 96), spacing=12.0, sigma=2.0, seed=0):
    rng = np.random.default_rng(seed)
    r0, c0 = rng.uniform(0, spacing, 2)
    rows = np.arange(r0 + spacing / 2, shape[0] - 4, spacing)
    cols = np.arange(c0 + spacing / 2, shape[1] - 4, spacing)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    pos = np.stack([rr.ravel(), cc.ravel()], 1) + rng.uniform(-1, 1, (rr.size, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for r, c in pos:
        img += np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2))
    return img.astype(np.float32), pos


def _match(table, pos):
    found = table[["row", "col"]].to_numpy()
    d = np.linalg.norm(found[:, None] - pos[None], axis=2)
    return d.min(axis=0), d.min(axis=1)


@pytest.mark.parametrize("pixel_size", [None, 0.15, 0.1, 0.25])
def test_locate_maps_positions_back_to_input_pixels(pixel_size):
    img, pos = _lattice_image()
    table = locate(img, pixel_size_angstrom=pixel_size, model=_oracle())
    to_truth, to_found = _match(table, pos)
    inner = (pos > 6).all(1) & (pos < 90).all(1)
    assert np.sqrt(np.mean(to_truth[inner] ** 2)) < 0.15
    assert (to_found < 2).all()  # nothing found between columns
    if pixel_size:
        np.testing.assert_allclose(table["row_angstrom"], table["row"] * pixel_size)


def test_table_columns():
    img, _ = _lattice_image()
    table = locate(img, model=_oracle())
    assert list(table.columns) == ["row", "col", "score", "radius", "intensity"]
    assert (table["score"].between(0, 1)).all()
    assert (table["radius"] > 0).all()


@pytest.mark.parametrize("pixel_size", [None, 0.3])
def test_segment_keeps_the_shape(pixel_size):
    img, _ = _lattice_image(shape=(80, 72))
    prob = segment(img, pixel_size_angstrom=pixel_size, model=_oracle())
    assert prob.shape == img.shape
    assert prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_locate_stack_any_axis_equals_frame_by_frame(axis):
    frames = [_lattice_image(shape=(64, 64), seed=s)[0] for s in range(3)]
    stack = np.moveaxis(np.stack(frames), 0, axis)
    table = locate_stack(stack, axis=axis, model=_oracle(), batch_size=2, guess_scale=False)
    assert set(table["frame"]) == {0, 1, 2}
    for i, img in enumerate(frames):
        ref = locate(img, model=_oracle(), guess_scale=False)
        got = table[table["frame"] == i].drop(columns="frame").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref)


def test_locate_stack_searches_one_scale_on_the_middle_frame():
    from atomseg.infer import search_pixel_size

    frames = [
        _lattice_image(shape=(64, 64), seed=s, spacing=sp)[0] for s, sp in [(0, 6), (1, 9), (2, 12)]
    ]
    with pytest.warns(UserWarning, match="no pixel size"):
        table = locate_stack(np.stack(frames), model=_oracle())
    p = search_pixel_size(frames[1], model=_oracle())
    assert p is not None
    for i, img in enumerate(frames):
        ref = locate(img, pixel_size_angstrom=p, model=_oracle())
        ref = ref.drop(columns=["row_angstrom", "col_angstrom"])
        got = table[table["frame"] == i].drop(columns="frame").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((64, 64), np.nan), "NaN"),
        (np.zeros((64, 64)), "constant"),
        (np.zeros((8, 8)) + np.eye(8), "too small"),
        (np.zeros((4, 64, 64)), "2-D"),
        (np.array([["a"] * 32] * 32), "real numbers"),
    ],
)
def test_bad_images_are_named(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        locate(bad, model=_oracle())


def test_stack_reports_the_bad_frame():
    frames = np.stack([_lattice_image(shape=(64, 64), seed=s)[0] for s in range(3)])
    frames[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match="frame 2"):
        locate_stack(frames, model=_oracle())


def test_bad_pixel_size():
    img, _ = _lattice_image()
    with pytest.raises(ValueError, match="pixel_size_angstrom"):
        locate(img, pixel_size_angstrom=-1, model=_oracle())


def test_unknown_model_lists_available():
    img, _ = _lattice_image()
    with pytest.raises(KeyError, match="available"):
        locate(img, model="no-such-model")


def test_lattice_spacing_of_a_simulated_crystal():
    from atomseg.infer import guess_pixel_size, lattice_spacing_px
    from atomseg.sim import simulate_image

    s = simulate_image(shape=(192, 192), seed=3, scene="slab", structure="Au", zone_axis="100",
                       pixel_size_angstrom=0.1, noise=False, rotation_deg=0.0)  # fmt: skip
    # Au [100]: the brightest reflections are {200}, 2.04 Å apart
    assert lattice_spacing_px(s.image) * 0.1 == pytest.approx(2.04, rel=0.06)
    assert 0.05 <= guess_pixel_size(s.image) <= 0.5
    noise = np.random.default_rng(1).poisson(5.0, (128, 128)).astype(float)
    assert lattice_spacing_px(noise) is None and guess_pixel_size(noise) is None
    assert lattice_spacing_px(np.zeros((8, 8))) is None


def test_plateau_middle_and_stable_counts():
    from atomseg.infer.scale import _plateau_middle, _stable_counts

    assert _plateau_middle([0, 5, 10, 10, 10, 3], 0.95) == 3
    assert _plateau_middle([8, 2, 9, 10, 10], 0.9) == 3  # the run holding the largest
    assert _plateau_middle([0, 0, 0], 0.95) is None
    grid = np.stack(np.meshgrid(np.arange(0, 100, 10.0), np.arange(0, 100, 10.0)), -1).reshape(
        -1, 2
    )
    split = np.concatenate([grid - [0, 3], grid + [0, 3]])  # every column found twice, apart
    found = [grid, grid + 0.5, grid - 0.5, split, grid]
    # a column counts where both neighbouring scales find it too (within a quarter spacing):
    # the split halves are 3 px off, so neither they nor the scales beside them count
    assert _stable_counts(found) == [100, 100, 0, 0, 0]
    assert _stable_counts([grid, np.zeros((0, 2)), grid]) == [0, 0, 0]


def test_the_search_finds_the_columns_the_lattice_guess_loses():
    """DyScO3 [100] whose brightest reflection is not 2.7 Å: the lattice guess is 0.67x the
    true 0.1 Å/px and a third of the columns is lost; the searched scale finds them."""
    import warnings

    from atomseg.infer import guess_pixel_size, search_pixel_size
    from atomseg.models import load_model
    from atomseg.sim import simulate_image

    model = load_model("default", device="cpu")
    s = simulate_image(
        shape=(192, 192), seed=2, structure="DyScO3", zone_axis="100", scene="slab",
        dose_e_per_A2=1e5, pixel_size_angstrom=0.1,
    )  # fmt: skip
    guess = guess_pixel_size(s.image)
    assert guess < 0.075
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at_truth = len(locate(s.image, pixel_size_angstrom=0.1, model=model))
        at_guess = len(locate(s.image, pixel_size_angstrom=guess, model=model))
        searched = search_pixel_size(s.image, model=model)
        uncalibrated = locate(s.image, model=model)
    assert at_guess < 0.8 * at_truth
    assert 0.08 <= searched <= 0.15
    assert len(uncalibrated) >= 0.95 * at_truth
    assert "row_angstrom" not in uncalibrated.columns


def test_a_guessed_scale_is_said_once_per_call():
    import warnings

    from atomseg.infer.columns import GUESSED_SCALE_WARNING

    img, _ = _lattice_image(shape=(128, 128))
    with pytest.warns(UserWarning, match="no pixel size given") as seen:
        locate(img, model=_oracle())
    assert [str(w.message) for w in seen] == [GUESSED_SCALE_WARNING]
    with pytest.warns(UserWarning, match="no pixel size given"):
        segment(img, model=_oracle())
    with warnings.catch_warnings():  # calibrated, or run as it is: nothing to say
        warnings.simplefilter("error")
        locate(img, pixel_size_angstrom=0.2, model=_oracle())
        locate(img, model=_oracle(), guess_scale=False)


@pytest.mark.parametrize("spacing", [5.0, 12.0, 40.0])
def test_uncalibrated_images_at_any_sampling(spacing):
    img, pos = _lattice_image(shape=(160, 160), spacing=spacing, sigma=spacing / 6)
    for guess in (True, False):  # coarse sampling (tiny columns) must not raise
        table = locate(img, model=_oracle(), guess_scale=guess)
        assert "row_angstrom" not in table.columns
    to_truth, _ = _match(locate(img, model=_oracle()), pos)
    inner = (pos > spacing).all(1) & (pos < 160 - spacing).all(1)
    assert np.median(to_truth[inner]) < 0.1 * spacing


class _SeesALattice:
    """A stand-in network that reports the same square lattice of columns in any image."""

    multiple = 1

    def __new__(cls, spacing_px=12, sigma_px=2.5):
        import torch

        class Net(torch.nn.Module):
            multiple = 1

            def forward(self, x):
                h, w = x.shape[-2:]
                yy = torch.arange(h, dtype=x.dtype)[:, None] % spacing_px - spacing_px / 2
                xx = torch.arange(w, dtype=x.dtype)[None, :] % spacing_px - spacing_px / 2
                blob = torch.exp(-(yy**2 + xx**2) / (2 * sigma_px**2))
                return (12 * blob - 6).expand_as(x).contiguous()

        return Net()


def test_contrast_to_noise_gate_drops_columns_the_image_does_not_show():
    from atomseg.detect.contrast import noise_sigma

    rng = np.random.default_rng(0)
    noise = rng.poisson(20.0, (120, 120)).astype(np.float32)  # nothing there
    assert noise_sigma(noise) == pytest.approx(np.sqrt(20.0), rel=0.1)
    det = {"threshold": 0.5, "min_score": 0.3}
    seen = locate(noise, model=ColumnModel(_SeesALattice(), {"detection": det}), guess_scale=False)
    yy, xx = np.mgrid[:120, :120]
    blobs = sum(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8.0) for r, c in zip(seen.row, seen.col))
    lattice = rng.poisson(20.0 + 60.0 * blobs).astype(np.float32)  # the same columns, there
    found = {}
    for gate in (0.0, 4.0):
        model = ColumnModel(_SeesALattice(), {"detection": dict(det, min_contrast_to_noise=gate)})
        for name, image in (("lattice", lattice), ("noise", noise)):
            found[name, gate] = len(locate(image, model=model, guess_scale=False))
    assert found["lattice", 0.0] == found["noise", 0.0] >= 81  # the network sees both alike
    assert found["lattice", 4.0] >= 0.95 * found["lattice", 0.0]  # the image shows these
    assert found["noise", 4.0] <= 0.05 * found["noise", 0.0]  # and not these


class _ShortHalo(ColumnModel):
    halo = 16  # a quarter of the context the shipped network needs (receptive radius 58 px)


def _spread_net():
    import torch

    torch.manual_seed(0)
    net = UNet(4, 3)
    with torch.no_grad():
        net.head.weight.mul_(300.0)  # logits of order 1: probabilities across (0, 1)
    return net


@pytest.mark.parametrize("shape", [(200, 328), (96, 520)])
def test_large_images_are_segmented_in_tiles_that_match_the_whole(shape):
    net = _spread_net()
    x = np.random.default_rng(1).random((2, *shape)).astype(np.float32)
    whole = ColumnModel(net, {}).predict(x, max_tile_px=10**6)
    assert whole.std() > 0.05
    tiled = ColumnModel(net, {}).predict(x, max_tile_px=80)  # tiles of 16 px plus the halo
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_the_shipped_model_in_tiles():
    from atomseg.models import load_model

    model = load_model("default", device="cpu")
    image, _ = _lattice_image(shape=(304, 248), spacing=10.0, sigma=1.5)
    x = (image / image.max())[None]
    whole = model.predict(x)
    assert whole.max() > 0.9
    tiled = model.predict(x, max_tile_px=2 * model.halo + 48)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    # the halo matters: with too little context the seams show
    short = _ShortHalo(model.network, model.config).predict(x, max_tile_px=2 * 16 + 48)
    assert np.abs(short - whole).max() > 0.05
    with pytest.raises(ValueError, match="multiples of 8"):
        model.predict(x[:, :300])


def test_batch_norm_folded_for_inference_leaves_the_output():
    import torch

    from atomseg.models import load_model

    model = load_model("default", device="cpu")
    image, _ = _lattice_image(shape=(96, 128), spacing=10.0, sigma=1.5)
    x = (image / image.max())[None]
    with torch.inference_mode():
        plain = torch.sigmoid(model.network(torch.from_numpy(x)[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(model.predict(x), plain, atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.modules())


def test_a_pixel_size_in_the_wrong_unit_is_warned_about():
    import warnings

    from atomseg.sim import simulate_image

    s = simulate_image(shape=(128, 128), seed=3, dose_e_per_A2=1e5, scene="slab")
    px = s.pixel_size_angstrom
    model = _oracle()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the true calibration: no warning
        locate(s.image, pixel_size_angstrom=px, model=model)
    with pytest.warns(UserWarning, match=r"lattice period would be .* \(not nm or pm\)"):
        locate(s.image, pixel_size_angstrom=px / 10, model=model)  # nm typed as Å
    with pytest.warns(UserWarning, match=r"lattice period would be .* \(not nm or pm\)"):
        segment(s.image, pixel_size_angstrom=px / 10, model=model)
    assert "coarser than 2 Å" in check_pixel_size(s.image, 100 * px)  # pm typed as Å
    with pytest.warns(UserWarning) as record:
        locate_stack(np.stack([s.image] * 3), pixel_size_angstrom=px / 10, model=model)
    assert sum("not nm or pm" in str(w.message) for w in record) == 1  # once per stack


def test_blank_frames_of_a_volume_have_no_columns():
    frames = np.stack([_lattice_image(shape=(64, 64), seed=s)[0] for s in range(3)])
    frames[0] = 0.0  # outside a reconstruction's circle
    table = locate_stack(frames, model=_oracle())
    assert 0 not in set(table["frame"]) and {1, 2} <= set(table["frame"])
    frames[1, 5, 5] = np.inf  # a bad frame is still named
    with pytest.raises(ValueError, match="frame 1"):
        locate_stack(frames, model=_oracle())


def _corner_particle(shape, centre, **kw):
    """A small particle (facets 12 Å from its centre) in a field of vacuum, searched and
    located with and without its pixel size: (sample, calibrated count, searched pixel size,
    uncalibrated count)."""
    import warnings

    from atomseg.infer import search_pixel_size
    from atomseg.models import load_model
    from atomseg.sim import simulate_image

    model = load_model("default", device="cpu")
    s = simulate_image(
        shape=shape, scene="particle", amorphous_thickness_angstrom=0.0,
        particle_center_angstrom=centre, particle_facet_distances_angstrom=[12.0] * 8,
        particle_facet_angles_deg=[45.0 * k for k in range(8)], **kw,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at_truth = len(locate(s.image, pixel_size_angstrom=s.pixel_size_angstrom, model=model))
        searched = search_pixel_size(s.image, model=model)
        uncalibrated = len(locate(s.image, model=model))
    return s, at_truth, searched, uncalibrated


def test_the_search_finds_a_particle_off_centre():
    """A small DyScO3 particle in a corner of a 512² field of vacuum: the whole image shows no
    clear lattice and the centre no columns, so the search runs where the particle is."""
    from atomseg.infer import guess_pixel_size
    from atomseg.infer.scale import _busiest_window

    s, at_truth, searched, uncalibrated = _corner_particle(
        (512, 512), [-15.36, -15.36], seed=2, structure="DyScO3", zone_axis="100",
        dose_e_per_A2=3e3, pixel_size_angstrom=0.1,
    )  # fmt: skip
    assert guess_pixel_size(s.image) is None
    r0, c0 = _busiest_window(s.image, 192, 18.0)
    assert r0 < 100 and c0 < 100  # the particle's corner, not the centre (160, 160)
    assert at_truth >= 12
    assert 0.08 <= searched <= 0.13
    assert uncalibrated >= 0.9 * at_truth


def test_the_search_window_stays_central_on_an_even_lattice():
    from atomseg.infer.scale import _busiest_window

    img, _ = _lattice_image(shape=(300, 300))
    assert _busiest_window(img, 128, 8.0) == (86, 86)
    assert _busiest_window(img, 400, 8.0) == (0, 0)


def test_the_search_guesses_from_where_the_particle_is():
    """A thin SrTiO3 particle in a corner of a 1024² field at 0.05 Å/px: the whole image's
    spectrum shows no lattice, so the guess comes from the busiest 512² window; before, the
    candidates sat around the model's 0.15 Å/px, 3x off, and nothing was found."""
    from atomseg.infer import guess_pixel_size

    s, at_truth, searched, uncalibrated = _corner_particle(
        (1024, 1024), [-15.36, 15.36], seed=11, structure="SrTiO3", zone_axis="100",
        dose_e_per_A2=1e4, pixel_size_angstrom=0.05,
    )  # fmt: skip
    assert guess_pixel_size(s.image) is None
    assert at_truth >= 20
    assert 0.04 <= searched <= 0.07
    assert uncalibrated >= 0.9 * at_truth


@pytest.mark.parametrize(
    "structure, zone_axis, scene",
    [("SrTiO3", "100", "slab"), ("GaAs", "110", "slab"), ("Au", "110", "particle"),
     ("DyScO3", "100", "slab")],
)  # fmt: skip
def test_adf_images_read_bright_and_their_negatives_dark(structure, zone_axis, scene):
    from atomseg.infer import INVERTED_SKEWNESS, check_polarity, polarity_skewness
    from atomseg.sim import simulate_image

    s = simulate_image(shape=(128, 128), seed=3, structure=structure, zone_axis=zone_axis,
                       scene=scene, dose_e_per_A2=1e5)  # fmt: skip
    skew = polarity_skewness(s.image)
    assert skew > -INVERTED_SKEWNESS
    assert polarity_skewness(s.image.max() - s.image) == pytest.approx(-skew, abs=1e-6)
    assert check_polarity(s.image) is None
    assert "looks inverted" in check_polarity(7.0 - 2.0 * s.image)
    dead = s.image.astype(np.float64)
    dead[64, 64] = -10 * dead.max()  # one bad pixel weighs nothing
    assert polarity_skewness(dead) == pytest.approx(skew, rel=0.05)


def test_an_inverted_image_is_warned_about_once():
    import warnings

    from atomseg.infer import check_polarity
    from atomseg.sim import simulate_image

    s = simulate_image(shape=(128, 128), seed=3, dose_e_per_A2=1e5, scene="slab")
    px, model = s.pixel_size_angstrom, _oracle()
    inverted = s.image.max() - s.image
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ADF image: nothing to say
        locate(s.image, pixel_size_angstrom=px, model=model)
    for run in (locate, segment):
        with pytest.warns(UserWarning, match="looks inverted") as record:
            run(inverted, pixel_size_angstrom=px, model=model)
        assert len(record) == 1
    with pytest.warns(UserWarning) as record:
        locate_stack(np.stack([inverted] * 3), pixel_size_angstrom=px, model=model)
    assert sum("looks inverted" in str(w.message) for w in record) == 1  # once per stack
    with warnings.catch_warnings():  # the middle frame stands for the stack, not the first
        warnings.simplefilter("error")
        locate_stack(np.stack([inverted, s.image, s.image]), pixel_size_angstrom=px, model=model)
    noise = np.random.default_rng(0).random((128, 128))
    assert check_polarity(noise) is None and check_polarity(-noise) is None  # no lattice


def test_overlays_show_noisy_images_smoothed(tmp_path):
    from atomseg.infer import save_overlay
    from atomseg.infer.columns import _shown

    clean, pos = _lattice_image(shape=(128, 128))
    table = pd.DataFrame({"row": pos[:, 0], "col": pos[:, 1], "score": 1.0, "radius": 2.4})
    noisy = clean + np.random.default_rng(0).normal(0, 0.3, clean.shape).astype(np.float32)
    shown, sigma = _shown(clean, table, "auto")
    assert sigma == 0 and shown is clean
    shown, sigma = _shown(noisy, table, "auto")
    assert sigma == pytest.approx(1.2)  # half the columns' radius
    assert np.std(shown - clean) < 0.5 * np.std(noisy - clean)
    assert _shown(noisy, table.iloc[:0], "auto")[1] == 1.0  # nothing found: 1 px
    assert _shown(noisy, table, None)[1] == 0 and _shown(clean, table, 2.0)[1] == 2.0
    with pytest.raises(ValueError, match="smooth must be"):
        _shown(clean, table, -1.0)
    save_overlay(noisy, table, tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 0 and not list(tmp_path.glob("*.tmp*"))


def test_a_burned_in_scale_bar_holds_no_columns():
    from atomseg.infer.annotations import burned_in_boxes

    img, pos = _lattice_image(shape=(128, 128), sigma=2.5)
    assert burned_in_boxes(np.minimum(img, 0.6 * img.max())) == []  # saturated round tops
    barred = img.copy()
    barred[100:108, 20:100] = img.max()  # a scale bar at the brightest value
    with pytest.warns(UserWarning, match="filled rectangle at its brightest value") as seen:
        table = locate(barred, pixel_size_angstrom=PX_MODEL, model=_oracle())
    assert len(seen) == 1
    on_bar = table["row"].between(97, 111) & table["col"].between(17, 103)
    assert not on_bar.any()
    clear = (pos[:, 0] < 95) | (pos[:, 0] > 113) | (pos[:, 1] < 15) | (pos[:, 1] > 105)
    assert (_match(table, pos[clear])[0] < 1.0).all()  # the columns off the bar stay
