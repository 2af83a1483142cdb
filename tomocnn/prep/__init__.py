"""Preparing a real tilt series for reconstruction: vacuum level, alignment, rotation centre.

A series as it comes off the microscope has its tilt axis at some angle in the image plane, an
offset of the axis from the middle of the detector, and drift and jitter from one projection to
the next. :func:`align` finds all three and returns projections in TomoPy's convention (rows
along the tilt axis, the axis at TomoPy's default centre ``n_cols / 2``), ready for
:func:`tomocnn.recon.reconstruct`.

Functions
---------
align               projections, theta -> (aligned, theta, report); also ``tomocnn.align``
align_file          a tilt-series file -> a Data Exchange HDF5 file (``tomocnn align``)
subtract_background an ADF/HAADF series' vacuum level -> 0
vacuum_levels       that level, per projection
"""

from tomocnn.prep.alignment import align, align_file, subtract_background, vacuum_levels

__all__ = ["align", "align_file", "subtract_background", "vacuum_levels"]
