"""Tomographic reconstruction of parallel-beam tilt series, with TomoPy's conventions.

:func:`reconstruct` takes and returns what ``tomopy.recon`` does: projections
``(n_angles, n_rows, n_cols)`` (rows along the tilt axis), ``theta`` in radians, ``center`` in
detector pixels (None = ``n_cols / 2``), and returns a float32 volume ``(n_rows, N, N)`` with
``N = n_cols``. At ``theta = 0`` the beam runs along axis 1 of each slice, and positive angles
turn as in TomoPy (a voxel at offset ``(a1, a2)`` from the centre of its slice is seen at
detector offset ``a2 cos(theta) - a1 sin(theta)``), so results can be swapped between
backends and with TomoPy's.

Backends
--------
``"torch"`` (built-in, the default without CUDA)
    ASTRA's CPU ``linear`` projector of one slice, taken once per geometry as a sparse matrix
    (``astra.projector.matrix``), with SIRT, SART, CGLS, MLEM and FBP run on all slices at
    once as sparse x dense products (torch; a GPU is used if torch sees one). It agrees with
    ASTRA's CPU algorithms (tested) and is more than 10x faster on one CPU core
    (64^3, 61 angles, SIRT 100: about 0.6 s against 14 s). Memory: about
    ``16 * 2 * N**2 * n_angles`` bytes per geometry, so it suits volumes up to ~512^2 slices.
``"astra"``
    ASTRA's 2-D CPU algorithms slice by slice (SIRT, SART, CGLS, FBP; no MLEM), or ASTRA's CUDA
    algorithms (3-D SIRT and CGLS, 2-D FBP, SART, EM) when ``astra.use_cuda()``.
``"tomopy"``
    ``tomopy.recon`` itself (sirt, mlem, fbp), imported only when asked for (conda-forge).
``"auto"``
    ASTRA when it has CUDA, otherwise ``"torch"``.

Functions
---------
reconstruct        projections -> volume
backproject        the adjoint of :func:`tomocnn.sim.project`
reconstruct_file   a tilt-series file -> HDF5 volume (``tomocnn recon``)
consistency        reprojection residual and mass ratio of a volume against its tilt series

The rotation centre
-------------------
``center`` is TomoPy's: a position along the detector row measured from the *outer edge* of
the first pixel (pixel ``j`` spans ``[j, j + 1)``), so the axis passes through pixel-centre
index ``center - 0.5``. This is what ``tomopy.recon`` does (``libtomo/recon/utils.c``: the ray of
detector pixel ``d`` passes the rotation axis at ``d + 0.5 - center``). The default
``n_cols / 2`` is therefore the middle of the detector for any width: the boundary between the
two middle pixels of an even width (128 for 256 pixels), the middle pixel itself of an odd one
(65.5 for 131 pixels: pixel 65, with 65 pixels on either side). :func:`tomocnn.align`
puts the axis there and reports ``center = n_cols / 2``.
"""

from tomocnn.recon._api import (
    DEFAULT_N_ITER,
    backproject,
    reconstruct,
    reconstruct_file,
)
from tomocnn.recon._checks import ALGORITHMS, BACKENDS
from tomocnn.recon.consistency import consistency

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "DEFAULT_N_ITER",
    "backproject",
    "consistency",
    "reconstruct",
    "reconstruct_file",
]
