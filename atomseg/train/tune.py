"""Tune a trained network's detection threshold on held-out library images."""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

__all__ = ["tune_detection", "library_columns"]

#: F1 differences below this count as ties when tuning (see :func:`tune_detection`).
F1_TIE = 0.005
#: fainter columns (contrast-to-noise from this floor up to the tuned gate) are kept where the
#: lattice of the clear ones (or of a grain's faint ones) puts a column
#: (:func:`atomseg.detect.lattice.gate_columns`, in ``lattice_rounds`` rounds; None: until none
#: is added), and so are the candidates of a second Hough pass at probability
#: ``lattice_threshold`` at sites the first pass has none; fainter ones still (contrast-to-noise
#: from ``lattice_faint_min_contrast_to_noise``) where ``lattice_faint_min_votes`` translations
#: agree, and candidates from the floor up on which ``lattice_mutual_min_votes`` translations of
#: other such candidates land (a grain seen only faintly), with the lattice vectors of up to
#: ``lattice_grains`` more grains that the others leave unexplained (chosen on held-out
#: simulated sets, see the README); written into every card with a gate
LATTICE_RULE = {
    "lattice_min_contrast_to_noise": 3.0,
    "lattice_tolerance": 0.15,
    "lattice_min_votes": 2,
    "lattice_rounds": None,
    "lattice_threshold": 0.5,
    "lattice_faint_min_contrast_to_noise": 1.5,
    "lattice_faint_min_votes": 4,
    "lattice_mutual_min_votes": 4,
    "lattice_grains": 4,
}


#: the probability thresholds tried. Not above 0.8: the network is less sure of real columns,
#: irregular with scan noise, than of simulated ones, and with the lattice rule's second pass
#: the library's held-out images prefer 0.9 (F1 0.959 against 0.955 at 0.8), which on the real
#: Au grain-boundary image loses 37 of its 793 columns, all on lattice sites (overlay checked)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)


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


def _read_columns(library, index: int, min_snr: float | None = None):
    """The columns (>= 1 atom) of one library image, whether each is asked for, and resolved.

    Asked for: resolved and ``snr >= min_snr`` (default: the library's own ``label_min_snr``).
    """
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
        cut = config.get("label_min_snr", 0.0) if min_snr is None else min_snr
        return cols, resolved & (cols["snr"] >= cut), resolved
    return cols, resolved, resolved


