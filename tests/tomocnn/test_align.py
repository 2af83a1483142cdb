"""tomocnn.align, the consistency report, init_recon and the data-consistency step.

The misaligned series are made with the model of :mod:`tomocnn.prep.alignment`'s docstring::

    A_i(p) = raw_i(R(phi) (p - o - s_i) + o_raw)   <=>   raw_i(q) = A_i(R(phi)^T (q - o) + o + s_i)

(square images, so ``o = o_raw``) from exact projections ``A_i`` of a phantom, plus a vacuum
level. Shifts are compared after removing what no tilt series can tell apart: the mean shift
along the axis, and across the axis the components in ``span(cos theta, sin theta)`` (those of
an object translated in the slice plane).
"""

import math
import re

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy import ndimage  # noqa: E402

from tomocnn.cli import main  # noqa: E402
from tomocnn.infer import denoise_file, faithfulness, pipeline_file, remove_wedge  # noqa: E402
from tomocnn.io import write_dataexchange  # noqa: E402
from tomocnn.models import WedgeModel, WedgeNet3D, save_model  # noqa: E402
from tomocnn.prep import align, align_file, subtract_background  # noqa: E402
from tomocnn.recon import consistency, reconstruct  # noqa: E402
from tomocnn.sim import project, random_phantom, tilt_angles  # noqa: E402

N_ANGLES = 31
PHI = 5.0  # the in-plane angle of the tilt axis in the simulated raw series, degrees
VACUUM = 1000.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def theta():
    return tilt_angles(60, n=N_ANGLES).astype(np.float64)


@pytest.fixture(scope="module")
def phantom():
    return random_phantom(32, kind="polyhedron", rng=0)


@pytest.fixture(scope="module")
def exact(phantom, theta):
    return project(phantom, theta)


@pytest.fixture(scope="module")
def true_shifts():
    return np.random.default_rng(0).normal(0.0, 1.5, (N_ANGLES, 2))  # RMS ~1.5 px


@pytest.fixture(scope="module")
def raw(exact, true_shifts):
    return _misalign(exact, PHI, true_shifts)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "untrained"})  # the identity


def _misalign(aligned, phi_deg, shifts, vacuum=VACUUM):
    """``raw_i(q) = A_i(R(phi)^T (q - o) + o + s_i)`` plus a vacuum level."""
    r = math.radians(phi_deg)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    o = (np.asarray(aligned.shape[1:], float) - 1) / 2
    out = np.empty_like(aligned)
    for i in range(aligned.shape[0]):
        ndimage.affine_transform(
            aligned[i], rot.T, offset=o + shifts[i] - rot.T @ o, output=out[i], order=3
        )
    return out + np.float32(vacuum)


