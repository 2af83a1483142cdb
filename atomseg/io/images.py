"""Reading STEM images and stacks with their pixel size in ångström.

Images come back as float32 arrays of shape ``(n_rows, n_cols)`` or, for a stack,
``(n_frames, n_rows, n_cols)``; positions found on them are ``(row, col)`` in these pixels.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import TYPE_CHECKING

import numpy as np

from atomseg.io._calibration import column_pixel_size, pixel_size_from_axes, tiff_pixel_size
from atomseg.io._files import check_input_file, file_kind, split_spec

if TYPE_CHECKING:
    import h5py

__all__ = ["read_image", "read_stack_lazy"]

#: luminance weights of ITU-R BT.709 (as ``skimage.color.rgb2gray``)
_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def read_image(spec, *, frame: int | None = None) -> tuple[np.ndarray, float | None]:
    """Read an image or an image stack, with its pixel size in ångström when the file has one.

    Parameters
    ----------
    spec : str or path-like
        The file: ``.npy``; ``.tif`` / ``.tiff`` (single image or stack); ``.png`` / ``.jpg``
        (8- or 16-bit, colour converted to grey); HDF5 as ``"file.h5:/group/dataset"`` or
        ``"file.h5"`` when it holds a single 2-D or 3-D dataset; ``.dm3`` / ``.dm4`` / ``.emd``
        / ``.ser`` through RosettaSciIO; MRC (``.mrc``, ``.rec``, ``.map``, ``.st``, ``.ali``:
        tomograms and tilt series) through mrcfile. An EMD file with several images can be
        addressed as ``"file.emd:/HAADF"`` (the image title); by default its single image, or
        else the one titled HAADF, is read.
    frame : int, optional
        Read only this frame of a stack (negative counts from the end); a single image counts as
        a stack of one frame. For HDF5 and ``.npy`` only that frame is read from disk.

    Returns
    -------
    image : ndarray, shape (n_rows, n_cols) or (n_frames, n_rows, n_cols), float32
        The image (singleton axes removed), or the stack with frames first.
    pixel_size_angstrom : float or None
        The pixel size along columns in Å, or None when the file does not record one in a
        length unit. Read from: the ``pixel_size_angstrom`` attribute of an HDF5 dataset (or of
        a parent group); ImageJ ``unit`` + resolution, FEI ``PixelWidth`` or resolution in
        pixels/cm for TIFF; the axes calibration (nm, Å, pm, µm, m) for dm3/dm4/emd/ser; the
        voxel size (Å) of an MRC file.
        ``.npy``, PNG and JPEG carry no calibration.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the HDF5 dataset does not exist or cannot be chosen (lists the datasets present).
    ValueError
        On an unsupported extension (lists the supported ones), an unreadable file (the
        library's message, with the file name), a result that is not 2-D or 3-D after
        removing singleton axes, complex data, or a ``frame`` out of range.
    ImportError
        If a dm3/dm4/emd/ser file is read without RosettaSciIO installed, or an MRC file
        without mrcfile.

    Notes
    -----
    Colour images are converted to grey with the BT.709 luminance weights (alpha is dropped).
    Resolution stored in pixels per inch (the dpi of most PNG, JPEG and office TIFF files) is
    a print setting and is ignored. With non-square pixels a warning is given and the column
    pixel size is returned.

    Examples
    --------
    >>> import os, tempfile
    >>> import h5py, numpy as np
    >>> from atomseg.io import read_image
    >>> path = os.path.join(tempfile.mkdtemp(), "image.h5")
    >>> with h5py.File(path, "w") as f:
    ...     f["haadf"] = np.arange(12).reshape(3, 4)
    ...     f["haadf"].attrs["pixel_size_angstrom"] = 0.2
    >>> image, pixel_size = read_image(path + ":/haadf")
    >>> image.dtype, image.shape, pixel_size
    (dtype('float32'), (3, 4), 0.2)
    """
    _check_frame(frame)
    path, name = split_spec(spec)
    kind = file_kind(path)
    check_input_file(path)
    if name is not None and kind not in ("hdf5", "emd"):
        raise ValueError(f"{spec}: a ':/name' suffix applies only to HDF5 and EMD files")
    if kind == "hdf5":
        with _open_hdf5(path) as f:
            dset = _hdf5_dataset(f, path, name)
            pixel_size = _hdf5_pixel_size(dset, path)
            return _finish(dset, path, frame), pixel_size
    if kind == "npy":
        return _finish(_guard(path, kind, _open_npy, path), path, frame), None
    if kind == "tiff":
        data, pixel_size = _guard(path, kind, _read_tiff, path)
    elif kind == "pil":
        data, pixel_size = _guard(path, kind, _read_pil, path), None
    elif kind == "mrc":
        data, pixel_size = _guard(path, kind, _read_mrc, path)
    else:
        data, pixel_size = _read_rsciio(path, kind, name)
    return _finish(data, path, frame), pixel_size


def read_stack_lazy(
    spec,
) -> tuple[h5py.Dataset | np.memmap | np.ndarray, float | None]:
    """Open an image stack without loading it, to process it frame by frame.

    Parameters
    ----------
    spec : str or path-like
        As for :func:`read_image`. HDF5 datasets, ``.npy`` files and uncompressed grey TIFF
        files are opened lazily; any other file is read whole with :func:`read_image`.

    Returns
    -------
    stack : h5py.Dataset, memmap or ndarray, shape (n_frames, n_rows, n_cols) or (n_rows, n_cols)
        The stack as stored, frames first (dtype as stored: convert each frame with
        ``np.asarray(stack[i], dtype=np.float32)``). An ``h5py.Dataset`` keeps its file open;
        close it with ``stack.file.close()``.
    pixel_size_angstrom : float or None
        As for :func:`read_image`.

    Raises
    ------
    ValueError
        If the stored array is not 2-D or 3-D (use :func:`read_image`, which drops singleton
        axes), and as for :func:`read_image`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from atomseg.io import read_stack_lazy
    >>> path = os.path.join(tempfile.mkdtemp(), "stack.npy")
    >>> np.save(path, np.zeros((5, 8, 8), np.uint16))
    >>> stack, pixel_size = read_stack_lazy(path)
    >>> type(stack).__name__, stack.shape, pixel_size
    ('memmap', (5, 8, 8), None)
    """
    path, name = split_spec(spec)
    kind = file_kind(path)
    check_input_file(path)
    if kind == "hdf5":
        f = _open_hdf5(path)
        try:
            dset = _hdf5_dataset(f, path, name)
            _check_stored_ndim(dset.shape, path)
            return dset, _hdf5_pixel_size(dset, path)
        except BaseException:
            f.close()
            raise
    if kind == "npy" and name is None:
        arr = _guard(path, kind, _open_npy, path)
        _check_stored_ndim(arr.shape, path)
        return arr, None
    if kind == "tiff":
        lazy = _guard(path, kind, _memmap_tiff, path)
        if lazy is not None:
            _check_stored_ndim(lazy[0].shape, path)
            return lazy
    return read_image(spec)


# ---------------------------------------------------------------------------------------------
# private helpers


def _check_frame(frame) -> None:
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, numbers.Integral)):
        raise TypeError(f"frame must be an int or None, got {frame!r}")


def _check_stored_ndim(shape, path) -> None:
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{path}: expected an image (2-D) or a stack (3-D), got shape {tuple(shape)}; "
            "read_image removes singleton axes"
        )


def _guard(path, kind, func, *args, **kwargs):
    """Call a reader and turn a library error into a ValueError that names the file."""
    try:
        return func(*args, **kwargs)
    except (KeyError, FileNotFoundError, ImportError):
        raise
    except Exception as exc:
        raise ValueError(
            f"{path}: cannot read this {kind} file ({type(exc).__name__}: {exc})"
        ) from exc


def _finish(data, path, frame) -> np.ndarray:
    """Drop singleton axes, check the dimensions, pick ``frame`` and convert to float32."""
    if np.dtype(data.dtype).kind == "c":
        raise ValueError(f"{path}: complex data (an FFT?) is not an image")
    if np.dtype(data.dtype).kind not in "biuf":
        raise ValueError(f"{path}: unsupported data type {data.dtype} for an image")
    shape = tuple(int(n) for n in data.shape if n != 1)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{path}: expected an image (2-D) or a stack (3-D) after removing singleton axes, "
            f"got shape {tuple(data.shape)}"
        )
    if frame is None:
        return np.array(data[()], dtype=np.float32).reshape(shape)
    n_frames = shape[0] if len(shape) == 3 else 1
    if not -n_frames <= frame < n_frames:
        raise ValueError(f"{path}: frame {frame} out of range for {n_frames} frame(s)")
    if len(shape) == 2:
        return np.array(data[()], dtype=np.float32).reshape(shape)
    # index the frame axis (the first non-singleton one) before reading: lazy for h5py/memmap
    lead = next(i for i, n in enumerate(data.shape) if n != 1)
    index = (0,) * lead + (frame,)
    return np.array(data[index], dtype=np.float32).reshape(shape[1:])


def _open_npy(path):
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _open_hdf5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _hdf5_dataset(f, path, name):
    import h5py

    found = []
    f.visititems(
        lambda key, obj: (
            found.append((f"/{key}", obj.shape)) if isinstance(obj, h5py.Dataset) else None
        )
    )
    listing = ", ".join(f"{key} {shape}" for key, shape in found[:20]) or "no datasets"
    if name is not None:
        obj = f.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise KeyError(f"{path}: no dataset {name}; the file holds: {listing}")
        return obj
    images = [key for key, shape in found if len(shape) in (2, 3)]
    if len(images) != 1:
        raise KeyError(
            f"{path}: {'no' if not images else 'more than one'} 2-D or 3-D dataset; name one as "
            f"'{path}:/group/dataset'; the file holds: {listing}"
        )
    return f[images[0]]


def _hdf5_pixel_size(dset, path) -> float | None:
    obj = dset
    while True:
        if "pixel_size_angstrom" in obj.attrs:
            value = obj.attrs["pixel_size_angstrom"]
            try:
                value = float(np.asarray(value).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                value = float("nan")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{path}: attribute pixel_size_angstrom of {obj.name} must be a positive "
                    f"number, got {obj.attrs['pixel_size_angstrom']!r}"
                )
            return value
        if obj.name == "/":
            return None
        obj = obj.parent


def _read_tiff(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        page = tif.pages[0]
        if page.photometric == tifffile.PHOTOMETRIC.RGB and "S" in axes:
            if axes.index("S") != len(axes) - 1:
                warnings.warn(
                    f"{path}: stored as planar RGB ({series.shape}); converted to grey. If the "
                    "planes are frames, save them with photometric='minisblack'.",
                    UserWarning,
                    stacklevel=4,
                )
            data = _rgb_to_grey(np.moveaxis(data, axes.index("S"), -1))
        elif page.photometric == tifffile.PHOTOMETRIC.PALETTE:
            raise ValueError("palette (indexed-colour) TIFF images are not supported")
        return data, tiff_pixel_size(tif)


def _memmap_tiff(path):
    """``(memmap, pixel size)`` for an uncompressed grey TIFF, or None if it cannot be mapped."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.pages[0].photometric != tifffile.PHOTOMETRIC.MINISBLACK:
            return None  # colour, palette, ...: read_image converts it
        pixel_size = tiff_pixel_size(tif)
    try:
        return tifffile.memmap(path, mode="r"), pixel_size
    except ValueError:
        return None


def _read_mrc(path):
    """An MRC image, stack or volume (tomograms: ``.rec``; tilt series: ``.st``, ``.ali``) and
    its voxel size in Å (MRC stores Å; 0 means none), the column one when they differ."""
    try:
        import mrcfile
    except ImportError:
        raise ImportError(
            f"reading {path.suffix} files needs mrcfile: pip install mrcfile (or the 'em' extra)"
        ) from None
    with mrcfile.open(path, mode="r", permissive=True) as mrc:
        if mrc.data is None:
            raise ValueError("the file holds no data")
        data = np.array(mrc.data)
        size = mrc.voxel_size
        x, y = float(size.x), float(size.y)
    if not (math.isfinite(x) and x > 0):
        return data, None
    return data, column_pixel_size(y, x, name=str(path))


def _read_pil(path):
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            return _rgb_to_grey(np.asarray(im.convert("RGB")))
        if im.mode in ("LA", "1"):
            return np.asarray(im.convert("L"))
        return np.asarray(im)  # L (8-bit), I;16 (16-bit), I (32-bit), F (float)


def _rgb_to_grey(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    return rgb[..., :3].astype(np.float32) @ _RGB_WEIGHTS.astype(np.float32)


def _read_rsciio(path, kind, title):
    try:
        if kind == "dm":
            from rsciio.digitalmicrograph import file_reader
        elif kind == "emd":
            from rsciio.emd import file_reader
        else:
            from rsciio.tia import file_reader
    except ImportError as exc:
        raise ImportError(
            f"reading {path.suffix} files needs RosettaSciIO: pip install rosettasciio "
            "(or the 'em' extra of tomocnn-atomseg)"
        ) from exc
    kwargs = {"select_type": "image"} if kind == "emd" else {}
    signals = _guard(path, path.suffix, file_reader, str(path), **kwargs)
    images = [s for s in signals if _is_image(s)]
    chosen = _choose_signal(images, path, title)
    data = np.asarray(chosen["data"])
    if data.dtype.names and {"R", "G", "B"} <= set(data.dtype.names):  # DM RGB(A) images
        data = _rgb_to_grey(np.stack([data["R"], data["G"], data["B"]], axis=-1))
    axes = sorted(chosen.get("axes", []), key=lambda a: a.get("index_in_array", 0))
    return data, pixel_size_from_axes(axes, name=str(path))


def _title(signal) -> str:
    return str(signal.get("metadata", {}).get("General", {}).get("title", ""))


def _is_image(signal) -> bool:
    data = signal.get("data")
    if data is None or sum(n != 1 for n in np.shape(data)) not in (2, 3):
        return False
    axes = sorted(signal.get("axes", []), key=lambda a: a.get("index_in_array", 0))
    units = [str(a.get("units", "")) for a in axes[-2:]]
    return not any(u.strip().lower().endswith("ev") for u in units)  # not a spectrum


def _choose_signal(images, path, title):
    titles = [_title(s) for s in images]
    if title is not None:
        wanted = title.strip("/").lower()
        matches = [s for s, t in zip(images, titles) if t.lower() == wanted]
        if len(matches) != 1:
            raise KeyError(f"{path}: {len(matches)} images titled {wanted!r}; titles: {titles}")
        return matches[0]
    if not images:
        raise ValueError(f"{path}: the file holds no 2-D image or image stack")
    if len(images) == 1:
        return images[0]
    haadf = [s for s, t in zip(images, titles) if t.upper() == "HAADF"]
    if len(haadf) == 1:
        return haadf[0]
    raise ValueError(
        f"{path}: the file holds {len(images)} images {titles}; choose one as '{path}:/<title>'"
    )
