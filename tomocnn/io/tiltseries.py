"""Tilt series as microscopes and the tomography programs write them, with their angles.

:func:`read_tilt_series` reads every format below into ``(projections, theta)``: projections
``(n_angles, n_rows, n_cols)`` float32 in the order and orientation of the file (its tilt axis
wherever the microscope put it: :func:`tomocnn.align` finds it), ``theta`` in radians.

=========================================  =====================================================
format                                     tilt angles from
=========================================  =====================================================
Data Exchange HDF5 (``.h5 .hdf5 .nxs``)    ``/exchange/theta`` (flat/dark normalised, ``-log``)
HyperSpy / ETSpy (``.hspy``, HyperSpy      ETSpy's ``metadata.Tomography`` tilts, else the
``.hdf5``), via RosettaSciIO               navigation axis when its units are degrees
MRC / IMOD (``.mrc .st .ali .mrcs .preali  a ``.rawtlt`` or ``.tlt`` file beside it (same stem),
.rec``), via mrcfile                       a SerialEM ``.mdoc``, or the extended header (FEI
                                           ``a_tilt``; SerialEM tilt angles)
DigitalMicrograph (``.dm3 .dm4``), via     the series' navigation axis in degrees
RosettaSciIO
TIFF stacks (``.tif .tiff``), ``.npy``     a ``.rawtlt`` or ``.tlt`` file beside it
=========================================  =====================================================

Angles given by the caller (``theta``, ``tilt_range_deg``, ``tilt_step_deg``; on the command
line ``--tilt-range`` / ``--tilt-step``) take precedence over the file's. A stack with no angles
anywhere, or with a number of angles that differs from its projections, is an error that says
where angles were looked for. MRC files with a non-standard header (old FEI files such as
ETSpy's ``HAADF.mrc``: no ``MAP`` stamp, no machine stamp) are read permissively with a warning.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from tomocnn.io._files import HDF5_EXTENSIONS, check_input_file, split_spec

__all__ = ["read_tilt_series", "tilt_angles_from_range", "TILT_SERIES_EXTENSIONS"]

MRC_STACK_EXTENSIONS = (".mrc", ".st", ".ali", ".mrcs", ".preali", ".rec", ".map")
DM_EXTENSIONS = (".dm3", ".dm4")
HSPY_EXTENSIONS = (".hspy",)
TILT_SERIES_EXTENSIONS = (
    HDF5_EXTENSIONS
    + HSPY_EXTENSIONS
    + MRC_STACK_EXTENSIONS
    + DM_EXTENSIONS
    + (".tif", ".tiff", ".npy")
)
_ANGLE_FILES = (".rawtlt", ".tlt")


def tilt_angles_from_range(
    n: int,
    tilt_range_deg: tuple[float, float] | None = None,
    tilt_step_deg: float | None = None,
) -> np.ndarray:
    """Angles (radians) of ``n`` projections from a tilt range and/or a step in degrees.

    ``tilt_range_deg=(a, b)`` alone: ``n`` angles evenly from ``a`` to ``b``;
    ``tilt_step_deg=s`` alone: ``n`` angles ``s`` apart, centred on 0;
    both: from ``a`` in steps of ``s`` up to ``b``, which must give ``n`` angles.

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.io import tilt_angles_from_range
    >>> np.rad2deg(tilt_angles_from_range(5, (-60, 60)))
    array([-60., -30.,   0.,  30.,  60.])
    >>> np.rad2deg(tilt_angles_from_range(3, tilt_step_deg=2))
    array([-2.,  0.,  2.])
    """
    if tilt_range_deg is None and tilt_step_deg is None:
        raise ValueError("give a tilt range (degrees), a tilt step (degrees), or both")
    if tilt_step_deg is not None:
        step = float(tilt_step_deg)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"the tilt step must be a positive number of degrees, got {step}")
    if tilt_range_deg is not None:
        lo, hi = (float(v) for v in tilt_range_deg)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"the tilt range must be (min, max) with min < max, got {(lo, hi)}")
    if tilt_range_deg is None:
        deg = (np.arange(n) - (n - 1) / 2) * step
    elif tilt_step_deg is None:
        deg = np.linspace(lo, hi, n)
    else:
        deg = np.arange(lo, hi + step / 2, step)
        if deg.size != n:
            raise ValueError(
                f"a tilt range of {lo:g} to {hi:g} degrees in steps of {step:g} gives "
                f"{deg.size} angles, but the stack has {n} projections"
            )
    return _check_degrees(deg, n, "the given tilt range/step")


def read_tilt_series(
    path: str | os.PathLike,
    *,
    theta=None,
    tilt_range_deg: tuple[float, float] | None = None,
    tilt_step_deg: float | None = None,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a tilt series and its tilt angles from any format the field writes.

    Parameters
    ----------
    path : str or path-like
        The stack: Data Exchange or HyperSpy HDF5, ``.hspy``, MRC/IMOD (``.mrc .st .ali
        .mrcs .preali``), ``.dm3``/``.dm4``, TIFF stack or ``.npy`` (see the module's table).
    theta : array_like, optional
        Tilt angles in radians, one per projection, instead of the file's.
    tilt_range_deg : (float, float), optional
        Minimum and maximum tilt, degrees, instead of the file's angles (with
        ``tilt_step_deg`` too, see :func:`tilt_angles_from_range`).
    tilt_step_deg : float, optional
        Tilt step, degrees.
    normalize : bool
        For Data Exchange files: flat/dark correction and ``-log`` (see
        :func:`tomocnn.io.read_dataexchange`). Electron-microscopy stacks are returned as
        recorded (ADF/HAADF intensities, already proportional to projected mass).

    Returns
    -------
    projections : ndarray, shape (n_angles, n_rows, n_cols), float32
        As stored in the file (rows and columns not turned).
    theta : ndarray, shape (n_angles,), float64
        Radians.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        An unknown extension, an unreadable or truncated file, a stack that is not 3-D or holds
        NaN/inf, no tilt angles found (the message says where they were looked for), or a
        number of angles different from the number of projections.
    ImportError
        ``.dm3``/``.dm4``/``.hspy`` without RosettaSciIO, MRC without mrcfile (the ``em``
        extra).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_tilt_series
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "s.npy"), np.ones((3, 4, 5), np.float32))
    >>> with open(os.path.join(d, "s.rawtlt"), "w") as f:
    ...     _ = f.write("-60\\n0\\n60\\n")
    >>> proj, theta = read_tilt_series(os.path.join(d, "s.npy"))
    >>> proj.shape, np.rad2deg(theta).tolist()
    ((3, 4, 5), [-60.0, 0.0, 60.0])
    """
    file, dataset = split_spec(path)
    check_input_file(file)
    ext = file.suffix.lower()
    given = theta is not None or tilt_range_deg is not None or tilt_step_deg is not None
    if theta is not None and (tilt_range_deg is not None or tilt_step_deg is not None):
        raise ValueError("give either theta or a tilt range/step, not both")
    hdf5 = ext in HDF5_EXTENSIONS and dataset is None
    if hdf5 and _hdf5_layout(file) != "hyperspy":
        from tomocnn.io.dataexchange import read_dataexchange

        proj, file_theta = read_dataexchange(file, normalize=normalize)
        looked = None
    elif hdf5 or (ext in HSPY_EXTENSIONS and dataset is None):
        proj, file_theta, looked = _read_hyperspy(file)
    elif ext in MRC_STACK_EXTENSIONS:
        proj, file_theta, looked = _read_mrc(file)
    elif ext in DM_EXTENSIONS:
        proj, file_theta, looked = _read_dm(file)
    elif ext in (".tif", ".tiff", ".npy") or (ext in HDF5_EXTENSIONS and dataset is not None):
        proj, file_theta, looked = _read_plain(path, file)
    else:
        raise ValueError(
            f"{file}: not a tilt-series format tomocnn reads ({ext or 'no extension'}); "
            f"supported: {', '.join(TILT_SERIES_EXTENSIONS)}"
        )
    proj = _check_stack(proj, file)
    n = proj.shape[0]
    if theta is not None:
        from tomocnn.recon._checks import _check_theta

        out = _check_theta(theta, n)
    elif given:
        out = tilt_angles_from_range(n, tilt_range_deg, tilt_step_deg)
    elif file_theta is None:
        raise ValueError(
            f"{file}: no tilt angles found (looked for {looked}); give them with --tilt-range "
            "MIN MAX and/or --tilt-step DEG (theta=, tilt_range_deg=, tilt_step_deg= in Python), "
            f"or put one angle per line in {file.with_suffix('.rawtlt').name} beside the stack"
        )
    else:
        out = file_theta
        if out.size != n:
            raise ValueError(
                f"{file}: {out.size} tilt angles for {n} projections (angles from {looked}); "
                "give the right angles with --tilt-range/--tilt-step or fix the angle file"
            )
    return proj, out


