"""Training the wedge-removal CNN: on simulated pairs, or adapted to one real tilt series.

``tomocnn train PAIRS.h5 -o MODEL_DIR`` (or :func:`train`) re-makes a shipped model; training
resumes from ``MODEL_DIR/checkpoint.pt``. ``tomocnn adapt TILTS -o MODEL_DIR`` (or
:func:`adapt`, also ``tomocnn.adapt``) fine-tunes a copy of a shipped model on the user's own
series without ground truth (self-supervised, IsoNet-like re-wedging).
"""

from tomocnn.train.adapt import adapt
from tomocnn.train.trainer import load_pairs, train

__all__ = ["train", "load_pairs", "adapt"]
