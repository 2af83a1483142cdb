"""Segment atomic columns and locate them, in single images, stacks and volume slices.

Pipeline: validate → resample to the model's pixel size when the pixel size is known →
normalise → U-net probability map → circular Hough detection with sub-pixel refinement
(:mod:`atomseg.detect`) → positions mapped back to the pixels of the input image.

Resampling convention: with zoom factor ``f = pixel_size_angstrom / model_pixel_size``, the
centre of model pixel ``i`` sits at input coordinate ``(i + 0.5) / f - 0.5``, so positions map
back exactly. Positions are ``(row, col)`` in input pixels; ``row_angstrom``/``col_angstrom``
are added when the pixel size is known.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from atomseg.models.registry import PAD_PX

__all__ = ["segment", "locate", "locate_stack", "save_overlay", "detect_files"]

TABLE_COLUMNS = ["row", "col", "score", "radius", "intensity"]
_MIN_SIZE = 16


@functools.lru_cache(maxsize=4)
def _cached_model(name: str, device: str):
    from atomseg.models import load_model

    return load_model(name, device=device)


def _get_model(model, device="auto"):
    from atomseg.models import ColumnModel

    if isinstance(model, ColumnModel):
        return model
    return _cached_model(str(os.fspath(model)), device)


def _check_image(image, what="image") -> np.ndarray:
    try:
        arr = np.asarray(image)
    except Exception as exc:  # e.g. ragged lists
        raise ValueError(f"{what} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows, cols), got shape {arr.shape}")
    if min(arr.shape) < _MIN_SIZE:
        raise ValueError(f"{what} is too small: {arr.shape}; need at least {_MIN_SIZE}² pixels")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    if arr.max() == arr.min():
        raise ValueError(f"{what} is constant: there is nothing to segment")
    return arr


def _zoom_factor(pixel_size_angstrom, model) -> float:
    if pixel_size_angstrom is None or model.pixel_size_angstrom is None:
        return 1.0
    p = float(pixel_size_angstrom)
    if not np.isfinite(p) or p <= 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    return p / float(model.pixel_size_angstrom)


def _native(f: float) -> bool:
    """Whether zoom factor f leaves the image as it is (within 1e-3: not resampled)."""
    return abs(f - 1.0) < 1e-3


def _resampled_shape(shape, f: float) -> tuple[int, ...]:
    """The shape of an image of ``shape`` resampled by zoom factor f."""
    if _native(f):
        return tuple(shape)
    return tuple(max(_MIN_SIZE, int(round(s * f))) for s in shape)


def _resample_at(image: np.ndarray, f: float, rows, cols) -> np.ndarray:
    """Pixels ``rows`` x ``cols`` (integer indices) of the image resampled by zoom factor f.

    Only those pixels are computed; they equal the same pixels of :func:`_resample`'s result.
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    if _native(f):
        return image[np.ix_(rows, cols)]
    if f < 1:  # anti-alias before down-sampling
        image = ndimage.gaussian_filter(image, sigma=0.5 * (1 / f - 1))
    grid = np.meshgrid((rows + 0.5) / f - 0.5, (cols + 0.5) / f - 0.5, indexing="ij")
    return ndimage.map_coordinates(image, grid, order=1, mode="reflect").astype(np.float32)


def _resample(image: np.ndarray, f: float) -> np.ndarray:
    """Resample by zoom factor f with the pixel-centre convention of the module docstring."""
    if _native(f):
        return image
    h, w = _resampled_shape(image.shape, f)
    return _resample_at(image, f, np.arange(h), np.arange(w))


def _to_input_frame(rc: np.ndarray, f: float) -> np.ndarray:
    return (rc + 0.5) / f - 0.5


def _probabilities(model, images: np.ndarray) -> np.ndarray:
    """Run the network on normalised images (B, H, W), padded (the model's way) to a multiple."""
    m, pad = model.multiple, PAD_PX
    b, h, w = images.shape
    ph = (-(h + 2 * pad)) % m
    pw = (-(w + 2 * pad)) % m
    mode = model.config.get("padding", "reflect")  # as the model was trained
    x = np.pad(images, ((0, 0), (pad, pad + ph), (pad, pad + pw)), mode=mode)
    return model.predict(x)[:, pad : pad + h, pad : pad + w]


#: ``_prepare``'s default: search the scale of an uncalibrated image
_SEARCH = object()

#: said (once per call site) when an uncalibrated image is resampled by a searched pixel size
GUESSED_SCALE_WARNING = (
    "no pixel size given: the image is resampled by a pixel size searched for with the network "
    "around one guessed from its lattice (atomseg.infer.search_pixel_size), a scale for the "
    "network and not a calibration, so no Å are reported. Pass pixel_size_angstrom (atomseg "
    "detect --pixel-size) when it is known: faster, and never off."
)