def _identifiable(shifts, theta):
    """Shifts less the mean along the axis and the across-axis part in span(cos, sin)."""
    s = np.array(shifts, dtype=np.float64)
    s[:, 0] -= s[:, 0].mean()
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    s[:, 1] -= basis @ np.linalg.lstsq(basis, s[:, 1], rcond=None)[0]
    return s


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _bar_counts(err):
    """(done, total) of every tqdm refresh in captured stderr."""
    return [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) \[", err)]


# --- align: the simulated series ------------------------------------------------------------


def test_align_recovers_axis_angle_and_shifts(raw, theta, true_shifts, capsys):
    aligned, theta2, report = align(raw, theta, progress=True)
    assert abs(report["axis_angle_deg"] - PHI) < 0.5
    err = _identifiable(report["shifts"], theta) - _identifiable(true_shifts, theta)
    assert np.sqrt((err**2).mean()) < 0.5
    assert np.sqrt((_identifiable(true_shifts, theta) ** 2).mean()) > 1.0  # not a trivial task
    assert report["residual_after"] < 0.5 * report["residual_before"]
    np.testing.assert_allclose(report["background"], VACUUM, atol=1.0)
    assert aligned.shape == raw.shape and aligned.dtype == np.float32
    assert report["shifts"].shape == (N_ANGLES, 2)
    assert report["center"] == 16.0
    np.testing.assert_array_equal(theta2, theta)
    assert theta2 is not theta
    err_out = capsys.readouterr().err
    assert "TqdmWarning" not in err_out
    counts = _bar_counts(err_out)
    assert counts and counts[-1] == (4, 4) and all(a <= b for a, b in counts)


def test_aligned_series_is_the_exact_one_moved_by_the_shift_error(raw, exact, theta, true_shifts):
    """With the axis angle known, aligned_i(p) = exact_i(p - (found_i - true_i))."""
    aligned, _, report = align(raw, theta, axis_angle_deg=PHI, search_axis=False)
    back = np.stack(
        [
            ndimage.shift(a, d, order=3, mode="nearest")
            for a, d in zip(aligned, true_shifts - report["shifts"])
        ]
    )
    assert _rel(back, exact) < 0.05


def test_align_does_not_depend_on_the_order_of_the_projections(raw, theta):
    _, _, ref = align(raw, theta, axis_angle_deg=PHI, search_axis=False)
    order = np.random.default_rng(1).permutation(N_ANGLES)  # e.g. a dose-symmetric scheme
    aligned, theta2, report = align(raw[order], theta[order], axis_angle_deg=PHI, search_axis=False)
    np.testing.assert_array_equal(theta2, theta[order])
    np.testing.assert_allclose(report["shifts"], ref["shifts"][order], atol=1e-3)
    assert report["residual_after"] == pytest.approx(ref["residual_after"], rel=1e-3)


def test_horizontal_axis_swaps_rows_and_columns(phantom, theta):
    exact = project(phantom[4:28], theta)  # (31, 24, 32): the axis along the 24 rows
    raw = np.stack([np.rot90(p) for p in exact])  # (31, 32, 24): the axis along the columns
    aligned, _, report = align(raw, theta, background=None)
    assert abs(abs(report["axis_angle_deg"]) - 90.0) < 0.5
    assert aligned.shape == (N_ANGLES, 24, 32)
    assert report["center"] == 16.0
    # an axis and its reverse are the same axis: either orientation explains the data
    assert min(_rel(aligned, exact), _rel(aligned[:, ::-1, ::-1], exact)) < 0.2


def test_pure_noise_with_the_axis_given_is_accepted(theta):
    noise = np.random.default_rng(0).random((N_ANGLES, 32, 32)).astype(np.float32)
    aligned, _, report = align(noise, theta, axis_angle_deg=0.0, search_axis=False)
    assert aligned.shape == noise.shape and np.isfinite(aligned).all()


def test_pure_noise_has_no_tilt_axis(theta):
    noise = np.random.default_rng(0).random((N_ANGLES, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="could not find the tilt axis"):
        align(noise, theta)


@pytest.mark.parametrize("given, kept", [(3.0, 3.0), (-12.5, -12.5), (None, 0.0), (90.0, -90.0)])
def test_search_axis_false_keeps_the_given_angle(exact, theta, given, kept):
    aligned, _, report = align(exact, theta, axis_angle_deg=given, search_axis=False)
    assert report["axis_angle_deg"] == pytest.approx(kept, abs=1e-12)
    assert aligned.shape == exact.shape


def test_exact_series_is_left_nearly_unchanged(exact, theta):
    aligned, _, report = align(exact, theta, axis_angle_deg=0.0, search_axis=False)
    assert np.abs(report["shifts"][:, 0]).max() < 0.1  # along: nothing to correct
    s = report["shifts"][:, 1]
    assert np.abs(s - s.mean()).max() < 0.1  # across: at most a common offset
    assert _rel(aligned, exact) < 0.15


@pytest.mark.parametrize("width", [32, 31])
def test_exact_series_keeps_its_centre(theta, width):
    vol = random_phantom(width, kind="polyhedron", rng=1)
    exact = project(vol, theta)
    _, _, report = align(exact, theta, axis_angle_deg=0.0, search_axis=False, background=None)
    assert abs(report["center_offset_px"]) < 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"projections": np.ones((4, 16, 16)), "theta": np.deg2rad([-60, -20, 20, 60])},
            "at least 5 projections",
        ),
        ({"projections": np.ones((7, 6, 16))}, "8x8"),
        ({"projections": np.ones((7, 16))}, "3-D"),
        ({"theta": np.deg2rad(np.linspace(-60, 60, 6))}, "theta"),
        ({"theta": np.linspace(-100, 100, 7)}, "radians"),
        ({"background": "median"}, "background"),
        ({"axis_angle_deg": float("nan")}, "finite"),
    ],
)
def test_align_bad_arguments(kwargs, match):
    args = {
        "projections": np.ones((7, 16, 16), np.float32),
        "theta": np.deg2rad(np.linspace(-60, 60, 7)),
        "search_axis": False,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        align(args.pop("projections"), args.pop("theta"), **args)


def test_subtract_background(raw):
    out = subtract_background(raw)
    assert out.shape == raw.shape and out.dtype == np.float32
    assert np.median(out) == pytest.approx(0.0, abs=1.0)
    with pytest.raises(ValueError, match="fraction"):
        subtract_background(raw, fraction=1.5)


# --- align_file ----------------------------------------------------------------------------


def test_align_file_writes_data_exchange(tmp_path, exact, theta):
    src = tmp_path / "tilts.h5"
    write_dataexchange(src, exact, theta)
    out = tmp_path / "aligned.h5"
    report = align_file(src, out, axis_angle_deg=0.0, search_axis=False, progress=False)
    with h5py.File(out, "r") as f:
        data = f["/exchange/data"]
        assert data.shape == exact.shape and data.dtype == np.float32
        np.testing.assert_allclose(f["/exchange/theta"][()], np.rad2deg(theta), atol=1e-9)
        assert f["/exchange/theta"].attrs["units"] == "degrees"
        np.testing.assert_allclose(f["/exchange/shifts"][()], report["shifts"])
        assert f["/exchange/shifts"].shape == (N_ANGLES, 2)
        assert data.attrs["axis_angle_deg"] == 0.0
        assert data.attrs["center"] == report["center"]
        assert data.attrs["reprojection_residual_after"] == report["residual_after"]
    assert {p.name for p in tmp_path.iterdir()} == {"tilts.h5", "aligned.h5"}  # no temp file


def test_align_file_refuses_to_overwrite_its_input(tmp_path, exact, theta):
    src = tmp_path / "tilts.h5"
    write_dataexchange(src, exact, theta)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="input"):
        align_file(src, src, axis_angle_deg=0.0, search_axis=False, progress=False)
    with pytest.raises(ValueError, match="input"):
        align_file(src, str(src) + ":/exchange/aligned", search_axis=False, progress=False)
    assert src.read_bytes() == before
    with pytest.raises(ValueError, match="HDF5"):
        align_file(src, tmp_path / "aligned.mrc", search_axis=False, progress=False)


