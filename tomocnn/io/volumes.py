"""Volumes and other 3-D arrays in HDF5, .npy, TIFF and MRC files, opened without loading them.

A file is named by a *spec*: a path, or ``"file.h5:/group/dataset"`` for one dataset of an HDF5
file. Outputs are always written under a temporary name in the destination folder and renamed
onto the final name when complete, so a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomocnn.io._files import (
    atomic_path,
    block_starts,
    check_input_file,
    default_chunks,
    file_kind,
    list_datasets,
    same_file,
    source_file,
    split_spec,
)

if TYPE_CHECKING:
    import h5py

__all__ = [
    "atomic_output",
    "open_array",
    "opened",
    "read_volume",
    "streaming_output",
    "write_volume",
]

_DEFAULT_DATASET = "/exchange/data"


def open_array(spec, *, mode: str = "r") -> h5py.Dataset | np.memmap | np.ndarray:
    """Open an array stored in a file without loading it into memory.

    Parameters
    ----------
    spec : str, path-like, or array
        ``"file.h5:/group/dataset"``, ``"file.h5"`` (the dataset ``/exchange/data``, or else the
        only 3-D dataset in the file), ``"file.npy"``, ``"file.tif"`` / ``".tiff"``, or an MRC
        file (``.mrc``, ``.rec``, ``.st``, ``.ali``, ``.map``). An object that already has
        ``shape`` and ``dtype`` (ndarray, ``h5py.Dataset``, dask array) is returned unchanged.
    mode : {"r", "r+"}, default "r"
        Read only, or read and write in place.

    Returns
    -------
    array : h5py.Dataset or numpy.memmap
        An ``h5py.Dataset`` for HDF5 (its file stays open: close it with
        ``array.file.close()``, or use :func:`opened`), otherwise a ``numpy.memmap``. Indexing
        it reads only the part asked for.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the HDF5 dataset does not exist or cannot be chosen (lists the datasets present).
    ValueError
        On an unsupported extension (lists the supported ones) or an unreadable file.

    Notes
    -----
    A compressed or tiled TIFF cannot be memory-mapped and is read whole into an ndarray. An MRC
    file opened with ``mode="r+"`` is written in place without updating its header statistics.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import open_array, write_volume
    >>> path = os.path.join(tempfile.mkdtemp(), "vol.h5")
    >>> write_volume(path, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    >>> arr = open_array(path + ":/exchange/data")
    >>> type(arr).__name__, arr.shape, float(arr[1, 2, 3])
    ('Dataset', (2, 3, 4), 23.0)
    >>> arr.file.close()
    """
    if hasattr(spec, "shape") and hasattr(spec, "dtype"):
        return spec
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    path, dataset = split_spec(spec)
    check_input_file(path)
    kind = file_kind(path)
    if dataset is not None and kind != "hdf5":
        raise ValueError(f"{spec}: a ':/dataset' suffix only applies to HDF5 files")
    try:
        if kind == "hdf5":
            return _open_hdf5(path, dataset, mode)
        if kind == "npy":
            return np.load(path, mmap_mode=mode, allow_pickle=False)
        if kind == "tiff":
            return _open_tiff(path, mode)
        return _open_mrc(path, mode)
    except (KeyError, FileNotFoundError):
        raise
    except Exception as exc:
        raise ValueError(f"{path}: cannot read this {kind} file ({exc})") from exc


@contextlib.contextmanager
def opened(spec, *, mode: str = "r") -> Iterator[h5py.Dataset | np.memmap | np.ndarray]:
    """Context manager around :func:`open_array` that closes the file on exit.

    Parameters
    ----------
    spec : str, path-like, or array
        As for :func:`open_array`. An array passed in is yielded unchanged and not closed.
    mode : {"r", "r+"}, default "r"
        Read only, or read and write in place.

    Yields
    ------
    array : h5py.Dataset or numpy.memmap
        The array, valid inside the ``with`` block only.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import opened, write_volume
    >>> path = os.path.join(tempfile.mkdtemp(), "vol.npy")
    >>> write_volume(path, np.ones((2, 3, 4), np.float32))
    >>> with opened(path) as vol:
    ...     float(vol[0].sum())
    12.0
    """
    arr = open_array(spec, mode=mode)
    try:
        yield arr
    finally:
        if arr is not spec:
            _close(arr)


def read_volume(spec, *, dtype=np.float32) -> np.ndarray:
    """Read a whole array from a file into memory.

    Parameters
    ----------
    spec : str or path-like
        Any spec :func:`open_array` accepts.
    dtype : numpy dtype or None, default numpy.float32
        Convert to this dtype; None keeps the stored dtype.

    Returns
    -------
    volume : ndarray, shape as stored (a volume is (n_rows, N, N))
        The data.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_volume, write_volume
    >>> path = os.path.join(tempfile.mkdtemp(), "vol.mrc")
    >>> write_volume(path, np.zeros((2, 3, 3), np.float32))
    >>> read_volume(path).shape
    (2, 3, 3)
    """
    with opened(spec) as arr:
        return np.array(arr, dtype=dtype)


def write_volume(
    path: str | os.PathLike,
    volume,
    *,
    dataset: str = _DEFAULT_DATASET,
    attrs: Mapping | None = None,
    chunks=True,
    input_path: str | os.PathLike | None = None,
) -> None:
    """Write an array to HDF5, .npy, TIFF or MRC (chosen by extension), atomically.

    Parameters
    ----------
    path : str or path-like
        Output file. Written under a temporary name in the same folder and renamed onto ``path``
        when complete; an existing file other than the input is replaced.
    volume : array_like, shape (n_rows, N, N) or any shape
        The data, stored with its dtype (MRC stores float64 as float32). An ``h5py.Dataset`` or
        memmap is copied block by block along axis 0 (for HDF5, .npy and MRC outputs).
    dataset : str, default "/exchange/data"
        HDF5 only: where to store the array.
    attrs : mapping, optional
        HDF5: attributes of the dataset. MRC: only ``voxel_size_angstrom`` is stored (in the
        header). Other formats cannot store attributes; they are dropped with a warning.
    chunks : bool or tuple of int, default True
        HDF5 only: True chooses chunks of at most 1 MiB (slabs along axis 0), False stores the
        dataset contiguously, a tuple gives the chunk shape.
    input_path : str or path-like, optional
        The file the data came from. Writing onto it raises ``ValueError``. The file behind an
        ``h5py.Dataset`` or memmap ``volume`` is checked the same way without being named.

    Raises
    ------
    ValueError
        If ``path`` is the input file, or its extension is not supported.
    FileNotFoundError, PermissionError
        If the output folder does not exist or cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_volume, write_volume
    >>> folder = tempfile.mkdtemp()
    >>> vol = np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)
    >>> for name in ("vol.h5", "vol.npy", "vol.tif", "vol.mrc"):
    ...     write_volume(os.path.join(folder, name), vol)
    ...     assert np.array_equal(read_volume(os.path.join(folder, name)), vol)
    >>> write_volume(os.path.join(folder, "vol2.h5"), vol, attrs={"voxel_size_angstrom": 2.0})
    """
    path = Path(path)
    kind = file_kind(path)
    if not hasattr(volume, "shape") or not hasattr(volume, "dtype"):
        volume = np.asarray(volume)
    src = source_file(volume)
    if src is not None and same_file(path, src):
        raise ValueError(f"refusing to overwrite the input file {path}; choose another output path")
    attrs = dict(attrs or {})
    with atomic_path(path, input_path=input_path) as tmp:
        if kind == "hdf5":
            _write_hdf5(tmp, volume, dataset=dataset, attrs=attrs, chunks=chunks)
        elif kind == "npy":
            _warn_dropped(attrs, path)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=volume.dtype, shape=volume.shape)
            _copy_blocks(volume, out)
            out.flush()
            del out
        elif kind == "tiff":
            _warn_dropped(attrs, path)
            _write_tiff(tmp, volume)
        else:
            voxel = attrs.pop("voxel_size_angstrom", None)
            _warn_dropped(attrs, path)
            _write_mrc(tmp, volume, voxel_size_angstrom=voxel)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, input_path: str | os.PathLike | None = None
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Use it to write any file so that a partial output never appears: on an exception inside the
    ``with`` block the temporary file is deleted and ``path`` is left untouched.

    Parameters
    ----------
    path : str or path-like
        The final output file. Its folder must exist and be writable.
    input_path : str or path-like, optional
        The input file; a ``ValueError`` is raised if ``path`` is that file.

    Yields
    ------
    tmp : pathlib.Path
        A hidden name in the same folder, with the same extension as ``path``. Write to it.

    Raises
    ------
    FileNotFoundError
        If the output folder does not exist, or nothing was written to ``tmp``.
    PermissionError
        If the output folder cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> from tomocnn.io import atomic_output
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_output(path) as tmp:
    ...     _ = tmp.write_text("done")
    >>> open(path).read()
    'done'
    """
    with atomic_path(path, input_path=input_path) as tmp:
        yield tmp


