"""tomocnn.io.read_tilt_series: MRC/IMOD, FEI, SerialEM, TIFF, .npy and HyperSpy tilt series."""

import warnings

import numpy as np
import pytest

from tomocnn.io import read_tilt_series, tilt_angles_from_range

mrcfile = pytest.importorskip("mrcfile")

N_ANGLES = 5
DEG = np.linspace(-60.0, 60.0, N_ANGLES)  # -60, -30, 0, 30, 60


def _stack(n=N_ANGLES, rows=6, cols=8, seed=0):
    return np.random.default_rng(seed).random((n, rows, cols)).astype(np.float32)


def _write_mrc(path, data):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
    return path


def _write_angles(path, deg):
    path.write_text("".join(f"{d:.2f}\n" for d in deg))
    return path


def _fei_extended_header(deg):
    """Old FEI extended header: one 128-byte record per section, ``a_tilt`` its first float."""
    records = np.zeros((len(deg), 32), "<f4")
    records[:, 0] = deg
    records[:, 1] = 7.5  # b_tilt and the rest: anything
    return np.frombuffer(records.tobytes(), dtype="V128")


# --- MRC with angles beside it ---------------------------------------------------------------


@pytest.mark.parametrize("side", [".rawtlt", ".tlt"])
def test_mrc_with_angle_file_round_trip(tmp_path, side):
    data = _stack()
    path = _write_mrc(tmp_path / "series.mrc", data)
    _write_angles(tmp_path / f"series{side}", DEG)
    proj, theta = read_tilt_series(path)
    assert proj.dtype == np.float32 and proj.shape == data.shape
    np.testing.assert_array_equal(proj, data)  # as stored: no flip, no transpose
    assert theta.dtype == np.float64
    np.testing.assert_allclose(np.rad2deg(theta), DEG, atol=1e-9)


@pytest.mark.parametrize("ext", [".st", ".ali", ".mrcs"])
def test_imod_extensions_are_mrc(tmp_path, ext):
    data = _stack()
    path = _write_mrc(tmp_path / f"series{ext}", data)
    _write_angles(tmp_path / "series.rawtlt", DEG)
    proj, theta = read_tilt_series(str(path))  # a str works as well as a Path
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_rawtlt_is_preferred_to_tlt_and_to_the_header(tmp_path):
    path = tmp_path / "series.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_stack())
        mrc.set_extended_header(_fei_extended_header(DEG / 2))
    _write_angles(tmp_path / "series.tlt", DEG + 1)
    _write_angles(tmp_path / "series.rawtlt", DEG)
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG)
    (tmp_path / "series.rawtlt").unlink()
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG + 1)
    (tmp_path / "series.tlt").unlink()
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG / 2, atol=1e-5)


def test_mrc_with_serialem_mdoc(tmp_path):
    data = _stack()
    path = _write_mrc(tmp_path / "series.mrc", data)
    lines = ["PixelSpacing = 1.0", "ImageFile = series.mrc", ""]
    for i, d in enumerate(DEG):
        lines += [f"[ZValue = {i}]", f"TiltAngle = {d:.2f}", "ExposureTime = 1.0", ""]
    (tmp_path / "series.mrc.mdoc").write_text("\n".join(lines))
    proj, theta = read_tilt_series(path)
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_unreadable_mdoc_line_is_a_value_error(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    (tmp_path / "series.mrc.mdoc").write_text("[ZValue = 0]\nTiltAngle = minus sixty\n")
    with pytest.raises(ValueError, match="mdoc"):
        read_tilt_series(path)


# --- MRC with angles in the extended header -------------------------------------------------


def test_old_fei_extended_header_angles(tmp_path):
    data = _stack()
    path = tmp_path / "HAADF.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(_fei_extended_header(DEG))
    with mrcfile.open(path) as mrc:  # what was written: 128 bytes per section, no EXTTYP
        assert mrc.header.nsymbt == 128 * N_ANGLES
    proj, theta = read_tilt_series(path)
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG, atol=1e-5)


