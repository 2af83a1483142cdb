"""The synthetic ADF-STEM generator: ground truth, determinism, noise, structures, libraries."""

import json

import h5py
import numpy as np
import pytest
from scipy.spatial import cKDTree

from atomseg.cli import main
from atomseg.detect import nearest_neighbour_distance
from atomseg.sim import (
    build_specimen,
    list_structures,
    load_config,
    project_structure,
    read_library_sample,
    remake,
    simulate_image,
    write_library,
)
from atomseg.sim.crystals import ELEMENTS, _lattice_matrix, _structure
from atomseg.sim.params import draw_params

CLEAN = dict(
    noise=False,
    background_level=0.0,
    background_variation=0.0,
    background_ramp=[0.0, 0.0],
    amorphous_thickness_angstrom=0.0,
    diffuse_fraction=0.0,
    dark_offset=0.0,
    clip_8bit=False,
)


def _centroid_errors(sample, *, inner_angstrom=1.8, outer_angstrom=2.6):
    """Intensity centroid (smooth window centred on the truth) minus the true position."""
    p = sample.pixel_size_angstrom
    img = sample.image.astype(np.float64)
    h, w = img.shape
    pos = sample.positions
    if len(pos) == 0:
        return []
    r1, r2 = inner_angstrom / p, outer_angstrom / p
    nn = cKDTree(pos).query(pos, k=2)[0][:, 1] if len(pos) > 1 else np.array([np.inf])
    yy, xx = np.mgrid[0:h, 0:w]
    errs = []
    for (r, c), d in zip(pos, nn):
        if d < 3 * r2 or min(r, c, h - 1 - r, w - 1 - c) < 3 * r2:
            continue  # not isolated (columns outside the image are not listed: keep away)
        win = np.clip((r2 - np.hypot(yy - r, xx - c)) / (r2 - r1), 0, 1)
        win = (0.5 - 0.5 * np.cos(np.pi * win)) * img
        errs.append(np.hypot((win * yy).sum() / win.sum() - r, (win * xx).sum() / win.sum() - c))
    return errs


@pytest.mark.parametrize(
    ("pixel_size", "size", "n", "vacancies"),
    [(0.08, 384, 24, 0.99), (0.2, 160, 24, 0.97), (0.35, 96, 16, 0.95)],
)
def test_centroid_of_isolated_noise_free_columns_is_the_ground_truth(
    pixel_size, size, n, vacancies
):
    errs = []
    for seed in range(n):
        s = simulate_image(
            shape=(size, size),
            seed=seed,
            scene="slab",
            structure=["Au", "W", "Pt", "Pb"][seed % 4],
            zone_axis="100",
            pixel_size_angstrom=pixel_size,
            aberration_corrected=True,
            column_vacancy_fraction=vacancies,
            # scan distortions move the columns; the ground truth must move with them
            drift_shear=0.02 * (seed % 2),
            drift_stretch=-0.02 * (seed % 2),
            flyback_px=2.0 * (seed % 2),
            flyback_decay_px=10.0,
            **CLEAN,
        )
        errs += _centroid_errors(s)
    assert len(errs) >= 5
    assert max(errs) < 0.05