@contextlib.contextmanager
def streaming_output(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype,
    *,
    dataset: str = _DEFAULT_DATASET,
    chunks: tuple[int, ...] | None = None,
    attrs: Mapping | None = None,
    input_path: str | os.PathLike | None = None,
) -> Iterator[h5py.Dataset | np.memmap | np.ndarray]:
    """Create an output array on disk to be filled block by block; publish it only on success.

    For volumes larger than memory: the file is created under a temporary name, the caller fills
    the yielded array block by block, and the file is renamed onto ``path`` when the ``with``
    block ends without an exception (otherwise it is deleted).

    Parameters
    ----------
    path : str or path-like
        Output file: HDF5 (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``), ``.npy`` or MRC.
    shape : tuple of int
        Shape of the output, e.g. ``(n_rows, N, N)``.
    dtype : numpy dtype
        Its dtype (MRC: float32, float16, int8, int16, uint16 or complex64; uint8 is widened
        to uint16).
    dataset : str, default "/exchange/data"
        HDF5 only: where to create the dataset.
    chunks : tuple of int, optional
        HDF5 only: chunk shape; by default slabs along axis 0 of at most 1 MiB.
    attrs : mapping, optional
        HDF5 only: attributes of the dataset (MRC: ``voxel_size_angstrom``).
    input_path : str or path-like, optional
        The input file; a ``ValueError`` is raised if ``path`` is that file.

    Yields
    ------
    out : h5py.Dataset or numpy.memmap, shape ``shape``
        The array to fill (HDF5 chunks never written read back as 0).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from tomocnn.io import read_volume, streaming_output
    >>> path = os.path.join(tempfile.mkdtemp(), "big.h5")
    >>> with streaming_output(path, (4, 8, 8), np.float32) as out:
    ...     for start in range(0, 4, 2):
    ...         out[start : start + 2] = start
    >>> read_volume(path)[:, 0, 0]
    array([0., 0., 2., 2.], dtype=float32)
    """
    import h5py

    path = Path(path)
    kind = file_kind(path)
    if kind == "tiff":
        raise ValueError(f"{path}: streaming output needs HDF5, .npy or MRC, not {path.suffix!r}")
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    attrs = dict(attrs or {})
    with atomic_path(path, input_path=input_path) as tmp:
        if kind == "hdf5":
            with h5py.File(tmp, "w") as f:
                dset = _create_hdf5_dataset(f, dataset, shape, dtype, chunks=chunks or True)
                _set_attrs(dset, attrs)
                yield dset
        elif kind == "npy":
            _warn_dropped(attrs, path)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            yield out
            out.flush()
            del out
        else:
            import mrcfile

            voxel = attrs.pop("voxel_size_angstrom", None)
            _warn_dropped(attrs, path)
            with mrcfile.new_mmap(tmp, shape, mrc_mode=_mrc_mode(dtype), overwrite=True) as mrc:
                if voxel is not None:
                    mrc.voxel_size = float(voxel)
                yield mrc.data
                _mrc_header_stats(mrc)