def _outside_columns(library, index: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) and z of the columns centred just outside a library image (``outside_columns``).

    Libraries do not store them: the image is re-made from its stored parameters, and used only
    if it is the stored image (else none: an image made by another version of the simulator).
    """
    from atomseg.sim import remake

    with h5py.File(library, "r") as f:
        params = f["params"][index]
        stored = f["images"][index]
    s = remake(params.decode() if isinstance(params, bytes) else params, shape=tuple(shape))
    if s.image.shape != stored.shape or not np.allclose(s.image, stored, atol=1e-3):
        return np.zeros((0, 2)), np.zeros(0, np.int16)
    out = s.outside_columns
    out = out[out["n_atoms"] >= 1]
    return out[["row", "col"]].to_numpy(np.float64), out["z"].to_numpy()


def _keep(positions, cnr, min_cnr, lattice, only=None) -> np.ndarray:
    """The columns a setting keeps (past its score cut): the contrast gate, plus the lattice
    rule, by which the ``only`` ones (second-pass candidates) alone can enter."""
    from atomseg.infer.columns import _gate

    if min_cnr <= 0:
        return np.ones(len(positions), bool) if only is None else ~only
    return _gate(positions, cnr, min_cnr, LATTICE_RULE if lattice else {}, only)


def _decade_f1(bands: dict[int, list[int]]) -> dict[int, float]:
    """F1 of each dose decade (``{decade: [tp, fp, fn]}``) that has a column to find."""
    return {b: 2 * tp / (2 * tp + fp + fn) for b, (tp, fp, fn) in bands.items() if tp + fn}


def _pick(f1: dict[tuple, float]) -> tuple:
    """The chosen ``(threshold, min_score, min_cnr)`` among settings tied within ``F1_TIE``.

    The lowest minimum score, then the highest contrast gate, then the highest threshold (see
    :func:`tune_detection`).
    """
    top = max(f1.values())
    tied = [k for k, v in f1.items() if v >= top - F1_TIE]
    return min(tied, key=lambda k: (k[1], -k[2], -k[0]))


def tune_detection(
    network,
    data: dict[str, Any],
    indices: np.ndarray,
    config: dict[str, Any],
    *,
    thresholds=THRESHOLDS,
    min_scores=(0.3, 0.6, 0.75, 0.8, 0.85, 0.9),
    min_cnrs=(0.0, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5, 6.0, 8.0),
    min_snr: float | None = None,
    lattice: bool = True,
) -> dict[str, Any]:
    """Pick the detection thresholds with the best F1 on held-out images.

    Three are tuned together: the probability threshold, the minimum score (Hough vote and
    probability) and the minimum contrast-to-noise ratio of the image at the column
    (:func:`atomseg.detect.contrast.contrast_to_noise`: the image itself must show the column,
    which stops the network from reporting a lattice it expects in pure noise). F1 is pooled
    over the images of each dose decade (1e2-1e3, 1e3-1e4, ... e/Å², the library's
    ``dose_e_per_A2``; false detections on images with nothing to find count in their decade,
    a decade with no column to find in any image does not count), and the score of a setting
    is the mean of the decades' F1: the targets are per dose, and an F1 pooled over all images
    would be decided by the high-dose images, which hold most of the detectable columns.
    Settings within ``F1_TIE`` of the best count as tied, and of them the one with the lowest
    minimum score, then the *highest* contrast-to-noise gate, then the *highest* probability
    threshold is taken: real columns, with irregular shapes from scan noise, score lower than
    simulated ones, and a stricter score cut drops them; but a lower probability threshold lets
    the network's doubts through, and on real images those sit on the grey features between
    the columns (79 such detections on the shared Au grain-boundary image at 0.6 against 0.8).
    The gate only decides what is kept without the lattice rule's support (faint columns on
    the lattice are kept from a contrast-to-noise of 1.5 up whatever the gate), so among gates
    the library cannot tell apart the strictest keeps fewest detections off the lattice
    (``columns-v5``: every gate from 0 to 8 tied, and gate 0, which also switches the lattice
    rule off, made 160 false detections in 110 empty 1e2 dev images; until 0.7.0 the lowest
    gate was taken).

    The truth is what a finder is asked to find: resolved columns *detectable* at the image's
    dose, ``snr >= min_snr`` (default: the cut of the library's labels, ``label_min_snr``;
    5 is Rose's criterion, the benchmark's truth).
    ``data`` is :func:`atomseg.train.load_training_set`'s dictionary (its ``attrs`` must name
    the library file under ``path``); matching is one-to-one within 0.3 × the median
    nearest-neighbour distance of the resolved columns, and detections on the other columns
    (light, unresolved or too weak for the dose, or centred just outside the image: those are
    re-made from the stored parameters) and at the centre of a dumbbell neither column of which
    is asked for (:func:`atomseg.detect.pair_centres`, as the benchmarks count them; since
    0.10.0) are not counted as false positives. With ``lattice``
    (default) every gate is tuned as it ships: with :data:`LATTICE_RULE`.

    Returns
    -------
    dict
        ``threshold``, ``min_score``, ``min_contrast_to_noise``, ``val_f1`` (mean F1 of the dose
        decades at those values), ``val_f1_by_dose`` (each decade's F1 there, keyed by its
        lower dose), ``val_images`` and ``val_f1_grid`` (``"threshold/min_score/min_cnr"``: the
        mean F1 for every setting tried).

    Examples
    --------
    >>> tune_detection(None, {"images": []}, np.array([], int), {})["min_contrast_to_noise"]
    0.0
    """
    if len(indices) == 0:
        return {
            "threshold": 0.5,
            "min_score": 0.3,
            "min_contrast_to_noise": 0.0,
            "val_f1": None,
            "val_images": 0,
        }
    from atomseg.detect import match_positions, nearest_neighbour_distance, pair_centres
    from atomseg.infer.columns import (
        _column_cnr,
        _detect,
        _prepare,
        _probabilities,
        _with_lattice_candidates,
    )
    from atomseg.models import ColumnModel

    model = ColumnModel(network, config)
    library = data["path"]
    with h5py.File(library, "r") as f:
        library_config = json.loads(f.attrs.get("config", "{}"))
        if min_snr is None:  # the library's own cut, as its labels
            min_snr = float(library_config.get("label_min_snr", 0.0))
        label_min_z = int(library_config.get("label_min_z", 1))
        doses = f["dose_e_per_A2"][:] if "dose_e_per_A2" in f else None  # older: one band
    settings = [(t, m, c) for t in thresholds for m in min_scores for c in min_cnrs]
    counts: dict[tuple, dict[int, list[int]]] = {k: {} for k in settings}
    for i in indices:
        band = int(np.floor(np.log10(max(float(doses[i]), 1e-12)))) if doses is not None else 0
        image = data["raw_images"][i] if "raw_images" in data else data["images"][i]
        px = float(data["pixel_size_angstrom"][i])
        cols, is_labelled, resolved = _read_columns(library, int(i), min_snr)
        pos = np.stack([cols["row"], cols["col"]], axis=1).astype(np.float64)
        true, other = pos[is_labelled], pos[~is_labelled]
        if resolved.sum() < 2:
            continue
        beyond, beyond_z = _outside_columns(library, int(i), np.shape(image))
        heavy, far = cols["z"] >= label_min_z, beyond_z >= label_min_z  # as Sample.truth
        blobs = pair_centres(
            np.concatenate([pos[heavy], beyond[far]]),
            np.concatenate([is_labelled[heavy], np.zeros(int(far.sum()), bool)]),
        )
        other = np.concatenate([other, beyond, blobs])
        f, resampled, x, p_net = _prepare(image, px, model)
        prob = _probabilities(model, x[None])[0]
        tol = 0.3 * nearest_neighbour_distance(pos[resolved])
        low_thr = LATTICE_RULE["lattice_threshold"] if lattice else None
        low = None
        if low_thr is not None and any(t > low_thr for t in thresholds):
            low = _detect(
                prob, resampled, image, f, model, px, low_thr, min_score=min(min_scores),
                p_net=p_net, min_cnr=0.0, border_tolerance_radii=0.0,
            )  # fmt: skip
        for t in thresholds:
            table = _detect(
                prob, resampled, image, f, model, px, t, min_score=min(min_scores), p_net=p_net,
                min_cnr=0.0,
            )  # fmt: skip
            table = table.assign(cnr=_column_cnr(image, table))
            second = low is not None and t > low_thr  # the second pass, as _detect runs it
            if second:  # its contrast over the first pass's radius
                radius = table["radius"].median() if len(table) else None
                low = low.assign(cnr=_column_cnr(image, low, radius))
            for m in min_scores:
                cut, only = table[table["score"] >= m], None
                if second:
                    cut, only = _with_lattice_candidates(cut, low[low["score"] >= m])
                found, cnr = cut[["row", "col"]].to_numpy(float), cut["cnr"].to_numpy()
                for c in min_cnrs:
                    pred = found[_keep(found, cnr, c, lattice, only)]
                    r = match_positions(pred, true, max_distance_px=tol, ignore=other)
                    n = counts[(t, m, c)].setdefault(band, [0, 0, 0])
                    n[0], n[1], n[2] = n[0] + r["tp"], n[1] + r["fp"], n[2] + r["fn"]
    by_dose = {k: _decade_f1(bands) for k, bands in counts.items()}
    f1 = {k: float(np.mean(list(v.values()))) if v else 0.0 for k, v in by_dose.items()}
    best = _pick(f1)
    return {
        "threshold": float(best[0]),
        "min_score": float(best[1]),
        "min_contrast_to_noise": float(best[2]),
        "val_f1": round(f1[best], 4),
        "val_f1_by_dose": {f"{10.0**b:g}": round(v, 4) for b, v in sorted(by_dose[best].items())},
        "val_images": len(indices),
        "val_min_snr": min_snr,
        "val_f1_grid": {f"{t:g}/{m:g}/{c:g}": round(v, 4) for (t, m, c), v in f1.items()},
    }
