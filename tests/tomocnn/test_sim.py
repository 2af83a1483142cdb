"""tomocnn.sim: phantoms, tilt schemes, noise model and training pairs."""

import numpy as np
import pytest

from tomocnn.sim import (
    HELD_OUT_KINDS,
    PHANTOM_KINDS,
    TRAINING_KINDS,
    project,
    random_phantom,
    tilt_angles,
    tilt_series,
    write_pairs,
)

# --- phantoms ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PHANTOM_KINDS)
def test_phantom_kinds(kind):
    vol = random_phantom(32, kind=kind, rng=7)
    assert vol.shape == (32, 32, 32) and vol.dtype == np.float32
    assert vol.min() >= 0 and 0.1 < vol.max() <= 1
    assert vol[0, 0, 0] == 0 and vol[-1, -1, -1] == 0  # vacuum around the object
    assert np.array_equal(vol, random_phantom(32, kind=kind, rng=7))
    assert not np.array_equal(vol, random_phantom(32, kind=kind, rng=8))


def test_phantom_stays_inside_the_inscribed_sphere():
    n = 32
    r = np.sqrt(sum((a - (n - 1) / 2) ** 2 for a in np.ogrid[:n, :n, :n]))
    for seed in range(20):
        vol = random_phantom(n, rng=seed)
        assert vol[r > 0.52 * n].max() < 0.05, seed


def test_phantom_shape_tuple_and_generator():
    rng = np.random.default_rng(3)
    vol = random_phantom((16, 32, 32), kind="atomic", rng=rng)
    assert vol.shape == (16, 32, 32)


def test_training_kinds_exclude_held_out_kinds():
    assert HELD_OUT_KINDS and set(HELD_OUT_KINDS) <= set(PHANTOM_KINDS)
    assert set(TRAINING_KINDS) == set(PHANTOM_KINDS) - set(HELD_OUT_KINDS)


def test_phantom_bad_input():
    with pytest.raises(ValueError, match="choose one of"):
        random_phantom(16, kind="cat")
    with pytest.raises(ValueError, match="at least 8"):
        random_phantom(4)
    with pytest.raises(ValueError, match="square"):
        random_phantom((16, 32, 16))
    with pytest.raises(TypeError, match="rng must be"):
        random_phantom(16, rng="seed")


# --- tilt schemes --------------------------------------------------------------------------


def test_tilt_angles_uniform_and_asymmetric():
    theta = tilt_angles(60, n=61)
    assert theta.dtype == np.float32 and theta.size == 61
    np.testing.assert_allclose(np.rad2deg(theta), np.arange(-60, 61, 2.0), atol=1e-4)
    deg = np.rad2deg(tilt_angles(70, min_tilt_deg=-52, step=3))
    assert deg[0] == pytest.approx(-52) and deg[-1] == pytest.approx(68)
    assert np.allclose(np.diff(deg), 3, atol=1e-4)


def test_tilt_angles_uneven_schemes():
    deg = np.rad2deg(tilt_angles(60, n=41, scheme="saxton").astype(float))
    steps = np.diff(deg)
    mid = 0.5 * (deg[1:] + deg[:-1])
    np.testing.assert_allclose(steps / np.cos(np.deg2rad(mid)), steps[20] / np.cos(0), rtol=0.02)
    a = tilt_angles(45, n=31, scheme="uneven", rng=1)
    assert np.array_equal(a, tilt_angles(45, n=31, scheme="uneven", rng=1))
    assert np.rad2deg(a[0]) == pytest.approx(-45) and np.rad2deg(a[-1]) == pytest.approx(45)
    assert np.diff(a).std() > 0


def test_tilt_angles_orders():
    deg = np.rad2deg(tilt_angles(12, step=3, order="dose-symmetric")).round()
    assert deg.tolist() == [0, 3, -3, -6, 6, 9, -9, -12, 12]
    deg = np.rad2deg(tilt_angles(6, min_tilt_deg=-9, step=3, order="bidirectional")).round()
    assert deg.tolist() == [0, 3, 6, -3, -6, -9]
    lopsided = np.rad2deg(tilt_angles(9, min_tilt_deg=-3, step=3, order="dose-symmetric"))
    assert sorted(lopsided.round()) == [-3, 0, 3, 6, 9]