# --- consistency ---------------------------------------------------------------------------


def test_consistency_of_exact_projections(phantom, exact, theta):
    c = consistency(phantom, exact, theta)
    assert c["residual"] < 1e-5
    assert c["mass_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert c["residual_per_angle"].shape == (N_ANGLES,)
    assert np.all(c["residual_per_angle"] < 1e-5)
    np.testing.assert_allclose(c["theta_deg"], np.rad2deg(theta))


@pytest.mark.parametrize("factor", [0.5, 1.3, 2.0])
def test_consistency_mass_ratio_scales_with_the_volume(phantom, exact, theta, factor):
    c = consistency(factor * phantom, exact, theta)
    assert c["mass_ratio"] == pytest.approx(factor, rel=1e-4)
    assert c["residual"] == pytest.approx(abs(factor - 1), rel=1e-3)


def test_consistency_per_angle_points_at_the_bad_projection(phantom, exact, theta):
    bad = exact.copy()
    bad[7] *= 1.5
    c = consistency(phantom, bad, theta)
    assert int(np.argmax(c["residual_per_angle"])) == 7
    assert c["residual_per_angle"][7] == pytest.approx(1 / 3, rel=1e-3)


def test_consistency_center_and_h5py_volume(phantom, theta, tmp_path):
    proj = project(phantom, theta, center=17.0)
    assert consistency(phantom, proj, theta, center=17.0)["residual"] < 1e-5
    assert consistency(phantom, proj, theta)["residual"] > 0.05
    with h5py.File(tmp_path / "v.h5", "w") as f:
        dset = f.create_dataset("v", data=phantom, chunks=(4, 32, 32))
        assert consistency(dset, proj, theta, center=17.0)["residual"] < 1e-5


def test_consistency_shape_mismatch(phantom, exact, theta):
    with pytest.raises(ValueError, match="does not match"):
        consistency(phantom[:, :, :31], exact, theta)
    with pytest.raises(ValueError, match="does not match"):
        consistency(phantom[:16], exact, theta)
    with pytest.raises(ValueError, match="theta"):
        consistency(phantom, exact, theta[:-1])


# --- reconstruct(init_recon=...) -----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sirt", "sart", "cgls", "mlem"])
def test_init_recon_starts_from_the_given_volume(phantom, exact, theta, algorithm):
    truth = phantom[8:16]
    proj = exact[:, 8:16]
    start = truth.copy()
    from_truth = reconstruct(proj, theta, algorithm=algorithm, n_iter=1, init_recon=start)
    from_zero = reconstruct(proj, theta, algorithm=algorithm, n_iter=1)
    np.testing.assert_array_equal(start, truth)  # not modified
    assert _rel(from_truth, truth) < 0.05 < _rel(from_zero, truth)


def test_init_recon_from_an_h5py_dataset(phantom, exact, theta, tmp_path):
    truth, proj = phantom[8:16], exact[:, 8:16]
    with h5py.File(tmp_path / "init.h5", "w") as f:
        dset = f.create_dataset("v", data=truth)
        got = reconstruct(proj, theta, n_iter=2, init_recon=dset)
    np.testing.assert_allclose(got, reconstruct(proj, theta, n_iter=2, init_recon=truth), atol=1e-6)


def test_init_recon_errors(phantom, exact, theta):
    truth, proj = phantom[8:16], exact[:, 8:16]
    with pytest.raises(ValueError, match="iterative"):
        reconstruct(proj, theta, algorithm="fbp", init_recon=truth)
    with pytest.raises(ValueError, match="iterative|astra"):
        reconstruct(proj, theta, n_iter=1, backend="astra", init_recon=truth)
    with pytest.raises(ValueError, match="shape"):
        reconstruct(proj, theta, n_iter=1, init_recon=truth[:4])
    with pytest.raises(ValueError):
        reconstruct(proj, theta, n_iter=1, init_recon=np.full_like(truth, np.nan))


# --- the data-consistency step of remove_wedge ----------------------------------------------


@pytest.fixture(scope="module")
def sirt5(exact, theta):
    return reconstruct(exact, theta, n_iter=5)


def test_model_fixture_is_the_identity(model, sirt5, theta):
    np.testing.assert_allclose(remove_wedge(sirt5, theta, model=model), sirt5, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["sirt", "mlem"])
def test_consistency_iterations_lower_the_residual(model, sirt5, exact, theta, algorithm):
    before = consistency(sirt5, exact, theta)["residual"]
    out = remove_wedge(
        sirt5,
        theta,
        model=model,
        projections=exact,
        consistency_iters=10,
        consistency_algorithm=algorithm,
    )
    after = consistency(out, exact, theta)["residual"]
    assert after < before
    if algorithm == "sirt":  # the identity network: the same as 15 SIRT iterations from zero
        np.testing.assert_allclose(out, reconstruct(exact, theta, n_iter=15), atol=1e-4)


def test_consistency_step_into_an_h5py_dataset(model, sirt5, exact, theta, tmp_path):
    expect = remove_wedge(sirt5, theta, model=model, projections=exact, consistency_iters=3)
    with h5py.File(tmp_path / "out.h5", "w") as f:
        for dtype in (np.float32, np.float64):
            dset = f.create_dataset(f"o{np.dtype(dtype).itemsize}", sirt5.shape, dtype)
            remove_wedge(
                sirt5, theta, model=model, out=dset, projections=exact, consistency_iters=3
            )
            np.testing.assert_allclose(dset[()], expect, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"consistency_iters": 5}, "projections"),
        ({"consistency_iters": 5, "projections": np.ones((N_ANGLES, 32, 31))}, "shape"),
        ({"consistency_iters": 5, "projections": np.ones((N_ANGLES, 16, 32))}, "shape"),
        ({"consistency_iters": 5, "projections": np.ones((32, 32))}, "shape"),
        ({"consistency_iters": -1}, "consistency_iters"),
        ({"consistency_iters": 2.5}, "consistency_iters"),
        ({"consistency_iters": True}, "consistency_iters"),
        ({"consistency_iters": 5, "consistency_algorithm": "cgls"}, "sirt"),
    ],
)
def test_consistency_step_bad_arguments(model, sirt5, theta, kwargs, match):
    with pytest.raises(ValueError, match=match):
        remove_wedge(sirt5, theta, model=model, **kwargs)


