"""File specs, format detection and atomic output for atomseg (private; kept apart from tomocnn)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

FORMATS = {
    ".npy": "npy",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "pil",
    ".jpg": "pil",
    ".jpeg": "pil",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".dm3": "dm",
    ".dm4": "dm",
    ".emd": "emd",
    ".ser": "ser",
    ".mrc": "mrc",
    ".rec": "mrc",
    ".map": "mrc",
    ".st": "mrc",
    ".ali": "mrc",
}
#: formats whose files may be addressed as ``file:/name``
_ADDRESSABLE = (".h5", ".hdf5", ".hdf", ".emd")


def split_spec(spec) -> tuple[Path, str | None]:
    """Split ``"file.h5:/group/dataset"`` (or ``"file.emd:/HAADF"``) into path and name.

    The split is made at the last ``":/"`` whose left part ends with ``.h5``, ``.hdf5``,
    ``.hdf`` or ``.emd`` (or is an existing file while the whole is not). A ``Path`` is never
    split.
    """
    if isinstance(spec, os.PathLike):
        return Path(spec), None
    if not isinstance(spec, str):
        raise TypeError(
            f"expected a path or a 'file.h5:/dataset' string, got {type(spec).__name__}"
        )
    pos = spec.rfind(":/")
    if pos > 0 and (
        spec[:pos].lower().endswith(_ADDRESSABLE)
        or (Path(spec[:pos]).is_file() and not Path(spec).exists())
    ):
        return Path(spec[:pos]), spec[pos + 1 :]
    return Path(spec), None


def file_kind(path: Path) -> str:
    """The reader to use for ``path``, from its extension; ValueError listing supported ones."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(FORMATS)}"
        )
    return kind


def check_input_file(path: Path) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` if it is not an existing file."""
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a file, got a folder: {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder} (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the output folder {folder} (permission denied)")
    if path.is_dir():
        raise IsADirectoryError(f"output path is an existing folder: {path}")
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file {tmp} for {path}")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