def test_tilt_angles_bad_input():
    with pytest.raises(ValueError, match="either n or step"):
        tilt_angles(60, n=10, step=2)
    with pytest.raises(ValueError, match="must be larger"):
        tilt_angles(-10, min_tilt_deg=10)
    with pytest.raises(ValueError, match="choose one of"):
        tilt_angles(60, scheme="random")
    with pytest.raises(ValueError, match="choose one of"):
        tilt_angles(60, order="reverse")


# --- noise model ---------------------------------------------------------------------------


def _slab():
    vol = np.zeros((8, 16, 16), np.float32)
    vol[:, 4:12, 4:12] = 0.5
    return vol


def test_noise_free_tilt_series_is_the_projection():
    theta = tilt_angles(60, n=7)
    np.testing.assert_array_equal(tilt_series(_slab(), theta, rng=0), project(_slab(), theta))


def test_poisson_noise_variance_follows_the_dose():
    vol, theta = _slab(), np.zeros(200, np.float32)  # 200 identical projections
    clean = project(vol, theta[:1])[0]
    p_max = clean.max()
    inside = clean > 0.99 * p_max
    var = {}
    for dose in (50.0, 200.0):
        noisy = tilt_series(vol, theta, dose_e_per_A2=dose, pixel_size_angstrom=2.0, rng=1)
        var[dose] = noisy[:, inside].var(axis=0).mean()
        expected = clean[inside].mean() * p_max / (dose * 2.0**2)
        assert var[dose] == pytest.approx(expected, rel=0.1)
        assert noisy[:, inside].mean() == pytest.approx(clean[inside].mean(), rel=0.01)
    assert var[50.0] / var[200.0] == pytest.approx(4, rel=0.15)


def test_read_noise_and_jitter():
    vol, theta = _slab(), np.zeros(100, np.float32)
    clean = project(vol, theta)
    noisy = tilt_series(vol, theta, read_noise=0.05, rng=2)
    assert (noisy - clean).std() == pytest.approx(0.05 * clean.max(), rel=0.05)
    shifted = tilt_series(vol, theta, jitter_px=1.0, rng=3)
    cols = np.arange(16)
    centroids = (shifted.sum(axis=1) * cols).sum(axis=1) / shifted.sum(axis=(1, 2))
    assert 0.5 < centroids.std() < 1.5
    assert np.array_equal(shifted, tilt_series(vol, theta, jitter_px=1.0, rng=3))


def test_tilt_series_bad_input():
    theta = tilt_angles(60, n=7)
    with pytest.raises(ValueError, match="dose_e_per_A2 must be > 0"):
        tilt_series(_slab(), theta, dose_e_per_A2=0)
    with pytest.raises(ValueError, match="read_noise must be >= 0"):
        tilt_series(_slab(), theta, read_noise=-1)
    with pytest.raises(ValueError, match="must be 3-D"):
        tilt_series(_slab()[0], theta)
    nan = _slab()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        project(nan, theta)


# --- training pairs ------------------------------------------------------------------------


_SMALL = {"size": 16, "seed": 5, "n_iter": 5, "progress": False, "workers": 1}


def _read(path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path) as f:
        data = {k: f[k][...] for k in f if k != "theta"}
        data["theta"] = [np.asarray(t) for t in f["theta"][...]]
        return data, dict(f.attrs), {k: (f[k].chunks, f[k].compression) for k in f}


