"""Inference: tiled == whole volume, streamed == in memory == Dask, units, FOV, errors, files."""

import os

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tomocnn.infer import denoise_file, pipeline_file, remove_wedge  # noqa: E402
from tomocnn.infer._tiling import tile_input_size  # noqa: E402
from tomocnn.models import WedgeModel, WedgeNet3D, save_model  # noqa: E402

TILT = (-60.0, 60.0)
THETA = np.deg2rad(np.linspace(-60.0, 60.0, 41))


def _network(seed: int = 0) -> WedgeNet3D:
    torch.manual_seed(seed)
    net = WedgeNet3D(width=4, levels=2)
    with torch.no_grad():  # the head is zero-initialised (identity): make it do something
        net.head.weight.normal_(0.0, 0.5)
        net.head.bias.normal_(0.0, 0.1)
    return net


@pytest.fixture(scope="module")
def model():
    return WedgeModel(_network(), {"name": "tiny-random"})


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return str(save_model(tmp_path_factory.mktemp("models") / "tiny", _network(), {"name": "tiny"}))


def _volume(shape=(20, 28, 28), seed=1, dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _fixed_scale(model, scale=2.5):
    """A copy of ``model`` whose intensity scale is a known constant."""
    m = WedgeModel(model.network, dict(model.config))
    m.normalisation_scale = lambda sample: scale
    return m


def _whole_volume(volume, model, scale):
    """Reference semantics: reflect-pad by the halo (and to a multiple), run once, crop."""
    h, m = model.halo, model.multiple
    x = volume.astype(np.float32) / np.float32(scale)
    pad = [(h, -(-(n + 2 * h) // m) * m - n - h) for n in volume.shape]
    y = model.predict(np.pad(x, pad, mode="reflect")[None], tilt_range_deg=TILT)[0]
    n0, n1, n2 = volume.shape
    return y[h : h + n0, h : h + n1, h : h + n2] * np.float32(scale)


def _circle(n):
    c = (n - 1) / 2
    y, x = np.ogrid[:n, :n]
    return (y - c) ** 2 + (x - c) ** 2 < (n / 2) ** 2


# ---------------------------------------------------------------------------------------------
# tiling


@pytest.mark.parametrize("tile", [6, 12, (5, 9, 13), (16, 7, 10), 64])
def test_tiled_equals_whole_volume(model, tile):
    m = _fixed_scale(model)
    vol = _volume()
    ref = _whole_volume(vol, m, 2.5)
    assert np.abs(ref - vol).max() > 0.05  # the network is not the identity
    out = remove_wedge(vol, tilt_range_deg=TILT, model=m, tile=tile, batch_size=3, fov=None)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_tile_geometry_properties():
    from tomocnn.infer._tiling import axis_tiles, padded_length, window

    rng = np.random.default_rng(0)
    for _ in range(500):
        halo, m = int(rng.integers(0, 12)), int(rng.choice([1, 2, 4, 8]))
        n = int(rng.integers(1, 200))
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo + 1, n + 1))
        core = int(rng.integers(1, 80))
        w = window(lo, hi, n, halo, m)
        tiles = axis_tiles(lo + halo, hi + halo, *w, core=core, halo=halo, multiple=m)
        total = np.zeros(hi - lo)
        for t in tiles:
            assert t.in_lo % m == 0 and (t.in_hi - t.in_lo) % m == 0
            assert t.in_hi - t.in_lo == tiles[0].in_hi - tiles[0].in_lo  # one shape: batches
            assert w[0] <= t.in_lo and t.in_hi <= w[1]
            # full receptive field, or the edge of the padded volume (as in the whole volume)
            assert t.in_lo == 0 or t.in_lo <= t.out_lo - halo
            assert t.in_hi == padded_length(n, halo, m) or t.in_hi >= t.out_hi + halo
            total[t.out_lo - lo - halo : t.out_hi - lo - halo] += t.weight
        np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 16, 16), (9, 10, 17), (33, 8, 8)])
def test_odd_and_thin_volumes_match_whole_volume(model, shape):
    m = _fixed_scale(model)
    vol = _volume(shape, seed=3)
    out = remove_wedge(vol, tilt_range_deg=TILT, model=m, tile=8, fov=None)
    np.testing.assert_allclose(out, _whole_volume(vol, m, 2.5), atol=1e-4, rtol=0)


