"""The wedge network, model folders, the registry and resumable training."""

import h5py
import numpy as np
import pytest
import torch

from tomocnn.models import WedgeModel, list_models, load_model, save_model
from tomocnn.models.network import WedgeNet3D, tilt_condition
from tomocnn.models.registry import _SHIPPED, WEIGHTS_DIR, sha256_of
from tomocnn.train import train


def _random_net(seed=0, width=4, levels=2):
    torch.manual_seed(seed)
    net = WedgeNet3D(width=width, levels=levels)
    torch.nn.init.normal_(net.head.weight, std=0.1)
    return net


def test_network_starts_as_identity():
    net = WedgeNet3D(width=4, levels=2)
    x = torch.randn(1, 1, 8, 8, 8)
    assert torch.equal(net(x, torch.zeros(1, 2)), x)


def test_halo_covers_the_receptive_field():
    net = _random_net(levels=3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    n = 64
    x = torch.zeros(1, 1, n, n, n, requires_grad=True)
    net(x, torch.tensor([[-0.8, 0.8]]))[0, 0, n // 2, n // 2, n // 2].backward()
    reach = (x.grad[0, 0] != 0).nonzero() - n // 2
    assert reach.abs().max().item() <= net.halo


def test_conditioning_changes_the_output():
    net = _random_net()
    x = torch.randn(1, 1, 8, 8, 8)
    a = net(x, torch.tensor([tilt_condition((-45, 45))]))
    b = net(x, torch.tensor([tilt_condition((-75, 75))]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("bad", [(60, -60), (-100, 60), (10, 10)])
def test_bad_tilt_range(bad):
    with pytest.raises(ValueError, match="tilt range"):
        tilt_condition(bad)


def test_save_load_round_trip(tmp_path):
    net = _random_net()
    folder = save_model(tmp_path / "m", net, {"name": "m", "normalisation": {"percentile": 99}})
    model = load_model(folder, device="cpu")
    x = np.random.default_rng(0).random((2, 8, 8, 8)).astype(np.float32)
    ref = WedgeModel(net, {}).predict(x, tilt_range_deg=(-60, 60))
    np.testing.assert_array_equal(model.predict(x, tilt_range_deg=(-60, 60)), ref)
    assert model.config["sha256"] == sha256_of(folder / "weights.pt")


def test_unknown_model_lists_available():
    with pytest.raises(KeyError, match="available"):
        load_model("nope")


@pytest.mark.parametrize("name", sorted(_SHIPPED))
def test_every_shipped_model_passes_sha256_and_runs(name):
    assert sha256_of(WEIGHTS_DIR / name / "weights.pt") == _SHIPPED[name]
    model = load_model(name, device="cpu")
    m = model.multiple
    x = np.zeros((1, 2 * m, 2 * m, 2 * m), np.float32)
    assert model.predict(x, tilt_range_deg=(-60, 60)).shape == x.shape
    assert name in list_models()


def test_predict_rejects_bad_blocks():
    model = WedgeModel(_random_net(), {})
    with pytest.raises(ValueError, match="multiples"):
        model.predict(np.zeros((1, 7, 8, 8), np.float32), tilt_range_deg=(-60, 60))
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((8, 8, 8), np.float32), tilt_range_deg=(-60, 60))


def _pairs_file(path, n=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        truth = rng.random((n, size, size, size)).astype(np.float32)
        f["truth"] = truth
        f["recon"] = truth + 0.1 * rng.standard_normal(truth.shape).astype(np.float32)
        f["min_tilt_deg"] = np.full(n, -60.0, np.float32)
        f["max_tilt_deg"] = np.full(n, 60.0, np.float32)
        f["algorithm"] = np.array(["sirt"] * n, dtype=h5py.string_dtype())
        f.attrs["n_done"] = n


def test_training_runs_any_number_of_steps(tmp_path):
    pairs = tmp_path / "pairs.h5"
    _pairs_file(pairs)
    kw = dict(batch_size=2, width=4, levels=2, patch=8, checkpoint_every=10, progress=False)
    for n in (1, 20):  # 20: a one-step warm-up broke torch's one-cycle schedule
        assert (train(pairs, tmp_path / f"m{n}", n_steps=n, **kw) / "model.json").is_file()


def test_training_resume_really_continues(tmp_path):
    pairs = tmp_path / "pairs.h5"
    _pairs_file(pairs)
    kw = dict(batch_size=2, width=4, levels=2, patch=8, checkpoint_every=1, progress=False)
    ref = train(pairs, tmp_path / "ref", n_steps=3, **kw)
    # run 3 steps but stop after the first by raising inside the loop
    out = tmp_path / "cut"
    import tomocnn.train.trainer as tr

    calls = {"n": 0}
    original = tr._batch

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    tr._batch = flaky
    try:
        with pytest.raises(KeyboardInterrupt):
            train(pairs, out, n_steps=3, **kw)
    finally:
        tr._batch = original
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 1
    train(pairs, out, n_steps=3, **kw)
    a = load_model(ref, device="cpu").network.state_dict()
    b = load_model(out, device="cpu").network.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_training_rejects_mismatched_checkpoint(tmp_path):
    pairs = tmp_path / "pairs.h5"
    _pairs_file(pairs)
    kw = dict(batch_size=2, width=4, levels=2, patch=8, progress=False)
    train(pairs, tmp_path / "m", n_steps=2, **kw)
    with pytest.raises(ValueError, match="no-resume"):
        train(pairs, tmp_path / "m", n_steps=5, **kw)


@pytest.mark.parametrize("nonnegative", [True, False])
def test_model_card_records_the_output_constraint(tmp_path, nonnegative):
    pairs = tmp_path / "pairs.h5"
    _pairs_file(pairs)
    kw = dict(batch_size=2, width=4, levels=2, patch=8, progress=False)
    folder = train(pairs, tmp_path / "m", n_steps=2, nonnegative=nonnegative, **kw)
    model = load_model(folder, device="cpu")
    assert model.config["nonnegative"] is nonnegative and model.nonnegative is nonnegative
    assert ("--signed" in model.config["training"]["command"]) is not nonnegative
    out = model.predict(-np.ones((1, 8, 8, 8), np.float32), tilt_range_deg=(-60, 60))
    assert bool(out.min() >= 0) is nonnegative
