"""Tune a trained network's detection threshold on held-out library images."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["tune_detection", "library_columns"]


def library_columns(library, index: int, *, labelled: bool = True) -> np.ndarray:
    """Return the true (row, col) of the labelled (or the other) columns of one library image.

    Labelled columns hold at least one atom of atomic number ``label_min_z`` or more and are
    resolved from their neighbours (see :mod:`atomseg.sim.params`); light columns such as O,
    nearly invisible in HAADF, and unresolved ones are unlabelled. ``labelled=False`` returns
    those others (columns with at least one atom), which evaluations treat as "don't care".

    Examples
    --------
    >>> library_columns("missing.h5", 0)
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    cols, is_labelled = _read_columns(library, index)
    cols = cols[is_labelled == labelled]
    return np.stack([cols["row"], cols["col"]], axis=1).astype(np.float64)


def _read_columns(library, index: int):
    """The columns with at least one atom of one library image, and whether each is labelled."""
    import json
    import os

    if not os.path.isfile(library):
        raise FileNotFoundError(f"library not found: {library}")
    with h5py.File(library, "r") as f:
        a, b = f["column_offsets"][index : index + 2]
        cols = f["columns"][a:b]
        min_z = json.loads(f.attrs.get("config", "{}")).get("label_min_z", 1)
    cols = cols[cols["n_atoms"] >= 1]
    if "labelled" in (cols.dtype.names or ()):
        return cols, cols["labelled"].astype(bool)
    return cols, cols["z"] >= min_z  # library format 1


def tune_detection(
    network,
    data: dict[str, Any],
    indices: np.ndarray,
    config: dict[str, Any],
    *,
    thresholds=(0.5, 0.6, 0.7, 0.8, 0.9),
    min_scores=(0.3, 0.6, 0.75, 0.85, 0.9),
) -> dict[str, Any]:
    """Pick the probability threshold and minimum score with the best F1 on held-out images.

    F1 is pooled over all images (total true/false positives and misses).

    ``data`` is :func:`atomseg.train.load_training_set`'s dictionary (its ``attrs`` must name
    the library file under ``path``); matching is one-to-one within 0.3 × the median
    nearest-neighbour distance of the true columns, and detections on unlabelled columns
    (light or unresolved) are not counted as false positives.

    Returns
    -------
    dict
        ``threshold``, ``min_score``, ``val_f1`` (pooled F1 at those values) and ``val_images``.

    Examples
    --------
    >>> tune_detection(None, {"images": []}, np.array([], int), {})
    {'threshold': 0.5, 'min_score': 0.3, 'val_f1': None, 'val_images': 0}
    """
    if len(indices) == 0:
        return {"threshold": 0.5, "min_score": 0.3, "val_f1": None, "val_images": 0}
    from atomseg.detect import match_positions, nearest_neighbour_distance
    from atomseg.infer.columns import _detect, _prepare, _probabilities
    from atomseg.models import ColumnModel

    model = ColumnModel(network, config)
    library = data["path"]
    counts = {(t, m): [0, 0, 0] for t in thresholds for m in min_scores}
    for i in indices:
        image = data["raw_images"][i] if "raw_images" in data else data["images"][i]
        px = float(data["pixel_size_angstrom"][i])
        cols, is_labelled = _read_columns(library, int(i))  # one read for truth and ignored
        pos = np.stack([cols["row"], cols["col"]], axis=1).astype(np.float64)
        true, other = pos[is_labelled], pos[~is_labelled]
        if len(true) < 2:
            continue
        f, resampled, x, p_net = _prepare(image, px, model)
        prob = _probabilities(model, x[None])[0]
        tol = 0.3 * nearest_neighbour_distance(true)
        for t in thresholds:
            table = _detect(
                prob, resampled, image, f, model, px, t, min_score=min(min_scores), p_net=p_net
            )
            for m in min_scores:
                pred = table.loc[table["score"] >= m, ["row", "col"]].to_numpy(float)
                r = match_positions(pred, true, max_distance_px=tol, ignore=other)
                c = counts[(t, m)]
                c[0], c[1], c[2] = c[0] + r["tp"], c[1] + r["fp"], c[2] + r["fn"]
    f1 = {k: 2 * tp / max(2 * tp + fp + fn, 1) for k, (tp, fp, fn) in counts.items()}
    best = max(f1, key=f1.get)
    return {
        "threshold": float(best[0]),
        "min_score": float(best[1]),
        "val_f1": round(f1[best], 4),
        "val_images": len(indices),
    }