# --- formats -------------------------------------------------------------------------------


def _hdf5_layout(file: Path) -> str:
    """``"hyperspy"`` for a HyperSpy file without Data Exchange data, else ``"dataexchange"``."""
    import h5py

    try:
        with h5py.File(file, "r") as f:
            if "/exchange/data" not in f and "Experiments" in f:
                return "hyperspy"
            return "dataexchange"
    except OSError as exc:
        raise ValueError(f"{file}: not a readable HDF5 file ({exc})") from exc


def _read_hyperspy(file: Path):
    """A HyperSpy/ETSpy signal: data, the angles of ETSpy or of a navigation axis in degrees."""
    try:
        from rsciio.hspy import file_reader
    except ImportError as exc:
        raise ImportError(
            f"{file}: reading HyperSpy files needs RosettaSciIO (pip install rosettasciio, or "
            "the package's 'em' extra)"
        ) from exc
    try:
        signals = file_reader(str(file), lazy=False)
    except Exception as exc:
        raise ValueError(
            f"{file}: neither a Data Exchange file (/exchange/data) nor a readable "
            f"HyperSpy file ({exc})"
        ) from exc
    stacks = [s for s in signals if np.ndim(s["data"]) == 3]
    if len(stacks) != 1:
        raise ValueError(f"{file}: expected one 3-D signal (a tilt series), found {len(stacks)}")
    sig = stacks[0]
    tomo = (sig.get("metadata") or {}).get("Tomography") or {}
    tomo = tomo if isinstance(tomo, dict) else {}
    looked = "ETSpy's metadata.Tomography tilts and a navigation axis in degrees"
    # ETSpy >= 0.9 keeps the tilts as a signal, older ETSpy/TomoTools as an array; both are
    # authoritative: their navigation axis says "degrees" without being calibrated
    for tilts in ((tomo.get("_sig_tilts") or {}).get("data"), tomo.get("tilts")):
        if tilts is not None and np.size(tilts) > 0:
            return sig["data"], _check_degrees(np.ravel(tilts), None, str(file)), looked
    return sig["data"], _axis_angles(sig.get("axes") or [], file), looked