def test_old_fei_extended_header_of_1024_records(tmp_path):
    """Old FEI files reserve 1024 records whatever the number of sections."""
    deg = np.zeros(1024, np.float32)
    deg[:N_ANGLES] = DEG
    path = tmp_path / "HAADF.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_stack())
        mrc.set_extended_header(_fei_extended_header(deg))
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG, atol=1e-5)


def test_serialem_extended_header_angles(tmp_path):
    path = tmp_path / "series.st"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_stack())
        sections = np.zeros((N_ANGLES, 4), "<i2")  # 8 bytes per section, the tilt x 100 first
        sections[:, 0] = np.round(DEG * 100)
        mrc.set_extended_header(np.frombuffer(sections.tobytes(), dtype="V8"))
        mrc.header.exttyp = b"SERI"
        extra2 = bytearray(mrc.header.extra2.tobytes())  # NINT, NREAL: header bytes 128-131
        extra2[16:20] = np.array([8, 1], "<i2").tobytes()
        mrc.header.extra2 = np.frombuffer(bytes(extra2), dtype=mrc.header.extra2.dtype)
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG)


# --- missing or wrong angles ----------------------------------------------------------------


def test_missing_angles_name_the_file_and_the_option(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    with pytest.raises(ValueError) as err:
        read_tilt_series(path)
    msg = str(err.value)
    assert "series.mrc" in msg and "--tilt-range" in msg
    assert "series.rawtlt" in msg  # where the angles were looked for / can be put
    assert "\n" not in msg


def test_wrong_number_of_angles_mentions_both_counts(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack(n=7))
    _write_angles(tmp_path / "series.rawtlt", DEG)
    with pytest.raises(ValueError) as err:
        read_tilt_series(path)
    msg = str(err.value)
    assert "5" in msg and "7" in msg and "series.rawtlt" in msg


def test_angle_file_that_is_not_numbers(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    (tmp_path / "series.rawtlt").write_text("-60\nabc\n0\n30\n60\n")
    with pytest.raises(ValueError, match="series.rawtlt"):
        read_tilt_series(path)


def test_angles_beyond_180_degrees_are_rejected(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    _write_angles(tmp_path / "series.rawtlt", DEG * 4)
    with pytest.raises(ValueError, match="180"):
        read_tilt_series(path)


def test_explicit_theta_overrides_the_file(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    _write_angles(tmp_path / "series.rawtlt", [0.0, 1.0, 2.0])  # wrong count: never looked at
    theta = np.deg2rad([-50.0, -25.0, 0.0, 25.0, 50.0])
    np.testing.assert_array_equal(read_tilt_series(path, theta=theta)[1], theta)
    got = read_tilt_series(path, tilt_range_deg=(-40, 40))[1]
    np.testing.assert_allclose(np.rad2deg(got), np.linspace(-40, 40, 5))
    got = read_tilt_series(path, tilt_step_deg=3)[1]
    np.testing.assert_allclose(np.rad2deg(got), [-6, -3, 0, 3, 6])
    with pytest.raises(ValueError, match="theta"):
        read_tilt_series(path, theta=[0.0, 0.1])  # wrong count
    with pytest.raises(ValueError, match="not both"):
        read_tilt_series(path, theta=theta, tilt_range_deg=(-40, 40))


# --- tilt_angles_from_range -----------------------------------------------------------------


def test_tilt_range_only_spreads_evenly():
    deg = np.rad2deg(tilt_angles_from_range(7, (-60, 60)))
    np.testing.assert_allclose(deg, [-60, -40, -20, 0, 20, 40, 60])
    deg = np.rad2deg(tilt_angles_from_range(4, (-70, 50)))  # asymmetric
    np.testing.assert_allclose(deg, [-70, -30, 10, 50])


def test_tilt_step_only_is_centred_on_zero():
    np.testing.assert_allclose(
        np.rad2deg(tilt_angles_from_range(5, tilt_step_deg=2)), [-4, -2, 0, 2, 4]
    )
    deg = np.rad2deg(tilt_angles_from_range(4, tilt_step_deg=3))
    np.testing.assert_allclose(deg, [-4.5, -1.5, 1.5, 4.5])
    assert deg.mean() == pytest.approx(0.0)


def test_tilt_range_and_step_together():
    deg = np.rad2deg(tilt_angles_from_range(41, (-60, 60), 3))
    np.testing.assert_allclose(deg, np.arange(-60, 61, 3.0), atol=1e-9)
    deg = np.rad2deg(tilt_angles_from_range(3, (-1.5, 1.5), 1.5))
    np.testing.assert_allclose(deg, [-1.5, 0, 1.5])


def test_tilt_range_and_step_inconsistent_with_the_stack():
    with pytest.raises(ValueError) as err:
        tilt_angles_from_range(40, (-60, 60), 3)
    assert "41" in str(err.value) and "40" in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"tilt_range_deg": (60, -60)},
        {"tilt_range_deg": (0, 0)},
        {"tilt_range_deg": (-60, float("nan"))},
        {"tilt_step_deg": 0},
        {"tilt_step_deg": -2},
        {"tilt_step_deg": float("inf")},
        {"tilt_range_deg": (-300, 300)},  # beyond ±180 degrees
    ],
)
def test_bad_tilt_range_or_step(kwargs):
    with pytest.raises(ValueError):
        tilt_angles_from_range(5, **kwargs)


def test_tilt_range_is_degrees_and_the_result_radians():
    theta = tilt_angles_from_range(3, (-60, 60))
    assert theta.dtype == np.float64
    np.testing.assert_allclose(theta, [-np.pi / 3, 0, np.pi / 3])


# --- damaged and non-standard MRC files -----------------------------------------------------


def test_truncated_mrc_is_a_value_error(tmp_path):
    good = _write_mrc(tmp_path / "good.mrc", _stack())
    raw = good.read_bytes()
    for name, cut in [("data", len(raw) - 37), ("header", 500), ("empty", 0)]:
        path = tmp_path / f"{name}.mrc"
        path.write_bytes(raw[:cut])
        _write_angles(tmp_path / f"{name}.rawtlt", DEG)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError) as err:
                read_tilt_series(path)
        assert f"{name}.mrc" in str(err.value), name