def _warn_input(image, pixel_size_angstrom, p_net=None, stacklevel=3) -> None:
    """Warn when the image looks inverted (:func:`atomseg.infer.check_polarity`) or holds a
    burned-in scale bar (:func:`atomseg.infer.annotations.check_annotations`), when a given
    pixel size looks wrong (:func:`atomseg.infer.check_pixel_size`), or when none was given and
    the image was resampled by a searched one (``p_net``, from :func:`_prepare`, is then set:
    ``GUESSED_SCALE_WARNING``)."""
    from atomseg.infer.annotations import check_annotations
    from atomseg.infer.polarity import check_polarity
    from atomseg.infer.scale import check_pixel_size

    doubts = [check_polarity(image), check_annotations(image)]
    if pixel_size_angstrom is not None:
        doubts.append(check_pixel_size(image, pixel_size_angstrom))
    elif p_net is not None:
        doubts.append(GUESSED_SCALE_WARNING)
    for doubt in doubts:
        if doubt:
            warnings.warn(doubt, UserWarning, stacklevel=stacklevel)


def _searches(pixel_size_angstrom, guess_scale, model) -> bool:
    """Whether an image's scale is searched for: no pixel size given, ``guess_scale``, and a
    model that expects one."""
    return pixel_size_angstrom is None and guess_scale and model.pixel_size_angstrom is not None


def _prepare(image, pixel_size_angstrom, model, guess_scale=False, searched=_SEARCH):
    """Resample and normalise for the network: returns (f, resampled, x, p_net).

    ``p_net``: the pixel size (Å) of the resampled image when it is known (the model's, from
    the given pixel size or, with ``guess_scale``, the one searched for by
    :func:`atomseg.infer.scale.search_pixel_size`, or ``searched`` when that was done already),
    else None.
    """
    from atomseg.models import normalise_image

    p = pixel_size_angstrom
    if _searches(p, guess_scale, model):
        if searched is _SEARCH:
            from atomseg.infer.scale import search_pixel_size

            searched = search_pixel_size(image, model=model)
        p = searched
    f = _zoom_factor(p, model)
    p_net = None if p is None or model.pixel_size_angstrom is None else model.pixel_size_angstrom
    resampled = _resample(image, f)
    norm = model.config.get("normalisation", {})
    x = normalise_image(resampled, low=norm.get("low", 1.0), high=norm.get("high", 99.0))
    return f, resampled, x, p_net


def segment(
    image: np.ndarray,
    *,
    pixel_size_angstrom: float | None = None,
    model: Any = "default",
    device: str = "auto",
    guess_scale: bool = True,
) -> np.ndarray:
    """Return the column probability map of an image (same shape as the image).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        ADF/HAADF-STEM image, any real dtype (columns bright).
    pixel_size_angstrom : float, optional
        Pixel size; when given, the image is resampled to the model's pixel size for the
        network and the map is resampled back.
    model : str, path or ColumnModel
        ``"default"``, a shipped name, a model folder, or a loaded model.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    guess_scale : bool
        As for :func:`locate`.

    Returns
    -------
    ndarray, shape (H, W), float32 in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.models import ColumnModel
    >>> from atomseg.models.unet import UNet
    >>> tiny = ColumnModel(UNet(4, 3), {"pixel_size_angstrom": 0.15})
    >>> image = np.random.default_rng(0).random((64, 48))
    >>> segment(image, model=tiny).shape
    (64, 48)
    """
    image = _check_image(image)
    model = _get_model(model, device)
    f, _, x, p_net = _prepare(image, pixel_size_angstrom, model, guess_scale)
    _warn_input(image, pixel_size_angstrom, p_net)
    prob = _probabilities(model, x[None])[0]
    if _native(f):
        return prob
    rows = (np.arange(image.shape[0]) + 0.5) * f - 0.5
    cols = (np.arange(image.shape[1]) + 0.5) * f - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(prob, grid, order=1, mode="nearest").astype(np.float32)


#: default minimum distance between two columns, in label radii (0.8 Å at the model's 0.4 Å):
#: closer pairs are not resolved by any probe the library models (the labels never hold them),
#: so two detections that close are one column seen twice (irregular blobs in real images)
_MIN_SEPARATION_RADII = 2.0


def _column_cnr(image, table, radius=None) -> np.ndarray:
    """Contrast-to-noise ratio of the input image at each column of a table (input frame),
    measured over ``radius`` (default: the table's median column radius)."""
    from atomseg.detect.contrast import contrast_to_noise

    if len(table) == 0:
        return np.zeros(0)
    radius = float(table["radius"].median()) if radius is None else float(radius)
    return contrast_to_noise(image, table["row"], table["col"], radius)


