"""Public reconstruction functions (re-exported by :mod:`tomocnn.recon`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tomocnn.recon._checks import (
    ALGORITHMS,
    _check_algorithm,
    _check_backend,
    _check_center,
    _check_n_iter,
    _check_projections,
    _check_scalar_center,
    _check_theta,
)
from tomocnn.recon._geometry import FILTERS

if TYPE_CHECKING:
    import h5py

#: Iterations used when ``n_iter=None``. SIRT: the error of a 64^3 nanoparticle reconstructed
#: from +-60 deg (61 angles) is within about 5 % of its 300-iteration value after 100
#: iterations; SART (full passes) and CGLS converge in far fewer; MLEM converges like SIRT.
DEFAULT_N_ITER = {"sirt": 100, "sart": 10, "cgls": 20, "mlem": 100, "fbp": 1}


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress_bar(progress: bool, total: int, desc: str):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="slice", dynamic_ncols=True)


def _resolve_backend(backend: str, algorithm: str) -> str:
    if backend != "auto":
        return backend
    import astra

    if astra.use_cuda():
        return "astra"
    return "torch"


def _check_out(out, shape):
    if out is None:
        return np.zeros(shape, dtype=np.float32)
    if tuple(getattr(out, "shape", ())) != tuple(shape):
        raise ValueError(
            f"out must have shape {shape} (n_rows, N, N), got {getattr(out, 'shape', None)}"
        )
    if isinstance(out, np.ndarray) and out.dtype != np.float32:
        raise TypeError(f"out must be a float32 array, got dtype {out.dtype}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def reconstruct(
    projections: npt.ArrayLike,
    theta: npt.ArrayLike,
    *,
    algorithm: str = "sirt",
    n_iter: int | None = None,
    center: float | npt.ArrayLike | None = None,
    backend: str = "auto",
    filter_name: str = "shepp-logan",
    min_constraint: float | None = None,
    device: str | None = None,
    progress: bool = False,
    out: np.ndarray | h5py.Dataset | None = None,
    init_recon: npt.ArrayLike | None = None,
) -> np.ndarray | h5py.Dataset:
    """Reconstruct a parallel-beam tilt series, as ``tomopy.recon`` would.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        Tilt series (line integrals), rows along the tilt axis (``sinogram_order=False``).
        Cast to float32; NaN or inf raise a ``ValueError``.
    theta : ndarray, shape (n_angles,)
        Projection angles in radians, in the order of ``projections``.
    algorithm : {"sirt", "sart", "cgls", "mlem", "fbp"}
        ``sirt``, ``sart`` and ``cgls`` follow ASTRA's algorithms, ``mlem`` TomoPy's
        (non-negative; a baseline), ``fbp`` is filtered back-projection with ``filter_name``.
    n_iter : int, optional
        Iterations (full passes over all angles for ``sart``). Default
        :data:`DEFAULT_N_ITER`: sirt 100, sart 10, cgls 20, mlem 100. Ignored by ``fbp``.
    center : float or ndarray, shape (n_rows,), optional
        Rotation centre in detector pixels along ``n_cols``, as in TomoPy; None means
        ``n_cols / 2``.
    backend : {"auto", "torch", "astra", "tomopy"}
        ``"torch"`` is the built-in backend: ASTRA's CPU ``linear`` projector as a sparse
        matrix, every slice at once (CPU or CUDA via torch); ``"astra"``: ASTRA's 2-D CPU
        algorithms slice by slice, or its CUDA algorithms (3-D SIRT/CGLS) when
        ``astra.use_cuda()``; ``"tomopy"``: ``tomopy.recon`` (sirt, mlem, fbp). ``"auto"``
        picks ASTRA when it has CUDA, otherwise ``"torch"``. ``"builtin"`` is an alias of
        ``"torch"``.
    filter_name : {"ram-lak", "shepp-logan", "cosine", "hamming", "hann"}
        FBP filter window.
    min_constraint : float, optional
        Clip values below this after every SIRT/SART update (ASTRA's ``MinConstraint``).
        Default None: plain SIRT, as ASTRA and TomoPy give it.
    device : str, optional
        Torch device of the built-in backend (default CUDA if torch sees one, else CPU).
    progress : bool
        Show a progress bar over slices.
    out : ndarray or h5py.Dataset, shape (n_rows, n_cols, n_cols), optional
        Where to write the result (float32).
    init_recon : ndarray, shape (n_rows, n_cols, n_cols), optional
        The volume the iterations start from, as TomoPy's ``init_recon`` (default: zeros; ones
        for MLEM). MLEM raises its zeros to 1e-6 so that they can still change. Iterative
        algorithms of the ``"torch"`` and ``"tomopy"`` backends.

    Returns
    -------
    volume : ndarray, shape (n_rows, n_cols, n_cols)
        float32, in TomoPy's orientation (``out`` itself if given). At ``theta = 0`` the beam
        ran along axis 1, so a missing wedge elongates features along axis 1.

    Raises
    ------
    ValueError
        Wrong shapes, ``len(theta) != n_angles``, NaN/inf, angles apparently in degrees,
        unknown algorithm or backend, or an algorithm the backend lacks.
    ImportError
        ``backend="tomopy"`` without TomoPy installed.

    Notes
    -----
    FBP weights every projection by its angular spacing, so a limited or uneven range is
    normalised correctly (for ``n`` even angles over pi this is ASTRA's ``pi / n``).

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.recon import reconstruct
    >>> from tomocnn.sim import project
    >>> vol = np.zeros((2, 32, 32), np.float32)
    >>> vol[:, 12:20, 10:22] = 1
    >>> theta = np.deg2rad(np.arange(-60, 61, 2.0))
    >>> rec = reconstruct(project(vol, theta), theta, algorithm="sirt", n_iter=50)
    >>> rec.shape, rec.dtype
    ((2, 32, 32), dtype('float32'))
    >>> bool(abs(rec[:, 16, 16].mean() - 1) < 0.2)
    True
    """
    proj = _check_projections(projections)
    n_angles, n_rows, n_cols = proj.shape
    theta = _check_theta(theta, n_angles)
    algorithm = _check_algorithm(algorithm)
    n_iter = _check_n_iter(n_iter, DEFAULT_N_ITER[algorithm])
    centers = _check_center(center, n_rows, n_cols)
    backend = _check_backend(backend)
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter_name {filter_name!r}; choose one of {FILTERS}")
    if min_constraint is not None:
        min_constraint = float(min_constraint)
    out = _check_out(out, (n_rows, n_cols, n_cols))
    backend = _resolve_backend(backend, algorithm)
    if init_recon is not None:
        if isinstance(init_recon, np.ndarray) or not hasattr(init_recon, "shape"):
            from tomocnn.recon._checks import _check_volume

            init_recon = _check_volume(init_recon)  # an h5py.Dataset is read slab by slab
        if tuple(init_recon.shape) != (n_rows, n_cols, n_cols):
            raise ValueError(
                f"init_recon must have the shape of the result {(n_rows, n_cols, n_cols)}, "
                f"got {tuple(init_recon.shape)}"
            )
        if algorithm == "fbp" or backend == "astra":
            raise ValueError(
                "init_recon needs an iterative algorithm (sirt, sart, cgls, mlem) of the "
                f"'torch' or 'tomopy' backend, got {algorithm!r} with {backend!r}"
            )
    bar = _progress_bar(progress, n_rows, f"{algorithm} ({backend})")
    try:
        if backend == "torch":
            from tomocnn.recon._torch import reconstruct_torch

            return reconstruct_torch(
                proj,
                theta,
                centers,
                algorithm=algorithm,
                n_iter=n_iter,
                filter_name=filter_name,
                min_constraint=min_constraint,
                device=device,
                out=out,
                bar=bar,
                init_recon=init_recon,
            )
        if backend == "astra":
            from tomocnn.recon._astra import reconstruct_astra

            return reconstruct_astra(
                proj,
                theta,
                centers,
                algorithm=algorithm,
                n_iter=n_iter,
                filter_name=filter_name,
                min_constraint=min_constraint,
                out=out,
                bar=bar,
            )
        from tomocnn.recon._tomopy import reconstruct_tomopy

        return reconstruct_tomopy(
            proj,
            theta,
            centers,
            algorithm=algorithm,
            n_iter=n_iter,
            filter_name=filter_name,
            out=out,
            bar=bar,
            init_recon=init_recon,
        )
    finally:
        bar.close()


def backproject(
    projections: npt.ArrayLike,
    theta: npt.ArrayLike,
    *,
    center: float | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Unfiltered back-projection: the exact adjoint of :func:`tomocnn.sim.project`.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        Tilt series.
    theta : ndarray, shape (n_angles,)
        Angles in radians.
    center : float, optional
        Rotation centre in detector pixels (TomoPy's ``center``); None means ``n_cols / 2``.
    device : str, optional
        Torch device (default CUDA if available, else CPU).

    Returns
    -------
    volume : ndarray, shape (n_rows, n_cols, n_cols)
        float32 ``A^T p`` with ``A`` ASTRA's ``linear`` projector, slice by slice.

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.recon import backproject
    >>> theta = np.deg2rad([0.0])
    >>> p = np.zeros((1, 1, 8), np.float32)
    >>> p[0, 0, 2] = 1
    >>> bp = backproject(p, theta)
    >>> bp.shape, bool(np.allclose(bp[0, :, 2], 1)), float(bp[0, :, 3].max())
    ((1, 8, 8), True, 0.0)
    """
    from tomocnn.recon._torch import backproject_torch

    proj = _check_projections(projections)
    theta = _check_theta(theta, proj.shape[0])
    c = _check_scalar_center(center, proj.shape[2])
    return backproject_torch(proj, theta, c, device=device)


def reconstruct_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    algorithm: str = "sirt",
    n_iter: int | None = None,
    center: float | npt.ArrayLike | None = None,
    backend: str = "auto",
    progress: bool = True,
    tilt_range_deg: tuple[float, float] | None = None,
    tilt_step_deg: float | None = None,
) -> str:
    """Reconstruct a tilt-series file into an HDF5 volume (``tomocnn recon``).

    Parameters
    ----------
    input : str or path
        A tilt series in any format :func:`tomocnn.io.read_tilt_series` reads (Data Exchange
        flat/dark normalised; MRC/IMOD, DM, HyperSpy, TIFF as recorded), aligned already (see
        :func:`tomocnn.align` and ``tomocnn align``).
    output : str or path
        Output HDF5 file. The volume ``(n_rows, N, N)`` float32 goes to ``/exchange/data``,
        with the settings (algorithm, n_iter, backend, center, tilt range, software) as its
        attributes. It is written block by block under a temporary name and renamed when
        complete (:func:`tomocnn.io.streaming_output`); the input is never overwritten.
    algorithm, n_iter, center, backend
        As in :func:`reconstruct`.
    progress : bool
        Show a progress bar over slices.
    tilt_range_deg, tilt_step_deg
        Angles for a file that has none (see :func:`tomocnn.io.read_tilt_series`).

    Returns
    -------
    str
        The output path.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_volume, write_dataexchange
    >>> from tomocnn.recon import reconstruct_file
    >>> d = tempfile.mkdtemp()
    >>> theta = np.deg2rad(np.arange(-60, 61, 3.0))
    >>> write_dataexchange(os.path.join(d, "t.h5"), np.ones((41, 2, 16), np.float32), theta)
    >>> out = reconstruct_file(os.path.join(d, "t.h5"), os.path.join(d, "r.h5"),
    ...                        n_iter=10, progress=False)
    >>> read_volume(out).shape
    (2, 16, 16)
    """
    from tomocnn import __version__
    from tomocnn.io import read_tilt_series, streaming_output

    proj, theta = read_tilt_series(
        input, tilt_range_deg=tilt_range_deg, tilt_step_deg=tilt_step_deg
    )
    algorithm = _check_algorithm(algorithm)
    n_iter_used = _check_n_iter(n_iter, DEFAULT_N_ITER[algorithm])
    resolved = _resolve_backend(_check_backend(backend), algorithm)
    proj = _check_projections(proj)
    n_angles, n_rows, n_cols = proj.shape
    centers = _check_center(center, n_rows, n_cols)
    theta_deg = np.rad2deg(_check_theta(theta, n_angles))
    attrs = {
        "algorithm": algorithm,
        "n_iter": 0 if algorithm == "fbp" else n_iter_used,
        "backend": resolved,
        "center": float(np.mean(centers)),
        "n_angles": int(n_angles),
        "theta_min_deg": float(theta_deg.min()),
        "theta_max_deg": float(theta_deg.max()),
        "source": os.fspath(input),
        "software": f"tomocnn {__version__}",
    }
    shape = (n_rows, n_cols, n_cols)
    with streaming_output(output, shape, np.float32, attrs=attrs, input_path=input) as out:
        reconstruct(
            proj,
            theta,
            algorithm=algorithm,
            n_iter=n_iter_used,
            center=centers,
            backend=resolved,
            progress=progress,
            out=out,
        )
    return os.fspath(output)


__all__ = ["ALGORITHMS", "DEFAULT_N_ITER", "backproject", "reconstruct", "reconstruct_file"]
