"""Training the U-net: runs end to end on a tiny library, resumes exactly, tunes thresholds."""

import numpy as np
import pytest
import torch

import atomseg.train.trainer as trainer
from atomseg.infer import locate
from atomseg.models import list_models, load_model
from atomseg.models.registry import _SHIPPED, WEIGHTS_DIR, _sha256
from atomseg.sim import write_library
from atomseg.train import train


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    path = tmp_path_factory.mktemp("lib") / "lib.h5"
    write_library(path, n=6, seed=3, shape=(64, 64), workers=1, config={"label_min_z": 11})
    return path


KW = dict(batch_size=2, width=4, levels=3, patch=32, checkpoint_every=1, progress=False)


@pytest.mark.parametrize("n_steps", [2, 20])  # 20: a one-step warm-up broke torch's schedule
def test_train_writes_a_loadable_model(library, tmp_path, n_steps):
    folder = train(library, tmp_path / "m", n_steps=n_steps, **KW)
    model = load_model(folder, device="cpu")
    cfg = model.config
    assert cfg["pixel_size_angstrom"] > 0
    assert cfg["label_min_z"] == 11
    assert 0 < cfg["detection"]["threshold"] < 1
    assert cfg["detection"]["val_min_snr"] == 5.0  # Rose's criterion, whatever the labels' cut
    assert cfg["padding"] == "reflect" and cfg["training"]["border_fraction"] == 0.0
    assert cfg["training"]["resample"] == 0.0
    assert cfg["training"]["command"].startswith("atomseg train")
    image = np.random.default_rng(0).random((48, 48))
    assert list(locate(image, model=model).columns)[:2] == ["row", "col"]


def test_detection_rules_go_with_the_tuned_gate_and_the_padding():
    tuned = {"threshold": 0.8, "min_score": 0.3, "min_contrast_to_noise": 5.0}
    edge = trainer._detection_rules(tuned, 0.3, "edge")
    assert edge["border_tolerance_radii"] == 1.0 and edge["lattice_min_contrast_to_noise"] == 3
    assert edge["lattice_border_min_contrast_to_noise"] == 5.0  # border sites: the gate's
    inner = trainer._detection_rules(tuned, 0.0, "reflect")
    assert "border_tolerance_radii" not in inner and inner["lattice_min_votes"] == 2
    assert "lattice_border_min_contrast_to_noise" not in inner
    no_gate = trainer._detection_rules(dict(tuned, min_contrast_to_noise=0.0), 0.3, "edge")
    assert "lattice_min_contrast_to_noise" not in no_gate  # no gate, nothing to relax
    assert "lattice_border_min_contrast_to_noise" not in no_gate
    # the shipped default was made by this recipe: its card holds the same rules
    card = load_model("default", device="cpu").config["detection"]
    tuned = {k: card[k] for k in tuned}
    edge = trainer._detection_rules(tuned, 0.3, "edge")
    assert {k: card[k] for k in edge if k not in tuned} == {
        k: v for k, v in edge.items() if k not in tuned
    }


def test_tuning_knows_the_columns_just_outside_library_images(library):
    import h5py

    from atomseg.train.tune import _outside_columns

    with h5py.File(library, "r") as f:
        shape = f["images"].shape[1:]
    found = 0
    for i in range(6):
        out, z = _outside_columns(library, i, shape)
        assert len(z) == len(out)
        rows, cols = out[:, 0], out[:, 1]
        inside = (rows >= -0.5) & (rows < shape[0] - 0.5) & (cols >= -0.5) & (cols < shape[1] - 0.5)
        assert not inside.any()
        found += len(out)
    assert found > 0  # re-made from the stored parameters (the library does not store them)


def test_tuning_truth_is_the_detectable_columns(library):
    from atomseg.train.tune import _read_columns

    per_image = [_read_columns(library, i) for i in range(6)]
    i = int(np.argmax([resolved.sum() for _, _, resolved in per_image]))
    counts = []
    for cut in (0.0, 5.0, 1e9):
        cols, asked, resolved = _read_columns(library, i, cut)
        assert resolved.sum() > 0 and not (asked & ~resolved).any()
        counts.append(int(asked.sum()))
    assert counts[0] == int(resolved.sum()) >= counts[1] >= counts[2] == 0


