"""Tune a trained network's detection threshold on held-out library images."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["tune_detection", "library_columns"]

#: F1 differences below this count as ties when tuning (see :func:`tune_detection`).
F1_TIE = 0.005


def library_columns(library, index: int, *, labelled: bool = True) -> np.ndarray:
    """Return the true (row, col) of the labelled (or the other) columns of one library image.

    Labelled columns hold at least one atom of atomic number ``label_min_z`` or more, are
    resolved from their neighbours and (libraries of format 3) detectable at the image's dose,
    ``snr >= label_min_snr`` (see :mod:`atomseg.sim.params`); light columns such as O, nearly
    invisible in HAADF, unresolved ones and ones too weak for the dose are not. ``labelled=False``
    returns those others (columns with at least one atom), which evaluations treat as "don't
    care".

    Examples
    --------
    >>> library_columns("missing.h5", 0)
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    cols, is_labelled, _ = _read_columns(library, index)
    cols = cols[is_labelled == labelled]
    return np.stack([cols["row"], cols["col"]], axis=1).astype(np.float64)


def _read_columns(library, index: int):
    """The columns (>= 1 atom) of one library image, whether each is asked for, and resolved."""
    import json
    import os

    if not os.path.isfile(library):
        raise FileNotFoundError(f"library not found: {library}")
    with h5py.File(library, "r") as f:
        a, b = f["column_offsets"][index : index + 2]
        cols = f["columns"][a:b]
        config = json.loads(f.attrs.get("config", "{}"))
    min_z = config.get("label_min_z", 1)
    cols = cols[cols["n_atoms"] >= 1]
    names = cols.dtype.names or ()
    resolved = cols["labelled"].astype(bool) if "labelled" in names else cols["z"] >= min_z
    if "snr" in names:  # format 3: and detectable at the image's dose
        return cols, resolved & (cols["snr"] >= config.get("label_min_snr", 0.0)), resolved
    return cols, resolved, resolved


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

    F1 is pooled over all images (total true/false positives and misses). Settings within
    ``F1_TIE`` of the best count as tied, and the most permissive of them (lowest minimum score,
    then lowest threshold) is taken: on simulated images F1 is flat over such settings, while
    real columns, with irregular shapes from scan noise, score lower than simulated ones and a
    stricter cut drops them.

    ``data`` is :func:`atomseg.train.load_training_set`'s dictionary (its ``attrs`` must name
    the library file under ``path``); matching is one-to-one within 0.3 × the median
    nearest-neighbour distance of the resolved columns, and detections on unlabelled columns
    (light, unresolved or too weak for the dose) are not counted as false positives.

    Returns
    -------
    dict
        ``threshold``, ``min_score``, ``val_f1`` (pooled F1 at those values), ``val_images`` and
        ``val_f1_grid`` (``"threshold/min_score"``: F1 for every setting tried).

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
        cols, is_labelled, resolved = _read_columns(library, int(i))  # truth, ignored, lattice
        pos = np.stack([cols["row"], cols["col"]], axis=1).astype(np.float64)
        true, other = pos[is_labelled], pos[~is_labelled]
        if resolved.sum() < 2:
            continue
        f, resampled, x, p_net = _prepare(image, px, model)
        prob = _probabilities(model, x[None])[0]
        tol = 0.3 * nearest_neighbour_distance(pos[resolved])
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
    top = max(f1.values())
    best = min((k for k, v in f1.items() if v >= top - F1_TIE), key=lambda k: (k[1], k[0]))
    return {
        "threshold": float(best[0]),
        "min_score": float(best[1]),
        "val_f1": round(f1[best], 4),
        "val_images": len(indices),
        "val_f1_grid": {f"{t:g}/{m:g}": round(v, 4) for (t, m), v in f1.items()},
    }
