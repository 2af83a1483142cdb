"""Model folders, the registry of shipped models, and loading.

A model is a folder holding ``model.json`` (architecture arguments, training configuration,
input normalisation, the pixel size it expects, tuned detection thresholds, package and format
versions, sha256 of the weights) and ``weights.pt`` (a ``state_dict`` loaded with
``torch.load(..., weights_only=True)``). Shipped models live in
``atomseg/models/weights/<name>/``, carry a version in their name (a published name is never
overwritten) and are listed in ``_SHIPPED`` with their sha256, checked on every load.
``"default"`` is an alias of the recommended shipped model. User-trained models load from their
folder path the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "ColumnModel", "list_models", "load_model", "save_model"]

FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "columns-v7"

#: how far (px) an image is padded beyond its border before the network sees it
PAD_PX = 16
#: how it may be padded (``numpy.pad`` modes): the model card's ``padding`` (default "reflect"),
#: the same in training (border patches) and at inference
PADDINGS = ("reflect", "edge", "symmetric")
#: images larger than this (px, after resampling and padding) on a side are segmented in
#: overlapping tiles (a 2048² image needs about 1.5 GB of memory, a whole 8192² one about 20 GB)
MAX_TILE_PX = 2304

# name -> sha256 of weights.pt. Filled when a model is published; never edited afterwards.
_SHIPPED: dict[str, str] = {
    "columns-v7": "42396b66b3ae37027cdc0554b1626f7f0d30b8a9a5d7e76ce9f1d2bc72174319",
    "columns-v5": "bd38c8ba1a992f56fe8b083e1fe6062f3c8fcfa49f3b46981a0dfef53ce37f82",
    "columns-v4": "c70cea008fd4e0e1bc75885489fae895d94d74f55568bbdb3d361087decfaa93",
    "columns-v3": "dfcc1b0e9b879fac0e3aa99cff1bd520788cf225d71e8dbdf9e567486645c473",
    "columns-v2": "906f5cf50abeb3b293c5f2709cdf19049870e9fceb30720315551b140504f0da",
    "columns-v1": "ac2d6fd6089e4223e3ad686075cfc358f789a1a14de7b8cf07871add78b0aced",
}


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_models() -> dict[str, str]:
    """Return the shipped models: name -> one-line description.

    Examples
    --------
    >>> isinstance(list_models(), dict)
    True
    """
    out = {}
    for name in sorted(_SHIPPED):
        cfg = json.loads((WEIGHTS_DIR / name / "model.json").read_text())
        alias = " (default)" if name == DEFAULT_MODEL else ""
        out[name] = cfg.get("description", "") + alias
    return out


def normalise_image(image: np.ndarray, *, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Scale an image so its ``low`` and ``high`` percentiles map to 0 and 1.

    This is the input normalisation of every atomseg model (stored in ``model.json``).

    Examples
    --------
    >>> normalise_image(np.arange(101.0), low=0, high=100)[[0, 50, 100]]
    array([0. , 0.5, 1. ], dtype=float32)
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = _normalisation_levels(image, low, high)
    return ((image - lo) / (hi - lo)).astype(np.float32)


def _normalisation_levels(image: np.ndarray, low: float = 1.0, high: float = 99.0):
    """The values :func:`normalise_image` maps to 0 and 1 (the range, where those tie)."""
    lo, hi = np.percentile(image, [low, high])
    if not hi > lo:
        lo, hi = float(image.min()), float(image.max())
    if not hi > lo:
        raise ValueError("the image is constant: there is nothing to segment")
    return lo, hi


class ColumnModel:
    """A loaded column-segmentation model: network, configuration and device.

    Use :func:`load_model` to make one. ``predict`` maps normalised images (B, H, W), sizes
    multiples of ``multiple``, to probabilities.

    Examples
    --------
    >>> from atomseg.models.unet import UNet
    >>> m = ColumnModel(UNet(width=4, levels=3), {"name": "tiny"})
    >>> m.predict(np.zeros((2, 32, 32), np.float32)).shape
    (2, 32, 32)
    """

    def __init__(self, network, config: dict[str, Any], *, device: str = "cpu"):
        import torch

        # channels-last convolutions are faster on CPU (same results to rounding)
        self.network = network.eval().to(device).to(memory_format=torch.channels_last)
        self._fused = None  # the network with its batch norms folded in, made on first use
        self.config = config
        self.device = device
        self.name = config.get("name", "unnamed")

    @property
    def multiple(self) -> int:
        return self.network.multiple

    @property
    def pixel_size_angstrom(self) -> float | None:
        """Pixel size the model expects, Å (images of known calibration are resampled to it)."""
        return self.config.get("pixel_size_angstrom")

    @property
    def halo(self) -> int:
        """Context (px) a tile needs on each side for its centre to come out as in one piece.

        The U-net's receptive radius is ``8 * multiple - 6`` px (two 3×3 convolutions per level
        on the way down and up, the pooling and up-sampling steps); the halo is the next
        multiple of ``multiple``, so tiles keep the pooling grid of the whole image.
        """
        return 8 * self.multiple

    def predict(self, images: np.ndarray, *, max_tile_px: int | None = None) -> np.ndarray:
        """Return column probabilities for normalised images of shape (B, H, W).

        Images larger than ``max_tile_px`` (default :data:`MAX_TILE_PX`) on a side are run in
        tiles of at most that size, overlapping by :attr:`halo` on each side and cut on the
        pooling grid, so the memory is bounded by the tile, not the image; the result equals
        the whole-image one to rounding (a tile's border effects do not reach its kept centre).
        Sizes must be multiples of :attr:`multiple`.

        Examples
        --------
        >>> from atomseg.models.unet import UNet
        >>> m = ColumnModel(UNet(width=4, levels=3), {})
        >>> x = np.random.default_rng(0).random((1, 96, 200), np.float32)
        >>> bool(np.allclose(m.predict(x, max_tile_px=80), m.predict(x), atol=1e-5))
        True
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3:
            raise ValueError(f"images must have shape (B, H, W), got {images.shape}")
        b, h, w = images.shape
        m, halo = self.multiple, self.halo
        max_tile_px = MAX_TILE_PX if max_tile_px is None else int(max_tile_px)
        if h % m or w % m:
            raise ValueError(f"image sizes must be multiples of {m}, got {h}x{w}")
        if max_tile_px < 2 * halo + m:
            raise ValueError(f"max_tile_px must be at least {2 * halo + m}, got {max_tile_px}")
        if h <= max_tile_px and w <= max_tile_px:
            return self._run(images)
        out = np.empty((b, h, w), np.float32)
        for r0, r1, c0, c1 in _tiles(h, w, max_tile_px - 2 * halo, m):
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, h)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, w)
            y = self._run(images[:, a0:a1, b0:b1])
            out[:, r0:r1, c0:c1] = y[:, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
        return out

    def _run(self, images: np.ndarray) -> np.ndarray:
        import torch

        if self._fused is None:
            self._fused = _fuse_batch_norm(self.network)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(self.device)
            y = torch.sigmoid(self._fused(x.contiguous(memory_format=torch.channels_last)))
        return np.ascontiguousarray(y[:, 0].float().cpu().numpy())


def _fuse_batch_norm(network):
    """A copy of an eval-mode network with each convolution's batch norm folded into it.

    The same function to float rounding (logits within ~1e-4), 15-20 % faster on a CPU;
    the network itself is left as it is (it can still be fine-tuned).
    """
    import copy

    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(network).eval()
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return fused


def _tiles(h: int, w: int, core: int, m: int):
    """(r0, r1, c0, c1) of tiles covering (h, w), each side at most ``core``, on the grid ``m``."""
    spans = []
    for n in (h, w):
        k = -(-n // core)  # tiles along this axis
        step = -(-n // (k * m)) * m  # equal parts, rounded up to the grid
        spans.append([(s, min(s + step, n)) for s in range(0, n, step)])
    return [(r0, r1, c0, c1) for r0, r1 in spans[0] for c0, c1 in spans[1]]


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name: str | os.PathLike = "default", *, device: str = "auto") -> ColumnModel:
    """Load a shipped model by name, or a user-trained model from its folder.

    Parameters
    ----------
    name : str or path
        ``"default"``, a name from :func:`list_models`, or a folder holding ``model.json`` and
        ``weights.pt``.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    KeyError
        Unknown name; the message lists the available models.
    ValueError
        A shipped model whose weights fail their sha256 check.

    Examples
    --------
    >>> load_model("no-such-model")
    Traceback (most recent call last):
    ...
    KeyError: "unknown atomseg model 'no-such-model'; available: ..."
    """
    import torch

    from atomseg.models.unet import UNet

    key = DEFAULT_MODEL if str(name) == "default" else str(name)
    if key in _SHIPPED:
        folder = WEIGHTS_DIR / key
        if _sha256(folder / "weights.pt") != _SHIPPED[key]:
            raise ValueError(f"shipped model {key!r} failed its sha256 check (file corrupted?)")
    elif Path(key).is_dir() and (Path(key) / "model.json").is_file():
        folder = Path(key)
    else:
        avail = ", ".join(sorted(_SHIPPED)) or "none shipped"
        raise KeyError(
            f"unknown atomseg model {str(name)!r}; available: {avail} "
            "(or pass a folder holding model.json and weights.pt)"
        )
    config = json.loads((folder / "model.json").read_text())
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"model {key!r} needs a newer atomseg (format {config['format_version']})")
    net = UNet(**config["architecture"])
    net.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    return ColumnModel(net, config, device=_resolve_device(device))


def save_model(folder: str | os.PathLike, network, config: dict[str, Any]) -> Path:
    """Save a network and its configuration as a model folder (atomically).

    Examples
    --------
    >>> import tempfile
    >>> from atomseg.models.unet import UNet
    >>> folder = save_model(tempfile.mkdtemp() + "/m", UNet(4, 3), {"name": "m"})
    >>> load_model(folder).network.width
    4
    """
    import torch

    from atomseg import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dict(config)
    cfg["architecture"] = {"width": network.width, "levels": network.levels}
    cfg["format_version"] = FORMAT_VERSION
    cfg["package_version"] = __version__
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".pt.tmp")
    os.close(fd)
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, tmp)
    cfg["sha256"] = _sha256(tmp)
    os.replace(tmp, folder / "weights.pt")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, folder / "model.json")
    return folder