def _axis_angles(axes, file: Path):
    """Angles of the navigation axis of a 3-D signal when its units are degrees."""
    nav = [a for a in axes if a.get("navigate")]
    if len(nav) != 1:
        return None
    ax = nav[0]
    units = str(ax.get("units", "")).strip().lower()
    if units not in ("deg", "degree", "degrees", "°"):
        return None
    deg = float(ax.get("offset", 0.0)) + float(ax.get("scale", 1.0)) * np.arange(int(ax["size"]))
    return _check_degrees(deg, None, str(file))


def _read_mrc(file: Path):
    try:
        import mrcfile
    except ImportError as exc:
        raise ImportError(
            f"{file}: reading MRC needs mrcfile (pip install mrcfile, or the 'em' extra)"
        ) from exc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.open(file, mode="r", permissive=True)
        except Exception as exc:
            raise ValueError(f"{file}: not a readable MRC file ({exc})") from exc
    with mrc:
        if mrc.data is None:
            raise ValueError(f"{file}: not a readable MRC file (no data: truncated or empty?)")
        problems = sorted({str(w.message) for w in caught})
        if problems:
            warnings.warn(
                f"{file}: non-standard MRC header ({'; '.join(problems)}); read permissively",
                stacklevel=3,
            )
        data = np.asarray(mrc.data)
        if data.ndim == 2:
            data = data[np.newaxis]
        expected = int(mrc.header.nx) * int(mrc.header.ny) * int(mrc.header.nz)
        if data.size != expected:
            raise ValueError(f"{file}: truncated MRC file ({data.size} of {expected} values)")
        header_theta = _mrc_header_angles(mrc, data.shape[0])
    looked = (
        f"{file.with_suffix('.rawtlt').name}, {file.with_suffix('.tlt').name}, "
        f"{file.name}.mdoc and the MRC extended header"
    )
    theta = _sidecar_angles(file)
    if theta is None:
        theta = _mdoc_angles(file)
    if theta is None:
        theta = header_theta
    return data, theta, looked


