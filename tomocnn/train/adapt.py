"""Adapting a shipped wedge model to the user's own tilt series, self-supervised, on a CPU.

No ground truth exists for a real series, but its well-measured directions are known: those
inside the tilt range. The objective is the one IsoNet introduced for cryo-ET, on top of a
shipped model instead of from scratch:

1. the current best estimate of the volume: the model's output on the user's reconstruction,
   made consistent with the measured projections (:func:`tomocnn.infer.remove_wedge` with
   ``consistency_iters``);
2. cubes cut from it are turned by one of the cube's rotations that move the tilt axis or a
   well-measured in-slice direction into the beam direction (axis 1), so that what was
   measured now lies where the wedge will be;
3. each turned cube is projected at the *measured* angles, given the series' own noise level
   (Gaussian, the standard deviation of what the estimate leaves unexplained in the measured
   projections) and reconstructed as the user's volume was (same algorithm), which imposes
   the user's wedge and noise;
4. the network, started from the shipped weights, learns to undo that wedge: input the
   re-wedged reconstruction, target the turned cube.

A fifth of the cubes is kept out of training: the adapted network is kept only if it beats
the shipped one on them (the L1 error it is trained on); otherwise the shipped weights are
returned unchanged and the card says so. The work is interruptible (Ctrl-C) and resumable: a
checkpoint is kept in a hidden folder beside the output, and the output folder appears only
when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["adapt"]

#: edge of the cubes cut from the volume (voxels) and of the patches trained on
_CUBE = 48
_PATCH = 32
#: cubes simulated (a fifth held out); the pool is made once, before training
_POOL = 40


def adapt(
    projections,
    theta,
    *,
    model: Any = "default",
    minutes: float | None = None,
    steps: int | None = None,
    rng: int | np.random.Generator | None = None,
    output: str | os.PathLike | None = None,
    algorithm: str | None = None,
    center: float | None = None,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    resume: bool = True,
    progress: bool = True,
):
    """Fine-tune a copy of a wedge model on one tilt series, without ground truth.

    Parameters
    ----------
    projections : ndarray, shape (n_angles, n_rows, n_cols)
        The user's aligned tilt series (line integrals or ADF/HAADF intensities, vacuum at 0),
        as :func:`tomocnn.align` returns it.
    theta : ndarray, shape (n_angles,)
        Its angles, radians.
    model : str, path or WedgeModel
        The model to start from (``"default"``: the shipped default).
    minutes : float, optional
        Time budget of the training (after the cubes are simulated). Default: 10 minutes when
        ``steps`` is not given either.
    steps : int, optional
        Number of training steps instead of (or as well as) a time budget.
    rng : int or numpy.random.Generator, optional
        Random numbers (cubes, rotations, batches); an int makes the run repeatable.
    output : path, optional
        Model folder to write (``model.json`` + ``weights.pt``), loadable by
        :func:`tomocnn.models.load_model`, ``remove_wedge(..., model=FOLDER)`` and the
        ``--model`` options. Written under a hidden temporary name and renamed when complete;
        an existing folder is refused. The checkpoint of an interrupted run is kept in
        ``.NAME.adapt/`` beside it and resumed from when the same call is made again.
    algorithm : str, optional
        The reconstruction the model will be applied to (default: the model card's
        recommendation, MLEM for ``wedge-v3``).
    center : float, optional
        Rotation centre of ``projections`` (TomoPy's; None: ``n_cols / 2``).
    learning_rate, batch_size
        AdamW settings of the fine-tune.
    resume : bool
        Resume from the checkpoint of an interrupted run with the same output (default).
    progress : bool
        Progress bars with the objective's value.

    Returns
    -------
    WedgeModel
        The adapted model (or the unchanged starting model when adapting did not beat it on the
        held-out cubes; its card's ``adaptation.kept`` says which), ready for
        :func:`tomocnn.remove_wedge`.

    Raises
    ------
    ValueError
        A series smaller than 48 pixels a side, fewer than 5 projections, a tilt range the model
        does not support, an output folder that exists, or a volume with nothing in it.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from tomocnn.models import WedgeModel, WedgeNet3D
    >>> from tomocnn.sim import project, tilt_angles
    >>> from tomocnn.train import adapt
    >>> _ = torch.manual_seed(0)
    >>> tiny = WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "tiny", "nonnegative": True})
    >>> vol = np.zeros((48, 48, 48), np.float32)
    >>> vol[10:38, 14:30, 12:36] = 1
    >>> theta = tilt_angles(60, n=31)
    >>> adapted = adapt(project(vol, theta), theta, model=tiny, steps=2, rng=0,
    ...                 algorithm="sirt", progress=False)
    >>> adapted.config["adaptation"]["adapted_from"]
    'tiny'
    """
    import torch

    from tomocnn.infer import remove_wedge
    from tomocnn.infer.files import default_algorithm
    from tomocnn.infer.wedge import _check_supported, _get_model, _tilt_range
    from tomocnn.models.registry import WedgeModel
    from tomocnn.recon import consistency
    from tomocnn.recon._checks import _check_projections, _check_theta
    from tomocnn.sim._util import _as_rng

    proj = _check_projections(projections)
    theta = _check_theta(theta, proj.shape[0])
    if proj.shape[0] < 5:
        raise ValueError(f"at least 5 projections are needed to adapt, got {proj.shape[0]}")
    if min(proj.shape[1:]) < _CUBE:
        raise ValueError(
            f"the series is too small to adapt on: {proj.shape[1]} x {proj.shape[2]} pixels, "
            f"need at least {_CUBE} a side (the shipped model is used as it is)"
        )
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1
    ):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes must be positive, got {minutes!r}")
    if minutes is None and steps is None:
        minutes = 10.0
    tilt = _tilt_range(theta, None)
    base = _get_model(model)
    _check_supported(base, tilt)
    algorithm = algorithm or default_algorithm(base)
    gen = _as_rng(rng)
    seed = int(gen.integers(2**31))
    out_dir, work = _folders(output)
    ck_path = None if work is None else work / "checkpoint.pt"
    # a checkpoint is resumed only by the same call: model, series, angles, settings, seed
    key = _fingerprint(base, proj, theta, algorithm, learning_rate, batch_size, seed)

    pool = _make_pool(proj, theta, base, algorithm, center, np.random.default_rng(seed), progress)
    n_val = max(1, len(pool["recon"]) // 5)
    train_idx = np.arange(n_val, len(pool["recon"]))
    val_idx = np.arange(n_val)

    import copy

    from tomocnn.models.registry import _resolve_device

    dev = _resolve_device("auto")  # CUDA when torch sees it
    net = copy.deepcopy(base.network).float().to(dev).train()
    net = net.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-5)
    batch_rng = np.random.default_rng(seed + 1)
    step, spent = 0, 0.0
    if ck_path is not None and resume and ck_path.is_file():
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        if ck.get("key") == key:
            ck = torch.load(ck_path, map_location=dev, weights_only=True)
            net.load_state_dict(ck["net"])
            opt.load_state_dict(ck["opt"])
            step, spent = int(ck["step"]), float(ck["seconds"])
            batch_rng = np.random.default_rng([seed + 1, step])
    before = _held_out_l1(copy.deepcopy(base.network).to(dev), pool, val_idx, base.nonnegative)

    from tqdm.auto import tqdm

    t0 = time.perf_counter() - spent
    budget = None if minutes is None else 60.0 * float(minutes)
    bar = tqdm(total=steps, initial=step, desc="tomocnn adapt", disable=not progress)
    running = None
    try:
        while (steps is None or step < steps) and (
            budget is None or time.perf_counter() - t0 < budget
        ):
            loss = _train_step(net, opt, pool, train_idx, batch_size, batch_rng, base.nonnegative)
            step += 1
            running = loss if running is None else 0.95 * running + 0.05 * loss
            bar.update(1)
            bar.set_postfix(l1=f"{running:.4f}")
            if ck_path is not None and step % 50 == 0:
                _checkpoint(ck_path, net, opt, step, time.perf_counter() - t0, key)
    except KeyboardInterrupt:
        if ck_path is not None and step > 0:
            _checkpoint(ck_path, net, opt, step, time.perf_counter() - t0, key)
        raise
    finally:
        bar.close()
    net.eval()
    after = _held_out_l1(net, pool, val_idx, base.nonnegative)
    kept = after < before
    card = json.loads(json.dumps(base.config, default=str))
    card.pop("sha256", None)  # the weights changed; save_model writes the new digest
    card["name"] = (out_dir.name if out_dir else f"{base.name}-adapted") if kept else base.name
    card["adaptation"] = {
        "adapted_from": base.name,
        "kept": "adapted" if kept else "starting model (adapting did not beat it)",
        "objective": "re-wedged turned cubes of the consistent CNN output (IsoNet-like)",
        "held_out_l1_before": round(before, 6),
        "held_out_l1_after": round(after, 6),
        "steps": step,
        "seconds": round(time.perf_counter() - t0, 1),
        "series_shape": list(proj.shape),
        "tilt_range_deg": [round(t, 2) for t in tilt],
        "algorithm": algorithm,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "cubes": len(pool["recon"]),
        "seed": seed,
    }
    result = WedgeModel(net.cpu() if kept else copy.deepcopy(base.network).cpu(), card)
    # the faithfulness of each model's output on the measured angles (no consistency step)
    for label, m in (("starting", base), ("adapted", result)):
        vol = remove_wedge(pool["rec"], theta, model=m)
        card["adaptation"][f"reprojection_residual_{label}"] = round(
            consistency(vol, proj, theta, center=center)["residual"], 6
        )
    if progress:
        a = card["adaptation"]
        print(
            f"tomocnn adapt: held-out L1 {before:.4f} (shipped) -> {after:.4f} (adapted): "
            + ("adapted model kept" if kept else "kept the starting model")
            + "; reprojection residual on the measured angles "
            f"{100 * a['reprojection_residual_starting']:.2f} % -> "
            f"{100 * a['reprojection_residual_adapted']:.2f} %"
        )
    if out_dir is not None:
        _write(out_dir, result.network, card)
        shutil.rmtree(work, ignore_errors=True)
        result.config = json.loads((out_dir / "model.json").read_text())
    return result


# --- the pool of re-wedged cubes ----------------------------------------------------------------


def _rotations():
    """The cube rotations (as axis permutations and flips of a (z, y, x) array) that move the
    tilt axis (axis 0) or the in-slice axis 2 into the beam direction (axis 1)."""
    return [
        ((1, 0, 2), (False, True, False)),  # tilt axis -> beam (a proper rotation: one flip)
        ((2, 1, 0), (True, False, False)),  # in-slice axis 2 <-> tilt axis (keeps the wedge)
        ((0, 2, 1), (False, False, True)),  # in-slice axes swapped: axis 2 -> beam
        ((2, 0, 1), (False, False, False)),  # axis 2 -> beam, beam -> tilt axis
        ((1, 2, 0), (False, False, False)),  # tilt axis -> beam via a cyclic turn
    ]


def _turn(cube: np.ndarray, rotation) -> np.ndarray:
    axes, flips = rotation
    out = np.transpose(cube, axes)
    for a, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=a)
    return np.ascontiguousarray(out)


def _make_pool(proj, theta, base, algorithm, center, rng, progress) -> dict:
    """Re-wedged cubes: (reconstruction of the turned cube's projections, turned cube)."""
    from tqdm.auto import tqdm

    from tomocnn.infer import remove_wedge
    from tomocnn.recon import reconstruct
    from tomocnn.sim import project

    rec = reconstruct(proj, theta, algorithm=algorithm, center=center)
    estimate = remove_wedge(
        rec, theta, model=base, projections=proj, consistency_iters=20, center=center
    )
    if not np.any(estimate > 0):
        raise ValueError("the reconstruction holds nothing to adapt on (all zero)")
    # the series' noise: what the consistent estimate leaves unexplained, per pixel
    sigma = float(np.std(project(estimate, theta, center=center) - proj))
    starts = _busy_cubes(estimate, rng)
    rotations = _rotations()
    recon, truth = [], []
    for k in tqdm(range(_POOL), desc="tomocnn adapt: cubes", disable=not progress):
        z, y, x = starts[k % len(starts)]
        cube = estimate[z : z + _CUBE, y : y + _CUBE, x : x + _CUBE]
        target = _turn(cube, rotations[int(rng.integers(len(rotations)))])
        clean = project(target, theta)
        noisy = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
        sim = reconstruct(noisy, theta, algorithm=algorithm)
        s = float(np.percentile(np.abs(sim), 99.9)) or 1.0
        recon.append(sim / s)
        truth.append(target / s)
    tilt = np.degrees([theta.min(), theta.max()])
    return {
        "recon": np.stack(recon).astype(np.float32),
        "truth": np.stack(truth).astype(np.float32),
        "tilt": np.tile(tilt, (len(recon), 1)),
        "rec": rec,
    }


def _busy_cubes(volume: np.ndarray, rng) -> list[tuple[int, int, int]]:
    """Corners of cubes that hold more than the median mass of all candidate cubes."""
    shape = volume.shape
    cands = [tuple(int(rng.integers(0, s - _CUBE + 1)) for s in shape) for _ in range(4 * _POOL)]
    mass = np.array(
        [volume[z : z + _CUBE, y : y + _CUBE, x : x + _CUBE].sum() for z, y, x in cands]
    )
    keep = [c for c, m in zip(cands, mass) if m >= np.median(mass) and m > 0]
    return keep or cands


# --- training ------------------------------------------------------------------------------


def _train_step(net, opt, pool, idx, batch_size, rng, nonnegative) -> float:
    from tomocnn.train.trainer import _batch, optimise_step

    batch = _batch(pool, rng.choice(idx, batch_size), _PATCH, rng)
    return optimise_step(net, opt, batch, nonnegative)


def _held_out_l1(net, pool, idx, nonnegative) -> float:
    """Mean L1 error of the network on the held-out cubes (whole cubes, as inference sees)."""
    import torch

    errs = []
    for i in idx:
        x, y = pool["recon"][i], pool["truth"][i]
        cond = torch.from_numpy(np.sin(np.radians(pool["tilt"][i : i + 1])).astype(np.float32))
        dev = next(net.parameters()).device
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x))[None, None].float().to(dev)
            out = net(xt, cond.to(dev))
        out = out[0, 0].cpu().numpy()
        if nonnegative:
            out = np.maximum(out, 0)
        errs.append(float(np.mean(np.abs(out - y))))
    return float(np.mean(errs))