def test_interrupted_training_resumes_to_the_same_weights(library, tmp_path):
    ref = train(library, tmp_path / "ref", n_steps=3, **KW)
    calls = {"n": 0}
    original = trainer._batch

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    trainer._batch = flaky
    try:
        with pytest.raises(KeyboardInterrupt):
            train(library, tmp_path / "cut", n_steps=3, **KW)
    finally:
        trainer._batch = original
    out = train(library, tmp_path / "cut", n_steps=3, **KW)
    a = load_model(ref, device="cpu").network.state_dict()
    b = load_model(out, device="cpu").network.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


@pytest.mark.parametrize("padding", ["reflect", "edge"])
def test_border_patches_are_padded_as_at_inference(padding):
    # a ramp image (every value distinct) and an all-background mask
    h = w = 64
    image = np.arange(h * w, dtype=np.float32).reshape(1, h, w)
    data = {"images": image, "masks": np.zeros((1, h, w), np.uint8)}
    rng = np.random.default_rng(0)
    x, y = trainer._batch(data, np.zeros(200, int), 32, rng, border_fraction=1.0, padding=padding)
    padded = np.pad(image[0], trainer.PAD_PX, mode=padding)
    crossed = 0
    for xi, yi in zip(x[:, 0], y[:, 0]):
        outside = yi == 2
        assert set(np.unique(yi)) <= {0, 2}
        if outside.any():
            crossed += 1
            # the don't-care pixels form whole rows or columns along the patch edge
            rows, cols = outside.all(axis=1), outside.all(axis=0)
            assert np.array_equal(outside, rows[:, None] | cols[None, :])
        # every pixel is an image pixel or its copy across the border
        assert np.isin(xi, padded).all()
        if outside.any() and padding == "edge":  # copies of the edge pixel, no mirror image
            rows = np.flatnonzero(outside.all(axis=1))
            if 0 < len(rows) < 32:
                edge = rows[-1] + 1 if rows[0] == 0 else rows[0] - 1  # the image row next to them
                assert np.array_equal(xi[rows], np.repeat(xi[edge : edge + 1], len(rows), 0))
    assert crossed > 150  # most cross; origin exactly on the edge does not
    # inner patches only: never a don't-care pixel
    x, y = trainer._batch(data, np.zeros(50, int), 32, rng, border_fraction=0.0)
    assert not (y == 2).any()


def test_border_fraction_is_checked(library, tmp_path):
    with pytest.raises(ValueError, match="border_fraction"):
        train(library, tmp_path / "m", n_steps=2, border_fraction=1.5, **KW)
    with pytest.raises(ValueError, match="padding"):
        train(library, tmp_path / "m", n_steps=2, padding="wrap", **KW)


def test_padding_is_recorded_and_used_at_inference(library, tmp_path):
    import atomseg.infer.columns as columns

    model = load_model(
        train(library, tmp_path / "m", n_steps=2, padding="edge", **KW), device="cpu"
    )
    assert model.config["padding"] == "edge"
    assert model.config["training"]["command"].endswith("--padding edge")
    seen = []
    original = model.predict
    model.predict = lambda x: seen.append(x) or original(x)
    image = np.random.default_rng(1).random((1, 40, 40)).astype(np.float32)
    columns._probabilities(model, image)
    # the 16 padded rows above the image copy its first row
    assert np.array_equal(seen[0][0, :16, 16:56], np.repeat(image[0, :1], 16, axis=0))


def test_missing_library_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        train(tmp_path / "nope.h5", tmp_path / "m")


@pytest.mark.parametrize("name", sorted(_SHIPPED))
def test_every_shipped_model_passes_sha256_and_runs(name):
    assert _sha256(WEIGHTS_DIR / name / "weights.pt") == _SHIPPED[name]
    model = load_model(name, device="cpu")
    prob = model.predict(np.zeros((1, 32, 32), np.float32))
    assert prob.shape == (1, 32, 32)
    assert name in list_models()