def _mrc_header_angles(mrc, n: int):
    """Tilt angles from an FEI or SerialEM extended header, or None."""
    ext = mrc.extended_header
    if ext is None or len(ext) == 0:
        return None
    raw = np.frombuffer(ext.tobytes(), dtype=np.uint8)
    exttyp = bytes(mrc.header.exttyp).decode("ascii", "replace").strip("\x00 ")
    # IMOD's NINT and NREAL, bytes 128-131 of the header (inside mrcfile's "extra2")
    nint, nreal = (int(v) for v in np.frombuffer(mrc.header.tobytes()[128:132], "<i2"))
    if exttyp == "SERI" and nint > 0 and nreal & 1:
        per = nint  # bytes per section; flag 1: the tilt angle x 100 as int16 comes first
        if raw.size >= per * n:
            recs = raw[: per * n].reshape(n, per)
            angles = recs[:, :2].copy().view("<i2").ravel() / 100.0
            return _check_degrees(angles, n, "the SerialEM extended header")
        return None
    if exttyp in ("", "FEI1", "FEI2") and raw.size >= 128 * n and raw.size % 128 == 0:
        if exttyp in ("FEI1", "FEI2"):
            return None  # metadata blocks, angles at a version-dependent place: not read
        recs = raw[: 128 * n].reshape(n, 128)  # old FEI: a_tilt is the first float of a record
        angles = recs[:, :4].copy().view("<f4").ravel().astype(np.float64)
        if np.all(np.isfinite(angles)) and np.abs(angles).max() <= 90 and np.ptp(angles) > 0:
            return _check_degrees(angles, n, "the FEI extended header")
    return None


def _sidecar_angles(file: Path):
    """Angles from ``stem.rawtlt`` or ``stem.tlt`` beside the stack, one per line."""
    for ext in _ANGLE_FILES:
        side = file.with_suffix(ext)
        if side.is_file():
            try:
                deg = np.loadtxt(side, dtype=np.float64, ndmin=1)
            except ValueError as exc:
                raise ValueError(
                    f"{side}: not a list of tilt angles, one per line ({exc})"
                ) from None
            return _check_degrees(np.ravel(deg), None, str(side))
    return None


def _mdoc_angles(file: Path):
    """Angles from a SerialEM ``.mdoc`` (``TiltAngle = ...`` of each section)."""
    for side in (Path(str(file) + ".mdoc"), file.with_suffix(".mdoc")):
        if side.is_file():
            deg = []
            for line in side.read_text(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "TiltAngle":
                    try:
                        deg.append(float(value.split()[0]))
                    except (IndexError, ValueError):
                        raise ValueError(f"{side}: unreadable line {line.strip()!r}") from None
            if deg:
                return _check_degrees(np.asarray(deg), None, str(side))
    return None


def _read_dm(file: Path):
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError as exc:
        raise ImportError(
            f"{file}: reading DigitalMicrograph files needs RosettaSciIO (pip install "
            "rosettasciio, or the 'em' extra)"
        ) from exc
    try:
        signals = file_reader(str(file))
    except Exception as exc:
        raise ValueError(f"{file}: not a readable DigitalMicrograph file ({exc})") from exc
    stacks = [s for s in signals if np.ndim(s["data"]) == 3]
    if not stacks:
        raise ValueError(f"{file}: holds no 3-D stack (a single image is not a tilt series)")
    sig = stacks[0]
    theta = _axis_angles(sig.get("axes") or [], file)
    return sig["data"], theta, "the stack's navigation axis (units of degrees)"


def _read_plain(spec, file: Path):
    from tomocnn.io.volumes import read_volume

    data = read_volume(spec)
    looked = f"{file.with_suffix('.rawtlt').name} and {file.with_suffix('.tlt').name}"
    return data, _sidecar_angles(file), looked


# --- checks --------------------------------------------------------------------------------


def _check_stack(data, file) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(
            f"{file}: a tilt series must be a 3-D stack (n_angles, n_rows, n_cols), got shape "
            f"{arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{file}: a tilt series must hold real numbers, got dtype {arr.dtype}")
    if min(arr.shape) < 1:
        raise ValueError(f"{file}: empty stack, shape {arr.shape}")
    out = arr.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{file}: the stack holds NaN or inf values (first in projection {first})")
    return out


def _check_degrees(deg, n: int | None, source: str) -> np.ndarray:
    deg = np.asarray(deg, dtype=np.float64).ravel()
    if not np.isfinite(deg).all():
        raise ValueError(f"{source}: the tilt angles hold NaN or inf")
    if np.abs(deg).max() > 180.0:
        raise ValueError(
            f"{source}: tilt angles must be degrees within ±180, got a largest |angle| of "
            f"{np.abs(deg).max():g}"
        )
    if n is not None and deg.size != n:
        raise ValueError(f"{source}: {deg.size} tilt angles for {n} projections")
    return np.deg2rad(deg)