def test_consistency_step_needs_theta(model, sirt5, exact):
    with pytest.raises(ValueError, match="theta"):
        remove_wedge(
            sirt5, tilt_range_deg=(-60, 60), model=model, projections=exact, consistency_iters=2
        )


# --- the tomopy centre convention on odd widths --------------------------------------------


def test_middle_voxel_of_an_odd_width_projects_onto_the_middle_column():
    vol = np.zeros((1, 31, 31), np.float32)
    vol[0, 15, 15] = 1.0
    theta = np.deg2rad(np.arange(-90.0, 90.0, 7.5))
    proj = project(vol, theta)[:, 0, :]  # default centre: 31 / 2 = 15.5, pixel-centre 15
    assert np.all(np.argmax(proj, axis=1) == 15)
    np.testing.assert_allclose(proj[:, 14], proj[:, 16], atol=1e-6)  # symmetric about 15
    assert np.all(proj[:, 15] > 0.5)
    rec = reconstruct(np.repeat(proj[:, None], 2, axis=1), theta, n_iter=50)
    assert np.unravel_index(np.argmax(rec[0]), rec[0].shape) == (15, 15)


# --- files, pipeline and the command line ---------------------------------------------------


def _write_mrc_series(path, proj, theta):
    mrcfile = pytest.importorskip("mrcfile")
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(proj, np.float32))
    path.with_suffix(".rawtlt").write_text("".join(f"{d:.4f}\n" for d in np.rad2deg(theta)))
    return path