# --- files ---------------------------------------------------------------------------------


def _folders(output) -> tuple[Path | None, Path | None]:
    if output is None:
        return None, None
    out = Path(output)
    if out.exists():
        raise ValueError(f"output folder exists already: {out} (choose a new name)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder's parent does not exist: {out.parent}")
    return out, out.parent / f".{out.name}.adapt"  # made at the first checkpoint


def _fingerprint(base, proj, theta, algorithm, learning_rate, batch_size, seed) -> str:
    """What makes a run the same run: its checkpoint is resumed only under the same key."""
    import hashlib

    h = hashlib.sha256()
    for arr in (proj, theta):
        h.update(np.ascontiguousarray(arr).tobytes())
    for name, v in sorted(base.network.state_dict().items()):
        h.update(name.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    h.update(repr((algorithm, float(learning_rate), int(batch_size), int(seed))).encode())
    return h.hexdigest()


def _checkpoint(path: Path, net, opt, step: int, seconds: float, key: str) -> None:
    import torch

    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "net": net.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "seconds": seconds,
            "key": key,
        },
        tmp,
    )
    os.replace(tmp, path)


def _write(out_dir: Path, network, card: dict) -> None:
    """Write the model folder under a hidden name, then rename it: never half-written."""
    from tomocnn.models.registry import save_model

    tmp = out_dir.parent / f".{out_dir.name}.tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, network, {k: v for k, v in card.items() if k != "sha256"})
    os.replace(tmp, out_dir)