def test_non_standard_header_is_read_with_a_warning(tmp_path):
    data = _stack()
    raw = bytearray(_write_mrc(tmp_path / "good.mrc", data).read_bytes())
    assert raw[208:212] == b"MAP "
    raw[208:212] = b"\0\0\0\0"  # old FEI files: no MAP stamp
    path = tmp_path / "HAADF.mrc"
    path.write_bytes(bytes(raw))
    _write_angles(tmp_path / "HAADF.rawtlt", DEG)
    with pytest.warns((UserWarning, RuntimeWarning), match="non-standard") as rec:
        proj, theta = read_tilt_series(path)
    assert any("HAADF.mrc" in str(w.message) for w in rec)
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_standard_mrc_gives_no_warning(tmp_path):
    path = _write_mrc(tmp_path / "series.mrc", _stack())
    _write_angles(tmp_path / "series.rawtlt", DEG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_tilt_series(path)


def test_mrc_with_nan_is_a_value_error(tmp_path):
    data = _stack()
    data[3, 2, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile: "contains NaN values"
        path = _write_mrc(tmp_path / "series.mrc", data)
    _write_angles(tmp_path / "series.rawtlt", DEG)
    with pytest.raises(ValueError, match="projection 3"):
        read_tilt_series(path)


def test_single_image_mrc_is_not_a_series(tmp_path):
    path = _write_mrc(tmp_path / "one.mrc", _stack()[0])
    _write_angles(tmp_path / "one.rawtlt", [0.0, 10.0])
    with pytest.raises(ValueError, match="1 projections"):
        read_tilt_series(path)


# --- TIFF, .npy ----------------------------------------------------------------------------


def test_tiff_stack_with_rawtlt(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = _stack()
    tifffile.imwrite(tmp_path / "series.tif", data)
    _write_angles(tmp_path / "series.rawtlt", DEG)
    proj, theta = read_tilt_series(tmp_path / "series.tif")
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_integer_tiff_stack_is_float32(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = (_stack() * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "series.tiff", data)
    proj, _ = read_tilt_series(tmp_path / "series.tiff", tilt_range_deg=(-60, 60))
    assert proj.dtype == np.float32
    np.testing.assert_array_equal(proj, data.astype(np.float32))


def test_npy_with_tlt(tmp_path):
    data = _stack()
    np.save(tmp_path / "series.npy", data)
    _write_angles(tmp_path / "series.tlt", DEG)
    proj, theta = read_tilt_series(tmp_path / "series.npy")
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def _touch(path):
    """Unpickling an object array whose element reduces to this would create ``path``."""
    open(path, "w").close()
    return 0


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def test_npy_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    arr = np.empty((2, 2, 2), dtype=object)
    arr[...] = 0
    arr[0, 0, 0] = _Payload(str(marker))
    np.save(tmp_path / "evil.npy", arr, allow_pickle=True)
    _write_angles(tmp_path / "evil.rawtlt", [-10.0, 10.0])
    with pytest.raises(ValueError):
        read_tilt_series(tmp_path / "evil.npy")
    assert not marker.exists()


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "series.xyz"
    path.write_bytes(b"0" * 16)
    with pytest.raises(ValueError) as err:
        read_tilt_series(path)
    assert ".mrc" in str(err.value) and ".hspy" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_tilt_series(tmp_path / "nothing.mrc")


# --- HyperSpy -------------------------------------------------------------------------------


def _hspy_signal(data, nav_units="degrees"):
    """A signal dict as HyperSpy hands it to RosettaSciIO's writer."""
    n, rows, cols = data.shape
    axes = [
        dict(name="Tilt", units=nav_units, size=n, offset=-60.0, scale=30.0, navigate=True),
        dict(name="y", units="nm", size=rows, offset=0.0, scale=0.5, navigate=False),
        dict(name="x", units="nm", size=cols, offset=0.0, scale=0.5, navigate=False),
    ]
    for i, ax in enumerate(axes):
        ax["index_in_array"] = i
    return dict(
        data=data,
        axes=axes,
        metadata={"General": {"title": "tilt series"}, "Signal": {"signal_type": ""}},
        original_metadata={},
        tmp_parameters={},
        attributes={"_lazy": False},
        package_info={"name": "hyperspy", "version": "2.0"},
        learning_results={},
        models={},
    )


@pytest.mark.parametrize("ext", [".hspy", ".hdf5"])
def test_hyperspy_navigation_axis_in_degrees(tmp_path, ext):
    hspy = pytest.importorskip("rsciio.hspy")
    data = _stack()
    path = tmp_path / f"series{ext}"
    hspy.file_writer(str(path), _hspy_signal(data), show_progressbar=False)
    proj, theta = read_tilt_series(path)
    np.testing.assert_array_equal(proj, data)
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_hyperspy_navigation_axis_not_in_degrees_has_no_angles(tmp_path):
    hspy = pytest.importorskip("rsciio.hspy")
    path = tmp_path / "series.hspy"
    hspy.file_writer(str(path), _hspy_signal(_stack(), nav_units="nm"), show_progressbar=False)
    with pytest.raises(ValueError, match="no tilt angles"):
        read_tilt_series(path)
    theta = read_tilt_series(path, tilt_range_deg=(-60, 60))[1]
    np.testing.assert_allclose(np.rad2deg(theta), DEG)


def test_etspy_metadata_tilts_array(tmp_path):
    hspy = pytest.importorskip("rsciio.hspy")
    signal = _hspy_signal(_stack())
    nav = signal["axes"][0]
    nav["offset"], nav["scale"] = 0.0, 1.0  # ETSpy's create_stack only sets name and units
    signal["metadata"]["Tomography"] = {
        "tilts": DEG.copy(),
        "shifts": np.zeros((N_ANGLES, 2)),
        "tiltaxis": 0.0,
        "xshift": 0.0,
        "yshift": 0.0,
        "cropped": False,
    }
    path = tmp_path / "etspy.hspy"
    hspy.file_writer(str(path), signal, show_progressbar=False)
    np.testing.assert_allclose(np.rad2deg(read_tilt_series(path)[1]), DEG)
