"""tomocnn.io: Data Exchange tilt series, lazily opened arrays and safe (atomic) outputs."""

import os

import h5py
import numpy as np
import pytest

from tomocnn.io import (
    atomic_output,
    open_array,
    opened,
    read_tilt_series,
    read_volume,
    streaming_output,
    write_dataexchange,
    write_volume,
)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _theta(n=7):
    return np.deg2rad(np.linspace(-60.0, 60.0, n))


def _write_raw(path, **datasets):
    """Write an HDF5 file by hand, as an instrument would."""
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(f"/exchange/{name}", data=value)


# --- Data Exchange --------------------------------------------------------------------------


def test_dataexchange_round_trip_degrees_in_file_radians_in_api(tmp_path, rng):
    proj = rng.random((7, 5, 6), dtype=np.float32)
    theta = _theta()
    path = tmp_path / "tilt.h5"
    write_dataexchange(path, proj, theta)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["/exchange/theta"][()], np.rad2deg(theta))
        assert f["/exchange/theta"].attrs["units"] == "degrees"
        assert f["implements"][()].decode() == "exchange"
        assert f["/exchange/data"].chunks is not None
    got, got_theta = read_tilt_series(path)
    np.testing.assert_array_equal(got, proj)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got_theta, theta, rtol=0, atol=1e-15)


def test_file_written_in_degrees_is_read_in_radians(tmp_path):
    path = tmp_path / "deg.h5"
    _write_raw(path, data=np.zeros((3, 2, 2), np.float32), theta=np.array([-45.0, 0.0, 90.0]))
    _, theta = read_tilt_series(path)
    np.testing.assert_allclose(theta, [-np.pi / 4, 0.0, np.pi / 2])


def test_flat_dark_normalisation_gives_beer_lambert_line_integrals(tmp_path, rng):
    line_integrals = rng.uniform(0.0, 3.0, size=(5, 4, 6))
    gain = rng.uniform(800.0, 1200.0, size=(4, 6))  # uneven illumination / detector gain
    offset = rng.uniform(90.0, 110.0, size=(4, 6))
    counts = offset + gain * np.exp(-line_integrals)
    white = np.stack([offset + gain] * 3)
    dark = np.stack([offset] * 2)
    path = tmp_path / "raw.h5"
    write_dataexchange(path, counts, _theta(5), flat=white, dark=dark)
    proj, _ = read_tilt_series(path)
    assert proj.dtype == np.float32
    np.testing.assert_allclose(proj, line_integrals, atol=1e-4)
    raw, _ = read_tilt_series(path, normalize=False)
    np.testing.assert_allclose(raw, counts, rtol=1e-6)


def test_flat_without_dark_and_clipping_floor(tmp_path):
    counts = np.array([[[1000.0, 0.0, -5.0]]])  # zero and negative counts: clipped, not NaN
    path = tmp_path / "flat_only.h5"
    write_dataexchange(path, counts, [0.0], flat=np.full((1, 3), 1000.0))
    proj, _ = read_tilt_series(path)
    assert np.isfinite(proj).all()
    np.testing.assert_allclose(proj[0, 0], [0.0, -np.log(1e-6), -np.log(1e-6)], rtol=1e-6)


def test_without_flat_field_data_are_line_integrals(tmp_path, rng):
    proj = rng.random((3, 4, 4)).astype(np.float64)
    path = tmp_path / "li.h5"
    _write_raw(path, data=proj, theta=np.array([-10.0, 0.0, 10.0]))
    got, _ = read_tilt_series(path)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, proj, rtol=1e-6)


def test_missing_dataset_lists_what_the_file_holds(tmp_path):
    path = tmp_path / "nodata.h5"
    _write_raw(path, theta=np.zeros(3), projections=np.zeros((3, 2, 2)))
    with pytest.raises(KeyError, match=r"/exchange/data.*/exchange/projections"):
        read_tilt_series(path)
    path2 = tmp_path / "notheta.h5"
    _write_raw(path2, data=np.zeros((3, 2, 2)))
    with pytest.raises(KeyError, match="/exchange/theta"):
        read_tilt_series(path2)