def _gate(positions, cnr, min_cnr, det, lattice_only=None) -> np.ndarray:
    """Which columns the image shows: contrast-to-noise >= ``min_cnr``, or (model card's
    ``lattice_min_contrast_to_noise``) a fainter one where the lattice of the clear ones puts
    a column (:func:`atomseg.detect.lattice.gate_columns`, ``lattice_rounds`` rounds, null:
    until none is added), fainter ones still (``lattice_faint_min_contrast_to_noise``) where
    ``lattice_faint_min_votes`` translations land on them, and (``lattice_mutual_min_votes``)
    those from the floor up on which that many translations of others from the floor up land
    (a grain seen only faintly), with the lattice vectors of up to ``lattice_grains`` more
    grains that the others leave unexplained; the ``lattice_only`` ones
    (second-pass candidates) enter on the lattice only. The tuner applies the same."""
    from atomseg.detect.lattice import gate_columns

    floor = det.get("lattice_min_contrast_to_noise")
    faint = det.get("lattice_faint_min_contrast_to_noise")
    rounds = det.get("lattice_rounds", 1)
    mutual = det.get("lattice_mutual_min_votes")
    return gate_columns(
        positions,
        cnr,
        min_cnr,
        floor=None if floor is None else float(floor),
        tolerance=float(det.get("lattice_tolerance", 0.15)),
        min_votes=int(det.get("lattice_min_votes", 2)),
        rounds=None if rounds is None else int(rounds),
        lattice_only=lattice_only,
        faint_floor=None if faint is None else float(faint),
        faint_votes=int(det.get("lattice_faint_min_votes", 4)),
        mutual_votes=None if mutual is None else int(mutual),
        grains=int(det.get("lattice_grains", 0)),
    )


def _lattice_gate(image, table, min_cnr, det, lattice_only=None) -> np.ndarray:
    """:func:`_gate` for a detection table of ``image`` (contrast measured over the median
    radius of the first-pass columns, the second pass's too)."""
    first = table if lattice_only is None else table[~np.asarray(lattice_only, bool)]
    radius = float(first["radius"].median()) if len(first) else None
    cnr = _column_cnr(image, table, radius)
    return _gate(table[["row", "col"]].to_numpy(float), cnr, min_cnr, det, lattice_only)


def _new_sites(table, low) -> pd.DataFrame:
    """The rows of ``low`` (a second, lower-threshold pass) at sites ``table`` has no column:
    farther than half the median nearest-neighbour distance of ``table`` from all of its."""
    if len(table) < 2 or len(low) == 0:
        return low.iloc[:0]
    from scipy.spatial import cKDTree

    kept = table[["row", "col"]].to_numpy(float)
    tree = cKDTree(kept)
    spacing = float(np.median(tree.query(kept, k=2)[0][:, 1]))
    d = tree.query(low[["row", "col"]].to_numpy(float))[0]
    return low[d > 0.5 * spacing]


def _with_lattice_candidates(table, low):
    """``table`` with ``low``'s new sites appended, and which rows are those (lattice only)."""
    extra = _new_sites(table, low)
    both = pd.concat([table, extra], ignore_index=True)
    return both, np.r_[np.zeros(len(table), bool), np.ones(len(extra), bool)]


def _border_sites(table, low, prob, resampled, f, shape) -> pd.DataFrame:
    """Lattice sites centred within a column radius of the image border where neither Hough
    pass found a candidate (input frame, rows as ``table``'s; lattice only).

    The network is least sure of a column cut by the border, most of all of a quarter column in
    a corner (edge padding makes it a bright quadrant). Each translation of the first pass's
    lattice (:func:`atomseg.detect.lattice.lattice_vectors`) applied to each of its columns
    proposes a site; those inside the image, within a radius of its border and farther than
    half a spacing from every candidate are kept once each (``score``: the probability there).
    The lattice gate decides on them as on every lattice-only candidate: its translations of
    the clear columns must land there and the image must show a column there.
    """
    from scipy.spatial import cKDTree

    from atomseg.detect.lattice import _MIN_STRONG, lattice_vectors
    from atomseg.detect.metrics import nearest_neighbour_distance

    pos = table[["row", "col"]].to_numpy(float)
    if len(pos) < _MIN_STRONG:
        return table.iloc[:0]
    vectors = lattice_vectors(pos)
    if len(vectors) == 0:
        return table.iloc[:0]
    radius = float(table["radius"].median())
    h, w = shape
    sites = (pos[:, None, :] + vectors[None, :, :]).reshape(-1, 2)
    depth = np.minimum.reduce(
        [sites[:, 0] + 0.5, sites[:, 1] + 0.5, h - 0.5 - sites[:, 0], w - 0.5 - sites[:, 1]]
    )
    sites = sites[(depth >= 0) & (depth < radius)]
    spacing = nearest_neighbour_distance(pos)
    known = np.concatenate([pos, low[["row", "col"]].to_numpy(float)])
    sites = sites[cKDTree(known).query(sites)[0] > 0.5 * spacing] if len(sites) else sites
    merged: list[np.ndarray] = []  # the proposals of one site, averaged
    while len(sites):
        near = np.hypot(*(sites - sites[0]).T) < 0.5 * spacing
        merged.append(sites[near].mean(axis=0))
        sites = sites[~near]
    if not merged:
        return table.iloc[:0]
    rc = np.array(merged)
    at = ((rc + 0.5) * f - 0.5).T  # in the segmented (resampled) frame
    size = max(1, int(round(radius * f)))
    return pd.DataFrame(
        {
            "row": rc[:, 0],
            "col": rc[:, 1],
            "score": ndimage.map_coordinates(prob, at, order=1, mode="nearest"),
            "radius": radius,
            "intensity": ndimage.map_coordinates(
                ndimage.uniform_filter(resampled, size=size), at, order=1, mode="nearest"
            ),
        }
    )


