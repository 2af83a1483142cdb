"""tomocnn.adapt: self-supervised fine-tuning of a wedge model on one tilt series.

Everything runs on a tiny untrained network (an identity at start: its head is zero) and a
48-cube phantom of two boxes. The pool of simulated cubes is cut from 40 to 5 for speed (the
module constant ``_POOL``); that changes how much is simulated, not what is tested.
"""

import importlib
import json

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tomocnn  # noqa: E402
from tomocnn.cli import main  # noqa: E402
from tomocnn.infer import pipeline_file, remove_wedge  # noqa: E402
from tomocnn.io import write_dataexchange  # noqa: E402
from tomocnn.models import WedgeModel, WedgeNet3D, load_model, save_model  # noqa: E402
from tomocnn.models.registry import sha256_of  # noqa: E402
from tomocnn.recon import reconstruct  # noqa: E402
from tomocnn.sim import project, tilt_angles  # noqa: E402
from tomocnn.train import adapt  # noqa: E402

# ``tomocnn.train.adapt`` is the function (the package re-exports it over the submodule's
# name), so monkeypatching "tomocnn.train.adapt._train_step" would set an attribute on the
# function and change nothing: patch the module object itself.
ADAPT = importlib.import_module("tomocnn.train.adapt")

N_ANGLES = 21


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", autouse=True)
def _small_pool():
    """5 simulated cubes instead of 40 (one held out): ~0.7 s an adapt call instead of ~5 s."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ADAPT, "_POOL", 5)
        yield


@pytest.fixture(scope="module")
def theta():
    return tilt_angles(60, n=N_ANGLES)


@pytest.fixture(scope="module")
def phantom():
    vol = np.zeros((48, 48, 48), np.float32)
    vol[10:38, 14:30, 12:36] = 1.0
    vol[20:30, 30:42, 30:42] = 2.0
    return vol


@pytest.fixture(scope="module")
def series(phantom, theta):
    return project(phantom, theta)


@pytest.fixture(scope="module")
def rec(series, theta):
    return reconstruct(series, theta, algorithm="sirt")


def _tiny(seed=0, width=4, **card):
    torch.manual_seed(seed)
    return WedgeModel(
        WedgeNet3D(width=width, levels=2), {"name": "tiny", "nonnegative": True, **card}
    )


def _weights(model_or_net):
    net = getattr(model_or_net, "network", model_or_net)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _adapt(series, theta, model, **kw):
    kw = {"steps": 2, "rng": 0, "algorithm": "sirt", "progress": False, **kw}
    return adapt(series, theta, model=model, **kw)


@pytest.fixture(scope="module")
def adapted(series, theta):
    """(starting model, its weights and card before, the adapted model): one adapt call."""
    base = _tiny()
    weights, card = _weights(base), json.loads(json.dumps(base.config))
    return base, weights, card, _adapt(series, theta, base)


# --- the result and its card ------------------------------------------------------------------


def test_returns_a_wedge_model_with_an_adaptation_card(adapted, rec, theta):
    base, _, _, result = adapted
    assert isinstance(result, WedgeModel)
    assert result is not base and result.network is not base.network
    card = result.config["adaptation"]
    for key in ("adapted_from", "kept", "held_out_l1_before", "held_out_l1_after", "steps"):
        assert key in card
    assert card["adapted_from"] == "tiny"
    assert card["steps"] == 2
    assert card["algorithm"] == "sirt"
    assert card["series_shape"] == [N_ANGLES, 48, 48]
    assert card["tilt_range_deg"] == [-60.0, 60.0]
    before, after = card["held_out_l1_before"], card["held_out_l1_after"]
    assert np.isfinite(before) and np.isfinite(after) and before > 0
    # the adapted weights are kept exactly when they beat the starting ones on held-out cubes
    assert (card["kept"] == "adapted") == (after < before)
    json.dumps(result.config)  # the card is plain JSON
    assert result.nonnegative and not result.network.training

    out = remove_wedge(rec, theta, model=result, fov=None)  # fov="auto" passes corners through
    assert out.shape == rec.shape and out.dtype == rec.dtype
    assert np.isfinite(out).all() and out.min() >= 0  # the card's nonnegative is kept


def test_top_level_adapt_is_the_same_function():
    assert tomocnn.adapt is adapt is ADAPT.adapt


def test_starting_model_is_not_modified(adapted):
    base, weights, card, result = adapted
    assert _same(_weights(base), weights)
    assert base.config == card and "adaptation" not in base.config
    assert not base.network.training
    if result.config["adaptation"]["kept"] == "adapted":
        assert not _same(_weights(result), weights)


def test_starting_model_is_kept_when_adapting_does_not_beat_it(series, theta):
    # with a zero learning rate (AdamW's decay is lr * weight_decay: zero too) the weights
    # cannot move, the held-out error cannot drop, and the starting model must come back
    base = _tiny()
    result = _adapt(series, theta, base, learning_rate=0.0)
    card = result.config["adaptation"]
    assert card["held_out_l1_after"] == card["held_out_l1_before"]
    assert card["kept"] != "adapted" and "starting model" in card["kept"]
    assert result.name == "tiny" and card["adapted_from"] == "tiny"
    assert _same(_weights(result), _weights(base))
    assert result.network is not base.network  # a copy, not the starting object


def test_same_seed_and_steps_give_the_same_weights(series, theta):
    a = _adapt(series, theta, _tiny(), steps=3, rng=0)
    b = _adapt(series, theta, _tiny(), steps=3, rng=0)
    assert _same(_weights(a), _weights(b))
    card_a = {k: v for k, v in a.config["adaptation"].items() if k != "seconds"}
    card_b = {k: v for k, v in b.config["adaptation"].items() if k != "seconds"}
    assert card_a == card_b


# --- the output folder -------------------------------------------------------------------------


def test_output_folder_is_a_loadable_model(series, theta, rec, tmp_path):
    out = tmp_path / "mine"
    result = _adapt(series, theta, _tiny(), output=out)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "weights.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no .mine.adapt, .mine.tmp-model
    card = json.loads((out / "model.json").read_text())
    assert card["sha256"] == sha256_of(out / "weights.pt")
    assert card["adaptation"]["steps"] == 2
    if card["adaptation"]["kept"] == "adapted":
        assert card["name"] == result.name == "mine"

    loaded = load_model(out, device="cpu")
    assert _same(_weights(loaded), _weights(result))
    assert loaded.config["adaptation"] == result.config["adaptation"]
    by_folder = remove_wedge(rec, theta, model=str(out), device="cpu")
    np.testing.assert_allclose(by_folder, remove_wedge(rec, theta, model=result), atol=1e-6)


def test_existing_output_folder_is_refused_and_left_alone(series, theta, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists"):
        _adapt(series, theta, _tiny(), output=out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_missing_parent_folder_is_refused(series, theta, tmp_path):
    with pytest.raises(FileNotFoundError):
        _adapt(series, theta, _tiny(), output=tmp_path / "no" / "mine")
    assert list(tmp_path.iterdir()) == []


def test_returned_card_does_not_claim_the_starting_weights_sha256(series, theta, tmp_path):
    save_model(tmp_path / "start", _tiny().network, {"name": "start", "nonnegative": True})
    base = load_model(tmp_path / "start", device="cpu")
    assert "sha256" in base.config
    out = tmp_path / "mine"
    result = _adapt(series, theta, base, output=out)
    assert result.config["adaptation"]["kept"] == "adapted"  # else the claim would be true
    written = json.loads((out / "model.json").read_text())["sha256"]
    assert result.config.get("sha256") in (None, written)


# --- interruption and resume -----------------------------------------------------------------


def _interrupting(real, at, exc=KeyboardInterrupt):
    """A ``_train_step`` that raises ``exc`` on its ``at``-th call (1-based); counts calls."""
    calls = []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise exc("simulated")
        return real(*args, **kwargs)

    step.calls = calls
    return step


def test_interrupted_run_leaves_a_checkpoint_and_resumes(series, theta, tmp_path, monkeypatch):
    out = tmp_path / "mine"
    work = tmp_path / ".mine.adapt"
    real = ADAPT._train_step
    monkeypatch.setattr(ADAPT, "_train_step", _interrupting(real, at=3))
    with pytest.raises(KeyboardInterrupt):
        _adapt(series, theta, _tiny(), steps=4, output=out)
    assert not out.exists()
    assert (work / "checkpoint.pt").is_file()
    ck = torch.load(work / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert int(ck["step"]) == 2  # the two steps done before Ctrl-C

    resumed = _interrupting(real, at=0)  # never raises: counts the steps of the second run
    monkeypatch.setattr(ADAPT, "_train_step", resumed)
    result = _adapt(series, theta, _tiny(), steps=4, output=out)
    assert len(resumed.calls) == 2  # only the remaining steps were trained
    assert result.config["adaptation"]["steps"] == 4
    assert load_model(out, device="cpu").config["adaptation"]["steps"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # checkpoint folder removed


def test_periodic_checkpoint_every_50_steps(series, theta, tmp_path, monkeypatch):
    # a training step that does nothing makes 50 steps free; a crash (not Ctrl-C) at step 52
    # leaves only the checkpoint written at step 50
    fake = _interrupting(lambda *a, **k: 0.0, at=52, exc=RuntimeError)
    monkeypatch.setattr(ADAPT, "_train_step", fake)
    out = tmp_path / "mine"
    with pytest.raises(RuntimeError, match="simulated"):
        _adapt(series, theta, _tiny(), steps=60, output=out)
    ck_path = tmp_path / ".mine.adapt" / "checkpoint.pt"
    ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    assert int(ck["step"]) == 50 and not out.exists()

    again = _interrupting(lambda *a, **k: 0.0, at=0)
    monkeypatch.setattr(ADAPT, "_train_step", again)
    result = _adapt(series, theta, _tiny(), steps=60, output=out)
    assert len(again.calls) == 10 and result.config["adaptation"]["steps"] == 60


def test_checkpoint_of_another_seed_is_not_resumed(series, theta, tmp_path, monkeypatch):
    out = tmp_path / "mine"
    real = ADAPT._train_step
    monkeypatch.setattr(ADAPT, "_train_step", _interrupting(real, at=2))
    with pytest.raises(KeyboardInterrupt):
        _adapt(series, theta, _tiny(), steps=3, output=out, rng=0)
    counted = _interrupting(real, at=0)
    monkeypatch.setattr(ADAPT, "_train_step", counted)
    result = _adapt(series, theta, _tiny(), steps=3, output=out, rng=1)
    assert len(counted.calls) == 3 and result.config["adaptation"]["steps"] == 3


def test_checkpoint_of_another_starting_model_is_not_resumed(series, theta, tmp_path, monkeypatch):
    out = tmp_path / "mine"
    real = ADAPT._train_step
    monkeypatch.setattr(ADAPT, "_train_step", _interrupting(real, at=2))
    with pytest.raises(KeyboardInterrupt):
        _adapt(series, theta, _tiny(width=4), steps=3, output=out)
    monkeypatch.setattr(ADAPT, "_train_step", real)
    try:
        result = _adapt(series, theta, _tiny(width=8), steps=3, output=out)
    except ValueError:  # refusing the stale checkpoint clearly would be fine too
        return
    assert result.network.width == 8 and result.config["adaptation"]["steps"] == 3


# --- bad input ---------------------------------------------------------------------------------


def _small_series(theta):
    vol = np.zeros((32, 32, 32), np.float32)
    vol[8:24, 8:24, 8:24] = 1.0
    return project(vol, theta), theta


def _few_angles(theta, series):
    keep = np.linspace(0, len(theta) - 1, 4).astype(int)
    return series[keep], theta[keep]


@pytest.mark.parametrize(
    "case, match",
    [
        ("small", "too small"),
        ("few", "at least 5 projections"),
        ("steps0", "steps"),
        ("steps_bool", "steps"),
        ("minutes", "minutes"),
        ("zero", "nothing"),
        ("tilt", "supports tilt ranges"),
    ],
)
def test_bad_input_is_a_value_error(case, match, series, theta, tmp_path):
    kw, proj, th, model = {}, series, theta, _tiny()
    if case == "small":
        proj, th = _small_series(theta)
    elif case == "few":
        proj, th = _few_angles(theta, series)
    elif case == "steps0":
        kw["steps"] = 0
    elif case == "steps_bool":
        kw["steps"] = True
    elif case == "minutes":
        kw.update(steps=None, minutes=-1)
    elif case == "zero":
        proj = np.zeros_like(series)
    elif case == "tilt":
        th = tilt_angles(45, n=N_ANGLES)
        proj = project(np.ones((48, 48, 48), np.float32), th)
        model = _tiny(supported={"max_tilt_deg": [50, 90]})
    with pytest.raises(ValueError, match=match):
        _adapt(proj, th, model, **kw)


def test_failed_call_leaves_no_hidden_folder(series, theta, tmp_path):
    with pytest.raises(ValueError, match="nothing"):
        _adapt(np.zeros_like(series), theta, _tiny(), output=tmp_path / "mine")
    assert list(tmp_path.iterdir()) == []


# --- the command line and the pipeline --------------------------------------------------------


def _tiny_folder(folder):
    tiny = _tiny()
    return save_model(folder, tiny.network, tiny.config)


def _write_mrc_series(folder, series, theta, *, angles=True):
    mrcfile = pytest.importorskip("mrcfile")
    path = folder / "series.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(series, dtype=np.float32))
    if angles:
        (folder / "series.rawtlt").write_text("".join(f"{d:.4f}\n" for d in np.degrees(theta)))
    return path


def test_cli_adapt_writes_a_model_folder_and_refuses_an_existing_one(
    series, theta, tmp_path, capsys
):
    src = _write_mrc_series(tmp_path, series, theta)
    model_dir = _tiny_folder(tmp_path / "tiny")
    out = tmp_path / "adapted"
    argv = ["adapt", str(src), "-o", str(out), "--model", str(model_dir), "--steps", "2"]
    assert main(argv) == 0
    assert str(out) in capsys.readouterr().out
    loaded = load_model(out, device="cpu")
    assert loaded.config["adaptation"]["steps"] == 2
    assert loaded.config["adaptation"]["adapted_from"] == "tiny"
    assert not (tmp_path / ".adapted.adapt").exists()

    before = sha256_of(out / "weights.pt")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tomocnn adapt: error:") and "exists" in err
    assert sha256_of(out / "weights.pt") == before


def test_cli_adapt_with_tilt_range_and_data_exchange(series, theta, tmp_path, capsys):
    src = _write_mrc_series(tmp_path, series, theta, angles=False)
    model_dir = _tiny_folder(tmp_path / "tiny")
    out = tmp_path / "adapted"
    argv = ["adapt", str(src), "-o", str(out), "--model", str(model_dir), "--steps", "2"]
    assert main([*argv, "--tilt-range", "-60", "60", "--seed", "3"]) == 0
    card = load_model(out, device="cpu").config["adaptation"]
    assert card["tilt_range_deg"] == [-60.0, 60.0] and card["series_shape"] == [N_ANGLES, 48, 48]

    h5 = tmp_path / "tilts.h5"
    write_dataexchange(h5, series, theta)
    capsys.readouterr()
    out2 = tmp_path / "adapted2"
    assert main(["adapt", str(h5), "-o", str(out2), "--model", str(model_dir), "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err


def test_pipeline_file_adapts_first_and_records_it(series, theta, tmp_path):
    src = tmp_path / "tilts.h5"
    write_dataexchange(src, series, theta)
    out = pipeline_file(
        src,
        tmp_path / "vol.h5",
        model=_tiny(),
        algorithm="sirt",
        adapt_minutes=0.01,
        consistency_iters=0,
        progress=False,
    )
    with h5py.File(out, "r") as f:
        dset = f["/exchange/data"]
        assert dset.shape == (48, 48, 48)
        assert np.isfinite(dset[...]).all()
        card = json.loads(dset.attrs["adaptation"])
        model_name = dset.attrs["tomocnn_model"]
    assert card["adapted_from"] == "tiny" and card["steps"] >= 1
    assert card["algorithm"] == "sirt"
    expected = "tiny-adapted" if card["kept"] == "adapted" else "tiny"
    assert (model_name.decode() if isinstance(model_name, bytes) else model_name) == expected