def test_fine_tuning_starts_from_the_given_model(library, tmp_path):
    base = train(library, tmp_path / "base", n_steps=2, **KW)
    kw = dict(KW, width=8, levels=2)  # the initial model's architecture wins
    tuned = train(library, tmp_path / "tuned", n_steps=1, learning_rate=1e-9, init=base, **kw)
    fresh = train(library, tmp_path / "fresh", n_steps=1, learning_rate=1e-9, **KW)
    a = load_model(base, device="cpu")
    b = load_model(tuned, device="cpu")
    c = load_model(fresh, device="cpu")
    assert (b.network.width, b.network.levels) == (4, 3)
    assert b.config["training"]["init"]["sha256"] == a.config["sha256"]
    assert "--init" in b.config["training"]["command"]
    # parameters, not the batch-norm running statistics (a training step moves those at any rate)
    sa, sb, sc = (dict(m.network.named_parameters()) for m in (a, b, c))
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-6, rtol=0)
    assert any(not torch.allclose(sa[k], sc[k]) for k in sa)


def test_fine_tuning_from_an_unknown_model_is_named(library, tmp_path):
    with pytest.raises(KeyError, match="no-such-model"):
        train(library, tmp_path / "m", n_steps=1, init="no-such-model", **KW)


def test_dont_care_pixels_count_in_neither_loss_term():
    import torch

    from atomseg.train.trainer import _loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.7).to(torch.uint8)
    weak = torch.zeros_like(mask)
    weak[:, :, 4:8, 4:8] = 2  # "don't care" discs
    dont_care = torch.where(weak == 2, weak, mask)
    base = _loss(logits, dont_care)
    # whatever the network says on "don't care" pixels, the loss is the same
    changed = logits.clone()
    changed[:, :, 4:8, 4:8] = 10.0
    assert torch.allclose(_loss(changed, dont_care), base)
    assert not torch.allclose(_loss(changed, mask), _loss(logits, mask))
    # a mask of 0 and 1 only gives plain (mean) BCE + Dice
    target = mask.float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (
        p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1
    )
    assert torch.allclose(_loss(logits, mask), bce + dice.mean())


def test_tuning_scores_each_dose_decade_alike():
    from atomseg.train.tune import _decade_f1

    # a low-dose decade finding half its columns, a high-dose one finding all of many more,
    # and false detections in a decade with nothing to find: pooled F1 would be 0.996
    f1 = _decade_f1({2: [10, 0, 10], 5: [5000, 0, 0], 6: [0, 7, 0]})
    assert f1 == {2: pytest.approx(2 / 3), 5: 1.0}
    assert np.mean(list(f1.values())) == pytest.approx(5 / 6)


def test_tuning_reports_the_f1_of_each_dose_decade(library, tmp_path):
    import h5py

    with h5py.File(library, "r") as f:
        decades = {f"{10.0 ** np.floor(np.log10(d)):g}" for d in f["dose_e_per_A2"][:]}
    det = load_model(train(library, tmp_path / "m", n_steps=2, **KW)).config["detection"]
    assert det["val_f1_by_dose"] and set(det["val_f1_by_dose"]) <= decades
    assert det["val_f1"] == pytest.approx(np.mean(list(det["val_f1_by_dose"].values())), abs=1e-3)


def _one_image_data(pixel_size, padding_rows=0):
    """A resample-mode training set of one ramp image with one labelled column at (20, 30)."""
    h = w = 64
    raw = np.arange(h * w, dtype=np.float32).reshape(1, h, w) % 977  # every value distinct-ish
    return {
        "images": raw.copy(),
        "masks": np.zeros((1, h, w), np.uint8),
        "pixel_size_angstrom": np.array([pixel_size], np.float32),
        "raw": raw,
        "levels": np.array([[0.0, 976.0]], np.float32),
        "disc_px": np.array([0.4 / pixel_size], np.float32),
        "disc_cap_px": 0.4 / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM,
        "columns": [np.array([[20.0, 30.0, 1.0], [40.0, 10.0, 2.0]])],
    }


@pytest.mark.parametrize("pixel_size", [0.3, 0.15, 0.1])
@pytest.mark.parametrize("padding", ["edge", "reflect"])
def test_resampled_patches_are_what_inference_gives_the_network(pixel_size, padding):
    from atomseg.infer.columns import _resample

    data = _one_image_data(pixel_size)
    z = pixel_size / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM
    full = (_resample(data["raw"][0], z) - 0.0) / 976.0  # the whole image, as inference sees it
    big = np.pad(full, 100, mode=padding)
    rng = np.random.default_rng(0)
    for axes in (0, 3, 3, 3):
        state = rng.bit_generator.state
        x, y = trainer._resampled_patch(data, 0, 32, rng, axes, padding)
        # the same origin, drawn again
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state
        origin = [
            -int(rng2.integers(0, 32 - n + 1)) if n < 32 else trainer._patch_origin(n, 32, rng2, a)
            for n, a in ((full.shape[0], bool(axes & 1)), (full.shape[1], bool(axes & 2)))
        ]
        ref = big[100 + origin[0] : 132 + origin[0], 100 + origin[1] : 132 + origin[1]]
        np.testing.assert_allclose(x, ref, atol=1e-5)
        rows = origin[0] + np.arange(32)
        cols = origin[1] + np.arange(32)
        outside = ~(((rows >= 0) & (rows < full.shape[0]))[:, None]
                    & ((cols >= 0) & (cols < full.shape[1]))[None, :])  # fmt: skip
        assert (y[outside] == 2).all()  # the padding is don't care