def test_pipeline_file_stores_the_faithfulness_report(model, exact, theta, tmp_path):
    src = tmp_path / "tilts.h5"
    write_dataexchange(src, exact[:, 8:16], theta)
    out = pipeline_file(
        src,
        tmp_path / "vol.h5",
        model=model,
        algorithm="sirt",
        n_iter=5,
        consistency_iters=10,
        consistency_algorithm="sirt",
        progress=False,
    )
    with h5py.File(out, "r") as f:
        attrs = dict(f["/exchange/data"].attrs)
        vol = f["/exchange/data"][()]
    for key in ("recon_residual", "output_residual", "recon_mass_ratio", "output_mass_ratio"):
        assert key in attrs and np.isfinite(attrs[key])
    assert attrs["output_residual"] <= attrs["recon_residual"] + 1e-3
    assert attrs["consistency_iters"] == 10 and attrs["consistency_algorithm"] == "sirt"
    assert attrs["recon_residual_per_angle"].shape == (N_ANGLES,)
    assert attrs["output_residual"] == pytest.approx(
        consistency(vol, exact[:, 8:16], theta)["residual"], rel=1e-4
    )
    assert "reconstruction" in faithfulness(attrs) and "output" in faithfulness(attrs)


def test_pipeline_file_without_consistency_step(model, exact, theta, tmp_path):
    src = tmp_path / "tilts.h5"
    write_dataexchange(src, exact[:, 8:16], theta)
    out = pipeline_file(
        src, tmp_path / "vol.h5", model=model, n_iter=5, consistency_iters=0, progress=False
    )
    with h5py.File(out, "r") as f:
        attrs = dict(f["/exchange/data"].attrs)
    assert attrs["consistency_algorithm"] == "none"
    assert attrs["output_residual"] == pytest.approx(attrs["recon_residual"], abs=1e-5)