def test_read_theta_reads_only_the_angles(tmp_path):
    from tomocnn.io import read_theta

    path = tmp_path / "t.h5"
    _write_raw(path, data=np.zeros((3, 2, 2)), theta=np.array([-60.0, 0.0, 60.0]))
    np.testing.assert_allclose(read_theta(path), np.deg2rad([-60.0, 0.0, 60.0]))
    _write_raw(tmp_path / "one.h5", theta=np.zeros(1))
    with pytest.raises(ValueError, match="at least two angles"):
        read_theta(tmp_path / "one.h5")
    _write_raw(tmp_path / "none.h5", data=np.zeros((3, 2, 2)))
    with pytest.raises(KeyError, match="/exchange/theta"):
        read_theta(tmp_path / "none.h5")
    with pytest.raises(FileNotFoundError):
        read_theta(tmp_path / "missing.h5")


def test_theta_length_must_match_projections(tmp_path):
    path = tmp_path / "bad.h5"
    _write_raw(path, data=np.zeros((3, 2, 2)), theta=np.zeros(4))
    with pytest.raises(ValueError, match="4 angles.*3 projections"):
        read_tilt_series(path)
    with pytest.raises(ValueError, match="one angle per projection"):
        write_dataexchange(tmp_path / "w.h5", np.zeros((3, 2, 2)), np.zeros(2))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_refused(tmp_path, bad):
    data = np.zeros((3, 2, 2))
    data[2, 1, 0] = bad
    path = tmp_path / "nan.h5"
    _write_raw(path, data=data, theta=np.zeros(3))
    with pytest.raises(ValueError, match=r"NaN or inf.*projection 2"):
        read_tilt_series(path)
    with pytest.raises(ValueError, match="NaN or inf"):
        write_dataexchange(tmp_path / "w.h5", data, np.zeros(3))
    assert not (tmp_path / "w.h5").exists()


def test_wrong_ndim_is_refused(tmp_path):
    path = tmp_path / "2d.h5"
    _write_raw(path, data=np.zeros((4, 4)), theta=np.zeros(4))
    with pytest.raises(ValueError, match=r"must be 3-D"):
        read_tilt_series(path)
    with pytest.raises(ValueError, match=r"must be 3-D"):
        write_dataexchange(tmp_path / "w.h5", np.zeros((4, 4)), np.zeros(4))


def test_non_positive_flat_field_is_refused(tmp_path):
    white = np.full((2, 2, 2), 100.0)
    dark = np.full((2, 2, 2), 10.0)
    white[:, 0, 1] = 10.0  # flat == dark at one pixel
    path = tmp_path / "flat.h5"
    write_dataexchange(path, np.full((3, 2, 2), 50.0), np.zeros(3), flat=white, dark=dark)
    with pytest.raises(ValueError, match=r"1 pixel.*data_white - .*data_dark <= 0"):
        read_tilt_series(path)
    read_tilt_series(path, normalize=False)  # the raw data can still be read


def test_mismatched_flat_shape_is_refused(tmp_path):
    path = tmp_path / "mismatch.h5"
    _write_raw(path, data=np.ones((3, 4, 5)), theta=np.zeros(3), data_white=np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"data_white.*\(4, 4\).*\(4, 5\)"):
        read_tilt_series(path)
    with pytest.raises(ValueError, match="flat"):
        write_dataexchange(tmp_path / "w.h5", np.ones((3, 4, 5)), np.zeros(3), flat=np.ones((4, 4)))


def test_not_hdf5_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_tilt_series(tmp_path / "missing.h5")
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="fake.h5.*HDF5"):
        read_tilt_series(fake)
    with pytest.raises(FileNotFoundError, match="x.tif"):
        read_tilt_series(tmp_path / "x.tif")
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(ValueError, match="x.png.*not a tilt-series format"):
        read_tilt_series(tmp_path / "x.png")


# --- open_array / read_volume -----------------------------------------------------------------


