"""tomocnn.recon: geometry conventions, backends, agreement with ASTRA, bad inputs."""

import math

import numpy as np
import pytest

from tomocnn.recon import ALGORITHMS, DEFAULT_N_ITER, backproject, reconstruct
from tomocnn.recon._geometry import _angular_weights
from tomocnn.sim import project, tilt_angles

astra = pytest.importorskip("astra")

N = 32


def _theta(max_deg=60.0, step=3.0):
    return tilt_angles(max_deg, step=step).astype(np.float64)


def _disc_volume(n_rows=3, n=N):
    y, x = np.mgrid[:n, :n].astype(np.float32) - np.float32((n - 1) / 2)
    disc = ((x - 3) ** 2 + (y + 2) ** 2 < 8**2) * 0.8 + ((abs(x + 6) < 3) & (abs(y - 5) < 4)) * 0.5
    return np.stack([disc * (1 + 0.1 * r) for r in range(n_rows)]).astype(np.float32)


def _backends():
    names = ["torch", "astra"]
    try:
        import tomopy  # noqa: F401

        names.append("tomopy")
    except ImportError:
        pass
    return names


# --- geometry ------------------------------------------------------------------------------


def test_projector_and_backprojector_are_adjoint():
    rng = np.random.default_rng(0)
    theta = tilt_angles(70, min_tilt_deg=-55, n=37, scheme="uneven", rng=1).astype(np.float64)
    x = rng.random((3, N, N), dtype=np.float32)
    y = rng.random((theta.size, 3, N), dtype=np.float32)
    for center in (None, N / 2 + 1.7):
        lhs = np.vdot(project(x, theta, center=center).astype(np.float64), y)
        rhs = np.vdot(x.astype(np.float64), backproject(y, theta, center=center))
        assert lhs == pytest.approx(rhs, rel=1e-5)