def test_pipeline_file_aligns_a_raw_mrc_series(model, raw, theta, tmp_path):
    src = _write_mrc_series(tmp_path / "raw.mrc", raw, theta)
    out = pipeline_file(
        src,
        tmp_path / "vol.h5",
        model=model,
        align=True,
        algorithm="sirt",
        n_iter=10,
        consistency_iters=5,
        consistency_algorithm="sirt",
        progress=False,
    )
    with h5py.File(out, "r") as f:
        vol = f["/exchange/data"][()]
        attrs = dict(f["/exchange/data"].attrs)
    assert vol.shape == (32, 32, 32) and np.isfinite(vol).all()
    assert abs(attrs["axis_angle_deg"] - PHI) < 0.5
    assert attrs["alignment_shifts"].shape == (N_ANGLES, 2)
    assert attrs["output_residual"] < 0.25
    assert vol.max() > 0.2  # the object, not the vacuum level


def test_pipeline_file_warns_about_a_vacuum_level_without_align(model, raw, theta, tmp_path):
    src = _write_mrc_series(tmp_path / "raw.mrc", raw[:, 12:20], theta)
    with pytest.warns(UserWarning, match="--align"):
        pipeline_file(
            src, tmp_path / "vol.h5", model=model, n_iter=2, consistency_iters=0, progress=False
        )


@pytest.mark.filterwarnings("ignore:.*darkest fifth")
def test_pipeline_file_signed_volume_keeps_negative_values(model, theta, tmp_path):
    vol = np.zeros((4, 24, 24), np.float32)
    vol[:, 6:12, 6:12] = 1.0
    vol[:, 14:20, 12:18] = -1.0
    src = tmp_path / "signed.h5"
    write_dataexchange(src, project(vol, theta), theta)
    out = pipeline_file(
        src, tmp_path / "vol.h5", model=model, nonnegative=False, n_iter=20, progress=False
    )
    with h5py.File(out, "r") as f:
        assert f["/exchange/data"][:, 17, 15].mean() < -0.5


def test_denoise_file_with_projections(model, sirt5, exact, theta, tmp_path):
    tilts = tmp_path / "tilts.h5"
    write_dataexchange(tilts, exact, theta)
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        f.create_dataset("/exchange/data", data=sirt5)
    out = denoise_file(
        tmp_path / "rec.h5",
        tmp_path / "clean.h5",
        projections=tilts,
        model=model,
        consistency_iters=10,
        consistency_algorithm="sirt",
        progress=False,
    )
    with h5py.File(out, "r") as f:
        attrs = dict(f["/exchange/data"].attrs)
    assert attrs["recon_residual"] == pytest.approx(consistency(sirt5, exact, theta)["residual"])
    assert attrs["output_residual"] < attrs["recon_residual"]
    with pytest.raises(ValueError, match="projections"):
        denoise_file(
            tmp_path / "rec.h5",
            tmp_path / "c2.h5",
            tilt_range_deg=(-60, 60),
            model=model,
            consistency_iters=3,
            progress=False,
        )
    with pytest.raises(ValueError, match="input"):
        denoise_file(tmp_path / "rec.h5", tilts, projections=tilts, model=model, progress=False)