@pytest.mark.parametrize("pixel_size", [0.45, 0.15, 0.06])
def test_resampled_labels_are_discs_of_the_library_radius_at_the_model_pixel_size(pixel_size):
    data = _one_image_data(pixel_size)
    data["disc_px"][:] = max(0.4 / pixel_size, 1.5)  # the library's floor of 1.5 px
    z = pixel_size / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM
    # the patch over the whole resampled image, padded around when it is smaller
    n = max(16, int(round(64 * z)))
    size = max(n, 32) + 8
    rng = np.random.default_rng(1)
    x, y = trainer._resampled_patch(data, 0, size, rng, 0, "edge")
    origin = -int(np.flatnonzero((y != 2).any(axis=1))[0])  # first row of the image
    rr, cc = np.mgrid[:size, :size]
    inside = (rr >= -origin) & (rr < n - origin) & (cc >= -origin) & (cc < n - origin)
    assert (y[~inside] == 2).all() and (y[inside] != 2).any()
    for (r, c), label in (((20.0, 30.0), 1), ((40.0, 10.0), 2)):
        rz, cz = (r + 0.5) * z - 0.5 - origin, (c + 0.5) * z - 0.5 - origin
        d = np.hypot(rr - rz, cc - cz)
        radius = 0.4 / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM  # 0.4 Å at 0.15 Å/px: 2.67 px
        assert (y[(d <= radius - 0.01) & inside] == label).all()
        assert not (y[(d > radius + 0.01) & (d < radius + 3) & inside] == label).any()


@pytest.mark.parametrize("pixel_size", [0.2, 0.15])
def test_scale_jittered_patches_are_the_image_resampled_at_the_drawn_scale(pixel_size):
    from atomseg.infer.columns import _resample

    data = _one_image_data(pixel_size)
    data["scale_jitter"] = 0.3
    rng = np.random.default_rng(3)
    factors = []
    for _ in range(6):
        state = rng.bit_generator.state
        x, y = trainer._resampled_patch(data, 0, 32, rng, 0, "edge")
        rng2 = np.random.default_rng()  # the same draws again: the factor, then the origin
        rng2.bit_generator.state = state
        j = float(np.exp(rng2.uniform(-np.log(1.3), np.log(1.3))))
        factors.append(j)
        z = pixel_size / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM * j
        full = _resample(data["raw"][0], z) / 976.0
        r0, c0 = (trainer._patch_origin(n, 32, rng2, False) for n in full.shape)
        np.testing.assert_allclose(x, full[r0 : r0 + 32, c0 : c0 + 32], atol=1e-5)
        # the disc follows the column: 0.4 Å at the patch's real scale, capped at the model's
        radius = min(0.4 / pixel_size * z, 0.4 / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM)
        rr, cc = np.mgrid[:32, :32]
        d = np.hypot(rr - ((20.0 + 0.5) * z - 0.5 - r0), cc - ((30.0 + 0.5) * z - 0.5 - c0))
        assert (y[d <= radius - 0.01] == 1).all()
        assert not (y[(d > radius + 0.01) & (d < radius + 2)] == 1).any()
    assert min(factors) >= 1 / 1.3 and max(factors) <= 1.3 and np.ptp(factors) > 0.2


def test_scale_jitter_needs_resampled_patches_and_is_recorded(library, tmp_path):
    with pytest.raises(ValueError, match="scale_jitter"):
        train(library, tmp_path / "m", n_steps=2, scale_jitter=0.2, **KW)
    with pytest.raises(ValueError, match="scale_jitter"):
        train(library, tmp_path / "m", n_steps=2, resample=1.0, scale_jitter=1.5, **KW)
    m = train(library, tmp_path / "m2", n_steps=2, resample=1.0, scale_jitter=0.25, **KW)
    training = load_model(m, device="cpu").config["training"]
    assert training["scale_jitter"] == 0.25
    assert training["command"].endswith("--resample 1 --scale-jitter 0.25")