# ---------------------------------------------------------------------------------------------
# private helpers


def _open_hdf5(path: Path, dataset: str | None, mode: str):
    import h5py

    f = h5py.File(path, mode)
    try:
        if dataset is None:
            dataset = _default_dataset(f, path)
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise KeyError(f"{path}: no dataset {dataset}; {list_datasets(f)}")
        return obj
    except BaseException:
        f.close()
        raise


def _default_dataset(f, path) -> str:
    import h5py

    if isinstance(f.get(_DEFAULT_DATASET), h5py.Dataset):
        return _DEFAULT_DATASET
    found = []
    f.visititems(
        lambda name, obj: (
            found.append("/" + name) if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None
        )
    )
    if len(found) == 1:
        return found[0]
    raise KeyError(
        f"{path}: no {_DEFAULT_DATASET} and {'no' if not found else 'more than one'} 3-D dataset; "
        f"name one as '{path}:/group/dataset'; {list_datasets(f)}"
    )


def _open_tiff(path: Path, mode: str):
    import tifffile

    try:
        return tifffile.memmap(path, mode=mode)
    except ValueError:  # compressed, tiled or not contiguous: cannot be memory-mapped
        if mode != "r":
            raise
        return tifffile.imread(path)


def _open_mrc(path: Path, mode: str) -> np.memmap:
    import mrcfile

    with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
        data = mrc.data
        if data is None:
            raise ValueError("the file holds no data")
        dtype, offset, shape = data.dtype, data.offset, data.shape
    # a plain memmap, independent of the mrcfile object's lifetime
    return np.memmap(path, dtype=dtype, mode=mode, offset=offset, shape=shape)