def test_batch_size_does_not_change_the_result(model):
    vol = _volume()
    a = remove_wedge(vol, THETA, model=model, tile=14, batch_size=1)
    b = remove_wedge(vol, THETA, model=model, tile=14, batch_size=7)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_theta_and_tilt_range_agree(model):
    vol = _volume()
    a = remove_wedge(vol, THETA, model=model)
    b = remove_wedge(vol, tilt_range_deg=TILT, model=model)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_progress_bar_runs(model, capsys):
    remove_wedge(_volume((8, 16, 16)), THETA, model=model, tile=8, progress=True)
    assert "tile" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# units, dtypes, field of view


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_shape_and_dtype_preserved(model, dtype):
    vol = _volume((12, 16, 16), dtype=dtype)
    out = remove_wedge(vol, THETA, model=model)
    assert out.shape == vol.shape and out.dtype == vol.dtype


def test_integer_input_gives_float32(model):
    vol = (_volume((12, 16, 16)) * 1000).astype(np.int16)
    out = remove_wedge(vol, THETA, model=model)
    assert out.dtype == np.float32 and out.shape == vol.shape


@pytest.mark.parametrize("a", [1e-3, 7.5, 1e4])
def test_intensity_units_scale_equivariance(model, a):
    vol = _volume()
    ref = remove_wedge(vol, THETA, model=model)
    out = remove_wedge(vol * np.float32(a), THETA, model=model)
    np.testing.assert_allclose(out, a * ref, rtol=1e-4, atol=1e-5 * a)


def test_float64_units_match_float32(model):
    vol = _volume()
    a = remove_wedge(vol, THETA, model=model)
    b = remove_wedge(vol.astype(np.float64), THETA, model=model)
    np.testing.assert_allclose(b, a, atol=1e-5)


def test_outside_the_circular_fov_passes_through(model):
    vol = _volume(dtype=np.float64)
    inside = _circle(vol.shape[1])
    out = remove_wedge(vol, THETA, model=model)
    np.testing.assert_array_equal(out[:, ~inside], vol[:, ~inside])
    assert np.abs(out[:, inside] - vol[:, inside]).max() > 0.05
    everything = remove_wedge(vol, THETA, model=model, fov=None)
    assert np.abs(everything[:, ~inside] - vol[:, ~inside]).max() > 0.05


def test_circ_masked_input_keeps_zeros_outside(model):
    vol = _volume()
    vol[:, ~_circle(vol.shape[1])] = 0  # as after tomopy.circ_mask
    out = remove_wedge(vol, THETA, model=model)
    assert (out[:, ~_circle(vol.shape[1])] == 0).all()


def test_scale_ignores_values_outside_the_fov(model):
    vol = _volume()
    wild = vol.copy()
    wild[:, ~_circle(vol.shape[1])] = 1e6  # garbage outside the field of view
    inside = _circle(vol.shape[1])
    a = remove_wedge(vol, THETA, model=model, tile=64)
    b = remove_wedge(wild, THETA, model=model, tile=64)
    # only voxels whose receptive field stays inside the circle can be compared
    core = np.zeros_like(inside)
    core[12:16, 12:16] = True
    np.testing.assert_allclose(b[:, core], a[:, core], rtol=1e-5)
    assert np.array_equal(b[:, ~inside], wild[:, ~inside])


# ---------------------------------------------------------------------------------------------
# streaming (h5py) and out=


def test_h5py_in_and_out_equals_ndarray(model, tmp_path):
    vol = _volume()
    ref = remove_wedge(vol, THETA, model=model, tile=16)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["rec"] = vol
        out = f.create_dataset("clean", shape=vol.shape, dtype="f4", chunks=(4, 28, 28))
        ret = remove_wedge(f["rec"], THETA, model=model, tile=16, out=out)
        assert ret is out
        np.testing.assert_allclose(out[()], ref, atol=1e-6)
        mem = remove_wedge(f["rec"], THETA, model=model, tile=16)  # no out: an ndarray
        assert isinstance(mem, np.ndarray)
        np.testing.assert_allclose(mem, ref, atol=1e-6)
    out_nd = np.full(vol.shape, np.nan, np.float64)
    assert remove_wedge(vol, THETA, model=model, tile=16, out=out_nd) is out_nd
    np.testing.assert_allclose(out_nd, ref, atol=1e-6)


