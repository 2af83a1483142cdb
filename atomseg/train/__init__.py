"""Training the column-segmentation U-net on a simulated library.

``atomseg train LIBRARY.h5 -o MODEL_DIR`` (or :func:`train`) re-makes a shipped model; training
resumes from ``MODEL_DIR/checkpoint.pt`` and tunes the detection threshold at the end.
"""

from atomseg.train.trainer import load_training_set, train
from atomseg.train.tune import tune_detection

__all__ = ["train", "load_training_set", "tune_detection"]