@pytest.mark.parametrize("pixel_size", [0.3, 0.15])
@pytest.mark.parametrize("axes", [1, 2, 3])
def test_aligned_border_patches_cut_the_image_through_a_column(pixel_size, axes):
    from atomseg.infer.columns import _resample

    data = _one_image_data(pixel_size)
    z = float(data["pixel_size_angstrom"][0]) / trainer.NOMINAL_PIXEL_SIZE_ANGSTROM
    centre = (np.array([20.0, 30.0]) + 0.5) * z - 0.5  # the detectable column, resampled
    start = [int(np.round(centre[k])) if axes & (k + 1) else 0 for k in (0, 1)]
    full = (_resample(data["raw"][0], z) - 0.0) / 976.0
    cut = np.pad(full[start[0] :, start[1] :], 100, mode="edge")  # the cut image, padded
    rng = np.random.default_rng(2)
    for _ in range(5):
        x, y = trainer._resampled_patch(data, 0, 32, rng, axes, "edge", align=True)
        inside = y != 2
        r0, c0 = np.flatnonzero(inside.any(1))[0], np.flatnonzero(inside.any(0))[0]
        for k, o in ((0, r0), (1, c0)):
            if axes & (k + 1):  # the cut reaches into the patch, padded before it
                assert 0 < o <= trainer.PAD_PX or (o == 0 and (y[..., 0] != 2).any())
        # the cut's first row / column runs through the column: a half (quarter) disc there
        edge = y[r0] if axes & 1 else y[:, c0]
        assert (edge == 1).any()
        if axes == 3:  # the patch shows the cut image, edge-padded before its first row/column
            ref = cut[100 - r0 : 132 - r0, 100 - c0 : 132 - c0]
            np.testing.assert_allclose(x, ref, atol=1e-5)
            rr, cc = np.mgrid[:32, :32]
            d = np.hypot(rr - (centre[0] - start[0] + r0), cc - (centre[1] - start[1] + c0))
            assert (y[(d <= 2.0) & inside] == 1).all() and (y[d <= 2.0] == 2).any()


def test_aligned_border_patches_need_resampled_border_patches(library, tmp_path):
    with pytest.raises(ValueError, match="border_columns"):
        train(library, tmp_path / "m", n_steps=2, border_columns=0.5, **KW)
    kw = {**KW, "border_fraction": 0.5}
    m = train(library, tmp_path / "m2", n_steps=2, resample=1.0, border_columns=0.5, **kw)
    training = load_model(m, device="cpu").config["training"]
    assert training["border_columns"] == 0.5
    assert training["command"].endswith("--resample 1 --border-columns 0.5")


def test_training_on_resampled_patches_is_recorded(library, tmp_path):
    model = load_model(train(library, tmp_path / "m", n_steps=2, resample=0.5, **KW), device="cpu")
    assert model.config["training"]["resample"] == 0.5
    assert model.config["training"]["command"].endswith("--resample 0.5")
    with pytest.raises(ValueError, match="resample"):
        train(library, tmp_path / "m2", n_steps=2, resample=2.0, **KW)
    data = trainer.load_training_set(library, resample=True)
    assert len(data["columns"]) == len(data["raw"]) == 6
    assert set(np.unique(np.concatenate(data["columns"])[:, 2])) <= {1.0, 2.0}


def test_tuner_takes_the_highest_gate_among_tied_settings():
    from atomseg.train.tune import F1_TIE, _pick

    f1 = {(0.8, 0.3, 0.0): 0.981, (0.8, 0.3, 6.0): 0.982, (0.8, 0.3, 8.0): 0.980,
          (0.7, 0.3, 8.0): 0.980, (0.8, 0.6, 8.0): 0.983}  # fmt: skip
    assert _pick(f1) == (0.8, 0.3, 8.0)  # lowest score, then highest gate, then threshold
    f1[(0.8, 0.3, 8.0)] = f1[(0.7, 0.3, 8.0)] = 0.983 - 2 * F1_TIE  # no longer tied
    assert _pick(f1) == (0.8, 0.3, 6.0)