class _RecordingArray:
    """An array-like that records the rows of every read (a stand-in for a big dataset)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        rows = index[0] if isinstance(index, tuple) else index
        n = 1 if isinstance(rows, int | np.integer) else len(range(*rows.indices(self.shape[0])))
        self.reads.append(n)
        return self.data[index]


def test_streaming_reads_slabs_and_equals_in_memory(model, tmp_path):
    vol = _volume((64, 32, 32), seed=5)
    ref = remove_wedge(vol, THETA, model=model, tile=(8, 32, 32))
    src = _RecordingArray(vol)
    with h5py.File(tmp_path / "o.h5", "w") as f:
        out = f.create_dataset("clean", shape=vol.shape, dtype="f4")
        remove_wedge(src, THETA, model=model, tile=(8, 32, 32), out=out)
        np.testing.assert_allclose(out[()], ref, atol=1e-6)
    slab_rows = tile_input_size(8, model.halo, model.multiple)
    assert max(src.reads) <= slab_rows < vol.shape[0]  # one slab (plus halo) at a time


def test_default_tile_bounds_the_slab(model):
    from tomocnn.infer.wedge import _core_sizes

    core = _core_sizes(None, model, (4096, 4096, 4096))
    assert core[0] == model.multiple and core[1:] == (64, 64)
    assert _core_sizes(None, model, (32, 32, 32)) == (64, 64, 64)


# ---------------------------------------------------------------------------------------------
# Dask


@pytest.mark.parametrize("chunks", [(7, 11, 28), (10, 14, 14), (20, 28, 28)])
def test_dask_equals_in_memory(model, chunks):
    da = pytest.importorskip("dask.array")
    vol = _volume()
    ref = remove_wedge(vol, THETA, model=model, tile=16)
    lazy = remove_wedge(da.from_array(vol, chunks=chunks), THETA, model=model, tile=16)
    assert isinstance(lazy, da.Array) and lazy.dtype == vol.dtype and lazy.shape == vol.shape
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), ref, atol=1e-6)


def test_dask_under_distributed_client(model):
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    vol = _volume(dtype=np.float64)
    ref = remove_wedge(vol, THETA, model=model, tile=16)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        lazy = remove_wedge(da.from_array(vol, chunks=(10, 14, 28)), THETA, model=model, tile=16)
        out = client.compute(lazy).result()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_dask_into_out(model):
    da = pytest.importorskip("dask.array")
    vol = _volume()
    out = np.zeros(vol.shape, np.float32)
    ret = remove_wedge(da.from_array(vol, chunks=10), THETA, model=model, out=out)
    assert ret is out
    np.testing.assert_allclose(out, remove_wedge(vol, THETA, model=model), atol=1e-6)


def test_dask_nan_is_an_error(model):
    da = pytest.importorskip("dask.array")
    vol = _volume()
    vol[13, 3, 4] = np.nan
    lazy = remove_wedge(da.from_array(vol, chunks=10), THETA, model=model)
    with pytest.raises(ValueError, match="row 13"):
        lazy.compute(scheduler="sync")


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"theta": None}, "exactly one"),
        ({"theta": THETA, "tilt_range_deg": TILT}, "exactly one"),
        ({"theta": np.degrees(THETA)}, "radians"),
        ({"theta": np.r_[THETA, np.nan]}, "NaN"),
        ({"theta": THETA[None]}, "1-D"),
        ({"theta": None, "tilt_range_deg": (60, -60)}, "min < max"),
        ({"theta": None, "tilt_range_deg": (-100, 60)}, "-90"),
        ({"theta": THETA, "tile": 0}, "tile"),
        ({"theta": THETA, "tile": (8, 8)}, "tile"),
        ({"theta": THETA, "batch_size": 0}, "batch_size"),
        ({"theta": THETA, "fov": "square"}, "fov"),
        ({"theta": THETA, "out": np.zeros((2, 2, 2), np.float32)}, "shape"),
    ],
)
def test_bad_arguments_are_clear_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        remove_wedge(_volume((8, 16, 16)), model=model, **kwargs)


@pytest.mark.parametrize("shape", [(16, 16), (2, 8, 16, 16)])
def test_wrong_ndim(model, shape):
    with pytest.raises(ValueError, match="3-D"):
        remove_wedge(np.zeros(shape, np.float32), THETA, model=model)


def test_complex_and_integer_out_are_type_errors(model):
    with pytest.raises(TypeError, match="real"):
        remove_wedge(np.zeros((4, 8, 8), np.complex64), THETA, model=model)
    with pytest.raises(TypeError, match="float"):
        remove_wedge(_volume((4, 8, 8)), THETA, model=model, out=np.zeros((4, 8, 8), np.int32))


def test_in_place_is_refused(model):
    vol = _volume((8, 16, 16))
    with pytest.raises(ValueError, match="share memory"):
        remove_wedge(vol, THETA, model=model, out=vol)


@pytest.mark.parametrize("row", [0, 9, 63])
def test_nan_names_the_row(model, row, tmp_path):
    vol = _volume((64, 16, 16))
    vol[row, 5, 5] = np.inf if row == 9 else np.nan
    with pytest.raises(ValueError, match=f"row {row}\\b"):
        remove_wedge(vol, THETA, model=model, tile=8)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["v"] = vol
        with pytest.raises(ValueError, match=f"row {row}\\b"):
            remove_wedge(f["v"], THETA, model=model, tile=8)


def test_unknown_model_lists_available():
    with pytest.raises(KeyError, match="available"):
        remove_wedge(_volume((4, 8, 8)), THETA, model="no-such-model")


def test_model_folder_and_unsupported_tilt(model_folder):
    vol = _volume((8, 16, 16))
    assert remove_wedge(vol, THETA, model=model_folder, device="cpu").shape == vol.shape
    limited = WedgeModel(_network(), {"name": "l", "supported": {"max_tilt_deg": [45, 75]}})
    remove_wedge(vol, THETA, model=limited)
    with pytest.raises(ValueError, match="supports tilt ranges"):
        remove_wedge(vol, tilt_range_deg=(-30, 30), model=limited)


# ---------------------------------------------------------------------------------------------
# files and the command line


def _write_rec(path, vol):
    with h5py.File(path, "w") as f:
        f.create_dataset("/exchange/data", data=vol, chunks=(4, *vol.shape[1:]))
        f["/exchange/data"].attrs["pixel_size_angstrom"] = 0.5


def _leftovers(folder, keep):
    return sorted(p for p in os.listdir(folder) if p not in keep)


def test_denoise_file_streams_and_matches(model_folder, tmp_path):
    from tomocnn.io import write_dataexchange

    vol = _volume((24, 16, 16))
    _write_rec(tmp_path / "rec.h5", vol)
    write_dataexchange(tmp_path / "tilts.h5", np.zeros((41, 2, 4), np.float32), THETA)
    out = denoise_file(
        tmp_path / "rec.h5",
        tmp_path / "clean.h5",
        theta_file=tmp_path / "tilts.h5",
        model=model_folder,
        progress=False,
    )
    ref = remove_wedge(vol, THETA, model=model_folder)
    with h5py.File(out) as f:
        d = f["/exchange/data"]
        np.testing.assert_allclose(d[()], ref, atol=1e-6)
        assert d.attrs["tomocnn_model"] == "tiny"
        np.testing.assert_allclose(d.attrs["tilt_range_deg"], TILT)
        assert "tomocnn_version" in d.attrs and d.attrs["pixel_size_angstrom"] == 0.5
    assert _leftovers(tmp_path, {"rec.h5", "tilts.h5", "clean.h5"}) == []


def test_denoise_file_npy_input(model, tmp_path):
    vol = _volume((8, 16, 16))
    np.save(tmp_path / "rec.npy", vol)
    denoise_file(tmp_path / "rec.npy", tmp_path / "c.h5", tilt_range_deg=TILT, model=model)
    with h5py.File(tmp_path / "c.h5") as f:
        np.testing.assert_allclose(f["/exchange/data"][()], remove_wedge(vol, THETA, model=model))


@pytest.mark.parametrize("spec", ["rec.h5", "rec.h5:/exchange/data"])
def test_denoise_file_refuses_to_overwrite_input(model, tmp_path, spec):
    vol = _volume((8, 16, 16))
    _write_rec(tmp_path / "rec.h5", vol)
    with pytest.raises(ValueError, match="input"):
        denoise_file(str(tmp_path / spec), tmp_path / "rec.h5", tilt_range_deg=TILT, model=model)
    with h5py.File(tmp_path / "rec.h5") as f:
        np.testing.assert_array_equal(f["/exchange/data"][()], vol)
    assert _leftovers(tmp_path, {"rec.h5"}) == []


def test_no_partial_output_after_errors(model, tmp_path):
    vol = _volume((40, 16, 16))
    vol[30, 2, 2] = np.nan  # found only in a late slab: earlier slabs are already written
    _write_rec(tmp_path / "rec.h5", vol)
    small_tiles = WedgeModel(model.network, {"name": "small-tiles", "tile": 8})
    with pytest.raises(ValueError, match="row 30"):
        denoise_file(tmp_path / "rec.h5", tmp_path / "o.h5", tilt_range_deg=TILT, model=small_tiles)
    with pytest.raises(KeyError, match="available"):
        denoise_file(tmp_path / "rec.h5", tmp_path / "o.h5", tilt_range_deg=TILT, model="nope")
    with pytest.raises(FileNotFoundError, match="folder"):
        denoise_file(
            tmp_path / "rec.h5", tmp_path / "no" / "o.h5", tilt_range_deg=TILT, model=model
        )
    with pytest.raises(ValueError, match="exactly one"):
        denoise_file(tmp_path / "rec.h5", tmp_path / "o.h5", model=model)
    with pytest.raises(FileNotFoundError):
        denoise_file(tmp_path / "missing.h5", tmp_path / "o.h5", tilt_range_deg=TILT, model=model)
    assert _leftovers(tmp_path, {"rec.h5"}) == []


def test_no_partial_output_after_ctrl_c(model, tmp_path):
    _write_rec(tmp_path / "rec.h5", _volume((24, 16, 16)))
    interrupted = WedgeModel(model.network, {"name": "interrupted", "tile": 8})
    calls = []

    def predict(blocks, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # one tile per slab: the first slab has been written
            raise KeyboardInterrupt
        return model.predict(blocks, **kwargs)

    interrupted.predict = predict
    with pytest.raises(KeyboardInterrupt):
        denoise_file(tmp_path / "rec.h5", tmp_path / "o.h5", tilt_range_deg=TILT, model=interrupted)
    assert _leftovers(tmp_path, {"rec.h5"}) == []


def test_denoise_file_bad_theta_file(model, tmp_path):
    _write_rec(tmp_path / "rec.h5", _volume((8, 16, 16)))
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["/exchange/theta"] = np.linspace(-120, 120, 5)
    with pytest.raises(ValueError, match="-90"):
        denoise_file(tmp_path / "rec.h5", tmp_path / "o.h5", theta_file=tmp_path / "t.h5")
    assert _leftovers(tmp_path, {"rec.h5", "t.h5"}) == []


def test_cli_denoise(model_folder, tmp_path):
    from tomocnn.cli import main
    from tomocnn.io import write_dataexchange

    _write_rec(tmp_path / "rec.h5", _volume((8, 16, 16)))
    argv = ["denoise", str(tmp_path / "rec.h5"), "--tilt-range", "-60", "60"]
    assert main([*argv, "-o", str(tmp_path / "o.h5"), "--model", model_folder]) == 0
    assert (tmp_path / "o.h5").is_file()
    assert main([*argv, "-o", str(tmp_path / "p.h5"), "--model", "nope"]) == 2
    assert not (tmp_path / "p.h5").exists()
    write_dataexchange(tmp_path / "tilts.h5", np.zeros((41, 2, 4), np.float32), THETA)
    argv = ["denoise", str(tmp_path / "rec.h5"), "--theta", str(tmp_path / "tilts.h5")]
    assert main([*argv, "-o", str(tmp_path / "t.h5"), "--model", model_folder]) == 0
    with h5py.File(tmp_path / "o.h5") as a, h5py.File(tmp_path / "t.h5") as b:
        np.testing.assert_allclose(a["/exchange/data"][()], b["/exchange/data"][()], atol=1e-6)


def test_pipeline_file(model, tmp_path):
    pytest.importorskip("astra")
    from tomocnn.io import write_dataexchange
    from tomocnn.recon import reconstruct

    proj = np.random.default_rng(0).random((41, 6, 16)).astype(np.float32)
    write_dataexchange(tmp_path / "tilts.h5", proj, THETA)
    out = pipeline_file(
        tmp_path / "tilts.h5",
        tmp_path / "v.h5",
        algorithm="fbp",
        model=model,
        progress=False,
        consistency_iters=0,
    )
    ref = remove_wedge(reconstruct(proj, THETA, algorithm="fbp"), THETA, model=model)
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["/exchange/data"][()], ref, atol=1e-5)
    with pytest.raises(ValueError, match="input"):
        pipeline_file(tmp_path / "tilts.h5", tmp_path / "tilts.h5", model=model, progress=False)


def test_pipeline_defaults_to_the_model_cards_recommended_reconstruction(tmp_path):
    from tomocnn.infer import default_algorithm
    from tomocnn.io import write_dataexchange

    card = {"name": "mlem-fed", "supported": {"recommended_algorithm": "mlem"}}
    fed = WedgeModel(_network(), card)
    assert default_algorithm(fed) == "mlem"
    assert default_algorithm(fed, nonnegative=False) == "sirt"  # MLEM needs non-negative data
    assert default_algorithm(WedgeModel(_network(), {"name": "plain"})) == "sirt"
    proj = np.random.default_rng(0).random((41, 2, 16)).astype(np.float32)
    write_dataexchange(tmp_path / "tilts.h5", proj, THETA)
    out = pipeline_file(tmp_path / "tilts.h5", tmp_path / "v.h5", model=fed, progress=False)
    with h5py.File(out) as f:
        assert f["/exchange/data"].attrs["reconstruction"] == "mlem"


@pytest.mark.gpu
def test_gpu_equals_cpu(model):
    vol = _volume()
    cpu = remove_wedge(vol, THETA, model=model, tile=8)
    gpu_model = WedgeModel(_network(), {"name": "gpu"}, device="cuda")
    gpu = remove_wedge(vol, THETA, model=gpu_model, tile=8, batch_size=4)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_nonnegative_clips_inside_the_field_of_view_only():
    theta = np.deg2rad(np.linspace(-60, 60, 31))
    vol = _volume() - 0.5  # half the voxels negative
    signed = WedgeModel(_network(), {"name": "signed"})
    clipped = WedgeModel(_network(), {"name": "clipped", "nonnegative": True})
    a = remove_wedge(vol, theta, model=signed)
    b = remove_wedge(vol, theta, model=clipped)
    inside = np.broadcast_to(_circle(vol.shape[1]), vol.shape)
    assert (a[inside] < 0).any() and (b[inside] >= 0).all()
    assert np.allclose(np.maximum(a, 0)[inside], b[inside], atol=1e-5)
    assert np.array_equal(b[~inside], vol[~inside])  # outside the FOV: passed through
    # the argument overrides the model card either way
    assert np.allclose(remove_wedge(vol, theta, model=clipped, nonnegative=False), a, atol=1e-6)
    assert (remove_wedge(vol, theta, model=signed, nonnegative=True)[inside] >= 0).all()


def test_correction_fades_out_beyond_the_trained_ranges():
    card = {"name": "ranged", "supported": {"trained_max_tilt_deg": [40.0, 80.0]}}
    ranged = WedgeModel(_network(), card)
    plain = WedgeModel(_network(), {"name": "plain"})
    x = np.random.default_rng(3).random((1, 8, 8, 8)).astype(np.float32)
    inside = ranged.predict(x, tilt_range_deg=(-70, 70), nonnegative=False)
    np.testing.assert_allclose(inside, plain.predict(x, tilt_range_deg=(-70, 70)), atol=1e-6)
    full = ranged.predict(x, tilt_range_deg=(-90, 90), nonnegative=False)
    np.testing.assert_allclose(full, x, atol=1e-6)  # no wedge left: the input comes back
    half = ranged.predict(x, tilt_range_deg=(-85, 85), nonnegative=False)
    at_80 = ranged.predict(x, tilt_range_deg=(-80, 80), nonnegative=False)
    np.testing.assert_allclose(half, x + 0.5 * (at_80 - x), atol=1e-5)
