"""Reading and writing tilt series and volumes: Data Exchange HDF5, .npy, TIFF and MRC.

Tilt series
    :func:`read_tilt_series` reads every tilt-series format of the field with its angles (Data
    Exchange and HyperSpy/ETSpy HDF5, MRC/IMOD with ``.rawtlt``/``.tlt``/``.mdoc`` or header
    angles, DigitalMicrograph, TIFF and .npy stacks; see :mod:`tomocnn.io.tiltseries`).
    :func:`read_dataexchange`, :func:`read_theta` and :func:`write_dataexchange` use the Data
    Exchange layout (``/exchange/data``, ``/exchange/data_white``, ``/exchange/data_dark``,
    ``/exchange/theta``) that TomoPy and dxchange read. Angles are in **degrees in files** and
    in **radians in Python**; they are converted only here. Projections are
    ``(n_angles, n_rows, n_cols)`` float32 with rows along the tilt axis.

Volumes and other arrays
    A file is named by a *spec*: a path, or ``"file.h5:/group/dataset"``. :func:`open_array`
    (and its context manager :func:`opened`) gives an ``h5py.Dataset`` or ``numpy.memmap`` that
    reads only what is indexed; :func:`read_volume` loads the whole array; :func:`write_volume`
    writes HDF5, .npy, TIFF or MRC by extension.

Safe outputs
    Every writer works under a temporary name in the destination folder and renames onto the
    final name only when complete (:func:`atomic_output`), so a partial file never appears and an
    input file is never overwritten. :func:`streaming_output` does the same for an array larger
    than memory that is filled block by block.

Supported extensions: ``.h5 .hdf5 .hdf .nxs`` (HDF5), ``.npy``, ``.tif .tiff``,
``.mrc .rec .st .ali .map`` (MRC).
"""

from tomocnn.io.dataexchange import read_dataexchange, read_theta, write_dataexchange
from tomocnn.io.tiltseries import TILT_SERIES_EXTENSIONS, read_tilt_series, tilt_angles_from_range
from tomocnn.io.volumes import (
    atomic_output,
    open_array,
    opened,
    read_volume,
    streaming_output,
    write_volume,
)

__all__ = [
    "TILT_SERIES_EXTENSIONS",
    "read_tilt_series",
    "tilt_angles_from_range",
    "read_dataexchange",
    "read_theta",
    "write_dataexchange",
    "open_array",
    "opened",
    "read_volume",
    "write_volume",
    "atomic_output",
    "streaming_output",
]