def _hough(prob, resampled, image, f, thr, radius, sep, tol, min_score) -> pd.DataFrame:
    """Hough detection on the probability map, in the input image's pixels."""
    from atomseg.detect import detect_columns
    from atomseg.detect.hough import _is_inside

    table = detect_columns(
        prob,
        radius_px=radius,
        threshold=thr,
        image=resampled,
        min_score=min(0.3, min_score),
        min_distance_px=sep * radius,
        border_tolerance_px=tol,
    )
    table = table[table["score"] >= min_score].reset_index(drop=True)
    rc = _to_input_frame(table[["row", "col"]].to_numpy(float), f)
    # centres within the tolerance outside the input are moved onto its edge, others dropped
    on = _is_inside(rc, image.shape, tol / f)
    rc = np.clip(rc[on], -0.5, np.array(image.shape, float) - 0.5)
    table = table[on].reset_index(drop=True)
    return table.assign(row=rc[:, 0], col=rc[:, 1], radius=table["radius"] / f)


def _detect(
    prob,
    resampled,
    image,
    f,
    model,
    pixel_size_angstrom,
    threshold,
    min_score=None,
    p_net=None,
    min_cnr=None,
    lattice_threshold=None,
    border_tolerance_radii=None,
):
    det = model.config.get("detection", {})
    thr = float(det.get("threshold", 0.5)) if threshold is None else float(threshold)
    if min_score is None:
        min_score = float(det.get("min_score", 0.3))
    if min_cnr is None:  # the image must show the column: contrast-to-noise ratio (tuned)
        min_cnr = float(det.get("min_contrast_to_noise", 0.0))
    if lattice_threshold is None:  # a second pass whose candidates enter on the lattice only
        lattice_threshold = det.get("lattice_threshold")
    if p_net is not None:  # the label discs' radius, as the library draws them (>= 1.5 px)
        radius = max(float(model.config.get("label_radius_angstrom", 0.4)) / p_net, 1.5)
    else:  # from the segmentation; at least 1 px (coarse uncalibrated image), 1 if empty
        from atomseg.detect.hough import _estimate_radius

        radius = max(_estimate_radius(prob, thr) or 1.0, 1.0)
    # two columns closer than this many radii are one (the model card may set it)
    sep = float(det.get("min_separation_radii", _MIN_SEPARATION_RADII))
    # candidates down to the detector's own floor; the model's min_score is applied to the final
    # scores, exactly as it was tuned (atomseg.train.tune)
    # a column centred on the border may be placed up to this far outside (model card)
    if border_tolerance_radii is None:
        border_tolerance_radii = det.get("border_tolerance_radii", 0.0)
    tol = float(border_tolerance_radii) * radius
    table = _hough(prob, resampled, image, f, thr, radius, sep, tol, min_score)
    if min_cnr > 0:
        only = None
        lattice = det.get("lattice_min_contrast_to_noise") is not None
        if lattice and lattice_threshold is not None and float(lattice_threshold) < thr:
            # centred inside the input only: the lattice would place a cut column that the
            # first pass left out on the border, however far outside its centre lies
            low = _hough(prob, resampled, image, f, float(lattice_threshold), radius, sep, 0.0,
                         min_score)  # fmt: skip
            border_cnr = det.get("lattice_border_min_contrast_to_noise")
            if border_cnr is not None:  # lattice sites on the border that the image shows
                edge = _border_sites(table, low, prob, resampled, f, image.shape)
                if len(edge):
                    from atomseg.detect.contrast import border_contrast_to_noise

                    both = pd.concat([table, low, edge], ignore_index=True)
                    cnr = border_contrast_to_noise(
                        image,
                        both["row"],
                        both["col"],
                        float(table["radius"].median()),
                        np.arange(len(both) - len(edge), len(both)),
                    )
                    low = pd.concat([low, edge[cnr >= float(border_cnr)]], ignore_index=True)
            table, only = _with_lattice_candidates(table, low)
        table = table[_lattice_gate(image, table, min_cnr, det, only)].reset_index(drop=True)
    table = _off_annotations(image, table)
    if f != 1.0:  # intensity from the input image itself, in its own units
        r = np.clip(np.round(table["row"].to_numpy()).astype(int), 0, image.shape[0] - 1)
        c = np.clip(np.round(table["col"].to_numpy()).astype(int), 0, image.shape[1] - 1)
        smooth = ndimage.uniform_filter(
            image, size=max(1, int(round(table["radius"].median()))) if len(table) else 1
        )
        table["intensity"] = smooth[r, c]
    table = table[TABLE_COLUMNS].astype(float)
    if pixel_size_angstrom is not None:
        table["row_angstrom"] = table["row"] * float(pixel_size_angstrom)
        table["col_angstrom"] = table["col"] * float(pixel_size_angstrom)
    return table


def _off_annotations(image, table) -> pd.DataFrame:
    """The table without the columns on a burned-in scale bar or label box
    (:mod:`atomseg.infer.annotations`), within a column radius of it."""
    from atomseg.infer.annotations import burned_in_boxes, on_boxes

    boxes = burned_in_boxes(image) if len(table) else []
    if not boxes:
        return table
    margin = float(table["radius"].median())
    on = on_boxes(boxes, table["row"], table["col"], margin)
    return table[~on].reset_index(drop=True)