def _close(arr) -> None:
    h5file = getattr(arr, "file", None)
    if h5file is not None and hasattr(h5file, "close"):
        h5file.close()
    elif isinstance(arr, np.memmap) and arr.mode != "r":
        arr.flush()


def _copy_blocks(src, dst) -> None:
    if len(src.shape) == 0:
        dst[()] = np.asarray(src)
        return
    for start, stop in block_starts(tuple(src.shape), np.dtype(src.dtype).itemsize):
        dst[start:stop] = np.asarray(src[start:stop])


def _create_hdf5_dataset(f, dataset: str, shape, dtype, *, chunks):
    if chunks is True:
        chunks = default_chunks(shape, dtype.itemsize)
    elif chunks is False:
        chunks = None
    dset = f.create_dataset(dataset, shape=shape, dtype=dtype, chunks=chunks)
    if dataset.lstrip("/").split("/")[0] == "exchange" and "implements" not in f:
        f.create_dataset("implements", data="exchange")
    return dset


def _write_hdf5(tmp: Path, volume, *, dataset: str, attrs: dict, chunks) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        shape, dtype = tuple(volume.shape), np.dtype(volume.dtype)
        dset = _create_hdf5_dataset(f, dataset, shape, dtype, chunks=chunks)
        _set_attrs(dset, attrs)
        _copy_blocks(volume, dset)


def _set_attrs(dset, attrs: Mapping) -> None:
    for key, value in attrs.items():
        try:
            dset.attrs[key] = value
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"attribute {key!r} = {value!r} cannot be stored in HDF5 ({exc}); use a number, "
                "a string or an array"
            ) from exc


def _write_tiff(tmp: Path, volume) -> None:
    import tifffile

    shape, dtype = tuple(volume.shape), np.dtype(volume.dtype)
    if len(shape) >= 3:  # one page at a time, so a memmap or h5py.Dataset is never loaded whole
        pages = (np.asarray(volume[i]) for i in range(shape[0]))
        tifffile.imwrite(tmp, data=pages, shape=shape, dtype=dtype, photometric="minisblack")
    else:
        tifffile.imwrite(tmp, np.asarray(volume), photometric="minisblack")


def _mrc_mode(dtype) -> int:
    from mrcfile.utils import mode_from_dtype

    try:
        return mode_from_dtype(np.dtype(dtype))
    except ValueError:
        raise ValueError(
            f"MRC cannot store dtype {np.dtype(dtype)}; use float32, float16, int8, int16, "
            "uint8 (stored as uint16), uint16 or complex64"
        ) from None


def _write_mrc(tmp: Path, volume, *, voxel_size_angstrom=None) -> None:
    import mrcfile

    dtype = np.dtype(volume.dtype)
    if dtype == np.float64:
        dtype = np.dtype(np.float32)  # MRC has no float64 mode
    mode = _mrc_mode(dtype)
    with mrcfile.new_mmap(tmp, tuple(volume.shape), mrc_mode=mode, overwrite=True) as mrc:
        _copy_blocks(volume, mrc.data)
        if voxel_size_angstrom is not None:
            mrc.voxel_size = float(voxel_size_angstrom)
        _mrc_header_stats(mrc)


def _mrc_header_stats(mrc) -> None:
    """Set dmin, dmax, dmean and rms block by block (mrcfile's own method copies the volume)."""
    data = mrc.data
    if data.size == 0 or np.iscomplexobj(data):
        return
    lo, hi, total, total_sq = np.inf, -np.inf, 0.0, 0.0
    for start, stop in block_starts(data.shape, 8):
        block = np.asarray(data[start:stop], dtype=np.float64)
        lo, hi = min(lo, block.min()), max(hi, block.max())
        total += block.sum()
        total_sq += np.square(block).sum()
    mean = total / data.size
    mrc.header.dmin, mrc.header.dmax = np.float32(lo), np.float32(hi)
    mrc.header.dmean = np.float32(mean)
    mrc.header.rms = np.float32(np.sqrt(max(0.0, total_sq / data.size - mean * mean)))


def _warn_dropped(attrs: Mapping, path: Path) -> None:
    if attrs:
        warnings.warn(
            f"{path.suffix} files cannot store attributes; dropped {sorted(attrs)} "
            f"(write HDF5 to keep them)",
            UserWarning,
            stacklevel=4,
        )