def test_same_seed_same_image_and_remake():
    a = simulate_image(shape=(64, 48), rng=11)
    b = simulate_image(shape=(64, 48), rng=11)
    for key in ("image", "mask", "gaussian"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert a.columns.equals(b.columns)
    assert a.params == b.params
    json.dumps(a.params)  # JSON-serialisable
    c = remake(json.dumps(a.params), shape=(64, 48))
    assert np.array_equal(c.image, a.image) and c.columns.equals(a.columns)
    d = simulate_image(shape=(64, 48), **a.params)
    assert np.array_equal(d.image, a.image)
    e = simulate_image(shape=(64, 48), rng=12)
    assert e.params["seed"] != a.params["seed"]
    g = simulate_image(shape=(64, 48), rng=np.random.default_rng(11))
    assert g.image.shape == (64, 48)


def test_changing_one_parameter_keeps_the_rest():
    a = simulate_image(shape=(48, 48), rng=4, scene="slab")
    b = simulate_image(
        shape=(48, 48), **{**a.params, "dose_e_per_A2": 2 * a.params["dose_e_per_A2"]}
    )
    geometry = ["row", "col", "z", "n_atoms", "labelled"]  # the SNR follows the dose
    assert a.columns[geometry].equals(b.columns[geometry])
    assert np.allclose(b.columns["snr"], np.sqrt(2) * a.columns["snr"], rtol=0.05)
    assert np.array_equal(a.mask > 0, b.mask > 0)


def test_noise_statistics_follow_the_dose():
    fixed = dict(
        scene="slab",
        structure="Pt",
        zone_axis="100",
        pixel_size_angstrom=0.2,
        read_noise_e=0.0,
        clip_8bit=False,
        line_jitter_angstrom=0.0,
        dark_offset=10.0,
        detector_gain=2.0,
    )
    snr = {}
    for dose in (1e4, 1e5, 1e6):
        noisy = simulate_image(shape=(96, 96), seed=3, dose_e_per_A2=dose, **fixed)
        mean = simulate_image(shape=(96, 96), seed=3, dose_e_per_A2=dose, noise=False, **fixed)
        lam = (mean.image.astype(np.float64) - 10.0) / 2.0  # expected electrons per pixel
        counts = (noisy.image.astype(np.float64) - 10.0) / 2.0
        ok = lam > 3
        assert ok.sum() > 5000
        z = (counts[ok] - lam[ok]) / np.sqrt(lam[ok])
        assert abs(z.mean()) < 0.05
        assert 0.93 < z.var() < 1.07  # Poisson: variance = mean
        snr[dose] = float(np.mean(lam[ok] / np.sqrt(lam[ok])))
        assert np.allclose(counts, np.round(counts), atol=1e-3)  # whole electrons
    # expected counts scale with the dose, so the SNR with its square root
    assert snr[1e5] / snr[1e4] == pytest.approx(np.sqrt(10), rel=0.05)
    assert snr[1e6] / snr[1e5] == pytest.approx(np.sqrt(10), rel=0.05)


def test_every_structure_and_zone_axis_gives_valid_columns():
    info = list_structures()
    families = {v["family"] for v in info.values()}
    assert families >= {
        "fcc", "bcc", "hcp", "diamond", "zincblende", "wurtzite", "rocksalt", "perovskite",
        "fluorite", "spinel", "layered",
    }  # fmt: skip
    n = 0
    for name, v in info.items():
        st = _structure(name)
        volume = abs(np.linalg.det(_lattice_matrix(*st.lattice)))
        for za in v["zone_axes"]:
            cell = project_structure(name, za)
            assert cell.n_columns >= 1
            assert np.all((cell.frac >= 0) & (cell.frac < 1))
            assert np.all(cell.atoms_per_period >= 1)
            assert set(np.unique(cell.atom_z[cell.atom_z > 0])) <= set(ELEMENTS.values())
            density = cell.atoms_per_period.sum() / (cell.area_angstrom2 * cell.period_angstrom)
            assert density == pytest.approx(len(st.sites) / volume, rel=1e-9)
            assert cell.min_column_distance_angstrom() > 0.6
            params = {
                "scene": "slab", "structure": name, "zone_axis": za, "rotation_deg": 17.0,
                "lattice_scale": 1.0, "origin_frac": [0.3, 0.6], "mirror": False,
                "depth_offset_frac": 0.25, "thickness_angstrom": 30.0,
                "thickness_slope": [0.0, 0.0], "z_exponent": 1.7, "pixel_size_angstrom": 0.2,
            }  # fmt: skip
            spec = build_specimen(params, shape=(64, 64), bounds_angstrom=(0, 12.6, 0, 12.6))
            assert len(spec["z"]) >= 1
            assert np.all(spec["n_atoms"] >= 1)
            assert np.all(np.isin(spec["z"], cell.atom_z))
            inside = (spec["row_angstrom"] >= 0) & (spec["row_angstrom"] <= 12.6)
            assert inside.all()
            n += 1
    assert n >= 150


def test_famous_close_pairs():
    for name, axis, dist in (("Si", "110", 1.36), ("GaAs", "110", 1.41), ("GaN", "11-20", 1.12)):
        d = project_structure(name, axis).min_column_distance_angstrom()
        assert d == pytest.approx(dist, abs=0.01)
    s = simulate_image(
        shape=(96, 96), seed=2, scene="slab", structure="GaAs", zone_axis="110",
        pixel_size_angstrom=0.1, **CLEAN,
    )  # fmt: skip
    nn = cKDTree(s.positions).query(s.positions, k=2)[0][:, 1]
    assert np.median(nn) == pytest.approx(1.41 / 0.1, rel=0.05)
    # the dumbbell stays two discs
    assert s.params["label_disc_radius_px"] <= 0.4 * np.percentile(nn, 2) + 1e-9


def test_unresolved_columns_get_no_label():
    kw = dict(shape=(96, 96), seed=2, scene="slab", structure="GaN", zone_axis="11-20", **CLEAN)
    fine = simulate_image(pixel_size_angstrom=0.08, source_size_angstrom=0.4, **kw)
    assert fine.columns["labelled"].all()  # 1.12 Å dumbbells at 14 px: resolved
    coarse = simulate_image(pixel_size_angstrom=0.45, source_size_angstrom=0.4, **kw)
    assert not coarse.columns["labelled"].any()  # 2.5 px apart: one blob, no label
    assert coarse.mask.sum() == 0
    blurred = simulate_image(pixel_size_angstrom=0.08, source_size_angstrom=1.4, **kw)
    assert not blurred.columns["labelled"].any()  # probe larger than the dumbbell


def test_column_snr_matches_a_direct_sum():
    """SNR_j² = sum_r c_j(r)² / V(r), c_j = N_j (h - h * disc_j), summed over the image only."""
    import scipy.fft as sfft

    from atomseg.sim.library import column_snr

    rng = np.random.default_rng(0)
    h, w, pad = 40, 48, 12
    hc, wc = h + 2 * pad, w + 2 * pad
    yy = np.minimum(np.arange(hc), hc - np.arange(hc))[:, None]
    xx = np.minimum(np.arange(wc), wc - np.arange(wc))[None, :]
    psf = np.exp(-(yy**2 + xx**2) / (2 * 1.7**2))
    psf /= psf.sum()
    variance = rng.uniform(2.0, 30.0, (h, w))
    rows, cols = np.array([10.0, 20.3, 0.5, 39.0]), np.array([12.0, 30.7, 2.0, 47.5])
    electrons = np.array([50.0, 80.0, 30.0, 60.0])
    spacing = np.array([np.inf, 9.0, np.inf, 9.0])
    got = column_snr(variance, rows, cols, electrons, spacing_px=spacing,
                     transfer=sfft.rfft2(psf), canvas_shape=(hc, wc))  # fmt: skip
    r = np.arange(h)[:, None]
    c = np.arange(w)[None, :]
    for j in (0, 1):  # whole pixels: bilinear sampling is then exact
        d2 = (r - rows[j]) ** 2 + (c - cols[j]) ** 2
        sig = np.exp(-d2 / (2 * 1.7**2)) / (2 * np.pi * 1.7**2)
        if np.isfinite(spacing[j]):
            disc = (yy**2 + xx**2) <= (0.5 * 1.1 ** round(np.log(9.0) / np.log(1.1))) ** 2
            avg = sfft.irfft2(sfft.rfft2(psf) * sfft.rfft2(disc / disc.sum()), s=(hc, wc))
            sig = sig - np.roll(avg, (int(rows[j]), int(cols[j])), axis=(0, 1))[:h, :w]
        want = electrons[j] * np.sqrt(np.sum(sig**2 / variance))
        assert got[j] == pytest.approx(want, rel=0.02)
    # a column at the border loses the part of its signal outside the image
    assert got[3] < got[1]


def test_position_crb_matches_the_fisher_information():
    """1/CRB² per axis = N² sum_r (dh/dx)² / V for a Gaussian column of width s."""
    import scipy.fft as sfft

    from atomseg.sim.library import position_crb

    h, w, pad, sd = 48, 48, 12, 1.6
    hc, wc = h + 2 * pad, w + 2 * pad
    yy = np.minimum(np.arange(hc), hc - np.arange(hc))[:, None]
    xx = np.minimum(np.arange(wc), wc - np.arange(wc))[None, :]
    psf = np.exp(-(yy**2 + xx**2) / (2 * sd**2))
    psf /= psf.sum()
    variance = np.random.default_rng(1).uniform(5.0, 40.0, (h, w))
    got = position_crb(variance, np.array([20.0]), np.array([25.0]), np.array([400.0]),
                       transfer=sfft.rfft2(psf), canvas_shape=(hc, wc))  # fmt: skip
    r = np.arange(h)[:, None] - 20.0
    c = np.arange(w)[None, :] - 25.0
    g = 400.0 * np.exp(-(r**2 + c**2) / (2 * sd**2)) / (2 * np.pi * sd**2)
    info_r = np.sum((g * r / sd**2) ** 2 / variance)
    info_c = np.sum((g * c / sd**2) ** 2 / variance)
    assert got[0] == pytest.approx(np.sqrt(1 / info_r + 1 / info_c), rel=0.03)
    # four times the electrons on the same noise: a quarter of the bound
    got4 = position_crb(variance, np.array([20.0]), np.array([25.0]), np.array([1600.0]),
                        transfer=sfft.rfft2(psf), canvas_shape=(hc, wc))  # fmt: skip
    assert got4[0] == pytest.approx(got[0] / 4, rel=1e-6)


def test_detectability_grows_with_dose_and_weak_columns_are_dont_care():
    kw = dict(shape=(96, 96), seed=3, scene="interface", structure="GaAs", zone_axis="110",
              structure2="Si", zone_axis2="110", pixel_size_angstrom=0.12,
              source_size_angstrom=0.5, thickness_angstrom=60.0, thickness2_angstrom=60.0,
              background_level=0.1, clip_8bit=False, read_noise_e=0.0)  # fmt: skip
    snr = {}
    for dose in (1e3, 1e5):
        s = simulate_image(dose_e_per_A2=dose, **kw)
        c = s.columns
        snr[dose] = c.loc[c["labelled"], "snr"].to_numpy()
        assert np.array_equal(c["detectable"], c["labelled"] & (c["snr"] >= 5.0))
        # detectable columns are 1 in the mask, labelled but too weak ones 2 ("don't care")
        ij = np.round(c[["row", "col"]].to_numpy()).astype(int)
        ok = (ij >= 0).all(axis=1) & (ij[:, 0] < 96) & (ij[:, 1] < 96)
        at = s.mask[ij[ok, 0], ij[ok, 1]]
        assert np.all(at[c["detectable"].to_numpy()[ok]] == 1)
        weak = (c["labelled"] & ~c["detectable"]).to_numpy()[ok]
        assert np.all(np.isin(at[weak], (1, 2)))
        assert set(np.unique(s.mask)) <= {0, 1, 2}
    # without read noise, SNR grows as the square root of the dose (Poisson)
    assert np.median(snr[1e5] / snr[1e3]) == pytest.approx(10.0, rel=0.1)
    assert (snr[1e3] < 5).sum() > (snr[1e5] < 5).sum()
    # noise-free images: every labelled column is detectable
    clean = simulate_image(noise=False, **kw)
    assert clean.columns["detectable"].equals(clean.columns["labelled"])
    everything = simulate_image(dose_e_per_A2=1e3, config={"label_min_snr": 0}, **kw)
    assert everything.columns["detectable"].equals(everything.columns["labelled"])
    with pytest.raises(ValueError, match="label_min_snr"):
        simulate_image(config={"label_min_snr": -1}, **kw)


def test_thin_edges_and_monolayers():
    perfect = dict(vacancy_fraction=0.0, roughness_fraction=0.0, column_vacancy_fraction=0.0)
    s = simulate_image(shape=(128, 128), seed=5, scene="wedge", structure="Au", zone_axis="110",
                       pixel_size_angstrom=0.15, wedge_slope=0.3, edge_offset_angstrom=-5.0,
                       **perfect)  # fmt: skip
    counts = s.columns["n_atoms"]
    assert counts.min() == 1 and (counts <= 3).sum() >= 5
    mono = simulate_image(shape=(64, 64), seed=1, scene="slab", structure="MoS2", zone_axis="0001",
                          thickness_angstrom=6.147, thickness_slope=[0, 0], **perfect)  # fmt: skip
    by_z = mono.columns.groupby("z")["n_atoms"].unique()
    assert list(by_z.loc[42]) == [1] and list(by_z.loc[16]) == [2]  # Mo and S2 columns


def test_label_maps():
    s = simulate_image(shape=(96, 96), seed=8, scene="slab", structure="Pt", zone_axis="110",
                       pixel_size_angstrom=0.12, **CLEAN)  # fmt: skip
    assert s.mask.dtype == np.uint8 and s.gaussian.dtype == np.float32
    assert set(np.unique(s.mask)) <= {0, 1}
    r = s.params["label_disc_radius_px"]
    assert r == pytest.approx(0.4 / 0.12)
    assert s.params["label_gaussian_sigma_px"] == pytest.approx(0.3 / 0.12)
    ij = np.round(s.positions).astype(int)
    assert s.mask[ij[:, 0], ij[:, 1]].all()
    assert s.gaussian.max() <= 1.0
    assert np.all(s.gaussian[ij[:, 0], ij[:, 1]] > 0.9)
    # every labelled pixel lies within the disc radius of a column
    d, _ = cKDTree(s.positions).query(np.argwhere(s.mask[5:-5, 5:-5] == 1) + 5)
    assert d.max() <= r + 1e-6


def test_eight_bit_export():
    s = simulate_image(shape=(48, 48), seed=2, clip_8bit=True, clip_percentiles=[0.5, 99.5])
    assert s.image.min() == 0 and s.image.max() == 255
    assert np.array_equal(s.image, np.round(s.image))


def test_parameter_distribution_matches_the_design():
    cfg = load_config()
    ps = [draw_params(i, (256, 256), cfg, {}) for i in range(600)]
    px = np.array([p["pixel_size_angstrom"] for p in ps])
    assert px.min() >= 0.05 and px.max() <= 0.5
    assert np.mean((px >= 0.08) & (px <= 0.3)) > 0.7
    dose = np.array([p["dose_e_per_A2"] for p in ps])
    assert dose.min() >= 1e2 and dose.max() <= 1e6
    assert 0.3 < np.mean(dose < 1e4) < 0.7  # log-uniform
    edges = [p for p in ps if p["scene"] in ("particle", "wedge")]
    assert len(edges) / len(ps) >= 0.3
    scenes = {p["scene"] for p in ps}
    assert scenes == {"slab", "wedge", "steps", "particle", "interface", "grain_boundary"}
    assert np.mean([p["clip_8bit"] for p in ps]) > 0.2
    assert np.mean([p["amorphous_thickness_angstrom"] > 0 for p in ps]) > 0.2
    assert len({p["structure"] for p in ps}) > 40


def test_config_restricts_the_draws(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"structures": ["GaN"], "scene_weights": {"particle": 1}}))
    cfg = load_config(path)
    s = simulate_image(shape=(32, 32), rng=0, config=path)
    assert s.params["structure"] == "GaN" and s.params["scene"] == "particle"
    assert cfg["structures"] == ["GaN"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 32)}, "shape"),
        ({"shape": (32,)}, "shape"),
        ({"shape": (32.5, 32)}, "shape"),
        ({"pixel_size_angstrom": 0.0}, "pixel_size_angstrom"),
        ({"dose_e_per_A2": -5.0}, "dose_e_per_A2"),
        ({"structure": "Unobtainium"}, "unknown structure"),
        ({"structure": "Au", "zone_axis": "0001"}, "zone axis"),
        ({"scene": "moon"}, "scene"),
        ({"thickness_angstrom": -1.0}, "thickness_angstrom"),
        ({"dose": 1e3}, "unknown parameter 'dose'"),
        ({"seed": -3}, "seed"),
        ({"config": {"pixel_size": [0.1, 0.2]}}, "unknown config key 'pixel_size'"),
        ({"config": {"dose_e_per_A2": [1e5, 1e2]}}, "dose_e_per_A2"),
        ({"config": {"structures": ["Au"], "zone_axes": ["0001"]}}, "zone axes"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, match):
    kwargs = {"shape": (32, 32), **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate_image(**kwargs)


def test_library_round_trip_and_resume(tmp_path, monkeypatch):
    import atomseg.sim.library as lib

    whole = write_library(tmp_path / "whole.h5", n=6, seed=9, shape=(32, 40), workers=1)
    with h5py.File(whole) as f:
        assert f["images"].shape == (6, 32, 40) and f["images"].chunks == (1, 32, 40)
        assert f["masks"].dtype == np.uint8 and f["images"].compression is not None
        names = ("image", "row", "col", "z", "n_atoms", "labelled", "snr")
        assert f["columns"].dtype.names == names
        off = f["column_offsets"][:]
        assert off[0] == 0 and off[-1] == len(f["columns"]) and np.all(np.diff(off) >= 0)
        assert np.all(f["columns"]["image"][off[2] : off[3]] == 2)
        assert int(f.attrs["n_done"]) == 6 and int(f.attrs["n_target"]) == 6
        assert tuple(f.attrs["shape"]) == (32, 40) and int(f.attrs["seed"]) == 9
        assert f["dose_e_per_A2"][0] == np.float32(json.loads(f["params"][0])["dose_e_per_A2"])
    # a sample read back equals the same image re-made from its parameters
    s = read_library_sample(whole, 4)
    again = remake(s.params, shape=(32, 40))
    assert np.array_equal(s.image, again.image) and np.array_equal(s.mask, again.mask)
    assert np.allclose(s.columns[["row", "col"]], again.columns[["row", "col"]], atol=1e-4)
    # interrupt a second run after 3 images, then resume it
    real = lib._record
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(lib, "_record", flaky)
    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        write_library(out, n=6, seed=9, shape=(32, 40), workers=1, flush_every=2)
    assert not out.exists()
    with h5py.File(tmp_path / "resumed.h5.partial") as f:
        assert int(f.attrs["n_done"]) == 3
    with pytest.raises(ValueError, match="seed"):
        write_library(out, n=6, seed=10, shape=(32, 40), workers=1)
    monkeypatch.setattr(lib, "_record", real)
    assert write_library(out, n=6, seed=9, shape=(32, 40), workers=1) == out
    with h5py.File(whole) as a, h5py.File(out) as b:
        for key in a:
            assert np.array_equal(a[key][:], b[key][:]), key
    # finished: reported as done; a different n is an error
    assert write_library(out, n=6, seed=9, shape=(32, 40), workers=1) == out
    with pytest.raises(ValueError, match="n=6"):
        write_library(out, n=7, seed=9, shape=(32, 40), workers=1)
    with pytest.raises(IndexError):
        read_library_sample(out, 6)


def test_parallel_library_equals_serial(tmp_path):
    a = write_library(tmp_path / "a.h5", n=4, seed=2, shape=(32, 32), workers=1)
    b = write_library(tmp_path / "b.h5", n=4, seed=2, shape=(32, 32), workers=2)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for key in fa:
            assert np.array_equal(fa[key][:], fb[key][:]), key


def test_cli_simulate_with_figure(tmp_path):
    out, png = tmp_path / "lib.h5", tmp_path / "grid.png"
    argv = ["simulate", "--n", "2", "--size", "32", "-o", str(out), "--seed", "4"]
    assert main([*argv, "--workers", "1", "--figure", str(png)]) == 0
    assert out.is_file() and png.stat().st_size > 1000
    assert main([*argv, "--workers", "1"]) == 0  # already complete
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    assert main(["simulate", "--n", "2", "-o", str(tmp_path / "x.h5"), "--config", str(bad)]) == 2


def test_bicrystals_and_supports():
    gb = simulate_image(shape=(96, 96), seed=1, scene="grain_boundary", structure="Pt",
                        zone_axis="110", pixel_size_angstrom=0.2, **CLEAN)  # fmt: skip
    p = gb.params
    assert p["structure2"] == "Pt" and p["rotation2_deg"] != p["rotation_deg"]
    nn = cKDTree(gb.positions).query(gb.positions, k=2)[0][:, 1] * 0.2
    assert nn.min() > 0.6 * project_structure("Pt", "110").min_column_distance_angstrom() - 0.2
    itf = simulate_image(shape=(64, 64), seed=2, scene="interface", structure="SrTiO3",
                         zone_axis="100", structure2="LaAlO3", zone_axis2="100")  # fmt: skip
    assert {38, 57} <= set(itf.columns["z"])  # Sr and La columns
    bare = simulate_image(shape=(64, 64), seed=4, scene="particle", structure="Au",
                          zone_axis="110", amorphous_thickness_angstrom=0.0, **{
                              k: v for k, v in CLEAN.items() if k != "amorphous_thickness_angstrom"
                          })  # fmt: skip
    film = simulate_image(shape=(64, 64), **{**bare.params, "amorphous_thickness_angstrom": 80.0})
    assert film.columns.equals(bare.columns)  # the support adds texture, not columns
    assert film.image.std() > 0 and not np.array_equal(film.image, bare.image)


def test_lazy_top_level_access_and_repr():
    import atomseg

    s = atomseg.simulate_image(shape=(32, 32), rng=0)
    assert "columns" in repr(s) and s.dose_e_per_A2 > 0
    assert s.positions.shape == (len(s.columns), 2)


def test_columns_just_outside_the_image_are_listed_apart():
    s = simulate_image(shape=(64, 64), seed=4, structure="SrTiO3", zone_axis="100",
                       scene="slab", pixel_size_angstrom=0.15, noise=False)  # fmt: skip
    out = s.outside_columns
    assert list(out.columns) == ["row", "col", "z", "n_atoms"] and len(out) > 0
    rows, cols = out["row"].to_numpy(), out["col"].to_numpy()
    inside = (rows >= -0.5) & (rows < 63.5) & (cols >= -0.5) & (cols < 63.5)
    assert not inside.any()
    # within one column spacing of the image: the lattice just continues past the border
    spacing = nearest_neighbour_distance(s.positions)
    depth = np.maximum.reduce([-0.5 - rows, rows - 63.5, -0.5 - cols, cols - 63.5])
    assert depth.max() <= spacing + 1e-9 and depth.min() > 0
    assert len(out) > 4 * 64 / spacing  # a row of them along each side


def test_truth_counts_the_blob_of_a_dumbbell_no_column_of_which_is_asked_for():
    kw = dict(shape=(96, 96), seed=5, structure="Si", zone_axis="110", scene="slab",
              pixel_size_angstrom=0.2)  # fmt: skip
    noise_free = simulate_image(dose_e_per_A2=1e5, noise=False, **kw)
    clear = noise_free.truth(11)
    faint = simulate_image(dose_e_per_A2=1e2, **kw)
    t = faint.truth(11)
    assert clear["asked"].all() and not t["asked"].any()  # 1.36 Å apart: too faint at 1e2
    # all asked: blobs only where both columns are centred outside the image
    out = noise_free.outside_columns[["row", "col"]].to_numpy()
    extra = clear["dont_care"][len(out) :]
    d, _ = cKDTree(out).query(extra, k=2)
    assert np.allclose(d[:, 0], d[:, 1]) and (d * 0.2 < 0.8).all()  # midway, a / 8 = 0.68 Å
    n_out = len(faint.outside_columns)
    blobs = t["dont_care"][len(faint.columns) + n_out :]
    assert len(blobs) >= len(faint.columns) // 2
    # each blob lies midway between two Si columns 1.36 Å apart, 0.68 Å from either
    every = np.concatenate([faint.positions, faint.outside_columns[["row", "col"]].to_numpy()])
    d, _ = cKDTree(every).query(blobs, k=3)
    assert np.allclose(d[:, 0], d[:, 1])  # midway
    assert (d[:, :2] * 0.2 > 0.55).all() and (d[:, :2] * 0.2 < 0.8).all()  # position jitter
    assert (d[:, 2] * 0.2 > 2.0).all()  # and nothing else near
    # all resolved: in the truth of every resolved column, only blobs of outside pairs
    assert len(t["dont_care_resolved"]) < n_out + len(faint.columns) // 4
