"""Simulated electron tomography: 3-D phantoms, tilt series and training pairs.

Arrays follow TomoPy's conventions (see :mod:`tomocnn.recon`): volumes ``(n_rows, N, N)`` with
rows along the tilt axis, projections ``(n_angles, n_rows, N)``, angles ``theta`` in radians
(degrees only in files and on the command line). Every simulator takes
``rng: int | numpy.random.Generator | None``.

Functions
---------
random_phantom   random nanomaterial phantoms (:data:`PHANTOM_KINDS`)
tilt_angles      tilt schemes: limited, asymmetric, uneven ranges, dose-symmetric order
project          the noise-free forward model (ASTRA's projector, TomoPy's geometry)
tilt_series      projections with Poisson (dose) and Gaussian noise and alignment jitter
write_pairs      (limited-angle reconstruction, ground truth) training pairs to HDF5

:data:`PAIRS_FORMAT_VERSION` is the ``format_version`` attribute of the pairs files
(layout in :mod:`tomocnn.sim.pairs`); :data:`HELD_OUT_KINDS` are phantom kinds kept out of
training (:data:`TRAINING_KINDS` are the others).
"""

from tomocnn.sim.pairs import FORMAT_VERSION as PAIRS_FORMAT_VERSION
from tomocnn.sim.pairs import write_pairs
from tomocnn.sim.phantoms import HELD_OUT_KINDS, PHANTOM_KINDS, TRAINING_KINDS, random_phantom
from tomocnn.sim.tilt import project, tilt_angles, tilt_series

__all__ = [
    "HELD_OUT_KINDS",
    "PAIRS_FORMAT_VERSION",
    "PHANTOM_KINDS",
    "TRAINING_KINDS",
    "project",
    "random_phantom",
    "tilt_angles",
    "tilt_series",
    "write_pairs",
]
