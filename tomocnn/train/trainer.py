"""Training the wedge-removal CNN on simulated (reconstruction, truth) pairs (resumable).

The pairs file is written by :func:`tomocnn.sim.write_pairs` (``tomocnn simulate``). Each
pair is normalised as at inference (divided by the model's intensity scale of the
reconstruction), random cubes are cut and flipped in ways that keep the tilt geometry valid
(a flip along exactly one of the two in-slice axes mirrors the tilt range, which the
conditioning follows), and the network learns the truth with an L1 loss. A checkpoint is
written every ``checkpoint_every`` steps, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

__all__ = ["train", "load_pairs"]

NORMALISATION_PERCENTILE = 99.9


def load_pairs(path: str | os.PathLike, *, max_pairs: int | None = None) -> dict[str, Any]:
    """Read a pairs file into memory, normalised for training.

    Returns
    -------
    dict
        ``recon`` and ``truth`` (n, S, S, S) float32 divided by each reconstruction's scale,
        ``tilt`` (n, 2) tilt ranges in degrees, ``algorithm`` (n,) str, ``attrs``.

    Examples
    --------
    >>> load_pairs("missing.h5")
    Traceback (most recent call last):
    ...
    FileNotFoundError: pairs file not found: missing.h5
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    with h5py.File(path, "r") as f:
        for key in ("recon", "truth", "min_tilt_deg", "max_tilt_deg"):
            if key not in f:
                raise KeyError(f"{path} is not a tomocnn pairs file: no /{key} dataset")
        n = int(f.attrs.get("n_done", f["recon"].shape[0]))
        if max_pairs is not None:
            n = min(n, int(max_pairs))
        if n < 2:
            raise ValueError(f"{path} holds {n} finished pairs; need at least 2")
        recon = np.empty((n, *f["recon"].shape[1:]), np.float32)
        truth = np.empty_like(recon)
        for i in range(n):
            r = f["recon"][i]
            s = float(np.percentile(np.abs(r), NORMALISATION_PERCENTILE)) or 1.0
            recon[i] = r / s
            truth[i] = f["truth"][i] / s
        tilt = np.stack([f["min_tilt_deg"][:n], f["max_tilt_deg"][:n]], axis=1).astype(float)
        algo = [a.decode() if isinstance(a, bytes) else str(a) for a in f["algorithm"][:n]]
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
    return {"recon": recon, "truth": truth, "tilt": tilt, "algorithm": algo, "attrs": attrs}


def _batch(data, idx, patch, rng):
    n, d, h, w = data["recon"].shape
    x = np.empty((len(idx), 1, patch, patch, patch), np.float32)
    y = np.empty_like(x)
    cond = np.empty((len(idx), 2), np.float32)
    for k, i in enumerate(idx):
        o = [rng.integers(0, s - patch + 1) for s in (d, h, w)]
        sl = tuple(slice(a, a + patch) for a in o)
        xi, yi = data["recon"][i][sl], data["truth"][i][sl]
        lo, hi = data["tilt"][i]
        if rng.random() < 0.5:  # along the tilt axis: geometry unchanged
            xi, yi = xi[::-1], yi[::-1]
        f1, f2 = rng.random() < 0.5, rng.random() < 0.5
        if f1:
            xi, yi = xi[:, ::-1], yi[:, ::-1]
        if f2:
            xi, yi = xi[:, :, ::-1], yi[:, :, ::-1]
        if f1 != f2:  # one in-slice mirror reverses the sense of rotation
            lo, hi = -hi, -lo
        x[k, 0], y[k, 0] = xi, yi
        cond[k] = np.sin(np.radians([lo, hi]))
    return x, y, cond


