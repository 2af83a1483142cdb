"""Synthetic ADF/HAADF-STEM images with exact ground truth, and libraries of them.

A column finder is only as good as the images it learns from, so the generator randomises what
breaks networks on real data: many crystal structures (fcc, bcc, hcp, diamond, zincblende,
wurtzite, rocksalt, perovskite, fluorite, spinel, rutile, layered/2D) along low-index zone axes,
pixel sizes from 0.05 to 0.5 Å, aberration-corrected and uncorrected probes, faceted particles
with thin edges in vacuum or on amorphous supports, wedges, steps, interfaces, grain boundaries
and twins, vacancies, backgrounds, doses from 1e2 to 1e6 e/Å², scan distortions and 8-bit
exports. Every image comes with its columns (position, Z, atom count, signal-to-noise ratio at
the image's dose), disc and Gaussian label maps and every parameter needed to re-make it.

What a finder is asked to find: columns with an atom of Z >= ``label_min_z`` that are resolved
from their neighbours and *detectable* at the image's dose, their own contrast standing out of
the noise with an ideal-observer SNR of at least ``label_min_snr`` (5, Rose's criterion).
Resolved columns too weak for the dose are "don't care" (2 in the mask): a 1e2 e/Å² image of a
light lattice carries a handful of detected electrons per column, which no method can find.

The image model is a fast linear (incoherent) approximation, column cross-sections ~ Z^n with a
saturating thickness dependence convolved with an aberrated probe; it has no dynamical
scattering (no cross-talk between columns, no thickness-dependent column shapes). See
:mod:`atomseg.sim.imaging` for the model and its limits.

Modules
-------
crystals   structures from lattice parameters + basis, zone-axis projection into columns
specimen   scenes: slabs, wedges, steps, particles, bicrystals; supports; defects
imaging    probe, incoherent image formation, scan distortion, detector noise, labels
params     configuration (parameter distributions) and per-image parameters
library    :func:`simulate_image`, :func:`write_library` (HDF5 layout documented there),
           :func:`read_library_sample`, :func:`remake`, :func:`save_sample_grid`

Conventions: positions are ``(row, col)`` in pixels of the image, sub-pixel, with pixel centres
at integer coordinates; lengths carry their unit in their name (``pixel_size_angstrom``).

Command line: ``atomseg simulate --n 10000 -o library.h5 [--seed S] [--config FILE]``.
"""

from atomseg.sim.crystals import (
    ProjectedCell,
    column_atom_counts,
    list_structures,
    project_structure,
)
from atomseg.sim.imaging import electron_wavelength_angstrom, probe_intensity, scan_positions
from atomseg.sim.library import (
    Sample,
    read_library_sample,
    remake,
    save_sample_grid,
    simulate_image,
    write_library,
)
from atomseg.sim.params import DEFAULT_CONFIG, load_config
from atomseg.sim.specimen import SCENES, build_specimen, thickness_map

__all__ = [
    "Sample",
    "simulate_image",
    "remake",
    "write_library",
    "read_library_sample",
    "save_sample_grid",
    "load_config",
    "DEFAULT_CONFIG",
    "SCENES",
    "list_structures",
    "project_structure",
    "ProjectedCell",
    "column_atom_counts",
    "build_specimen",
    "thickness_map",
    "probe_intensity",
    "electron_wavelength_angstrom",
    "scan_positions",
]