@pytest.mark.parametrize("center", [None, N / 2 - 2.5])
def test_projector_is_astras_cpu_linear_projector(center):
    theta = _theta(65, 5)
    vol = _disc_volume()
    c = N / 2 if center is None else center
    pg = astra.create_proj_geom("parallel", 1.0, N, theta)
    if c != N / 2:
        pg = astra.geom_postalignment(pg, N / 2 - c)
    pid = astra.create_projector("linear", pg, astra.create_vol_geom(N, N))
    try:
        sid, sino = astra.create_sino(vol[1], pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    np.testing.assert_allclose(project(vol, theta, center=center)[:, 1, :], sino, atol=1e-4)


def test_theta_zero_sums_over_axis_1():
    vol = np.random.default_rng(1).random((2, N, N), dtype=np.float32)
    p = project(vol, np.array([0.0]))
    np.testing.assert_allclose(p[0], vol.sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("theta_deg", [30.0, 90.0, -45.0])
@pytest.mark.parametrize("center", [N / 2, N / 2 + 3.0])
def test_sign_of_rotation_and_center_are_tomopys(theta_deg, center):
    # TomoPy: a voxel at offset (a1, a2) from the slice centre is seen at detector offset
    # s = a2 cos(theta) - a1 sin(theta); detector column = s + center - 0.5.
    i1, i2 = 10, 19
    vol = np.zeros((1, N, N), np.float32)
    vol[0, i1, i2] = 1
    a1, a2 = i1 + 0.5 - N / 2, i2 + 0.5 - N / 2
    t = math.radians(theta_deg)
    col = a2 * math.cos(t) - a1 * math.sin(t) + center - 0.5
    p = project(vol, np.array([t]), center=center)[0, 0]
    centroid = float((p * np.arange(N)).sum() / p.sum())
    assert centroid == pytest.approx(col, abs=0.25)  # the opposite sign is pixels away


def test_angular_weights():
    full = np.linspace(0, np.pi, 60, endpoint=False)
    np.testing.assert_allclose(_angular_weights(full), np.pi / 60)
    limited = np.deg2rad(np.arange(-60, 61, 2.0))[::-1]
    np.testing.assert_allclose(_angular_weights(limited), np.deg2rad(2.0), rtol=1e-9)


# --- backends ------------------------------------------------------------------------------


def _spread(img):
    img = np.clip(img, 0, None)
    img = np.where(img > 0.2 * img.max(), img, 0)
    i, j = np.indices(img.shape)
    w = img.sum()
    ci, cj = (img * i).sum() / w, (img * j).sum() / w
    return math.sqrt((img * (i - ci) ** 2).sum() / w), math.sqrt((img * (j - cj) ** 2).sum() / w)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("algorithm", ["sirt", "fbp"])
def test_point_from_pm60_is_longer_along_axis_1(backend, algorithm):
    vol = np.zeros((1, N, N), np.float32)
    vol[0, 15:17, 15:17] = 1
    theta = _theta(60, 2)
    rec = reconstruct(project(vol, theta), theta, algorithm=algorithm, backend=backend)
    assert rec.shape == (1, N, N) and rec.dtype == np.float32
    s1, s2 = _spread(rec[0])
    assert s1 > 1.3 * s2, (s1, s2)


@pytest.mark.parametrize("backend", ["torch", "astra"])
def test_full_angle_beats_limited_angle(backend):
    vol = _disc_volume()
    limited = _theta(60, 2)
    full = np.linspace(-np.pi / 2, np.pi / 2, limited.size, endpoint=False)
    err = {}
    for name, theta in (("limited", limited), ("full", full)):
        rec = reconstruct(project(vol, theta), theta, n_iter=100, backend=backend)
        err[name] = np.linalg.norm(rec - vol) / np.linalg.norm(vol)
    assert err["full"] < 0.6 * err["limited"], err


@pytest.mark.parametrize(
    ("algorithm", "rtol"), [("sirt", 1e-4), ("sart", 1e-4), ("cgls", 1e-2), ("fbp", 1e-4)]
)
def test_builtin_agrees_with_astra_cpu(algorithm, rtol):
    if astra.use_cuda():
        pytest.skip("the astra backend runs its CUDA algorithms here")
    vol = _disc_volume()
    theta = tilt_angles(66, min_tilt_deg=-58, n=41, scheme="saxton", order="dose-symmetric")
    proj = project(vol, theta, center=N / 2 + 1.5)
    kw = {"algorithm": algorithm, "n_iter": 30 if algorithm != "sart" else 3, "center": 17.5}
    a = reconstruct(proj, theta, backend="astra", **kw)
    b = reconstruct(proj, theta, backend="torch", **kw)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < rtol


def test_min_constraint_and_mlem_are_non_negative():
    vol = _disc_volume()
    theta = _theta()
    proj = project(vol, theta)
    proj += np.random.default_rng(0).normal(0, 0.5, proj.shape).astype(np.float32)
    assert reconstruct(proj, theta, min_constraint=0.0).min() >= 0
    mlem = reconstruct(proj, theta, algorithm="mlem", n_iter=30)
    assert mlem.min() >= 0
    assert np.linalg.norm(mlem - vol) / np.linalg.norm(vol) < 0.6


def test_default_n_iter_covers_every_algorithm():
    assert set(DEFAULT_N_ITER) == set(ALGORITHMS)


def test_astra_cpu_has_no_mlem():
    if astra.use_cuda():
        pytest.skip("ASTRA has EM_CUDA here")
    theta = _theta()
    with pytest.raises(ValueError, match="backend='torch'"):
        reconstruct(
            np.zeros((theta.size, 1, N), np.float32), theta, algorithm="mlem", backend="astra"
        )


def test_tomopy_backend_without_tomopy_is_a_clear_import_error():
    try:
        import tomopy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TomoPy is installed")
    theta = _theta()
    with pytest.raises(ImportError, match="conda-forge"):
        reconstruct(np.zeros((theta.size, 1, N), np.float32), theta, backend="tomopy")


def test_tomopy_backend_matches_builtin_orientation():
    pytest.importorskip("tomopy")
    vol = _disc_volume()
    theta = _theta(75, 1)
    proj = project(vol, theta)
    a = reconstruct(proj, theta, backend="tomopy", n_iter=50)
    b = reconstruct(proj, theta, backend="torch", n_iter=50)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_cuda_3d_vectors_are_astras_parallel3d_geometry():
    from tomocnn.recon._astra import _par3d_vectors

    theta = _theta()
    pg = astra.create_proj_geom("parallel3d", 1.0, 1.0, 3, N, theta)
    pg = astra.geom_postalignment(pg, N / 2 - 14.5)
    np.testing.assert_allclose(_par3d_vectors(theta, N, 14.5, -1.0, 1.0), pg["Vectors"])


@pytest.mark.skipif(not astra.use_cuda(), reason="needs ASTRA with CUDA")
def test_astra_cuda_3d_orientation_is_found():
    from tomocnn.recon._astra import _cuda3d_orientation

    assert _cuda3d_orientation() is not None


def test_out_array_and_h5py_dataset(tmp_path):
    h5py = pytest.importorskip("h5py")
    vol = _disc_volume()
    theta = _theta()
    proj = project(vol, theta)
    ref = reconstruct(proj, theta, n_iter=20)
    out = np.empty_like(ref)
    assert reconstruct(proj, theta, n_iter=20, out=out) is out
    np.testing.assert_array_equal(out, ref)
    with h5py.File(tmp_path / "o.h5", "w") as f:
        dset = f.create_dataset("rec", shape=ref.shape, dtype="f4")
        reconstruct(proj, theta, n_iter=20, out=dset)
        np.testing.assert_array_equal(dset[...], ref)


def test_per_row_center_equals_scalar_center():
    vol = _disc_volume()
    theta = _theta()
    proj = project(vol, theta, center=17.0)
    rows = reconstruct(proj, theta, center=[17.0, 17.0, 15.0], n_iter=10)
    np.testing.assert_allclose(rows[:2], reconstruct(proj[:, :2], theta, center=17.0, n_iter=10))
    np.testing.assert_allclose(rows[2:], reconstruct(proj[:, 2:], theta, center=15.0, n_iter=10))


def test_progress_bar(capsys):
    theta = _theta()
    reconstruct(np.ones((theta.size, 2, N), np.float32), theta, n_iter=3, progress=True)
    assert "slice" in capsys.readouterr().err


# --- bad input -----------------------------------------------------------------------------


def _ok():
    theta = _theta()
    return np.ones((theta.size, 2, N), np.float32), theta


def test_theta_length_mismatch():
    proj, theta = _ok()
    with pytest.raises(ValueError, match="theta has 40 angles but projections has 41"):
        reconstruct(proj, theta[:-1])


def test_nan_and_inf():
    proj, theta = _ok()
    proj[0, 0, 0] = np.nan
    proj[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values \(1 NaN, 1 inf\)"):
        reconstruct(proj, theta)
    theta = theta.copy()
    theta[3] = np.nan
    with pytest.raises(ValueError, match="theta contains non-finite"):
        reconstruct(np.ones((theta.size, 1, N), np.float32), theta)


@pytest.mark.parametrize("shape", [(41, N), (41, 1, 2, N), (41,)])
def test_wrong_ndim(shape):
    with pytest.raises(ValueError, match="must be 3-D"):
        reconstruct(np.ones(shape, np.float32), _theta())


def test_degrees_instead_of_radians():
    theta = np.arange(-60, 61, 3.0)
    with pytest.raises(ValueError, match="did you pass degrees"):
        reconstruct(np.ones((theta.size, 1, N), np.float32), theta)


def test_unknown_algorithm_and_backend_list_the_valid_ones():
    proj, theta = _ok()
    with pytest.raises(ValueError, match="choose one of .*'sirt'.*'fbp'"):
        reconstruct(proj, theta, algorithm="art")
    with pytest.raises(ValueError, match="choose one of .*'torch'.*'astra'.*'tomopy'"):
        reconstruct(proj, theta, backend="gpu")


def test_other_bad_arguments():
    proj, theta = _ok()
    with pytest.raises(TypeError, match="real numeric"):
        reconstruct(proj.astype(np.complex64), theta)
    with pytest.raises(TypeError, match="numeric array"):
        reconstruct("proj.h5", theta)
    with pytest.raises(ValueError, match="n_iter must be >= 1"):
        reconstruct(proj, theta, n_iter=0)
    with pytest.raises(TypeError, match="n_iter must be a positive integer"):
        reconstruct(proj, theta, n_iter=2.5)
    with pytest.raises(ValueError, match="center must be a number or one value per row"):
        reconstruct(proj, theta, center=[16.0, 16.0, 16.0])
    with pytest.raises(ValueError, match="out must have shape"):
        reconstruct(proj, theta, out=np.empty((2, N, N + 1), np.float32))
    with pytest.raises(ValueError, match="unknown filter_name"):
        reconstruct(proj, theta, algorithm="fbp", filter_name="butterworth")
    with pytest.raises(ValueError, match="volume slices must be square"):
        project(np.ones((2, N, N - 1), np.float32), theta)


# --- files and command line ----------------------------------------------------------------


def test_reconstruct_file_and_cli(tmp_path):
    io = pytest.importorskip("tomocnn.io")
    from tomocnn.cli import main
    from tomocnn.recon import reconstruct_file

    vol = _disc_volume()
    theta = _theta()
    proj = project(vol, theta)
    tilts = tmp_path / "tilts.h5"
    io.write_dataexchange(tilts, proj, theta)
    out = reconstruct_file(tilts, tmp_path / "rec.h5", n_iter=20, progress=False)
    rec = io.read_volume(out)
    np.testing.assert_allclose(rec, reconstruct(proj, theta, n_iter=20), atol=1e-5)
    assert (
        main(
            [
                "recon",
                str(tilts),
                "-o",
                str(tmp_path / "cli.h5"),
                "--algorithm",
                "fbp",
                "--center",
                "16",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(
        io.read_volume(tmp_path / "cli.h5"), reconstruct(proj, theta, algorithm="fbp"), atol=1e-5
    )
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "cli.h5") as f:
        attrs = dict(f["/exchange/data"].attrs)
    assert attrs["algorithm"] == "fbp" and attrs["theta_max_deg"] == pytest.approx(60)
