"""atomseg: find atomic columns in atomic-resolution ADF/HAADF-STEM images.

A U-net segments the columns, a circular Hough transform detects each segmented column and the
positions are refined to sub-pixel accuracy. The network is trained on a synthetic library that
this package generates itself, so its ground truth is exact.

Subpackages
-----------
sim      synthetic ADF-STEM images with exact ground truth (crystals, zone axes, image formation)
models   the U-net, the model registry and the shipped weights
train    training the U-net on a simulated library
infer    segmentation and column finding on images, stacks and volume slices
detect   circular Hough detection, sub-pixel refinement and matching against a ground truth
io       reading images (npy, tiff, png, HDF5, dm3/dm4/emd/ser) with their calibration

Conventions: positions are ``(row, col)`` in pixels of the input image (sub-pixel floats);
physical sizes carry their unit in the name (``pixel_size_angstrom``).

Heavy dependencies (torch) are imported only when a function that needs them is called, so
``import atomseg`` stays fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

try:
    __version__ = _dist_version("tomocnn-atomseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "segment": "atomseg.infer",
    "locate": "atomseg.infer",
    "locate_stack": "atomseg.infer",
    "locate_atoms": "atomseg.infer",
    "simulate_image": "atomseg.sim",
    "write_library": "atomseg.sim",
    "list_models": "atomseg.models",
    "load_model": "atomseg.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'atomseg' has no attribute {name!r}")