def locate(
    image: np.ndarray,
    *,
    pixel_size_angstrom: float | None = None,
    model: Any = "default",
    threshold: float | None = None,
    device: str = "auto",
    guess_scale: bool = True,
) -> pd.DataFrame:
    """Find every atomic column in an image.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        ADF/HAADF-STEM image (columns bright).
    pixel_size_angstrom : float, optional
        Pixel size in Å. When given, the image is resampled to the model's pixel size and the
        table gets ``row_angstrom``/``col_angstrom``.
    model : str, path or ColumnModel
        ``"default"``, a shipped name, a model folder, or a loaded model.
    threshold : float, optional
        Probability threshold of the detection (default: the model's tuned value). The model
        card's other tuned cuts apply as well: a minimum score and, for ``columns-v3`` on, a
        minimum contrast-to-noise ratio of the image at the column
        (:func:`atomseg.detect.contrast_to_noise`), so that noise is not read as a lattice;
        for ``columns-v4`` on, a fainter column is kept where the lattice of the clear ones puts
        one (:func:`atomseg.detect.lattice.gate_columns`), also one found only by a second
        Hough pass at a lower probability (card ``lattice_threshold``), and a column centred on
        the image border that the network places just outside is moved onto the edge. From
        ``columns-v5``'s 0.8.0 card on, lattice sites within a column radius of the border
        where neither pass has a candidate (half and quarter columns, which the network marks
        least surely) are candidates too, kept when the image shows them as clearly as the
        gate asks (card ``lattice_border_min_contrast_to_noise``) and the lattice votes.
    guess_scale : bool
        Without ``pixel_size_angstrom``: search for the pixel size to resample the image by
        (:func:`atomseg.infer.scale.search_pixel_size`: the network run at seven pixel sizes
        around the lattice's guess on a crop, about 0.5-1.5 s) and resample to the model's
        pixel size with it, as for a calibrated image. Positions stay in the input's pixels and
        no Å are reported. A searched scale is warned about (``UserWarning``,
        ``GUESSED_SCALE_WARNING``). ``False``: run the image as it is.

    Returns
    -------
    pandas.DataFrame
        One row per column: ``row``, ``col`` (sub-pixel, input pixels), ``score`` (0–1),
        ``radius`` (px), ``intensity`` (mean image value at the column), plus
        ``row_angstrom``, ``col_angstrom`` when the pixel size is known.

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.models import ColumnModel
    >>> from atomseg.models.unet import UNet
    >>> tiny = ColumnModel(UNet(4, 3), {"pixel_size_angstrom": 0.15})
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> list(locate(image, model=tiny).columns)
    ['row', 'col', 'score', 'radius', 'intensity']
    """
    image = _check_image(image)
    model = _get_model(model, device)
    table, p_net = _locate(image, pixel_size_angstrom, model, threshold, guess_scale)
    _warn_input(image, pixel_size_angstrom, p_net)
    return table


def _locate(image, pixel_size_angstrom, model, threshold, guess_scale=True):
    """:func:`locate` on a checked image and a loaded model, without the input's warnings:
    returns (table, p_net)."""
    f, resampled, x, p_net = _prepare(image, pixel_size_angstrom, model, guess_scale)
    prob = _probabilities(model, x[None])[0]
    table = _detect(prob, resampled, image, f, model, pixel_size_angstrom, threshold, p_net=p_net)
    return table, p_net


def _is_blank(frame: np.ndarray) -> bool:
    """A finite, constant 2-D frame of numbers: a slice of empty space."""
    arr = np.asarray(frame)
    if arr.ndim != 2 or arr.size == 0 or arr.dtype.kind not in "biuf":
        return False
    first = arr.flat[0]
    return bool(np.isfinite(first) and np.all(arr == first))


def _check_frame(frame: np.ndarray, i: int) -> np.ndarray:
    """:func:`_check_image` for frame ``i`` of a stack, the error naming the frame."""
    try:
        return _check_image(frame, what=f"frame {i}")
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"stack {exc}") from None


def _frames(stack, axis: int, start: int = 0):
    ndim = len(stack.shape)
    if ndim != 3:
        raise ValueError(f"stack must be 3-D (frames and two image axes), got shape {stack.shape}")
    axis = axis % 3
    for i in range(start, stack.shape[axis]):
        index = [slice(None)] * 3
        index[axis] = i
        yield i, np.asarray(stack[tuple(index)])


