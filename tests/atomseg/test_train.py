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
    assert cfg["detection"]["val_min_snr"] == 5.0  # the library's label cut (Rose's, default)
    assert cfg["training"]["command"].startswith("atomseg train")
    image = np.random.default_rng(0).random((48, 48))
    assert list(locate(image, model=model).columns)[:2] == ["row", "col"]


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
