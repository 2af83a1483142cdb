"""Training the wedge-removal CNN on simulated (reconstruction, truth) pairs.

``tomocnn train PAIRS.h5 -o MODEL_DIR`` (or :func:`train`) re-makes a shipped model; training
resumes from ``MODEL_DIR/checkpoint.pt``.
"""

from tomocnn.train.trainer import load_pairs, train

__all__ = ["train", "load_pairs"]
