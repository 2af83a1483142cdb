"""tomocnn: remove noise and missing-wedge artefacts from limited-angle tomography.

A drop-in post-processing step after ``tomopy.recon``::

    rec = tomopy.recon(proj, theta, algorithm="sirt")
    clean = tomocnn.remove_wedge(rec, theta)

Subpackages
-----------
sim      3D phantoms and simulated tilt series (noise, dose, jitter)
recon    reconstruction (ASTRA, TomoPy, and a batched built-in projector), consistency
align    alignment of real tilt series (tilt-axis angle, shifts, rotation centre)
models   the residual 3D CNN, the model registry and the shipped weights
train    training the CNN on simulated (reconstruction, truth) pairs
infer    tiled, streamed and Dask inference (``remove_wedge``)
io       tilt series (Data Exchange, MRC/IMOD, DM, HyperSpy, TIFF) and volumes in and out

Conventions (the same as TomoPy): projections are ``(n_angles, n_rows, n_cols)`` float32 with
rows along the tilt axis; volumes are ``(n_rows, N, N)``; ``theta`` is in radians in Python and in
degrees in files and on the command line. At ``theta = 0`` the beam runs along axis 1 of each
slice, so the missing wedge elongates features along axis 1.

Heavy dependencies (torch, astra) are imported only when needed, so ``import tomocnn`` is fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

try:
    __version__ = _dist_version("tomocnn-atomseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "reconstruct": "tomocnn.recon",
    "consistency": "tomocnn.recon",
    "align": "tomocnn.prep",
    "adapt": "tomocnn.train",
    "remove_wedge": "tomocnn.infer",
    "random_phantom": "tomocnn.sim",
    "tilt_series": "tomocnn.sim",
    "list_models": "tomocnn.models",
    "load_model": "tomocnn.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tomocnn' has no attribute {name!r}")
