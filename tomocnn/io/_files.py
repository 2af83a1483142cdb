"""Paths, ``file.h5:/dataset`` specs, format detection and atomic output (private helpers)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf", ".nxs")
NPY_EXTENSIONS = (".npy",)
TIFF_EXTENSIONS = (".tif", ".tiff")
MRC_EXTENSIONS = (".mrc", ".rec", ".st", ".ali", ".map")
SUPPORTED_EXTENSIONS = HDF5_EXTENSIONS + NPY_EXTENSIONS + TIFF_EXTENSIONS + MRC_EXTENSIONS

#: target size of one HDF5 chunk (bytes): the size of h5py's default chunk cache
_CHUNK_BYTES = 1 << 20
#: target size of one block copied in memory when streaming a large array (bytes)
_BLOCK_BYTES = 64 << 20


def split_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """Split ``"file.h5:/group/dataset"`` into ``(Path("file.h5"), "/group/dataset")``.

    The split is made at the last ``":/"`` whose left part ends with an HDF5 extension (or is an
    existing file while the whole is not), so paths that contain colons elsewhere are left alone.
    A ``Path`` is never split.
    """
    if isinstance(spec, os.PathLike):
        return Path(spec), None
    if not isinstance(spec, str):
        raise TypeError(
            f"expected a path or a 'file.h5:/dataset' string, got {type(spec).__name__}"
        )
    pos = spec.rfind(":/")
    if pos > 0 and (
        spec[:pos].lower().endswith(HDF5_EXTENSIONS)
        or (Path(spec[:pos]).is_file() and not Path(spec).exists())
    ):
        return Path(spec[:pos]), spec[pos + 1 :]
    return Path(spec), None


def file_kind(path: Path) -> str:
    """Return ``"hdf5"``, ``"npy"``, ``"tiff"`` or ``"mrc"`` from the extension, or raise."""
    ext = path.suffix.lower()
    for kind, exts in (
        ("hdf5", HDF5_EXTENSIONS),
        ("npy", NPY_EXTENSIONS),
        ("tiff", TIFF_EXTENSIONS),
        ("mrc", MRC_EXTENSIONS),
    ):
        if ext in exts:
            return kind
    raise ValueError(
        f"{path}: unsupported file extension {ext or '(none)'!r}; "
        f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
    )


def check_input_file(path: Path) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` if it is not an existing file."""
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a file, got a folder: {path}")


def check_output_path(path: Path, *, input_path: str | os.PathLike | None = None) -> None:
    """Check that ``path`` can be written and is not ``input_path``; raise a clear error if not."""
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"output folder does not exist: {folder} (create it first)")
    if not folder.is_dir():
        raise NotADirectoryError(f"output folder is not a folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the output folder {folder} (permission denied)")
    if path.is_dir():
        raise IsADirectoryError(f"output path is an existing folder: {path}")
    if input_path is not None and same_file(path, split_spec(input_path)[0]):
        raise ValueError(f"refusing to overwrite the input file {path}; choose another output path")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (following links when both exist)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def source_file(array) -> str | None:
    """The file behind an ``h5py.Dataset`` or ``numpy.memmap``, or None for an in-memory array."""
    h5file = getattr(array, "file", None)
    if h5file is not None and hasattr(h5file, "filename"):
        return h5file.filename
    return getattr(array, "filename", None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, input_path=None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    check_output_path(path, input_path=input_path)
    # keep the extension last: writers such as numpy.save and tifffile look at it
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file {tmp} for {path}")
        os.replace(tmp, path)
    except PermissionError as exc:
        raise PermissionError(f"cannot write {path}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def default_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """Chunks of at most ~1 MiB: slabs along axis 0, tiled in-plane only if one slice is larger."""
    if len(shape) == 0 or 0 in shape:
        return None
    chunk = [1, *shape[1:]]
    while itemsize * _prod(chunk) > _CHUNK_BYTES and max(chunk) > 1:
        axis = max(range(len(chunk)), key=lambda i: chunk[i])  # halve the largest side
        chunk[axis] = (chunk[axis] + 1) // 2
    chunk[0] = max(1, min(shape[0], _CHUNK_BYTES // (itemsize * _prod(chunk))))
    return tuple(int(c) for c in chunk)


def block_starts(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges along axis 0, each block about 64 MiB at most."""
    slice_bytes = itemsize * max(1, _prod(shape[1:]))
    step = max(1, _BLOCK_BYTES // slice_bytes)
    for start in range(0, shape[0], step):
        yield start, min(shape[0], start + step)


def list_datasets(f) -> str:
    """Describe the datasets of an open HDF5 file (at most 20) for error messages."""
    import h5py

    names = []
    f.visititems(
        lambda name, obj: (
            names.append(f"/{name} {obj.shape}") if isinstance(obj, h5py.Dataset) else None
        )
    )
    if not names:
        return "the file holds no datasets"
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return "the file holds: " + ", ".join(names[:20]) + more


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