def train(
    pairs: str | os.PathLike,
    output: str | os.PathLike,
    *,
    n_steps: int = 5000,
    batch_size: int = 4,
    width: int = 8,
    levels: int = 3,
    patch: int = 48,
    learning_rate: float = 1e-3,
    seed: int = 0,
    resume: bool = True,
    device: str = "auto",
    checkpoint_every: int = 100,
    max_pairs: int | None = None,
    name: str | None = None,
    nonnegative: bool = True,
    progress: bool = True,
) -> Path:
    """Train the wedge-removal network and write the model folder.

    Parameters
    ----------
    pairs : path
        HDF5 pairs file from ``tomocnn simulate``.
    output : path
        Model folder; ``checkpoint.pt`` there is resumed from unless ``resume=False``.
    n_steps, batch_size, width, levels, patch, learning_rate, seed
        Training set-up (AdamW, one-cycle schedule, ``patch``³ crops, L1 loss).
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    nonnegative : bool
        Train for a non-negative quantity (density, attenuation, HAADF signal): the loss sees
        the output clipped at zero (plus a tenth of the unclipped L1, so clipped voxels still
        learn), and the model card asks inference to clip too. Non-negativity is a strong prior
        against the wedge, the one MLEM relies on. ``False`` for signed volumes.

    Returns
    -------
    pathlib.Path
        The model folder, loadable with :func:`tomocnn.models.load_model`.

    Examples
    --------
    >>> train("missing.h5", "model-dir")
    Traceback (most recent call last):
    ...
    FileNotFoundError: pairs file not found: missing.h5
    """
    import torch

    from tomocnn.models.network import WedgeNet3D
    from tomocnn.models.registry import _resolve_device, save_model

    data = load_pairs(pairs, max_pairs=max_pairs)
    size = data["recon"].shape[1]
    if patch > size:
        raise ValueError(f"patch {patch} is larger than the pair volumes ({size})")
    net0 = WedgeNet3D(width=width, levels=levels)
    if patch % net0.multiple:
        raise ValueError(f"patch must be a multiple of {net0.multiple}, got {patch}")
    n = len(data["recon"])
    n_val = max(1, n // 20)
    train_idx, val_idx = np.arange(n - n_val), np.arange(n - n_val, n)

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    ckpt_path = output / "checkpoint.pt"
    dev = _resolve_device(device)
    torch.manual_seed(seed)
    net = WedgeNet3D(width=width, levels=levels).to(dev)
    net = net.to(memory_format=torch.channels_last_3d)  # ~1.6x faster 3D convolutions on CPU
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-5)
    # warm-up over 5 % of the steps, never exactly one (torch divides by zero there: n_steps=20)
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
        state = {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
        state.update(rng=rng.bit_generator.state, step=step, history=history)
        state.update(n_steps=n_steps, architecture=[width, levels])
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)

    net.train()
    t0 = time.perf_counter()
    running = None
    bar = tqdm(total=n_steps, initial=step, desc="tomocnn train", disable=not progress)
    try:
        while step < n_steps:
            batch = _batch(data, rng.choice(train_idx, batch_size), patch, rng)
            loss = optimise_step(net, opt, batch, nonnegative)
            sched.step()
            step += 1
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            bar.set_postfix(l1=f"{running:.4f}")
            if step % checkpoint_every == 0 or step == n_steps:
                history.append([step, running])
                save_checkpoint()
    finally:
        bar.close()

    net.eval()
    val = _validate(net, data, val_idx, dev, nonnegative)
    config: dict[str, Any] = {
        "name": name or output.name,
        "description": (
            f"residual 3D U-net (width {width}, {levels} levels) for ±45° to ±75° tilt ranges, "
            "SIRT- and FBP-like inputs" + (", non-negative output" if nonnegative else "")
        ),
        "normalisation": {"method": "abs_percentile", "percentile": NORMALISATION_PERCENTILE},
        "supported": {
            # any end angle from 40° to 90° is accepted; the conditioning is clamped to the
            # end angles seen in training (see WedgeModel.predict)
            "max_tilt_deg": [40.0, 90.0],
            "trained_max_tilt_deg": [
                round(float(np.abs(data["tilt"]).min()), 2),
                round(float(np.abs(data["tilt"]).max()), 2),
            ],
            "algorithms": sorted(set(data["algorithm"])),
            "conditioning": "sines of the minimum and maximum tilt angle",
        },
        "nonnegative": bool(nonnegative),
        "tile": 128,
        "validation": val,
        "training": {
            "pairs": str(pairs),
            "pairs_attrs": {k: v for k, v in data["attrs"].items() if k != "n_done"},
            "n_pairs": int(n),
            "n_steps": n_steps,
            "batch_size": batch_size,
            "patch": patch,
            "learning_rate": learning_rate,
            "seed": seed,
            "device": dev,
            "seconds_this_run": round(time.perf_counter() - t0, 1),
            "loss_history": history,
            "command": f"tomocnn train {pairs} -o {output} --steps {n_steps} "
            f"--batch-size {batch_size} --width {width} --seed {seed}"
            + ("" if nonnegative else " --signed"),
        },
    }
    return save_model(output, net, config)


def optimise_step(net, opt, batch, nonnegative: bool) -> float:
    """One optimiser step on a batch ``(x, y, cond)`` of numpy arrays; returns the loss."""
    import torch

    x, y, c = batch
    dev = next(net.parameters()).device
    xt = torch.from_numpy(x).to(dev).contiguous(memory_format=torch.channels_last_3d)
    loss = l1_loss(net(xt, torch.from_numpy(c).to(dev)), torch.from_numpy(y).to(dev), nonnegative)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.item())


def l1_loss(out, target, nonnegative: bool):
    """The training loss: L1; for a non-negative model, L1 of the output clipped at zero plus a
    tenth of the unclipped L1 (so that clipped voxels still learn)."""
    import torch

    loss = torch.nn.functional.l1_loss(out, target)
    if nonnegative:
        loss = torch.nn.functional.l1_loss(out.clamp_min(0), target) + 0.1 * loss
    return loss


def _validate(net, data, idx, dev, nonnegative=False) -> dict[str, float]:
    """Mean PSNR (dB, peak = truth max) of input and output on held-out pairs."""
    import torch

    psnr_in, psnr_out = [], []
    m = net.multiple
    for i in idx:
        x, y = data["recon"][i], data["truth"][i]
        size = (x.shape[0] // m) * m
        x, y = x[:size, :size, :size], y[:size, :size, :size]
        cond = torch.from_numpy(np.sin(np.radians(data["tilt"][i : i + 1])).astype(np.float32))
        with torch.inference_mode():
            out = net(torch.from_numpy(np.ascontiguousarray(x))[None, None].to(dev), cond.to(dev))
        out = out[0, 0].cpu().numpy()
        if nonnegative:
            out = np.maximum(out, 0)
        peak = float(y.max()) or 1.0
        psnr_in.append(10 * np.log10(peak**2 / np.mean((x - y) ** 2)))
        psnr_out.append(10 * np.log10(peak**2 / np.mean((out - y) ** 2)))
    return {
        "psnr_in_db": round(float(np.mean(psnr_in)), 2),
        "psnr_out_db": round(float(np.mean(psnr_out)), 2),
        "n_pairs": len(idx),
    }
