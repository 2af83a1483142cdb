"""Atoms in a volume: per-slice detections linked across slices (atomseg.infer.atoms)."""

import numpy as np
import pandas as pd
import pytest

from atomseg.infer import link_frames, locate_atoms

VOXEL = 0.35  # Å


def _table(frames, rows, cols, levels):
    return pd.DataFrame(
        {"frame": frames, "row": rows, "col": cols, "score": 0.9, "intensity": levels}
    )


def test_link_frames_joins_one_object_per_chain_and_drops_noise():
    f = np.arange(12)
    blob = np.exp(-((f - 5.3) ** 2) / 3.0)
    near = blob > 0.05
    drifting = _table(f[near], 10 + 0.5 * f[near], 20.0, blob[near])  # 0.5 px per frame
    beside = _table(f[near], 10 + 0.5 * f[near], 26.0, blob[near])  # 6 px away: another
    noise = _table([3], [40.0], [40.0], [1.0])  # seen in one frame only
    linked = link_frames(pd.concat([drifting, beside, noise]), max_shift_px=2.0)
    assert len(linked) == 2
    np.testing.assert_allclose(linked["frame"], 5.3, atol=0.05)
    np.testing.assert_allclose(sorted(linked["col"]), [20.0, 26.0])
    assert (linked["n_frames"] == near.sum()).all()
    # a step larger than max_shift_px breaks the chain into pieces too short to keep
    assert len(link_frames(drifting, max_shift_px=0.3)) == 0
    # min_frames=1 keeps the noise too
    assert len(link_frames(noise, max_shift_px=2.0, min_frames=1)) == 1


def test_link_frames_splits_atoms_stacked_along_the_axis():
    f = np.arange(14)
    level = np.exp(-((f - 3.0) ** 2) / 2) + 0.8 * np.exp(-((f - 8.6) ** 2) / 2)
    linked = link_frames(_table(f, 15.0, 15.0, level), max_shift_px=1.0)
    np.testing.assert_allclose(linked["frame"], [3.0, 8.6], atol=0.15)
    # a shallow dip (one blob with a noisy profile) is not a cut
    bumpy = np.exp(-((f - 6.0) ** 2) / 8) * (1 - 0.1 * (f == 5))
    assert len(link_frames(_table(f, 15.0, 15.0, bumpy), max_shift_px=1.0)) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_shift_px=0.0), "max_shift_px must be positive"),
        (dict(max_shift_px=1.0, min_frames=0), "min_frames must be >= 1"),
    ],
)
def test_link_frames_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        link_frames(_table([0], [1.0], [1.0], [1.0]), **kwargs)


def test_link_frames_names_missing_columns():
    with pytest.raises(ValueError, match="lacks the columns"):
        link_frames(pd.DataFrame({"frame": [0], "row": [1.0]}), max_shift_px=1.0)


def _atom_volume(seed=0):
    """Gaussian atoms (sigma 0.45 Å) on a 3 Å cubic lattice, jittered, in a 48³ volume."""
    rng = np.random.default_rng(seed)
    n = 48
    g = (np.arange(3) - 1) * 3.0 / VOXEL + (n - 1) / 2
    atoms = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    atoms += rng.uniform(-0.5, 0.5, atoms.shape)
    zz, yy, xx = np.mgrid[:n, :n, :n]
    vol = np.zeros((n, n, n), np.float32)
    s2 = 2 * (0.45 / VOXEL) ** 2
    for a0, a1, a2 in atoms:
        vol += np.exp(-((zz - a0) ** 2 + (yy - a1) ** 2 + (xx - a2) ** 2) / s2)
    vol += rng.normal(0, 0.01, vol.shape).astype(np.float32)
    return vol, atoms


@pytest.mark.parametrize("axis", [0, 2])
def test_locate_atoms_finds_every_atom_in_volume_order(axis):
    vol, atoms = _atom_volume()
    table = locate_atoms(vol, voxel_size_angstrom=VOXEL, axis=axis)
    found = table[["plane", "row", "col"]].to_numpy()
    assert len(found) == len(atoms)
    d = np.linalg.norm(found[:, None] - atoms[None], axis=2).min(axis=0)
    assert d.max() * VOXEL < 0.1  # Å, every atom, whichever axis was sliced
    np.testing.assert_allclose(table["plane_angstrom"], table["plane"] * VOXEL)


def test_locate_atoms_bad_input():
    with pytest.raises(ValueError, match="volume must be 3-D"):
        locate_atoms(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="voxel_size_angstrom must be positive"):
        locate_atoms(np.zeros((4, 16, 16)), voxel_size_angstrom=-1)


def test_smoothing_along_the_axis_reads_the_volume_slice_by_slice():
    from atomseg.infer.atoms import _AxisSmoothed

    vol = np.random.default_rng(0).random((9, 5, 6))
    smoothed = _AxisSmoothed(vol, 1, 1.0)
    from scipy import ndimage

    want = ndimage.gaussian_filter1d(vol, 1.0, axis=1, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(smoothed[(slice(None), 2, slice(None))], want[:, 2], atol=1e-12)
    with pytest.raises(ValueError, match="smooth_angstrom"):
        locate_atoms(vol, smooth_angstrom=-1)


def test_faint_blobs_in_nearly_empty_slices_are_not_atoms():
    vol, atoms = _atom_volume()
    zz, yy, xx = np.mgrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    ghost = np.array([4.0, 10.0, 30.0])  # 4 % of an atom, in slices the atoms do not reach
    vol += 0.04 * np.exp(-((zz - 4.0) ** 2 + (yy - 10.0) ** 2 + (xx - 30.0) ** 2) / 2.6)
    # columns-v4 reads the lone blob as a column in its slices (columns-v5, stricter, does not)
    kw = dict(voxel_size_angstrom=VOXEL, model="columns-v4")
    everything = locate_atoms(vol, min_relative_intensity=0, **kw)
    found = everything[["plane", "row", "col"]].to_numpy()
    assert np.linalg.norm(found - ghost, axis=1).min() < 1.0  # seen on its own slices ...
    table = locate_atoms(vol, **kw)  # ... but far fainter than the atoms
    assert len(table) == len(atoms)


def test_an_hdf5_volume_is_read_slice_by_slice_with_the_same_atoms(tmp_path):
    import h5py

    vol, _ = _atom_volume()
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        f["rec"] = vol
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        from_file = locate_atoms(f["rec"], voxel_size_angstrom=VOXEL)
    in_memory = locate_atoms(vol, voxel_size_angstrom=VOXEL)
    pd.testing.assert_frame_equal(from_file, in_memory)
