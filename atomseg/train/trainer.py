"""Training the column-segmentation U-net on a simulated library (resumable).

The library is an HDF5 file written by :func:`atomseg.sim.write_library`. Images are
normalised exactly as at inference (:func:`atomseg.models.normalise_image`), random patches
are cut, flipped and rotated, and the U-net learns the disc masks with binary cross-entropy
plus soft Dice; pixels the mask marks "don't care" (2: columns too weak to detect at the
image's dose, see :func:`atomseg.sim.simulate_image`) count in neither. A checkpoint
(network, optimiser, schedule, step, random state) is written every ``checkpoint_every``
steps, so an interrupted run resumes where it stopped. A share of the patches reaches across
the image border, padded as inference pads whole images (``border_fraction``, ``padding``), so
that columns cut by a real image border are placed where they are. At the end the detection
thresholds are tuned on held-out library images for the columns an image shows reliably
(Rose's criterion, SNR >= ``DETECTABLE_SNR``, whatever cut the labels used) and the model
folder (``model.json`` + ``weights.pt``) is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from atomseg.models.registry import PAD_PX, PADDINGS

__all__ = ["train", "load_training_set"]

#: the pixel size shipped models expect, Å/px; calibrated images are resampled to it.
NOMINAL_PIXEL_SIZE_ANGSTROM = 0.15


def load_training_set(
    library: str | os.PathLike, *, max_images: int | None = None, resample: bool = False
) -> dict[str, np.ndarray]:
    """Read a library into memory: normalised images, disc masks and pixel sizes.

    Parameters
    ----------
    library : path
        HDF5 library written by ``atomseg simulate``.
    max_images : int, optional
        Read only the first images.
    resample : bool
        Also read what patches resampled to the model's pixel size need (see ``train``): the
        images as they are (``raw``), each image's normalisation as inference computes it on
        the resampled image (``levels``), its label disc radius and its labelled columns.

    Returns
    -------
    dict
        ``images`` (n, H, W) float32 normalised, ``masks`` (n, H, W) uint8,
        ``pixel_size_angstrom`` (n,), ``attrs`` (library attributes); with ``resample``
        also ``raw``, ``levels`` (n, 2), ``disc_px`` (n,) and ``columns`` (a list of (k, 3)
        arrays: row, col, label 1 or 2).

    Examples
    --------
    >>> load_training_set("missing.h5")
    Traceback (most recent call last):
    ...
    FileNotFoundError: library not found: missing.h5
    """
    from atomseg.models import normalise_image

    if not Path(library).is_file():
        raise FileNotFoundError(f"library not found: {library}")
    with h5py.File(library, "r") as f:
        for key in ("images", "masks", "pixel_size_angstrom"):
            if key not in f:
                raise KeyError(f"{library} is not an atomseg library: no /{key} dataset")
        n = int(f.attrs.get("n_done", f["images"].shape[0]))
        if max_images is not None:
            n = min(n, int(max_images))
        if n < 2:
            raise ValueError(f"{library} holds {n} finished images; need at least 2")
        images = np.empty((n, *f["images"].shape[1:]), np.float32)
        raw = np.empty_like(images) if resample else None
        for i in range(n):
            image = f["images"][i]
            images[i] = normalise_image(image)
            if resample:
                raw[i] = image
        masks = f["masks"][:n].astype(np.uint8)
        pixel = f["pixel_size_angstrom"][:n].astype(np.float32)
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
        data = {
            "images": images,
            "masks": masks,
            "pixel_size_angstrom": pixel,
            "attrs": attrs,
            "path": str(library),
        }
        if resample:
            data.update(_resampling_data(f, raw, pixel))
    return data


def _resampling_data(f, raw, pixel) -> dict:
    """Normalisation levels, disc radii and labelled columns of ``raw`` (``resample`` mode)."""
    from atomseg.infer.columns import _resample
    from atomseg.models.registry import _normalisation_levels

    for key in ("columns", "column_offsets", "params"):
        if key not in f:
            raise KeyError(f"{f.filename} has no /{key} dataset: it cannot be resampled")
    cfg = json.loads(f.attrs.get("config", "{}"))
    min_snr = float(cfg.get("label_min_snr", 0.0))
    # the library's disc radius (Å, at least some pixels) at the model's pixel size
    disc_cap = max(
        float(cfg.get("label_disc_radius_angstrom", 0.4)) / NOMINAL_PIXEL_SIZE_ANGSTROM,
        float(cfg.get("label_min_disc_radius_px", 1.5)),
    )
    n = len(raw)
    levels = np.empty((n, 2), np.float32)
    disc = np.empty(n, np.float32)
    offsets = f["column_offsets"][: n + 1]
    table = f["columns"][: offsets[-1]]
    columns = []
    for i in tqdm(range(n), desc="resampling levels", leave=False):
        z = float(pixel[i]) / NOMINAL_PIXEL_SIZE_ANGSTROM
        levels[i] = _normalisation_levels(_resample(raw[i], z))  # as inference normalises
        disc[i] = json.loads(f["params"][i])["label_disc_radius_px"]
        t = table[offsets[i] : offsets[i + 1]]
        t = t[t["labelled"] == 1]
        label = np.where(t["snr"] >= min_snr, 1.0, 2.0)
        columns.append(np.stack([t["row"], t["col"], label], axis=1).astype(np.float64))
    return {
        "raw": raw,
        "levels": levels,
        "disc_px": disc,
        "disc_cap_px": disc_cap,
        "columns": columns,
    }


#: the detection thresholds are tuned to find the columns of at least this SNR (Rose's criterion)
DETECTABLE_SNR = 5.0
#: a network trained on border patches padded by edge replication places a column centred on
#: the border up to a radius (2.7 px at 0.15 Å/px) outside: edge replication makes a column
#: centred on the first pixel and one centred a pixel or two outside look nearly alike, and the
#: network hedges to a blob one pixel wide. Such centres within this many radii are kept (moved
#: onto the edge). 0.5 (columns-v4, columns-v5 until 0.8.0) lost columns centred exactly on the
#: first pixel column of multislice crystal images (docs/atomseg_history.md, 0.8.0).
EDGE_PADDING_BORDER_TOLERANCE_RADII = 1.0


def _detection_rules(tuned: dict, border_fraction: float, padding: str) -> dict:
    """The tuned detection settings plus the fixed rules that go with them (model card)."""
    from atomseg.train.tune import LATTICE_RULE

    rules = dict(tuned)
    if tuned.get("min_contrast_to_noise", 0.0) > 0:
        rules.update(LATTICE_RULE)
    if border_fraction > 0 and padding == "edge":
        rules["border_tolerance_radii"] = EDGE_PADDING_BORDER_TOLERANCE_RADII
        if tuned.get("min_contrast_to_noise", 0.0) > 0:  # lattice sites on the border, as
            # clear as the gate asks of any column (atomseg.infer.columns._border_sites)
            rules["lattice_border_min_contrast_to_noise"] = tuned["min_contrast_to_noise"]
    return rules


def _patch_origin(size, patch, rng, at_border):
    """Patch start along one axis: anywhere inside, or (``at_border``) across an image edge."""
    if not at_border:
        return int(rng.integers(0, size - patch + 1))
    if rng.random() < 0.5:
        return int(rng.integers(-PAD_PX, 1))
    return int(rng.integers(size - patch, size - patch + PAD_PX + 1))


def _batch(data, idx, patch, rng, border_fraction=0.0, padding="reflect", border_columns=0.0):
    """Random patches (flipped, transposed) of images and masks.

    A share ``border_fraction`` of the patches reaches across the image border by up to
    ``PAD_PX`` on one or both axes, padded exactly as inference pads a whole image
    (``padding``, see :func:`atomseg.infer.columns._probabilities`), with the padding marked
    "don't care": the network learns where the columns cut by a real image border lie, instead
    of seeing the mirror image of the border as a column centred on it. A share
    ``border_columns`` of those (resampled patches only) has its border run through the centre
    of a column (see ``_resampled_patch``): half and quarter columns on an edge or corner.
    """
    images, masks = data["images"], data["masks"]
    _, h, w = images.shape
    x = np.empty((len(idx), 1, patch, patch), np.float32)
    y = np.empty((len(idx), 1, patch, patch), np.float32)
    share = data.get("resample", 0.0) if "raw" in data else 0.0
    for k, i in enumerate(idx):
        border = border_fraction > 0 and rng.random() < border_fraction
        axes = int(rng.integers(1, 4)) if border else 0  # 1: rows, 2: cols, 3: both
        if share >= 1.0 or (share > 0.0 and rng.random() < share):  # no draw for all or none
            align = border and border_columns > 0 and rng.random() < border_columns
            xi, yi = _resampled_patch(data, i, patch, rng, axes, padding, align)
        else:
            r = _patch_origin(h, patch, rng, bool(axes & 1))
            c = _patch_origin(w, patch, rng, bool(axes & 2))
            xi, yi = images[i], masks[i]
            if border:  # pad the whole image as inference does; the padding is "don't care"
                xi, yi = np.pad(xi, PAD_PX, mode=padding), np.pad(yi, PAD_PX, constant_values=2)
                r, c = r + PAD_PX, c + PAD_PX
            xi, yi = xi[r : r + patch, c : c + patch], yi[r : r + patch, c : c + patch]
        t = rng.integers(8)
        if t & 1:
            xi, yi = xi[::-1], yi[::-1]
        if t & 2:
            xi, yi = xi[:, ::-1], yi[:, ::-1]
        if t & 4:
            xi, yi = xi.T, yi.T
        x[k, 0], y[k, 0] = xi, yi
    return x, y


def _padded_index(i, n, padding):
    """Indices ``i`` of a padded axis into the ``n`` pixels of the image (``numpy.pad`` modes)."""
    before, after = max(0, -int(i.min())), max(0, int(i.max()) - n + 1)
    return np.pad(np.arange(n), (before, after), mode=padding)[i + before]


def _resampled_patch(data, i, patch, rng, axes, padding, align=False):
    """One patch of image ``i`` resampled to the model's pixel size, as inference sees it.

    The image is resampled exactly as :func:`atomseg.infer.columns._resample` resamples a
    calibrated image (only the patch's pixels are computed), normalised by the levels of the
    whole resampled image, and padded beyond its border as inference pads (``padding``, the
    padding "don't care"). The mask is drawn in the resampled pixels from the library's column
    table with the disc radius the library uses at that pixel size; near the border, where
    columns centred outside the image also draw discs into the library's mask, those pixels
    are "don't care".

    ``align`` (a border patch, ``axes`` 1: rows, 2: cols, 3: both): the image is first cut so
    that its first row and/or column runs through the centre of a random detectable column
    (to the nearest pixel), as in a crystal image scanned from a column at its origin; the
    network learns the half column on an edge and the quarter column in a corner that random
    crops rarely show. Columns the cut leaves centred outside are "don't care" where they
    reach in.

    ``data["scale_jitter"]`` (s > 0): the zoom factor is multiplied by a factor drawn
    log-uniformly in [1 / (1 + s), 1 + s], as if the image's pixel size were that far off, so
    the network sees columns over a range of sizes around the model's; the label discs are
    drawn at the library's radius in Å at the scale the patch really has, capped at the
    model's label radius (the disc the detector expects), and the normalisation levels are
    those of the unjittered resampled image (percentiles hardly move with the scale).
    """
    from atomseg.infer.columns import _native, _resample_at, _resampled_shape
    from atomseg.sim.imaging import _label_maps

    raw = data["raw"][i]
    h, w = raw.shape
    z = float(data["pixel_size_angstrom"][i]) / NOMINAL_PIXEL_SIZE_ANGSTROM
    jitter = float(data.get("scale_jitter", 0.0))
    if jitter > 0:  # seen as if calibrated up to a factor 1 + jitter off (log-uniform)
        z *= float(np.exp(rng.uniform(-np.log1p(jitter), np.log1p(jitter))))
    hz, wz = _resampled_shape(raw.shape, z)
    col_table = data["columns"][i]
    start = [0, 0]  # the first row and column of the image the patch is cut from
    centre = None
    if align:
        sure = col_table[col_table[:, 2] == 1.0]
        if len(sure):
            centre = (sure[int(rng.integers(len(sure)))][:2] + 0.5) * z - 0.5
            for k, n in enumerate((hz, wz)):
                if axes & (k + 1):
                    start[k] = int(np.clip(np.round(centre[k]), 0, n - 1))
    origin = []
    for k, (n, across) in enumerate(((hz, axes & 1), (wz, axes & 2))):
        m = n - start[k]
        if m < patch:  # a small image sits anywhere in the patch, padded around
            origin.append(start[k] - int(rng.integers(0, patch - m + 1)))
        elif start[k]:  # a cut image: the patch reaches across its first row / column
            origin.append(start[k] - int(rng.integers(0, PAD_PX + 1)))
        elif centre is not None:  # along the edge: anywhere the column is in the patch
            c = int(np.clip(np.round(centre[k]), 0, n - 1))
            origin.append(int(np.clip(c - rng.integers(0, patch), 0, n - patch)))
        else:
            origin.append(_patch_origin(n, patch, rng, bool(across)))
    rows, cols = origin[0] + np.arange(patch), origin[1] + np.arange(patch)
    in_rows, in_cols = (rows >= start[0]) & (rows < hz), (cols >= start[1]) & (cols < wz)
    inside = in_rows[:, None] & in_cols[None, :]
    rr = _padded_index(rows - start[0], hz - start[0], padding) + start[0]
    cc = _padded_index(cols - start[1], wz - start[1], padding) + start[1]
    lo, hi = data["levels"][i]
    xi = ((_resample_at(raw, z, rr, cc) - lo) / (hi - lo)).astype(np.float32)
    if _native(z):  # not resampled (as _resample)
        z = 1.0

    # the library's disc radius at this pixel size: 0.4 Å unless capped by the spacing
    radius = min(float(data["disc_px"][i]) * z, data["disc_cap_px"])
    yi = np.zeros((patch, patch), np.float32)
    for label in (2.0, 1.0):  # a detectable column's disc wins over a weak one's
        t = col_table[col_table[:, 2] == label]
        r_z, c_z = (t[:, 0] + 0.5) * z - 0.5, (t[:, 1] + 0.5) * z - 0.5
        if start != [0, 0]:  # those the cut leaves outside are the band's (don't care)
            keep = (r_z >= start[0] - 0.5) & (c_z >= start[1] - 0.5)
            r_z, c_z = r_z[keep], c_z[keep]
        r_z, c_z = r_z - origin[0], c_z - origin[1]
        if len(r_z):
            disc, _ = _label_maps(
                (patch, patch), r_z, c_z, disc_radius_px=radius, gaussian_sigma_px=0.5
            )
            yi[disc == 1] = label
    # columns centred outside the image draw into its border: don't care there
    band = float(data["disc_px"][i]) * z + 1.0
    near = (np.minimum(rows - start[0], hz - 1 - rows) < band)[:, None] | (
        np.minimum(cols - start[1], wz - 1 - cols) < band
    )[None, :]
    native = data["masks"][i][  # the library's mask at the nearest input pixel
        np.ix_(
            np.clip(np.round((rr + 0.5) / z - 0.5).astype(int), 0, h - 1),
            np.clip(np.round((cc + 0.5) / z - 0.5).astype(int), 0, w - 1),
        )
    ]
    yi[near & (native != 0) & (yi == 0)] = 2.0
    yi[~inside] = 2.0
    return xi, yi


def _loss(logits, mask):
    """BCE + soft Dice of the logits against a mask of 0 (background), 1 (column), 2 (ignored)."""
    import torch
    import torch.nn.functional as F

    target = (mask == 1).to(logits.dtype)
    weight = (mask != 2).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    bce = bce / weight.sum().clamp(min=1.0)
    p = torch.sigmoid(logits) * weight
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


def train(
    library: str | os.PathLike,
    output: str | os.PathLike,
    *,
    n_steps: int = 20000,
    batch_size: int = 16,
    width: int = 16,
    levels: int = 4,
    patch: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    resume: bool = True,
    device: str = "auto",
    checkpoint_every: int = 200,
    border_fraction: float = 0.0,
    padding: str = "reflect",
    val_fraction: float = 0.05,
    max_images: int | None = None,
    name: str | None = None,
    init: str | os.PathLike | None = None,
    resample: float = 0.0,
    border_columns: float = 0.0,
    scale_jitter: float = 0.0,
    progress: bool = True,
) -> Path:
    """Train the U-net on a library and write the model folder.

    Parameters
    ----------
    library : path
        HDF5 library from ``atomseg simulate``.
    output : path
        Model folder; ``checkpoint.pt`` there is resumed from unless ``resume=False``.
    n_steps, batch_size, width, levels, patch, learning_rate, seed
        Training set-up (AdamW, one-cycle schedule, ``patch``² crops).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    border_fraction : float
        Share of the patches that reach across the image border, padded as at inference (see
        ``_batch``); 0 (default) trains on inner patches only, the recipe of the default
        ``columns-v3``; ``columns-v4`` used 0.3 with ``padding="edge"``.
    padding : {"reflect", "edge", "symmetric"}
        How an image is padded beyond its border (``numpy.pad`` mode), for the border patches
        here and for every image at inference (recorded in the model card). ``"reflect"``
        mirrors a column cut by the border into a whole one centred on the border; ``"edge"``
        repeats the border pixels and keeps no mirror image.
    val_fraction : float
        Fraction of the library held out to tune the detection thresholds.
    init : str or path, optional
        Start from this model's weights (a shipped name or a model folder) instead of a random
        initialisation: fine-tuning, e.g. on a library closer to one's own images. Its width
        and number of levels are used; a smaller ``learning_rate`` (such as 5e-4) suits it.
    resample : float
        Share of the patches resampled to the model's pixel size, as inference resamples every
        calibrated image (see ``_resampled_patch``); the others are cut from the library
        images at their own pixel sizes (0, the default). Resampled patches show the network
        the interpolated (coarse pixels) and anti-aliased (fine pixels) images it is given at
        inference; the native ones keep it used to columns of every size in pixels.
    border_columns : float
        Share of the resampled border patches whose image border runs through the centre of a
        column (see ``_resampled_patch``): crystal images scanned from a column at their
        origin have half columns on two edges and a quarter column in the corner, which random
        crops rarely show. Needs ``border_fraction > 0`` and ``resample > 0``.
    scale_jitter : float
        Resampled patches are resampled to a pixel size off the model's by a factor drawn
        log-uniformly in [1 / (1 + s), 1 + s] (0, the default: exactly the model's), the
        labels following the columns (see ``_resampled_patch``): the network learns columns a
        little larger or smaller than the model's pixel size draws them, as it sees them when a
        calibration or a guessed scale is off, or a structure is seen better a little finer or
        coarser. Needs ``resample > 0``.

    Returns
    -------
    pathlib.Path
        The model folder, loadable with :func:`atomseg.models.load_model`.

    Examples
    --------
    >>> train("missing.h5", "model-dir")
    Traceback (most recent call last):
    ...
    FileNotFoundError: library not found: missing.h5
    """
    import torch

    from atomseg.models.registry import _resolve_device, save_model
    from atomseg.models.unet import UNet

    if not 0.0 <= float(resample) <= 1.0:
        raise ValueError(f"resample must lie in [0, 1], got {resample!r}")
    if not 0.0 <= float(border_columns) <= 1.0:
        raise ValueError(f"border_columns must lie in [0, 1], got {border_columns!r}")
    if border_columns and not (resample and border_fraction):
        raise ValueError(
            "border_columns cuts resampled border patches: it needs resample > 0 and "
            f"border_fraction > 0 (got resample={resample!r}, "
            f"border_fraction={border_fraction!r})"
        )
    if not 0.0 <= float(scale_jitter) <= 1.0:
        raise ValueError(f"scale_jitter must lie in [0, 1], got {scale_jitter!r}")
    if scale_jitter and not resample:
        raise ValueError(
            f"scale_jitter changes the scale of resampled patches: it needs resample > 0 "
            f"(got resample={resample!r})"
        )
    data = load_training_set(library, max_images=max_images, resample=resample > 0)
    data["resample"] = float(resample)
    data["scale_jitter"] = float(scale_jitter)
    n = len(data["images"])
    if not 0.0 <= float(border_fraction) <= 1.0:
        raise ValueError(f"border_fraction must lie in [0, 1], got {border_fraction!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if data["images"].shape[1] < patch or data["images"].shape[2] < patch:
        raise ValueError(f"patch {patch} is larger than the library images")
    n_val = max(1, int(round(val_fraction * n)))
    train_idx = np.arange(n - n_val)
    val_idx = np.arange(n - n_val, n)

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    ckpt_path = output / "checkpoint.pt"
    dev = _resolve_device(device)
    torch.manual_seed(seed)
    init_info = None
    if init is not None:
        from atomseg.models import load_model

        start = load_model(init, device="cpu")
        width, levels = start.network.width, start.network.levels
        init_info = {"model": str(init), "sha256": start.config.get("sha256")}
    net = UNet(width=width, levels=levels).to(dev)
    if init_info is not None and not (resume and ckpt_path.is_file()):
        net.load_state_dict(start.network.state_dict())
    net = net.to(memory_format=torch.channels_last)  # faster convolutions on CPU
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-4)
    # warm-up over 5 % of the steps, but never over exactly one step: torch's one-cycle schedule
    # divides by zero there (e.g. n_steps=20)
    warm = max(0.05, 2.0 / n_steps) if n_steps >= 10 else 0.05
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=learning_rate, total_steps=n_steps, pct_start=warm
    )
    rng = np.random.default_rng(seed)
    step, history = 0, []
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck["n_steps"] != n_steps or ck["architecture"] != [width, levels]:
            raise ValueError(
                f"{ckpt_path} was made with other settings ({ck['n_steps']} steps, "
                f"width/levels {ck['architecture']}); pass resume=False (--no-resume) to restart"
            )
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        rng.bit_generator.state = ck["rng"]
        step, history = ck["step"], ck["history"]

    def save_checkpoint():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "step": step,
                "history": history,
                "n_steps": n_steps,
                "architecture": [width, levels],
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    net.train()
    t0 = time.perf_counter()
    bar = tqdm(total=n_steps, initial=step, desc="atomseg train", disable=not progress)
    running = None
    try:
        while step < n_steps:
            x, y = _batch(
                data,
                rng.choice(train_idx, batch_size),
                patch,
                rng,
                border_fraction,
                padding,
                border_columns,
            )
            logits = net(torch.from_numpy(x).to(dev).contiguous(memory_format=torch.channels_last))
            loss = _loss(logits, torch.from_numpy(y).to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            if step % checkpoint_every == 0 or step == n_steps:
                history.append([step, running])
                save_checkpoint()
    finally:
        bar.close()

    net.eval()
    lib_cfg = json.loads(data["attrs"].get("config", "{}"))
    config: dict[str, Any] = {
        "name": name or output.name,
        "description": f"U-net (width {width}, {levels} levels) trained on a simulated library",
        "pixel_size_angstrom": NOMINAL_PIXEL_SIZE_ANGSTROM,
        "label_radius_angstrom": float(lib_cfg.get("label_disc_radius_angstrom", 0.4)),
        "label_min_z": int(lib_cfg.get("label_min_z", 1)),
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.0},
        "padding": padding,
        "training": {
            "library": str(library),
            "library_attrs": {k: v for k, v in data["attrs"].items() if k != "n_done"},
            "n_images": int(n),
            "n_steps": n_steps,
            "batch_size": batch_size,
            "patch": patch,
            "border_fraction": border_fraction,
            "padding": padding,
            "resample": float(resample),
            "border_columns": float(border_columns),
            "scale_jitter": float(scale_jitter),
            "learning_rate": learning_rate,
            "seed": seed,
            "device": dev,
            "seconds_this_run": round(time.perf_counter() - t0, 1),
            "loss_history": history,
            "command": f"atomseg train {library} -o {output} --steps {n_steps} "
            f"--batch-size {batch_size} --width {width} --seed {seed} "
            f"--learning-rate {learning_rate:g} --border-fraction {border_fraction:g} "
            f"--padding {padding}"
            + (f" --init {init}" if init is not None else "")
            + (f" --resample {resample:g}" if resample else "")
            + (f" --border-columns {border_columns:g}" if border_columns else "")
            + (f" --scale-jitter {scale_jitter:g}" if scale_jitter else ""),
        },
    }
    if init_info is not None:
        config["training"]["init"] = init_info
    from atomseg.train.tune import tune_detection

    with h5py.File(library, "r") as f:  # tuning runs the full pipeline on the raw images
        data["raw_images"] = {int(i): f["images"][int(i)] for i in val_idx}
    tuned = tune_detection(net.cpu(), data, val_idx, config, min_snr=DETECTABLE_SNR)
    config["detection"] = _detection_rules(tuned, border_fraction, padding)
    return save_model(output, net, config)
