"""Tilt series in the Data Exchange HDF5 layout (the layout TomoPy and dxchange read).

Layout read and written here::

    /implements           "exchange"
    /exchange/data        (n_angles, n_rows, n_cols)  projections, attribute axes="theta:y:x"
    /exchange/data_white  (n_white, n_rows, n_cols)   optional flat (bright) fields
    /exchange/data_dark   (n_dark, n_rows, n_cols)    optional dark fields
    /exchange/theta       (n_angles,)                 angles in DEGREES, attribute units="degrees"

Angles are in degrees in the file and in radians in Python, as in TomoPy; the conversion is made
only here.
"""

from __future__ import annotations

import os

import numpy as np

from tomocnn.io._files import (
    atomic_path,
    block_starts,
    check_input_file,
    default_chunks,
    file_kind,
    list_datasets,
    source_file,
    split_spec,
)

__all__ = ["read_dataexchange", "read_theta", "write_dataexchange"]

#: transmissions are clipped to this floor before ``-log`` (a line integral of at most ~13.8)
MIN_TRANSMISSION = 1e-6

_DATA, _WHITE, _DARK, _THETA = (
    "/exchange/data",
    "/exchange/data_white",
    "/exchange/data_dark",
    "/exchange/theta",
)


def read_dataexchange(
    path: str | os.PathLike, *, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read projections and tilt angles from a Data Exchange HDF5 file.

    :func:`tomocnn.io.read_tilt_series` calls it for a Data Exchange file; it reads the other
    formats of tilt series too.

    Parameters
    ----------
    path : str or path-like
        A Data Exchange HDF5 file (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``) with
        ``/exchange/data`` and ``/exchange/theta`` (degrees), and optionally
        ``/exchange/data_white`` and ``/exchange/data_dark``.
    normalize : bool, default True
        If True and a flat field (``data_white``) is present, convert transmission images to line
        integrals: ``-log(clip((data - dark) / (white - dark), 1e-6, None))`` where ``white`` and
        ``dark`` are averaged over their first axis (``dark`` is 0 when absent). Without a flat
        field the data are taken to be line integrals already and are returned unchanged. If
        False the raw ``/exchange/data`` is returned (as float32).

    Returns
    -------
    projections : ndarray, shape (n_angles, n_rows, n_cols), float32
        Line integrals (or the raw data when ``normalize=False``), rows along the tilt axis, in
        the order ``tomopy.recon`` takes.
    theta : ndarray, shape (n_angles,), float64
        Tilt angles in radians.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If ``/exchange/data`` or ``/exchange/theta`` is missing (the message lists what the file
        holds).
    ValueError
        If the file is not HDF5, a dataset has the wrong number of dimensions, the number of
        angles differs from the number of projections, flat/dark shapes do not match the
        projections, a dataset holds NaN or inf, a dark field comes without a flat field, or the
        flat field is not above the dark field everywhere.

    Notes
    -----
    Transmissions above 1 (noise in nearly empty regions) give small negative line integrals,
    which are kept. A missing ``/exchange/theta`` is an error, not a default 0–180° range:
    limited-angle data need their true angles. A ``units`` attribute on ``theta`` that says
    ``rad`` or ``radians`` is honoured.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_dataexchange, write_dataexchange
    >>> line_integrals = np.full((3, 4, 5), 0.5, dtype=np.float32)
    >>> counts = 1000.0 * np.exp(-line_integrals)               # Beer-Lambert
    >>> flat = np.full((2, 4, 5), 1000.0)
    >>> path = os.path.join(tempfile.mkdtemp(), "tilt.h5")
    >>> write_dataexchange(path, counts, np.deg2rad([-60.0, 0.0, 60.0]), flat=flat)
    >>> proj, theta = read_dataexchange(path)
    >>> proj.shape, proj.dtype, np.allclose(proj, 0.5)
    ((3, 4, 5), dtype('float32'), True)
    >>> np.rad2deg(theta)
    array([-60.,   0.,  60.])
    """
    path, f = _open_whole_file(path, "read_dataexchange")
    with f:
        data = _get_dataset(f, _DATA, path)
        if data.ndim != 3:
            raise ValueError(
                f"{path}:{_DATA} must be 3-D (n_angles, n_rows, n_cols), got shape {data.shape}"
            )
        theta = _read_theta(f, path, n_angles=data.shape[0])
        white = _read_field(f, _WHITE, path, data.shape) if _WHITE in f else None
        dark = _read_field(f, _DARK, path, data.shape) if _DARK in f else None
        if white is None and dark is not None and normalize:
            raise ValueError(
                f"{path}: {_DARK} is present but {_WHITE} is not; cannot normalise "
                "(pass normalize=False to read the raw data)"
            )
        out = np.empty(data.shape, dtype=np.float32)
        for start, stop in block_starts(data.shape, 4):
            block = out[start:stop]
            block[...] = data[start:stop]
            bad = ~np.isfinite(block)
            if bad.any():
                first = start + int(np.argwhere(bad)[0][0])
                raise ValueError(
                    f"{path}:{_DATA} holds NaN or inf values (first in projection {first})"
                )
    if not normalize or white is None:
        return out, theta
    if dark is None:
        dark = np.zeros_like(white)
    span = white - dark
    if not (span > 0).all():
        n_bad = int(np.count_nonzero(~(span > 0)))
        raise ValueError(
            f"{path}: the flat field is not above the dark field at {n_bad} pixel(s) "
            f"({_WHITE} - {_DARK} <= 0); cannot normalise"
        )
    span32, dark32 = span.astype(np.float32), dark.astype(np.float32)
    for start, stop in block_starts(out.shape, 4):
        block = out[start:stop]
        block -= dark32
        block /= span32
        np.maximum(block, MIN_TRANSMISSION, out=block)
        np.log(block, out=block)
        np.negative(block, out=block)
    return out, theta


def write_dataexchange(
    path: str | os.PathLike,
    projections,
    theta,
    *,
    flat=None,
    dark=None,
) -> None:
    """Write a tilt series as a Data Exchange HDF5 file, atomically.

    Parameters
    ----------
    path : str or path-like
        Output file (``.h5``, ``.hdf5``, ``.hdf`` or ``.nxs``). It is written under a temporary
        name in the same folder and renamed onto ``path`` only when complete, so a partial file
        never appears; an existing file is replaced.
    projections : array_like, shape (n_angles, n_rows, n_cols)
        Projections (raw counts or line integrals), stored with their dtype. An ``h5py.Dataset``
        or memmap is copied block by block without loading it whole.
    theta : array_like, shape (n_angles,)
        Tilt angles in radians; stored in degrees in ``/exchange/theta``.
    flat, dark : array_like, shape (n, n_rows, n_cols) or (n_rows, n_cols), optional
        Flat (bright) and dark fields, stored as ``/exchange/data_white`` and
        ``/exchange/data_dark`` (a 2-D field is stored with ``n = 1``).

    Raises
    ------
    ValueError
        On a wrong number of dimensions, mismatched shapes, a theta length different from the
        number of projections, non-finite values, or a non-HDF5 extension.
    FileNotFoundError, PermissionError
        If the output folder does not exist or cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import h5py, numpy as np
    >>> from tomocnn.io import write_dataexchange
    >>> path = os.path.join(tempfile.mkdtemp(), "tilt.h5")
    >>> write_dataexchange(path, np.zeros((2, 3, 4), np.float32), np.deg2rad([-30.0, 30.0]))
    >>> with h5py.File(path, "r") as f:
    ...     f["/exchange/theta"][()], f["/exchange/theta"].attrs["units"]
    (array([-30.,  30.]), 'degrees')
    """
    import h5py

    path = split_spec(path)[0]
    _require_hdf5(path)
    if not hasattr(projections, "shape") or not hasattr(projections, "dtype"):
        projections = np.asarray(projections)
    if len(projections.shape) != 3:
        raise ValueError(
            f"projections must be 3-D (n_angles, n_rows, n_cols), got shape {projections.shape}"
        )
    _check_real(projections.dtype, "projections")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1 or theta.shape[0] != projections.shape[0]:
        raise ValueError(
            f"theta must be 1-D with one angle per projection ({projections.shape[0]}), "
            f"got shape {theta.shape}"
        )
    if not np.isfinite(theta).all():
        raise ValueError("theta holds NaN or inf values")
    fields = {}
    for name, label, field in ((_WHITE, "flat", flat), (_DARK, "dark", dark)):
        if field is None:
            continue
        field = np.asarray(field)
        _check_real(field.dtype, label)
        if field.ndim == 2:
            field = field[np.newaxis]
        if field.ndim != 3 or field.shape[1:] != tuple(projections.shape[1:]):
            raise ValueError(
                f"{label} must have shape (n, {projections.shape[1]}, {projections.shape[2]}) "
                f"or ({projections.shape[1]}, {projections.shape[2]}), got {np.shape(field)}"
            )
        if not np.isfinite(field).all():
            raise ValueError(f"{label} holds NaN or inf values")
        fields[name] = field
    src = source_file(projections)
    with atomic_path(path, input_path=src) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("implements", data="exchange")
        shape, dtype = tuple(projections.shape), np.dtype(projections.dtype)
        dset = f.create_dataset(
            _DATA, shape=shape, dtype=dtype, chunks=default_chunks(shape, dtype.itemsize)
        )
        dset.attrs["axes"] = "theta:y:x"
        for start, stop in block_starts(shape, dtype.itemsize):
            block = np.asarray(projections[start:stop])
            if dtype.kind == "f" and not np.isfinite(block).all():
                raise ValueError("projections hold NaN or inf values")
            dset[start:stop] = block
        for name, field in fields.items():
            f.create_dataset(
                name, data=field, chunks=default_chunks(field.shape, field.dtype.itemsize)
            )
            f[name].attrs["axes"] = "theta:y:x"
        f.create_dataset(_THETA, data=np.rad2deg(theta))
        f[_THETA].attrs["units"] = "degrees"


def read_theta(path: str | os.PathLike) -> np.ndarray:
    """Read only the tilt angles of a Data Exchange file, in radians.

    ``/exchange/theta`` in degrees (a ``units`` attribute saying radians is honoured), as
    :func:`read_tilt_series` reads it, without loading the projections: for ``tomocnn denoise
    --theta TILTS.h5``, where the reconstruction is in another file.

    Parameters
    ----------
    path : str or path-like
        Data Exchange HDF5 file.

    Returns
    -------
    ndarray, shape (n_angles,), float64, radians

    Raises
    ------
    FileNotFoundError, KeyError, ValueError
        Missing file, missing ``/exchange/theta``, fewer than two angles, NaN, unknown units.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_theta, write_dataexchange
    >>> path = os.path.join(tempfile.mkdtemp(), "tilt.h5")
    >>> write_dataexchange(path, np.ones((3, 2, 4)), np.deg2rad([-60.0, 0.0, 60.0]))
    >>> np.rad2deg(read_theta(path))
    array([-60.,   0.,  60.])
    """
    path, f = _open_whole_file(path, "read_theta")
    with f:
        return _read_theta(f, path, n_angles=None)


def _open_whole_file(spec, reader: str):
    """(path, open h5py.File) of a Data Exchange file, named as a whole (no ``:/dataset``)."""
    path, dataset = split_spec(spec)
    if dataset is not None:
        raise ValueError(
            f"{reader} reads the Data Exchange layout of a whole file; pass {path} "
            f"without ':{dataset}'"
        )
    _require_hdf5(path)
    check_input_file(path)
    return path, _open_h5(path)


def _require_hdf5(path) -> None:
    if file_kind(path) != "hdf5":
        raise ValueError(
            f"{path}: a Data Exchange file must be HDF5 (.h5, .hdf5, .hdf or .nxs), "
            f"got {path.suffix!r}"
        )


def _open_h5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _get_dataset(f, name: str, path):
    import h5py

    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise KeyError(f"{path}: no dataset {name}; {list_datasets(f)}")
    return obj


def _read_theta(f, path, *, n_angles: int | None) -> np.ndarray:
    dset = _get_dataset(f, _THETA, path)
    if dset.ndim != 1 and not (dset.ndim == 2 and 1 in dset.shape):  # (n, 1) is accepted
        raise ValueError(f"{path}:{_THETA} must be 1-D, got shape {dset.shape}")
    theta = np.asarray(dset[()], dtype=np.float64).reshape(-1)
    if n_angles is None and theta.shape[0] < 2:
        raise ValueError(f"{path}:{_THETA} must hold at least two angles, got {theta.shape[0]}")
    if n_angles is not None and theta.shape[0] != n_angles:
        raise ValueError(
            f"{path}: {_THETA} has {theta.shape[0]} angles but {_DATA} has {n_angles} projections"
        )
    if not np.isfinite(theta).all():
        raise ValueError(f"{path}:{_THETA} holds NaN or inf values")
    units = dset.attrs.get("units", "degrees")
    units = units.decode() if isinstance(units, bytes) else str(units)
    if units.strip().lower() in ("rad", "rads", "radian", "radians"):
        return theta
    if units.strip().lower() not in ("deg", "degree", "degrees", ""):
        raise ValueError(f"{path}:{_THETA} has units {units!r}; expected degrees")
    return np.deg2rad(theta)


def _read_field(f, name: str, path, data_shape) -> np.ndarray:
    dset = _get_dataset(f, name, path)
    if dset.ndim == 2:
        field = np.asarray(dset[()], dtype=np.float64)
    elif dset.ndim == 3 and dset.shape[0] > 0:
        field = np.zeros(dset.shape[1:], dtype=np.float64)
        for i in range(dset.shape[0]):  # one frame at a time: no float64 copy of the stack
            field += dset[i]
        field /= dset.shape[0]
    else:
        raise ValueError(f"{path}:{name} must be 3-D (n, n_rows, n_cols), got shape {dset.shape}")
    if field.shape != tuple(data_shape[1:]):
        raise ValueError(
            f"{path}: {name} frames have shape {field.shape} but the projections have "
            f"{tuple(data_shape[1:])}"
        )
    if not np.isfinite(field).all():
        raise ValueError(f"{path}:{name} holds NaN or inf values")
    return field


def _check_real(dtype, what: str) -> None:
    if np.dtype(dtype).kind not in "biuf":
        raise ValueError(f"{what} must be real numbers, got dtype {np.dtype(dtype)}")