def test_h5_dataset_addressing_and_default_dataset(tmp_path, rng):
    vol = rng.random((3, 4, 5), dtype=np.float32)
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["/recon/volume"] = vol
        f["/recon/mask"] = vol[0] > 0.5  # 2-D: not a candidate for the default
    np.testing.assert_array_equal(read_volume(f"{path}:/recon/volume"), vol)
    np.testing.assert_array_equal(read_volume(path), vol)  # the only 3-D dataset
    with pytest.raises(KeyError, match=r"/recon/nothing.*/recon/mask.*/recon/volume"):
        open_array(f"{path}:/recon/nothing")
    with h5py.File(path, "a") as f:
        f["/other"] = vol
    with pytest.raises(KeyError, match="more than one 3-D dataset"):
        open_array(path)


def test_spec_with_colon_in_folder_name(tmp_path):
    folder = tmp_path / "run:1"
    folder.mkdir()
    write_volume(folder / "v.h5", np.ones((2, 2, 2), np.float32))
    assert read_volume(f"{folder}/v.h5:/exchange/data").shape == (2, 2, 2)
    assert read_volume(f"{folder}/v.h5").shape == (2, 2, 2)


def test_open_array_does_not_load_the_data(tmp_path, rng):
    vol = rng.random((4, 6, 6), dtype=np.float32)
    for name in ("v.h5", "v.npy", "v.tif", "v.mrc"):
        write_volume(tmp_path / name, vol)
    arr = open_array(tmp_path / "v.h5")
    assert isinstance(arr, h5py.Dataset)
    np.testing.assert_array_equal(arr[1:3], vol[1:3])
    arr.file.close()
    for name in ("v.npy", "v.tif", "v.mrc"):
        with opened(tmp_path / name) as arr:
            assert isinstance(arr, np.memmap), name
            np.testing.assert_array_equal(arr[2], vol[2])
    with opened(tmp_path / "v.h5") as arr:
        h5file = arr.file
    assert not h5file  # closed on exit


def test_open_array_in_place_update(tmp_path):
    for name in ("v.h5", "v.npy", "v.mrc"):
        write_volume(tmp_path / name, np.zeros((2, 3, 3), np.float32))
        with opened(tmp_path / name, mode="r+") as arr:
            arr[1] = 7.0
        assert read_volume(tmp_path / name)[1].min() == 7.0, name


def test_open_array_passes_arrays_through():
    a = np.zeros((2, 2))
    assert open_array(a) is a
    with opened(a) as b:
        assert b is a


def test_clear_errors_for_missing_unknown_and_unreadable(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        open_array(tmp_path / "nope.npy")
    (tmp_path / "v.xyz").write_bytes(b"0")
    with pytest.raises(ValueError, match=r"unsupported.*\.xyz.*\.h5.*\.npy.*\.tif.*\.mrc"):
        open_array(tmp_path / "v.xyz")
    (tmp_path / "broken.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.npy"):
        open_array(tmp_path / "broken.npy")
    with pytest.raises(ValueError, match="only applies to HDF5"):
        open_array(f"{tmp_path}/broken.npy:/data")


@pytest.mark.parametrize("name", ["v.h5", "v.npy", "v.tif", "v.tiff", "v.mrc", "v.rec"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int16])
def test_volume_round_trips(tmp_path, rng, name, dtype):
    vol = (rng.random((3, 5, 4)) * 1000).astype(dtype)
    write_volume(tmp_path / name, vol)
    got = read_volume(tmp_path / name, dtype=None)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, vol)
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_mrc_voxel_size_and_float64(tmp_path, rng):
    import mrcfile

    vol = rng.random((3, 4, 4))
    write_volume(tmp_path / "v.mrc", vol, attrs={"voxel_size_angstrom": 2.5})
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        assert float(mrc.voxel_size.x) == 2.5
        assert mrc.data.dtype == np.float32
        np.testing.assert_allclose(mrc.header.dmean, vol.mean(), rtol=1e-5)
    np.testing.assert_allclose(read_volume(tmp_path / "v.mrc"), vol, rtol=1e-6)