def test_cli_align(exact, theta, tmp_path, capsys):
    src = _write_mrc_series(tmp_path / "tilts.mrc", exact, theta)
    out = tmp_path / "aligned.h5"
    assert main(["align", str(src), "-o", str(out), "--axis-angle", "0", "--no-axis-search"]) == 0
    assert "tilt axis at 0.00°" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert f["/exchange/data"].shape == exact.shape
        assert f["/exchange/shifts"].shape == (N_ANGLES, 2)


def test_cli_align_errors_and_tilt_range(exact, tmp_path, capsys):
    mrcfile = pytest.importorskip("mrcfile")
    src = tmp_path / "noangles.mrc"
    with mrcfile.new(src) as mrc:
        mrc.set_data(exact)
    out = tmp_path / "aligned.h5"
    assert main(["align", str(src), "-o", str(out), "--no-axis-search"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tomocnn align: error:") and err.count("\n") == 1
    assert "--tilt-range" in err and "noangles.mrc" in err
    assert not out.exists()
    argv = ["align", str(src), "-o", str(out), "--tilt-range", "-60", "60", "--no-axis-search"]
    assert main(argv) == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["/exchange/theta"][()], np.linspace(-60, 60, N_ANGLES))
    assert main(["align", str(out), "-o", str(out), "--no-axis-search"]) == 2
    assert "overwrite the input" in capsys.readouterr().err


def test_cli_pipeline_and_denoise_with_projections(exact, theta, tmp_path, capsys):
    torch.manual_seed(0)
    folder = save_model(tmp_path / "tiny", WedgeNet3D(width=4, levels=2), {"name": "tiny"})
    src = _write_mrc_series(tmp_path / "tilts.mrc", exact[:, 12:20], theta)
    out = tmp_path / "vol.h5"
    argv = ["pipeline", str(src), "-o", str(out), "--model", str(folder), "--algorithm", "sirt"]
    argv += ["--n-iter", "5", "--consistency-iters", "5", "--consistency-algorithm", "sirt"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "reprojection residual on the measured angles" in printed
    with h5py.File(out, "r") as f:
        attrs = dict(f["/exchange/data"].attrs)
    assert attrs["output_residual"] <= attrs["recon_residual"] + 1e-3
    clean = tmp_path / "clean.h5"
    argv = ["denoise", str(out), "-o", str(clean), "--projections", str(src)]
    argv += ["--model", str(folder), "--consistency-iters", "3", "--fov", "none"]
    assert main(argv) == 0
    assert "mass ratio" in capsys.readouterr().out
    argv = ["denoise", str(out), "-o", str(tmp_path / "c2.h5"), "--tilt-range", "-60", "60"]
    assert main(argv + ["--model", str(folder), "--consistency-iters", "3"]) == 2
    assert "projections" in capsys.readouterr().err


# --- progress bars never run past their totals ----------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "sirt", "n_iter": 3},
        {"algorithm": "sirt", "n_iter": 50},
        {"algorithm": "sart", "n_iter": 2},
        {"algorithm": "fbp"},
        {"algorithm": "cgls", "n_iter": 4, "center": [8, 8, 8, 9, 9, 9, 8]},
    ],
)
def test_reconstruct_progress_bar_ends_at_its_total(theta, capsys, kwargs):
    proj = np.ones((N_ANGLES, 7, 16), np.float32)
    reconstruct(proj, theta, progress=True, backend="torch", **kwargs)
    err = capsys.readouterr().err
    assert "TqdmWarning" not in err
    counts = _bar_counts(err)
    assert counts, err
    assert counts[-1] == (7, 7)
    assert all(0 <= a <= b == 7 for a, b in counts)


def test_align_progress_bar_without_search(exact, theta, capsys):
    align(exact, theta, search_axis=False, progress=True)
    err = capsys.readouterr().err
    assert "TqdmWarning" not in err
    counts = _bar_counts(err)
    assert counts and counts[-1] == (2, 2) and all(a <= b for a, b in counts)
