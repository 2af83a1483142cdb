"""File-to-file wedge removal (``tomocnn denoise``) and the full pipeline (``tomocnn pipeline``).

Angles are in degrees in files (Data Exchange ``/exchange/theta``) and on the command line, in
radians in Python. Outputs are HDF5 volumes at ``/exchange/data``, written under a temporary name
and renamed only on success, so an error or Ctrl-C never leaves a partial file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from tomocnn.infer.wedge import (
    _check_supported,
    _consistency_algorithm,
    _get_model,
    _output_dtype,
    _tilt_range,
    remove_wedge,
)

__all__ = ["denoise_file", "pipeline_file", "default_algorithm", "faithfulness"]

_OUT_DATASET = "/exchange/data"
#: iterations of the data-consistency step in ``tomocnn pipeline`` (MLEM, measured on the real
#: needle and the held-out benchmark: docs/benchmarks.md)
DEFAULT_CONSISTENCY_ITERS = 20


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
    projections: str | os.PathLike | None = None,
    consistency_iters: int = 0,
    consistency_algorithm: str | None = None,
    fov: str | None = "auto",
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
    projections : str or path-like, optional
        The aligned tilt series the reconstruction was made from (any format
        :func:`tomocnn.io.read_tilt_series` reads; its angles are used): the faithfulness report
        (:func:`tomocnn.recon.consistency` of the input and of the output on the measured
        angles) is then stored in the output's attributes, and ``consistency_iters`` can run.
    consistency_iters, consistency_algorithm
        The data-consistency step after the network (see :func:`remove_wedge`); needs
        ``projections``.
    fov : {"auto", None}
        As for :func:`remove_wedge`.
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
    from tomocnn.io._files import check_output_path, split_spec
    from tomocnn.recon import consistency

    if sum(v is not None for v in (theta_file, tilt_range_deg, projections)) != 1:
        raise ValueError(
            "give exactly one of theta_file (Data Exchange angles), tilt_range_deg, or "
            "projections (the tilt series, with its angles)"
        )
    proj = theta = None
    if projections is not None:
        proj, theta = io.read_tilt_series(projections)
        theta_deg = np.rad2deg(theta)
        tilt = _tilt_range(None, (theta_deg.min(), theta_deg.max()))
    elif consistency_iters:
        raise ValueError("consistency_iters needs the tilt series: give projections=")
    elif theta_file is not None:
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
        if projections is not None:
            check_output_path(split_spec(output)[0], input_path=split_spec(projections)[0])
        with io.streaming_output(
            output,
            tuple(volume.shape),
            _output_dtype(volume.dtype),
            dataset=_OUT_DATASET,
            attrs=attrs,
            input_path=input,
        ) as dset:
            before = None if proj is None else consistency(volume, proj, theta)
            remove_wedge(
                volume,
                theta if proj is not None else None,
                tilt_range_deg=None if proj is not None else tilt,
                model=wm,
                out=dset,
                progress=progress,
                batch_size=batch_size,
                nonnegative=nonnegative,
                fov=fov,
                projections=proj,
                consistency_iters=consistency_iters,
                consistency_algorithm=consistency_algorithm,
            )
            if proj is not None:
                after = consistency(dset, proj, theta)
                dset.attrs.update(
                    _report_attrs(
                        before,
                        after,
                        consistency_iters,
                        _consistency_algorithm(wm, nonnegative, consistency_algorithm),
                    )
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
    align: bool = False,
    axis_angle_deg: float | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
    tilt_step_deg: float | None = None,
    consistency_iters: int = DEFAULT_CONSISTENCY_ITERS,
    consistency_algorithm: str | None = None,
    fov: str | None = "auto",
    adapt_minutes: float | None = None,
) -> Path:
    """Reconstruct a tilt series, remove the missing wedge, write the volume (``tomocnn pipeline``).

    Parameters
    ----------
    input : str or path-like
        A tilt series in any format :func:`tomocnn.io.read_tilt_series` reads: Data Exchange
        HDF5 (flat/dark normalised), MRC/IMOD with its angle file, DigitalMicrograph,
        HyperSpy/ETSpy, TIFF.
    output : str or path-like
        Output HDF5 file (volume at ``/exchange/data``, float32), written atomically; it must not
        be the input. Its attributes hold the settings, the alignment (with ``align``) and the
        faithfulness report (:func:`tomocnn.recon.consistency` of the reconstruction and of the
        output on the measured angles: ``recon_residual``, ``recon_mass_ratio``,
        ``output_residual``, ``output_mass_ratio``).
    algorithm : str, optional
        Reconstruction algorithm; default: the one the model card recommends as its input
        (``supported.recommended_algorithm``, chosen from the benchmark), else ``"sirt"``.
        With ``nonnegative=False`` (signed volumes) the default is ``"sirt"``, since MLEM
        assumes non-negative data.
    n_iter, center
        Passed to :func:`tomocnn.recon.reconstruct` (``center`` is ignored with ``align``,
        which centres the axis).
    model : str, path or WedgeModel
        As for :func:`remove_wedge`.
    nonnegative : bool, optional
        As for :func:`remove_wedge` (default: the model's setting).
    align : bool
        Subtract the vacuum level and align the series first (:func:`tomocnn.align`): the step
        a series straight off the microscope needs.
    axis_angle_deg : float, optional
        A first guess of the tilt axis angle for ``align`` (see :func:`tomocnn.align`).
    tilt_range_deg, tilt_step_deg
        Angles for a file that has none (see :func:`tomocnn.io.read_tilt_series`).
    consistency_iters : int
        Iterations of the data-consistency step after the network (see :func:`remove_wedge`);
        default 20 (measured in ``docs/benchmarks.md``, with and without ``adapt_minutes``);
        0 turns it off.
    consistency_algorithm : {"mlem", "sirt"}, optional
        Its algorithm (default: MLEM, or SIRT for a signed output; see :func:`remove_wedge`).
    fov : {"auto", None}
        As for :func:`remove_wedge`.
    adapt_minutes : float, optional
        Adapt the model to this series first (:func:`tomocnn.adapt`, self-supervised) for this
        many minutes of training; the output's ``tomocnn_model`` attribute and
        ``adaptation`` (JSON) say what was used.
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
    ...     f["/exchange/data"].shape, "output_residual" in f["/exchange/data"].attrs
    ((4, 16, 16), True)
    """
    from tomocnn import __version__, io
    from tomocnn.io._files import check_output_path, split_spec
    from tomocnn.recon import consistency, reconstruct

    wm = _get_model(model)
    if algorithm is None:
        algorithm = default_algorithm(wm, nonnegative=nonnegative)
    projections, theta = io.read_tilt_series(
        input, tilt_range_deg=tilt_range_deg, tilt_step_deg=tilt_step_deg
    )
    tilt = _tilt_range(theta, None)
    _check_supported(wm, tilt)
    check_output_path(split_spec(output)[0], input_path=split_spec(input)[0])
    attrs = _attrs(wm, tilt, __version__, source=str(input))
    attrs["reconstruction"] = algorithm
    if align:
        from tomocnn.prep import align as align_series

        projections, theta, report = align_series(
            projections, theta, axis_angle_deg=axis_angle_deg, progress=progress
        )
        center = None
        attrs.update(
            axis_angle_deg=report["axis_angle_deg"],
            center_offset_px=report["center_offset_px"],
            alignment_shifts=report["shifts"],
        )
    elif nonnegative is not False:
        _warn_vacuum(projections, input)
    if adapt_minutes is not None:
        import json

        from tomocnn.train import adapt

        wm = adapt(
            projections,
            theta,
            model=wm,
            minutes=adapt_minutes,
            algorithm=algorithm,
            center=center,
            rng=0,
            progress=progress,
        )
        attrs["tomocnn_model"] = str(wm.name)
        attrs["adaptation"] = json.dumps(wm.config.get("adaptation", {}))
    n_rows, n_cols = projections.shape[1:]
    shape = (n_rows, n_cols, n_cols)
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
        before = consistency(rec, projections, theta, center=center)
        remove_wedge(
            np.asarray(rec),
            theta,
            model=wm,
            out=dset,
            progress=progress,
            nonnegative=nonnegative,
            fov=fov,
            projections=projections if consistency_iters else None,
            consistency_iters=consistency_iters,
            consistency_algorithm=consistency_algorithm,
            center=center,
        )
        after = consistency(dset, projections, theta, center=center)
        algo = _consistency_algorithm(wm, nonnegative, consistency_algorithm)
        dset.attrs.update(_report_attrs(before, after, consistency_iters, algo))
    return Path(output)


def faithfulness(attrs) -> str:
    """A two-line summary of the consistency report stored in an output's attributes.

    Examples
    --------
    >>> print(faithfulness({"recon_residual": 0.05, "recon_mass_ratio": 1.0,
    ...                     "output_residual": 0.06, "output_mass_ratio": 0.99}))
    reprojection residual on the measured angles: reconstruction 5.00 %, output 6.00 %
    mass ratio to the data: reconstruction 1.000, output 0.990
    """
    return (
        "reprojection residual on the measured angles: "
        f"reconstruction {100 * float(attrs['recon_residual']):.2f} %, "
        f"output {100 * float(attrs['output_residual']):.2f} %\n"
        f"mass ratio to the data: reconstruction {float(attrs['recon_mass_ratio']):.3f}, "
        f"output {float(attrs['output_mass_ratio']):.3f}"
    )


def _report_attrs(before: dict, after: dict, iters: int, algorithm: str) -> dict:
    return {
        "recon_residual": before["residual"],
        "recon_mass_ratio": before["mass_ratio"],
        "recon_residual_per_angle": before["residual_per_angle"],
        "output_residual": after["residual"],
        "output_mass_ratio": after["mass_ratio"],
        "output_residual_per_angle": after["residual_per_angle"],
        "consistency_iters": int(iters),
        "consistency_algorithm": algorithm if iters else "none",
    }


def _warn_vacuum(projections: np.ndarray, input) -> None:
    """Warn when the darkest pixels of a series sit far from zero (an unaligned EM stack)."""
    from tomocnn.prep import vacuum_levels

    middle = projections[projections.shape[0] // 2]
    level = float(vacuum_levels(middle[np.newaxis])[0])
    top = float(middle.max() - middle.min())
    if top > 0 and abs(level) > 0.05 * top:
        warnings.warn(
            f"{input}: the darkest fifth of the middle projection reads {level:.4g}, not 0 "
            "(a detector offset?): reconstruction assumes line integrals, zero in vacuum. "
            "Run with --align (align=True), which subtracts it and aligns the series",
            stacklevel=3,
        )


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
