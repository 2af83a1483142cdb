"""The command lines end to end, in process: outputs, listings and clean error exits."""

import numpy as np
import pandas as pd
import pytest

from atomseg.cli import main as atomseg_main
from tomocnn.cli import main as tomocnn_main


def _columns_image(shape=(96, 96), spacing=12.0, sigma=2.5):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for r in np.arange(6, shape[0], spacing):
        for c in np.arange(6, shape[1], spacing):
            img += np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2))
    return img.astype(np.float32)


def test_atomseg_detect_writes_csv_and_overlay(tmp_path):
    np.save(tmp_path / "img.npy", _columns_image())
    out, overlay = tmp_path / "cols.csv", tmp_path / "cols.png"
    argv = ["detect", str(tmp_path / "img.npy"), "-o", str(out), "--overlay", str(overlay)]
    assert atomseg_main(argv) == 0
    table = pd.read_csv(out)
    assert list(table.columns)[:5] == ["row", "col", "score", "radius", "intensity"]
    assert len(table) > 0
    assert overlay.stat().st_size > 0


def test_atomseg_detect_stack_to_folder(tmp_path):
    np.save(tmp_path / "stack.npy", np.stack([_columns_image()] * 2))
    assert atomseg_main(["detect", str(tmp_path / "stack.npy"), "-o", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "stack.csv")
    assert set(table["frame"]) == {0, 1}


def test_atomseg_detect_says_a_guessed_scale_once(tmp_path, capsys):
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", _columns_image())
    argv = ["detect", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-o", str(tmp_path / "o")]
    assert atomseg_main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("atomseg detect: warning: no pixel size given") == 1
    assert atomseg_main([*argv, "--pixel-size", "0.15"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_atomseg_detect_inverts_a_bright_field_image(tmp_path, capsys):
    img = _columns_image()
    np.save(tmp_path / "adf.npy", img)
    np.save(tmp_path / "bf.npy", 3.0 - img)  # columns dark
    calibrated = ["--pixel-size", "0.15"]
    assert atomseg_main(["detect", str(tmp_path / "adf.npy"), "-o", str(tmp_path / "adf.csv"),
                         *calibrated]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
    argv = ["detect", str(tmp_path / "bf.npy"), *calibrated]
    assert atomseg_main([*argv, "-o", str(tmp_path / "bf.csv")]) == 0
    assert f"warning: {tmp_path / 'bf.npy'}: the image looks inverted" in capsys.readouterr().err
    overlay = tmp_path / "bf.png"
    assert atomseg_main([*argv, "--invert", "-o", str(tmp_path / "inv.csv"),
                         "--overlay", str(overlay), "--overlay-smooth", "0"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
    adf, inv = pd.read_csv(tmp_path / "adf.csv"), pd.read_csv(tmp_path / "inv.csv")
    assert len(adf) == 64
    np.testing.assert_allclose(inv[["row", "col"]], adf[["row", "col"]], atol=1e-3)
    assert overlay.stat().st_size > 0


def test_atomseg_detect_atoms_of_a_tomogram(tmp_path):
    n, voxel = 40, 0.35
    atoms = np.array([[a, b, c] for a in (14, 25) for b in (13, 26) for c in (15, 24)], float)
    zz, yy, xx = np.mgrid[:n, :n, :n]
    vol = np.zeros((n, n, n), np.float32)
    for a, b, c in atoms:
        vol += np.exp(-((zz - a) ** 2 + (yy - b) ** 2 + (xx - c) ** 2) / (2 * (0.45 / voxel) ** 2))
    vol += np.random.default_rng(0).normal(0, 0.01, vol.shape).astype(np.float32)
    np.save(tmp_path / "rec.npy", vol)
    out, overlay = tmp_path / "atoms.csv", tmp_path / "atoms.png"
    argv = ["detect", str(tmp_path / "rec.npy"), "--atoms", "--pixel-size", str(voxel)]
    assert atomseg_main([*argv, "-o", str(out), "--overlay", str(overlay)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns)[:6] == ["plane", "row", "col", "score", "intensity", "n_frames"]
    found = table[["plane", "row", "col"]].to_numpy()
    assert len(found) == len(atoms)
    assert np.linalg.norm(found[:, None] - atoms[None], axis=2).min(axis=0).max() < 0.3
    assert overlay.stat().st_size > 0


def test_atomseg_demo_scores_and_draws(tmp_path, capsys):
    figure = tmp_path / "demo.png"
    assert atomseg_main(["demo", "--size", "128", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "Au [110] nanoparticle" in out and "F1" in out
    assert figure.stat().st_size > 0


def test_atomseg_errors_are_clean(tmp_path, capsys):
    assert atomseg_main(["detect", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan))
    assert atomseg_main(["detect", str(tmp_path / "nan.npy")]) == 2
    assert "NaN" in capsys.readouterr().err
    np.save(tmp_path / "ok.npy", _columns_image())
    assert atomseg_main(["detect", str(tmp_path / "ok.npy"), "--model", "nope"]) == 2
    assert "available" in capsys.readouterr().err


def test_atomseg_detect_prints_one_table_for_several_inputs(tmp_path, capsys):
    import io

    np.save(tmp_path / "a.npy", _columns_image())
    np.save(tmp_path / "s.npy", np.stack([_columns_image()] * 2))
    names = [str(tmp_path / "a.npy"), str(tmp_path / "s.npy")]
    assert atomseg_main(["detect", *names, "--pixel-size", "0.15"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.columns[:3]) == ["file", "row", "col"]
    assert table.groupby("file").size().to_dict() == {names[0]: 64, names[1]: 128}
    assert table.loc[table["file"] == names[0], "frame"].isna().all()
    assert set(table.loc[table["file"] == names[1], "frame"]) == {0, 1}


def test_atomseg_detect_resumes_a_batch(tmp_path, capsys):
    names = []
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", _columns_image())
        names.append(str(tmp_path / f"{name}.npy"))
    out = tmp_path / "out"
    argv = ["detect", *names, "-o", str(out), "--overlay", str(tmp_path / "png"), "--resume"]
    assert atomseg_main([*argv, "--pixel-size", "0.15"]) == 0
    kept = (out / "a.csv").stat().st_mtime_ns
    (out / "b.csv").unlink()  # as if interrupted before b was done
    capsys.readouterr()
    assert atomseg_main([*argv, "--pixel-size", "0.15"]) == 0
    err = capsys.readouterr().err
    assert f"{names[0]}: done before" in err and f"{names[1]}: 64 columns" in err
    assert (out / "a.csv").stat().st_mtime_ns == kept and (out / "b.csv").is_file()
    assert atomseg_main(["detect", names[0], "--resume"]) == 2
    assert "resume needs an output" in capsys.readouterr().err


def test_atomseg_detect_goes_on_past_a_bad_input(tmp_path, capsys):
    np.save(tmp_path / "a.npy", _columns_image())
    np.save(tmp_path / "bad.npy", np.full((64, 64), np.nan))
    np.save(tmp_path / "c.npy", 3.0 - _columns_image())  # columns dark
    names = [str(tmp_path / f"{n}.npy") for n in ("a", "bad", "c")]
    assert (
        atomseg_main(["detect", *names, "-o", str(tmp_path / "out"), "--pixel-size", "0.15"]) == 2
    )
    err = capsys.readouterr().err
    assert "1 of 3 inputs failed (the others were written)" in err and "bad.npy: image" in err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"a.csv", "c.csv"}
    assert f"warning: {names[2]}: the image looks inverted" in err  # says which input
    assert "warning: " + names[0] not in err


def test_atomseg_detect_names_each_output_once(tmp_path, capsys):
    import h5py

    for sub in ("d1", "d2"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "x.npy", _columns_image())
    same = [str(tmp_path / sub / "x.npy") for sub in ("d1", "d2")]
    assert atomseg_main(["detect", *same, "-o", str(tmp_path / "out")]) == 2
    assert "would both be written as 'x'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any work
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["exchange/a"] = _columns_image()
        f["exchange/b"] = _columns_image()
    specs = [f"{tmp_path / 'f.h5'}:/exchange/{d}" for d in ("a", "b")]
    assert atomseg_main(["detect", *specs, "-o", str(tmp_path / "h5"), "--pixel-size", "0.15"]) == 0
    assert {p.name for p in (tmp_path / "h5").iterdir()} == {"f_exchange_a.csv", "f_exchange_b.csv"}


def test_atomseg_detect_rejects_a_bad_overlay_sigma(tmp_path, capsys):
    np.save(tmp_path / "ok.npy", _columns_image())
    for bad in ("-1", "nan", "wide"):
        with pytest.raises(SystemExit) as stop:
            atomseg_main(["detect", str(tmp_path / "ok.npy"), "--overlay-smooth", bad])
        assert stop.value.code == 2
        assert "--overlay-smooth" in capsys.readouterr().err


def test_models_are_listed(capsys):
    assert atomseg_main(["models"]) == 0
    assert "columns-v1" in capsys.readouterr().out
    assert tomocnn_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "wedge-v1" in out and "wedge-v2" in out
    assert "wedge-v3 " in out.replace("\t", " ") and "(default)" in out


def test_tomocnn_denoise_errors_are_clean(tmp_path, capsys):
    argv = ["denoise", str(tmp_path / "missing.h5"), "--tilt-range", "-60", "60"]
    assert tomocnn_main([*argv, "-o", str(tmp_path / "o.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()