def test_write_pairs_layout(tmp_path):
    path = write_pairs(tmp_path / "pairs.h5", n=3, **_SMALL)
    assert path == str(tmp_path / "pairs.h5")
    data, attrs, storage = _read(path)
    assert data["recon"].shape == data["truth"].shape == (3, 16, 16, 16)
    assert data["recon"].dtype == data["truth"].dtype == np.float32
    assert storage["recon"] == ((1, 16, 16, 16), "lzf")
    assert attrs["format_version"] == 1 and attrs["n_done"] == attrs["n_target"] == 3
    assert attrs["seed"] == 5 and attrs["size"] == 16
    for i, theta in enumerate(data["theta"]):
        deg = np.rad2deg(theta)
        assert theta.dtype == np.float32
        assert deg.min() == pytest.approx(data["min_tilt_deg"][i], abs=1e-3)
        assert deg.max() == pytest.approx(data["max_tilt_deg"][i], abs=1e-3)
        assert 45 - 3.01 <= data["max_tilt_deg"][i] <= 75 + 1e-3  # up to a step below 45
    assert set(data["kind"].astype(str)) <= set(TRAINING_KINDS)
    assert set(data["algorithm"].astype(str)) <= {"sirt", "fbp"}
    assert np.all(data["dose"] > 0) and len(set(data["seed"])) == 3
    assert not (tmp_path / "pairs.h5.partial").exists()


def test_resumed_pairs_file_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    import tomocnn.sim.pairs as pairs

    full, _, _ = _read(write_pairs(tmp_path / "full.h5", n=4, **_SMALL))

    real = pairs._make_pair

    def crash_at_2(i, settings):
        if i == 2:
            raise KeyboardInterrupt
        return real(i, settings)

    monkeypatch.setattr(pairs, "_make_pair", crash_at_2)
    with pytest.raises(KeyboardInterrupt):
        write_pairs(tmp_path / "resumed.h5", n=4, **_SMALL)
    partial, attrs, _ = _read(tmp_path / "resumed.h5.partial")
    assert attrs["n_done"] == 2 and not (tmp_path / "resumed.h5").exists()
    monkeypatch.setattr(pairs, "_make_pair", real)
    resumed, _, _ = _read(write_pairs(tmp_path / "resumed.h5", n=4, **_SMALL))
    for key in full:
        if key == "theta":
            assert all(np.array_equal(a, b) for a, b in zip(full[key], resumed[key]))
        else:
            np.testing.assert_array_equal(full[key], resumed[key], err_msg=key)

    # a complete file is extended to a larger n with the same records first
    write_pairs(tmp_path / "resumed.h5", n=5, **_SMALL)
    extended, attrs, _ = _read(tmp_path / "resumed.h5")
    assert attrs["n_done"] == 5
    np.testing.assert_array_equal(extended["recon"][:4], full["recon"])


def test_write_pairs_refuses_other_settings(tmp_path):
    write_pairs(tmp_path / "p.h5", n=1, **_SMALL)
    with pytest.raises(ValueError, match="other settings"):
        write_pairs(tmp_path / "p.h5", n=2, **{**_SMALL, "seed": 6})


def test_write_pairs_options_and_bad_input(tmp_path):
    data, _, _ = _read(
        write_pairs(
            tmp_path / "p.h5",
            n=2,
            tilt_ranges_deg=[50],
            steps_deg=[2.5],
            algorithms=["cgls"],
            kinds=["rod"],
            **_SMALL,
        )
    )
    assert data["kind"].astype(str).tolist() == ["rod", "rod"]
    assert data["algorithm"].astype(str).tolist() == ["cgls", "cgls"]
    assert all(t.size == 41 for t in data["theta"])
    with pytest.raises(ValueError, match="unknown algorithm"):
        write_pairs(tmp_path / "q.h5", n=1, algorithms=["art"], **_SMALL)
    with pytest.raises(ValueError, match="unknown phantom kind"):
        write_pairs(tmp_path / "q.h5", n=1, kinds=["cat"], **_SMALL)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        write_pairs(tmp_path / "q.h5", n=0, **_SMALL)


def test_simulate_command_line(tmp_path):
    from tomocnn.cli import main

    out = tmp_path / "cli.h5"
    assert (
        main(
            [
                "simulate",
                "--n",
                "1",
                "--size",
                "16",
                "-o",
                str(out),
                "--tilt-range",
                "60",
                "--algorithm",
                "fbp",
            ]
        )
        == 0
    )
    data, attrs, _ = _read(out)
    assert attrs["n_done"] == 1 and data["algorithm"][0] == b"fbp"
    assert data["max_tilt_deg"][0] == 60
