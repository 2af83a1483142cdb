"""atomseg.io: images and stacks with their pixel size in Å, and atomic CSV tables."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from atomseg.io import read_image, read_stack_lazy, write_table_csv


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture
def image(rng):
    return (rng.random((12, 16)) * 1000).astype(np.uint16)


# --- npy, HDF5 ----------------------------------------------------------------------------------


def test_npy_image_and_stack(tmp_path, rng, image):
    np.save(tmp_path / "im.npy", image)
    got, pixel_size = read_image(tmp_path / "im.npy")
    assert got.dtype == np.float32 and pixel_size is None
    np.testing.assert_array_equal(got, image)
    stack = rng.random((3, 12, 16))
    np.save(tmp_path / "st.npy", stack[:, None])  # (3, 1, 12, 16): singleton axis dropped
    got, _ = read_image(tmp_path / "st.npy")
    assert got.shape == (3, 12, 16)
    np.testing.assert_allclose(read_image(tmp_path / "st.npy", frame=-1)[0], stack[2], rtol=1e-6)
    assert not isinstance(got, np.memmap)


def test_frame_selection_rules(tmp_path, image):
    np.save(tmp_path / "im.npy", image)
    assert read_image(tmp_path / "im.npy", frame=0)[0].shape == image.shape  # a stack of one
    with pytest.raises(ValueError, match="frame 1 out of range for 1 frame"):
        read_image(tmp_path / "im.npy", frame=1)
    with pytest.raises(TypeError, match="frame"):
        read_image(tmp_path / "im.npy", frame=1.0)


def test_h5_with_pixel_size_attribute(tmp_path, rng, image):
    path = tmp_path / "im.h5"
    stack = rng.random((4, 12, 16)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["/scan/haadf"] = image
        f["/scan/haadf"].attrs["pixel_size_angstrom"] = 0.125
        f["/series/frames"] = stack
        f["/series"].attrs["pixel_size_angstrom"] = 0.25  # on the parent group
        f["/meta/counts"] = np.arange(5)
    got, pixel_size = read_image(f"{path}:/scan/haadf")
    np.testing.assert_array_equal(got, image)
    assert pixel_size == 0.125
    frame, pixel_size = read_image(f"{path}:/series/frames", frame=2)
    np.testing.assert_array_equal(frame, stack[2])
    assert pixel_size == 0.25
    with pytest.raises(KeyError, match=r"/scan/nope.*/scan/haadf"):
        read_image(f"{path}:/scan/nope")
    with pytest.raises(KeyError, match="more than one 2-D or 3-D dataset"):
        read_image(path)


def test_h5_single_dataset_default_and_bad_attribute(tmp_path, image):
    path = tmp_path / "one.h5"
    with h5py.File(path, "w") as f:
        f["img"] = image
        f["img"].attrs["pixel_size_angstrom"] = -1.0
    with pytest.raises(ValueError, match="pixel_size_angstrom.*positive"):
        read_image(path)
    with h5py.File(path, "a") as f:
        del f["img"].attrs["pixel_size_angstrom"]
    got, pixel_size = read_image(path)
    assert pixel_size is None and got.shape == image.shape


# --- TIFF -----------------------------------------------------------------------------------------


def test_tif_stack_with_imagej_calibration(tmp_path, rng):
    import tifffile

    stack = rng.random((3, 12, 16)).astype(np.float32)
    for unit, pixel, expected in [("nm", 0.02, 0.2), ("\\u00B5m", 2e-5, 0.2), ("pm", 20, 0.2)]:
        tifffile.imwrite(
            tmp_path / "st.tif",
            stack,
            imagej=True,
            resolution=(1 / pixel, 1 / pixel),
            metadata={"unit": unit, "axes": "ZYX"},
        )
        got, pixel_size = read_image(tmp_path / "st.tif")
        np.testing.assert_array_equal(got, stack)
        assert pixel_size == pytest.approx(expected, rel=1e-4), unit
    np.testing.assert_array_equal(read_image(tmp_path / "st.tif", frame=1)[0], stack[1])


def test_tif_calibration_sources(tmp_path, image):
    import tifffile

    path = tmp_path / "im.tif"
    tifffile.imwrite(path, image)  # no calibration
    assert read_image(path)[1] is None
    tifffile.imwrite(path, image, resolution=(72, 72), resolutionunit="INCH")  # a print dpi
    assert read_image(path)[1] is None
    tifffile.imwrite(path, image, resolution=(300, 300), resolutionunit="CENTIMETER")
    assert read_image(path)[1] is None  # 33 µm pixels: a print setting, not a calibration
    tifffile.imwrite(path, image, resolution=(5e7, 5e7), resolutionunit="CENTIMETER")
    assert read_image(path)[1] == pytest.approx(2.0)  # 0.2 nm pixels
    tifffile.imwrite(path, image, imagej=True, resolution=(3, 3), metadata={"unit": "pixel"})
    assert read_image(path)[1] is None
    fei = "[User]\nDate=01/01/2024\n[Scan]\nPixelWidth=1.5e-11\nPixelHeight=1.5e-11\n"
    tifffile.imwrite(path, image, extratags=[(34682, "s", 0, fei, True)])
    got, pixel_size = read_image(path)
    np.testing.assert_array_equal(got, image)
    assert pixel_size == pytest.approx(0.15)


def test_rgb_tif_and_png_to_grey(tmp_path, rng):
    import tifffile
    from PIL import Image

    rgb = rng.integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    grey = rgb.astype(np.float64) @ [0.2125, 0.7154, 0.0721]
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "ca.png")
    for name in ("c.tif", "c.png", "ca.png"):
        got, pixel_size = read_image(tmp_path / name)
        assert got.shape == (10, 14) and got.dtype == np.float32, name
        np.testing.assert_allclose(got, grey, rtol=1e-5)
        assert pixel_size is None


def test_png_8_and_16_bit_and_jpeg(tmp_path, rng):
    from PIL import Image

    im8 = rng.integers(0, 256, size=(9, 11), dtype=np.uint8)
    im16 = rng.integers(0, 65536, size=(9, 11), dtype=np.uint16)
    Image.fromarray(im8).save(tmp_path / "a.png")
    Image.fromarray(im16).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png")[0], im8)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0], im16)
    smooth = np.tile(np.linspace(0, 255, 16), (16, 1)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "s.jpg", quality=95)
    got, _ = read_image(tmp_path / "s.jpg")
    assert got.shape == (16, 16)
    assert np.abs(got - smooth).max() < 8  # lossy


# --- RosettaSciIO formats ---------------------------------------------------------------------


def _emd(path, data, units, scale, title="HAADF"):
    from rsciio.emd import file_writer

    names = ["frame", "y", "x"][-data.ndim :]
    axes = [
        {"name": n, "size": s, "scale": scale, "offset": 0.0, "units": units, "navigate": False}
        for n, s in zip(names, data.shape)
    ]
    if data.ndim == 3:
        axes[0].update(units="", scale=1.0)
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {}},
        "original_metadata": {},
    }
    file_writer(str(path), signal)


def test_emd_written_by_rosettasciio(tmp_path, rng):
    pytest.importorskip("rsciio")
    image = rng.random((12, 16)).astype(np.float32)
    for units, scale, expected in [("nm", 0.05, 0.5), ("µm", 5e-5, 0.5), ("pm", 50.0, 0.5)]:
        _emd(tmp_path / "im.emd", image, units, scale)
        got, pixel_size = read_image(tmp_path / "im.emd")
        np.testing.assert_array_equal(got, image)
        assert pixel_size == pytest.approx(expected), units
    assert read_image(f"{tmp_path}/im.emd:/HAADF")[1] == pytest.approx(0.5)
    with pytest.raises(KeyError, match="titles"):
        read_image(f"{tmp_path}/im.emd:/BF")
    stack = rng.random((3, 12, 16)).astype(np.float32)
    _emd(tmp_path / "st.emd", stack, "nm", 0.02)
    got, pixel_size = read_image(tmp_path / "st.emd", frame=1)
    np.testing.assert_array_equal(got, stack[1])
    assert pixel_size == pytest.approx(0.2)


def _fake_signal(data, units, scale, title="", navigate_first=False):
    axes = [
        {"index_in_array": i, "size": n, "scale": scale, "offset": 0, "units": units}
        for i, n in enumerate(np.shape(data))
    ]
    if navigate_first:
        axes[0].update(units="", scale=1.0)
    return {"data": data, "axes": axes, "metadata": {"General": {"title": title}}}


# No dm3/dm4/ser writer exists and no such files ship with the test suite: these tests replace
# RosettaSciIO's reader by one returning the dictionaries its documentation describes, so they
# test how the dictionaries are interpreted (units, choice of image), not the file parsers.
@pytest.mark.parametrize(
    ("module", "suffix"),
    [("digitalmicrograph", ".dm3"), ("digitalmicrograph", ".dm4"), ("tia", ".ser")],
)
def test_rsciio_dictionaries_to_image_and_angstrom(tmp_path, monkeypatch, rng, module, suffix):
    rsciio_module = pytest.importorskip(f"rsciio.{module}")
    image = rng.random((8, 10)).astype(np.float32)
    path = tmp_path / f"im{suffix}"
    path.write_bytes(b"placeholder")

    def use(signals):
        monkeypatch.setattr(rsciio_module, "file_reader", lambda *a, **k: signals)

    for units, scale, expected in [("nm", 0.01, 0.1), ("μm", 1e-5, 0.1), ("Å", 0.1, 0.1)]:
        use([_fake_signal(image, units, scale)])
        got, pixel_size = read_image(path)
        np.testing.assert_array_equal(got, image)
        assert pixel_size == pytest.approx(expected), units
    use([_fake_signal(image, "", 1.0)])
    assert read_image(path)[1] is None
    use([_fake_signal(image, "1/nm", 0.3)])
    with pytest.warns(UserWarning, match="reciprocal"):
        assert read_image(path)[1] is None
    spectrum = _fake_signal(np.zeros((4, 5, 100)), "eV", 0.5)
    use(
        [
            spectrum,
            _fake_signal(image, "nm", 0.01, "DF"),
            _fake_signal(2 * image, "nm", 0.01, "HAADF"),
        ]
    )
    np.testing.assert_array_equal(read_image(path)[0], 2 * image)
    use([spectrum, _fake_signal(image, "nm", 0.01, "DF"), _fake_signal(image, "nm", 0.01, "BF")])
    with pytest.raises(ValueError, match=r"2 images \['DF', 'BF'\]"):
        read_image(path)
    use([spectrum])
    with pytest.raises(ValueError, match="no 2-D image"):
        read_image(path)
    stack = rng.random((3, 8, 10)).astype(np.float32)
    use([_fake_signal(stack, "nm", 0.01, navigate_first=True)])
    got, pixel_size = read_image(path)
    assert got.shape == (3, 8, 10) and pixel_size == pytest.approx(0.1)

    def broken(*args, **kwargs):
        raise struct_error("unpack requires a buffer of 4 bytes")

    struct_error = type("error", (Exception,), {})
    monkeypatch.setattr(rsciio_module, "file_reader", broken)
    with pytest.raises(ValueError, match=rf"im\{suffix}.*unpack requires"):
        read_image(path)


def test_non_square_pixels_warn(tmp_path, monkeypatch):
    dm = pytest.importorskip("rsciio.digitalmicrograph")
    signal = _fake_signal(np.zeros((4, 4)), "nm", 0.01)
    signal["axes"][0]["scale"] = 0.02
    monkeypatch.setattr(dm, "file_reader", lambda *a, **k: [signal])
    (tmp_path / "a.dm4").write_bytes(b"x")
    with pytest.warns(UserWarning, match="non-square"):
        assert read_image(tmp_path / "a.dm4")[1] == pytest.approx(0.1)


def test_mrc_tomogram_with_its_voxel_size(tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    vol = rng.random((5, 12, 10)).astype(np.float32)
    with mrcfile.new(tmp_path / "rec.rec") as mrc:
        mrc.set_data(vol)
        mrc.voxel_size = 0.35
    data, pixel_size = read_image(tmp_path / "rec.rec")
    assert data.shape == (5, 12, 10) and pixel_size == pytest.approx(0.35)
    np.testing.assert_array_equal(data, vol)
    with mrcfile.new(tmp_path / "plain.mrc") as mrc:
        mrc.set_data(vol[0])  # voxel size 0: uncalibrated
    assert read_image(tmp_path / "plain.mrc")[1] is None
    (tmp_path / "bad.mrc").write_bytes(b"not an mrc file at all" * 20)
    with pytest.raises(ValueError, match="bad.mrc"):
        read_image(tmp_path / "bad.mrc")


def test_garbage_dm3_is_a_clear_value_error(tmp_path):
    pytest.importorskip("rsciio")
    (tmp_path / "bad.dm3").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="bad.dm3"):
        read_image(tmp_path / "bad.dm3")


# --- errors ------------------------------------------------------------------------------------


def test_unsupported_missing_and_unreadable(tmp_path):
    (tmp_path / "im.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=r"unsupported.*\.bmp.*\.npy.*\.tif.*\.png.*\.dm3.*\.ser"):
        read_image(tmp_path / "im.bmp")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_image(tmp_path / "missing.tif")
    for name in ("bad.tif", "bad.png", "bad.npy", "bad.h5"):
        (tmp_path / name).write_bytes(b"this is not an image")
        with pytest.raises(ValueError, match=name):
            read_image(tmp_path / name)


def test_wrong_ndim_after_squeezing(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"2-D.*3-D.*\(2, 3, 4, 5\)"):
        read_image(tmp_path / "v.npy")
    np.save(tmp_path / "line.npy", np.zeros((1, 7)))
    with pytest.raises(ValueError, match="2-D"):
        read_image(tmp_path / "line.npy")


# --- lazy stacks -----------------------------------------------------------------------------


def test_read_stack_lazy_does_not_load(tmp_path, rng):
    import tifffile

    stack = rng.random((4, 8, 8)).astype(np.float32)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["frames"] = stack
        f["frames"].attrs["pixel_size_angstrom"] = 0.3
    lazy, pixel_size = read_stack_lazy(tmp_path / "s.h5")
    assert isinstance(lazy, h5py.Dataset) and pixel_size == 0.3
    np.testing.assert_array_equal(lazy[2], stack[2])
    lazy.file.close()
    np.save(tmp_path / "s.npy", stack)
    lazy, _ = read_stack_lazy(tmp_path / "s.npy")
    assert isinstance(lazy, np.memmap)
    tifffile.imwrite(
        tmp_path / "s.tif", stack, imagej=True, resolution=(50, 50), metadata={"unit": "nm"}
    )
    lazy, pixel_size = read_stack_lazy(tmp_path / "s.tif")
    assert isinstance(lazy, np.memmap) and pixel_size == pytest.approx(0.2)
    np.testing.assert_array_equal(lazy[3], stack[3])
    # compressed: cannot be memory-mapped, so it is loaded
    tifffile.imwrite(tmp_path / "z.tif", stack, compression="zlib", photometric="minisblack")
    loaded, _ = read_stack_lazy(tmp_path / "z.tif")
    np.testing.assert_array_equal(loaded, stack)


# --- tables ------------------------------------------------------------------------------------


def test_write_table_csv_round_trip_and_atomic(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"row": [0.5, 10.25], "col": [3.125, 4.0], "element": ["Sr", "Ti"]})
    write_table_csv(table, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), table)

    def fail_halfway(self, path, **kwargs):
        with open(path, "w") as fh:
            fh.write("row,col\n1,")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_table_csv(table, tmp_path / "new.csv")
    assert sorted(os.listdir(tmp_path)) == ["t.csv"]
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_table_csv(table, tmp_path / "missing" / "t.csv")


def test_atomseg_io_does_not_import_tomocnn():
    code = "import sys, atomseg.io; print('tomocnn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