def test_hdf5_attrs_dataset_and_chunks(tmp_path):
    vol = np.zeros((64, 256, 256), np.float32)
    write_volume(tmp_path / "v.h5", vol, dataset="/a/b", attrs={"voxel_size_angstrom": 1.5})
    with h5py.File(tmp_path / "v.h5", "r") as f:
        dset = f["/a/b"]
        assert dset.attrs["voxel_size_angstrom"] == 1.5
        assert dset.chunks[1:] == (256, 256)  # slabs along axis 0
        assert np.prod(dset.chunks) * 4 <= 1 << 20
    with pytest.raises(TypeError, match="'bad' = None cannot be stored"):
        write_volume(tmp_path / "w.h5", vol[:1], attrs={"bad": None})
    assert not (tmp_path / "w.h5").exists()
    with pytest.warns(UserWarning, match="dropped"):
        write_volume(tmp_path / "v.npy", vol[:1], attrs={"x": 1})


def test_write_volume_streams_an_h5_dataset(tmp_path, rng):
    vol = rng.random((5, 4, 4), dtype=np.float32)
    write_volume(tmp_path / "in.h5", vol)
    with opened(tmp_path / "in.h5") as src:
        write_volume(tmp_path / "out.mrc", src)
    np.testing.assert_array_equal(read_volume(tmp_path / "out.mrc"), vol)


# --- safe outputs -----------------------------------------------------------------------------


def test_write_volume_refuses_to_overwrite_its_input(tmp_path):
    vol = np.ones((2, 2, 2), np.float32)
    write_volume(tmp_path / "in.h5", vol)
    with pytest.raises(ValueError, match="overwrite the input"):
        write_volume(tmp_path / "in.h5", vol, input_path=tmp_path / "in.h5")
    with pytest.raises(ValueError, match="overwrite the input"):  # spec form of the input
        write_volume(tmp_path / "in.h5", vol, input_path=f"{tmp_path}/in.h5:/exchange/data")
    with opened(tmp_path / "in.h5") as src:  # detected from the dataset itself
        with pytest.raises(ValueError, match="overwrite the input"):
            write_volume(tmp_path / "in.h5", src)
    np.save(tmp_path / "in.npy", vol)
    with pytest.raises(ValueError, match="overwrite the input"):
        write_volume(tmp_path / "in.npy", open_array(tmp_path / "in.npy"))
    np.testing.assert_array_equal(read_volume(tmp_path / "in.h5"), vol)


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".h5"
            with h5py.File(tmp, "w") as f:
                f["x"] = np.zeros(3)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_output_keeps_old_file_until_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text() == "old"
    with atomic_output(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_streaming_output(tmp_path):
    for name in ("s.h5", "s.npy", "s.mrc"):
        with streaming_output(tmp_path / name, (6, 4, 4), np.float32) as out:
            assert not (tmp_path / name).exists()
            for start in range(0, 6, 4):
                out[start : start + 4] = np.arange(start, min(start + 4, 6))[:, None, None]
        np.testing.assert_array_equal(read_volume(tmp_path / name)[:, 0, 0], np.arange(6))
    with pytest.raises(ZeroDivisionError):
        with streaming_output(tmp_path / "fail.h5", (2, 2, 2), np.float32) as out:
            out[0] = 1 / 0
    assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.mrc", "s.npy"]
    with pytest.raises(ValueError, match="HDF5, .npy or MRC"):
        with streaming_output(tmp_path / "s.tif", (2, 2, 2), np.float32):
            pass


def test_unwritable_or_missing_output_folder(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_volume(tmp_path / "no" / "v.h5", np.zeros((1, 1, 1)))
    import tomocnn.io._files as files

    # simulate a read-only folder (a real chmod does not stop root, who may run the tests)
    monkeypatch.setattr(files.os, "access", lambda *args, **kwargs: False)
    with pytest.raises(PermissionError, match=r"cannot write to the output folder .*permission"):
        write_volume(tmp_path / "v.h5", np.zeros((1, 1, 1)))
    with pytest.raises(PermissionError):
        with streaming_output(tmp_path / "s.h5", (1, 1, 1), np.float32):
            pass
    assert os.listdir(tmp_path) == []
