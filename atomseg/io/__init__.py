"""Reading STEM images with their calibration, and writing result tables.

:func:`read_image` reads one image or a stack from ``.npy``, ``.tif``/``.tiff``, ``.png``,
``.jpg``, HDF5 (``"file.h5:/group/dataset"``) and, through RosettaSciIO, ``.dm3``, ``.dm4``,
``.emd`` and ``.ser``. It returns a float32 array, ``(n_rows, n_cols)`` or
``(n_frames, n_rows, n_cols)``, and the pixel size in ångström when the file records one
(``None`` otherwise). :func:`read_stack_lazy` opens a stack without loading it, to process it
frame by frame. :func:`write_table_csv` writes a table atomically, so a partial file never
appears.

Conventions: positions are ``(row, col)`` in pixels of the image as read here; physical sizes
carry their unit in the name (``pixel_size_angstrom``). This package does not depend on
``tomocnn``; the two meet through arrays and documented files.
"""

from atomseg.io.images import read_image, read_stack_lazy
from atomseg.io.tables import write_table_csv

__all__ = ["read_image", "read_stack_lazy", "write_table_csv"]