def locate_stack(
    stack,
    *,
    axis: int = 0,
    pixel_size_angstrom: float | None = None,
    model: Any = "default",
    threshold: float | None = None,
    batch_size: int = 4,
    device: str = "auto",
    guess_scale: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Find the columns in every frame of a stack: a tilt series or the slices of a volume.

    Parameters
    ----------
    stack : array-like, shape (n, H, W) (frames along ``axis``)
        ndarray, h5py dataset or memory map; frames are read one batch at a time.
    axis : int
        The frame axis (0, 1 or 2; e.g. 1 for the (N, N)-orthogonal slices of a volume).
    batch_size : int
        Frames per network call (use more on a GPU).

    The other parameters are those of :func:`locate`. Without ``pixel_size_angstrom`` (and with
    ``guess_scale``) one scale is searched for, on the middle frame (or, when that one is
    blank, the first frame that is not), and used for every frame: a tilt series or a volume
    has one pixel size. The input's warnings (:func:`locate`) are said once, from that frame.

    Returns
    -------
    pandas.DataFrame
        The :func:`locate` columns plus ``frame``.

    A constant frame (a slice of empty space, such as those outside a reconstruction's circle,
    which ``tomopy.circ_mask`` sets to zero) has no columns and adds no rows; a single constant
    image given to :func:`locate` is an error.

    Raises
    ------
    ValueError
        Naming the frame, when one frame is bad (NaN, infinite, too small...).

    Examples
    --------
    >>> import numpy as np
    >>> from atomseg.models import ColumnModel
    >>> from atomseg.models.unet import UNet
    >>> tiny = ColumnModel(UNet(4, 3), {"pixel_size_angstrom": 0.15})
    >>> stack = np.random.default_rng(0).random((3, 32, 32))
    >>> table = locate_stack(stack, model=tiny)
    >>> "frame" in table.columns
    True
    """
    from tqdm.auto import tqdm

    model = _get_model(model, device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tables = []
    pending: list[tuple[int, np.ndarray, np.ndarray, float, float | None, np.ndarray]] = []

    def flush():
        if not pending:
            return
        probs = _probabilities(model, np.stack([p[5] for p in pending]))
        for (i, image, resampled, f, p_net, _), prob in zip(pending, probs):
            t = _detect(
                prob, resampled, image, f, model, pixel_size_angstrom, threshold, p_net=p_net
            )
            t.insert(0, "frame", i)
            tables.append(t)
        pending.clear()

    frames = _frames(stack, axis)
    n = stack.shape[axis % 3] if len(stack.shape) == 3 else 0
    from atomseg.infer.scale import search_pixel_size

    # the middle frame stands for the stack: its scale is searched and its input checked there
    # (the first frames of a volume are its edge, where a reconstruction shows artefacts only)
    middle = next(_frames(stack, axis, start=n // 2), (None, None))[1]
    middle = None if middle is None or _is_blank(middle) else _check_frame(middle, n // 2)
    searched = _SEARCH
    search = _searches(pixel_size_angstrom, guess_scale, model)
    if search and middle is not None:
        searched = search_pixel_size(middle, model=model)
    for i, frame in tqdm(frames, total=n, desc="frames", disable=not progress):
        if _is_blank(frame):  # empty space (outside a reconstruction's circle): no columns
            continue
        image = _check_frame(frame, i)
        if searched is _SEARCH and search:  # the middle frame was blank
            searched = search_pixel_size(image, model=model)
        f, resampled, x, p_net = _prepare(
            image, pixel_size_angstrom, model, guess_scale, searched=searched
        )
        if not tables and not pending:  # once per stack
            _warn_input(image if middle is None else middle, pixel_size_angstrom, p_net)
        if pending and x.shape != pending[0][5].shape:
            flush()
        pending.append((i, image, resampled, f, p_net, x))
        if len(pending) >= batch_size:
            flush()
    flush()
    if not tables:
        return pd.DataFrame(columns=["frame", *TABLE_COLUMNS])
    return pd.concat(tables, ignore_index=True)


#: pixel noise (:func:`atomseg.detect.noise_sigma`) over the shown range of grey (the 0.5-99.5 %
#: percentiles) above which ``save_overlay`` shows the image smoothed: pure noise reads 0.19,
#: the real images 0.02 and 0.04, simulated images at 1e3 / 1e4 / 1e5 e/Å² 0.17 / 0.15 / 0.09
#: (medians of dev D)
OVERLAY_NOISY = 0.1


def _shown(image: np.ndarray, table: pd.DataFrame, smooth) -> tuple[np.ndarray, float]:
    """The image an overlay shows and the Gaussian sigma (px) it was smoothed by (0: none)."""
    if smooth == "auto":
        from atomseg.detect.contrast import noise_sigma

        lo, hi = np.percentile(image, [0.5, 99.5])
        noisy = hi > lo and noise_sigma(image) > OVERLAY_NOISY * (hi - lo)
        radius = float(table["radius"].median()) if "radius" in table.columns else np.nan
        smooth = (max(radius / 2, 0.5) if np.isfinite(radius) else 1.0) if noisy else 0.0
    sigma = float(smooth or 0.0)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"smooth must be 'auto' or a sigma >= 0 in pixels, got {smooth!r}")
    return (ndimage.gaussian_filter(image, sigma) if sigma > 0 else image), sigma


def save_overlay(
    image: np.ndarray,
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    smooth: float | str | None = "auto",
) -> None:
    """Save a PNG of the image with the detected columns drawn on it.

    ``smooth``: the Gaussian sigma (px) the image is shown smoothed by, for display only
    (0 or None: its raw pixels); ``"auto"`` smooths a noisy image (pixel noise above
    ``OVERLAY_NOISY`` of its grey range: low-dose images, whose columns are hard to see in the
    raw pixels) by half the columns' median radius, and leaves a clean one as it is. The title
    says when the image was smoothed.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> t = pd.DataFrame({"row": [10.2], "col": [20.7], "score": [0.9], "radius": [3.0]})
    >>> save_overlay(np.zeros((32, 32)), t, tempfile.mkdtemp() + "/o.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, sigma = _shown(np.asarray(image, dtype=np.float32), table, smooth)
    h, w = image.shape
    scale = max(4.0, min(12.0, max(h, w) / 80))
    fig, ax = plt.subplots(figsize=(scale * w / max(h, w), scale * h / max(h, w)), dpi=100)
    lo, hi = np.percentile(image, [0.5, 99.5])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    if len(table):
        size = float(np.clip(table["radius"].median() * 2, 4, 60)) ** 2 / 4
        ax.scatter(
            table["col"],
            table["row"],
            s=size,
            facecolors="none",
            edgecolors=plt.cm.autumn(np.clip(table["score"].to_numpy(), 0, 1)),
            linewidths=0.8,
        )
    title = title or f"{len(table)} columns"
    if sigma > 0:
        title += f" (image smoothed, σ {sigma:.1f} px)"
    ax.set_title(title)
    ax.set_axis_off()
    fig.tight_layout()
    path = os.fspath(path)
    tmp = f"{path}.tmp.png"
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def _negative(image) -> np.ndarray:
    """An image or stack with its contrast inverted (its maximum minus it), as float32; the
    checks of ``locate`` still see NaN or infinite values (the maximum ignores them)."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        return arr
    arr = arr.astype(np.float32)
    finite = arr[np.isfinite(arr)]
    return (finite.max() if finite.size else 0.0) - arr


def detect_files(
    inputs: Sequence[str],
    *,
    output: str | None = None,
    pixel_size_angstrom: float | None = None,
    model: Any = "default",
    overlay: str | None = None,
    axis: int = 0,
    guess_scale: bool = True,
    atoms: bool = False,
    invert: bool = False,
    overlay_smooth: float | str | None = "auto",
    resume: bool = False,
) -> list[pd.DataFrame]:
    """Run :func:`locate` / :func:`locate_stack` on files and write CSV tables (``atomseg detect``).

    With one input, ``output`` is a ``.csv`` path or a folder (any other name is made a folder);
    with several it is a folder, which gets ``<input stem>.csv`` each. Without ``output`` the
    table is printed as CSV (several inputs: one table, its first column ``file``).
    ``overlay`` is a PNG path for one single image, otherwise a folder. ``guess_scale`` is
    passed to :func:`locate` / :func:`locate_stack`. With ``atoms``, a 3-D input is a
    tomogram: :func:`atomseg.infer.locate_atoms` gives one row per atom, and its overlay is the
    maximum projection along ``axis`` with the atoms on it. With ``invert`` (columns dark: a
    BF/ABF image) each input is run as its negative (its maximum minus it; the tables'
    ``intensity`` is of that negative) and the overlays show the input as it is.
    ``overlay_smooth`` is :func:`save_overlay`'s ``smooth``.

    Several inputs: each one's warnings name it (a searched scale is said once), an input that
    fails (unreadable, NaN...) is reported and the others are still run, and a ValueError at
    the end lists the failures. Two inputs that would write the same output name (``x.npy`` in
    two folders) are refused before any work; an input addressed inside its file names its
    outputs after both (``f.h5:/exchange/data`` → ``f_exchange_data.csv``).

    With ``resume`` (``atomseg detect --resume``: an interrupted batch), an input whose CSV is
    there already is not run again; its table is read back. A CSV appears only complete and
    after the input's overlays, so one that is there is done (with the options of its run).

    Examples
    --------
    >>> detect_files(["missing.npy"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    import sys
    from pathlib import Path

    from atomseg.io._files import split_spec

    for spec in inputs:  # fail on a mistyped name before loading anything
        if not split_spec(spec)[0].exists():
            raise FileNotFoundError(f"input not found: {spec}")
    model = _get_model(model)
    many = len(inputs) > 1
    as_dir = output and (many or Path(output).is_dir() or Path(output).suffix.lower() != ".csv")
    out_dir = Path(output) if as_dir else None
    stems = [_output_stem(spec) for spec in inputs]
    if out_dir is not None or (overlay and many):  # one output name per input
        first: dict[str, str] = {}
        for spec, stem in zip(inputs, stems):
            if stem in first:
                raise ValueError(
                    f"inputs {first[stem]} and {spec} would both be written as {stem!r}: "
                    "rename one or run them separately"
                )
            first[stem] = spec
    if resume and not output:
        raise ValueError("resume needs an output (-o): it skips the inputs whose CSV is there")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    options = dict(pixel_size_angstrom=pixel_size_angstrom, model=model, overlay=overlay,
                   axis=axis, guess_scale=guess_scale, atoms=atoms, invert=invert,
                   overlay_smooth=overlay_smooth, many=many)  # fmt: skip
    results, done, failed = [], [], []
    for spec, stem in zip(inputs, stems):
        csv = out_dir / f"{stem}.csv" if out_dir is not None else Path(output) if output else None
        if resume and csv.is_file():
            results.append(pd.read_csv(csv))
            done.append(spec)
            print(f"{spec}: done before ({csv}), skipped", file=sys.stderr)
            continue
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results.append(_detect_file(spec, stem, csv, **options))
                done.append(spec)
        except (ValueError, KeyError, OSError, TypeError) as exc:
            if not many:
                raise
            reason = _unnamed(spec, exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            failed.append(f"{spec}: {reason}")
            print(f"{spec}: failed: {reason}", file=sys.stderr)
        finally:  # said again, naming the input (a searched scale: once, as before)
            for w in caught:
                said = str(w.message)
                said = said if said == GUESSED_SCALE_WARNING else f"{spec}: {_unnamed(spec, said)}"
                warnings.warn(said, w.category, stacklevel=2)
    if many and not output and results:
        named = [t.assign(file=str(spec)) for spec, t in zip(done, results)]
        both = pd.concat(named, ignore_index=True)
        if "frame" in both:  # blank for the single images among stacks, not 0.0
            both["frame"] = both["frame"].astype("Int64")
        both[["file", *both.columns.drop("file")]].to_csv(sys.stdout, index=False)
    if failed:
        raise ValueError(
            f"{len(failed)} of {len(inputs)} inputs failed (the others were written): "
            + "; ".join(failed)
        )
    return results


def _unnamed(spec, text) -> str:
    """An error or warning about input ``spec`` without the file name that a reader's message
    leads with, so that it is named once when said with the input."""
    from atomseg.io._files import split_spec

    text, path = str(text), str(split_spec(spec)[0])
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


def _output_stem(spec) -> str:
    """The name an input's CSV and overlay get: the file's stem, plus the name of what it
    addresses inside the file (``f.h5:/exchange/data`` → ``f_exchange_data``, ``x.emd:/HAADF``
    → ``x_HAADF``)."""
    from atomseg.io._files import split_spec

    path, name = split_spec(spec)
    name = (name or "").strip("/").replace("/", "_")
    return f"{path.stem}_{name}" if name else path.stem


def _detect_file(spec, stem, csv, *, pixel_size_angstrom, model, overlay, axis, guess_scale,
                 atoms, invert, overlay_smooth, many) -> pd.DataFrame:  # fmt: skip
    """One input of :func:`detect_files`: read, detect, write its overlay and then its table
    to ``csv`` (None: printed, for a single input)."""
    import sys
    from pathlib import Path

    from atomseg.io import read_image, write_table_csv

    image, px = read_image(spec)
    if pixel_size_angstrom is not None:
        px = pixel_size_angstrom
    shown_image = image
    if invert:
        image = _negative(image)
    if image.ndim == 2:
        table = locate(image, pixel_size_angstrom=px, model=model, guess_scale=guess_scale)
    elif atoms:
        from atomseg.infer.atoms import locate_atoms

        table = locate_atoms(image, voxel_size_angstrom=px, axis=axis, model=model, progress=True)
    else:
        table = locate_stack(image, axis=axis, pixel_size_angstrom=px, model=model,
                             progress=True, guess_scale=guess_scale)  # fmt: skip
    if overlay and atoms and image.ndim == 3:
        ov = Path(overlay)
        if many or ov.is_dir():
            ov.mkdir(parents=True, exist_ok=True)
            ov = ov / f"{stem}.png"
        plane = ["plane", "row", "col"]
        rc = [plane[a] for a in range(3) if a != axis % 3]
        shown = pd.DataFrame(
            {"row": table[rc[0]], "col": table[rc[1]], "score": table["score"], "radius": 3.0}
        )
        projection = np.max(shown_image, axis=axis)
        save_overlay(projection, shown, ov, title=f"{stem}: {len(table)} atoms",
                     smooth=overlay_smooth)  # fmt: skip
    elif overlay:
        ov = Path(overlay)
        if image.ndim == 2 and not many and not ov.is_dir():
            save_overlay(shown_image, table, ov, title=f"{stem}: {len(table)} columns",
                         smooth=overlay_smooth)  # fmt: skip
        else:
            ov.mkdir(parents=True, exist_ok=True)
            frames = [(None, shown_image)] if image.ndim == 2 else list(_frames(shown_image, axis))
            for i, frame in frames:
                sub = table if i is None else table[table["frame"] == i]
                name = stem if i is None else f"{stem}_{i:04d}"
                save_overlay(frame, sub, ov / f"{name}.png", title=f"{name}: {len(sub)}",
                             smooth=overlay_smooth)  # fmt: skip
    # the CSV last: once it is there, the input is done (detect_files' resume)
    if csv:
        write_table_csv(table, csv)
    elif not many:  # several inputs: one table at the end, with a ``file`` column
        table.to_csv(sys.stdout, index=False)
    what = "atoms" if atoms and image.ndim == 3 else "columns"
    print(f"{spec}: {len(table)} {what}", file=sys.stderr)
    return table
