"""File-to-file wedge removal (``tomocnn denoise``) and the full pipeline (``tomocnn pipeline``).

Angles are in degrees in files (Data Exchange ``/exchange/theta``) and on the command line, in
radians in Python. Outputs are HDF5 volumes at ``/exchange/data``, written under a temporary name
and renamed only on success, so an error or Ctrl-C never leaves a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tomocnn.infer.wedge import (
    _check_supported,
    _get_model,
    _output_dtype,
    _tilt_range,
    remove_wedge,
)

__all__ = ["denoise_file", "pipeline_file", "default_algorithm"]

_OUT_DATASET = "/exchange/data"


def denoise_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    theta_file: str | os.PathLike | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
    model="default",
    progress: bool = True,
    device: str = "auto",
    batch_size: int = 1,
    nonnegative: bool | None = None,
) -> Path:
    """Remove the missing wedge from a reconstruction file, streaming HDF5 to HDF5.

    Parameters
    ----------
    input : str or path-like
        The reconstruction ``(n_rows, N, N)``: ``rec.h5`` (``/exchange/data``, else its only
        3-D dataset), ``rec.h5:/group/dataset``, or a ``.npy``, ``.tif`` or ``.mrc`` file. HDF5
        and ``.npy`` inputs are read slab by slab, never loaded whole.
    output : str or path-like
        Output HDF5 file; the volume goes to ``/exchange/data`` with the input's dtype (float32
        for integer input) and attributes naming the model, tilt range and tomocnn version. It is
        written under a temporary name and renamed on success. It must not be the input.
    theta_file : str or path-like, optional
        A Data Exchange file whose ``/exchange/theta`` holds the tilt angles (degrees).
    tilt_range_deg : (float, float), optional
        Minimum and maximum tilt angle, degrees, instead of ``theta_file``.
    model : str, path or WedgeModel
        As for :func:`remove_wedge`.
    nonnegative : bool, optional
        As for :func:`remove_wedge` (default: the model's setting).
    progress : bool
        Show a progress bar.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``, used when loading ``model``.
    batch_size : int
        Tiles per network call (raise it on a GPU).

    Returns
    -------
    pathlib.Path
        The output file.

    Raises
    ------
    ValueError
        Output is the input, neither or both of ``theta_file`` and ``tilt_range_deg``, bad angles,
        a volume that is not 3-D or holds NaN/inf.
    FileNotFoundError, PermissionError
        Missing input, missing or unwritable output folder.
    KeyError
        Unknown model, or no ``/exchange/theta`` in ``theta_file``.

    Examples
    --------
    >>> import os, tempfile
    >>> import h5py, numpy as np, torch
    >>> from tomocnn.models import WedgeModel, WedgeNet3D
    >>> from tomocnn.infer import denoise_file
    >>> _ = torch.manual_seed(0)
    >>> model = WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "untrained"})
    >>> d = tempfile.mkdtemp()
    >>> with h5py.File(os.path.join(d, "rec.h5"), "w") as f:
    ...     _ = f.create_dataset("/exchange/data", data=np.ones((4, 8, 8), np.float32))
    >>> out = denoise_file(os.path.join(d, "rec.h5"), os.path.join(d, "clean.h5"),
    ...                    tilt_range_deg=(-60, 60), model=model, progress=False)
    >>> with h5py.File(out) as f:
    ...     f["/exchange/data"].shape, f["/exchange/data"].attrs["tilt_range_deg"].tolist()
    ((4, 8, 8), [-60.0, 60.0])
    """
    from tomocnn import __version__, io

    if (theta_file is None) == (tilt_range_deg is None):
        raise ValueError("give exactly one of theta_file (Data Exchange angles) or tilt_range_deg")
    if theta_file is not None:
        theta_deg = np.rad2deg(io.read_theta(theta_file))
        tilt = _tilt_range(None, (theta_deg.min(), theta_deg.max()))
    else:
        tilt = _tilt_range(None, tilt_range_deg)
    wm = _get_model(model, device=device)
    _check_supported(wm, tilt)
    with io.opened(input) as volume:
        if len(volume.shape) != 3:
            raise ValueError(
                f"{input}: the volume must be 3-D (n_rows, N, N), got shape {tuple(volume.shape)}"
            )
        attrs = _copy_attrs(volume)
        attrs.update(_attrs(wm, tilt, __version__, source=str(input)))
        with io.streaming_output(
            output,
            tuple(volume.shape),
            _output_dtype(volume.dtype),
            dataset=_OUT_DATASET,
            attrs=attrs,
            input_path=input,
        ) as dset:
            remove_wedge(
                volume,
                tilt_range_deg=tilt,
                model=wm,
                out=dset,
                progress=progress,
                batch_size=batch_size,
                nonnegative=nonnegative,
            )
    return Path(output)


def pipeline_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    algorithm: str | None = None,
    n_iter: int | None = None,
    center: float | None = None,
    model="default",
    progress: bool = True,
    nonnegative: bool | None = None,
) -> Path:
    """Reconstruct a Data Exchange tilt series, remove the missing wedge, write the volume.

    Parameters
    ----------
    input : str or path-like
        Data Exchange HDF5 tilt series (``/exchange/data``, ``/exchange/theta`` in degrees,
        optional flat and dark fields), read by :func:`tomocnn.io.read_tilt_series`.
    output : str or path-like
        Output HDF5 file (volume at ``/exchange/data``, float32), written atomically; it must not
        be the input.
    algorithm : str, optional
        Reconstruction algorithm; default: the one the model card recommends as its input
        (``supported.recommended_algorithm``, chosen from the benchmark), else ``"sirt"``.
        With ``nonnegative=False`` (signed volumes) the default is ``"sirt"``, since MLEM
        assumes non-negative data.
    n_iter, center
        Passed to :func:`tomocnn.recon.reconstruct`.
    model : str, path or WedgeModel
        As for :func:`remove_wedge`.
    nonnegative : bool, optional
        As for :func:`remove_wedge` (default: the model's setting).
    progress : bool
        Show progress bars.

    Returns
    -------
    pathlib.Path
        The output file.

    Raises
    ------
    ValueError, KeyError, FileNotFoundError, PermissionError
        As for :func:`denoise_file`; the model and output are checked before reconstructing.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, torch
    >>> from tomocnn.io import write_dataexchange
    >>> from tomocnn.models import WedgeModel, WedgeNet3D
    >>> from tomocnn.infer import pipeline_file
    >>> _ = torch.manual_seed(0)
    >>> model = WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "untrained"})
    >>> d = tempfile.mkdtemp()
    >>> theta = np.deg2rad(np.linspace(-60, 60, 31))
    >>> write_dataexchange(os.path.join(d, "tilts.h5"), np.ones((31, 4, 16), np.float32), theta)
    >>> out = pipeline_file(os.path.join(d, "tilts.h5"), os.path.join(d, "vol.h5"),
    ...                     algorithm="fbp", model=model, progress=False)
    >>> import h5py
    >>> with h5py.File(out) as f:
    ...     f["/exchange/data"].shape
    (4, 16, 16)
    """
    from tomocnn import __version__, io
    from tomocnn.recon import reconstruct

    wm = _get_model(model)
    if algorithm is None:
        algorithm = default_algorithm(wm, nonnegative=nonnegative)
    projections, theta = io.read_tilt_series(input)
    tilt = _tilt_range(theta, None)
    _check_supported(wm, tilt)
    n_rows, n_cols = projections.shape[1:]
    attrs = _attrs(wm, tilt, __version__, source=str(input))
    attrs["reconstruction"] = algorithm
    shape = (n_rows, n_cols, n_cols)
    # the output is checked (folder writable, not the input) before reconstructing
    with io.streaming_output(
        output, shape, np.float32, dataset=_OUT_DATASET, attrs=attrs, input_path=input
    ) as dset:
        rec = reconstruct(
            projections,
            theta,
            algorithm=algorithm,
            n_iter=n_iter,
            center=center,
            progress=progress,
        )
        del projections
        remove_wedge(
            np.asarray(rec), theta, model=wm, out=dset, progress=progress, nonnegative=nonnegative
        )
    return Path(output)


def default_algorithm(model="default", *, nonnegative: bool | None = None) -> str:
    """Return the reconstruction algorithm a model works best after (its card's recommendation).

    ``supported.recommended_algorithm`` in ``model.json`` (set when the model was published,
    from the wedge benchmark), else ``"sirt"``; ``"sirt"`` as well for signed volumes
    (``nonnegative=False``), since MLEM assumes non-negative data.

    Examples
    --------
    >>> from tomocnn.models import WedgeModel, WedgeNet3D
    >>> default_algorithm(WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "untrained"}))
    'sirt'
    """
    if nonnegative is False:
        return "sirt"
    card = _get_model(model).config
    return str(card.get("supported", {}).get("recommended_algorithm", "sirt"))


def _attrs(model, tilt, version: str, *, source: str) -> dict:
    return {
        "tomocnn_model": str(model.name),
        "tilt_range_deg": np.asarray(tilt, dtype=np.float64),
        "tomocnn_version": version,
        "tomocnn_source": source,
        "axes": "row:y:x",
    }


def _copy_attrs(volume) -> dict:
    attrs = getattr(volume, "attrs", None)
    if attrs is None:
        return {}
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str | bytes | int | float | np.generic | np.ndarray):
            out[key] = value
    return out
