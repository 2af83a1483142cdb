"""The residual 3D encoder-decoder that removes the missing wedge.

``WedgeNet3D`` maps a normalised limited-angle reconstruction to a correction that is added to
its input (``output = input + correction``). It is conditioned on the tilt geometry: the sines
of the minimum and maximum tilt angle enter as two constant input channels, so one network
serves any range from ±45° to ±75° (and asymmetric ranges).

The network has no normalisation layers, so it is a fixed function of its input, and tiles of
a volume processed with enough context (``halo`` voxels on each side, its receptive-field
radius) give the same result as the whole volume.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["WedgeNet3D", "tilt_condition"]


def tilt_condition(tilt_range_deg: tuple[float, float]) -> tuple[float, float]:
    """Return the two conditioning values of a tilt range: the sines of its end angles.

    Parameters
    ----------
    tilt_range_deg : (float, float)
        Minimum and maximum tilt angle, degrees.

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> [round(v, 3) for v in tilt_condition((-60, 60))]
    [-0.866, 0.866]
    """
    lo, hi = (float(v) for v in tilt_range_deg)
    if not (-90.0 <= lo < hi <= 90.0):
        raise ValueError(f"tilt range must satisfy -90 <= min < max <= 90 degrees, got {lo, hi}")
    return math.sin(math.radians(lo)), math.sin(math.radians(hi))


def _block(c_in: int, c_out: int, n_convs: int = 2) -> nn.Sequential:
    layers = []
    for k in range(n_convs):
        layers += [nn.Conv3d(c_in if k == 0 else c_out, c_out, 3, padding=1)]
        layers += [nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*layers)


def _convs_at(level: int) -> int:
    """Convolutions per block: one at full resolution (the costly level), two below."""
    return 1 if level == 0 else 2


class WedgeNet3D(nn.Module):
    """Residual 3D U-net conditioned on the tilt range.

    Parameters
    ----------
    width : int
        Channels of the first level; level ``l`` has ``width * 2**l``.
    levels : int
        Resolution levels (2 or more); input sizes must be multiples of ``2**(levels - 1)``.

    Examples
    --------
    >>> import torch
    >>> net = WedgeNet3D(width=4, levels=2)
    >>> x = torch.zeros(1, 1, 8, 8, 8)
    >>> net(x, torch.tensor([[-0.87, 0.87]])).shape
    torch.Size([1, 1, 8, 8, 8])
    >>> net.multiple, net.halo
    (2, 7)
    """

    def __init__(self, width: int = 8, levels: int = 3):
        super().__init__()
        if levels < 2 or width < 1:
            raise ValueError(f"need levels >= 2 and width >= 1, got levels={levels}, width={width}")
        self.width = int(width)
        self.levels = int(levels)
        chans = [width * 2**l for l in range(levels)]
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        c_in = 3  # the reconstruction + two tilt-condition channels
        for l in range(levels - 1):
            self.enc.append(_block(c_in, chans[l], _convs_at(l)))
            self.down.append(nn.Conv3d(chans[l], chans[l + 1], 2, stride=2))
            c_in = chans[l + 1]
        self.bottom = _block(chans[-1], chans[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for l in reversed(range(levels - 1)):
            self.up.append(nn.ConvTranspose3d(chans[l + 1], chans[l], 2, stride=2))
            self.dec.append(_block(2 * chans[l], chans[l], _convs_at(l)))
        self.head = nn.Conv3d(chans[0], 1, 1)
        nn.init.zeros_(self.head.weight)  # start as the identity: output = input
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** (self.levels - 1)

    @property
    def halo(self) -> int:
        """Receptive-field radius in voxels: the context a tile needs on each side."""
        r = 0
        for l in range(self.levels - 1):
            r += 2 * _convs_at(l) * 2**l  # 3x3x3 convolutions of the encoder and decoder blocks
            r += 2**l  # the 2x2x2 down-sampling (and its transposed up-sampling) reach
        r += 2 * 2 ** (self.levels - 1)  # the bottom block
        return r

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return ``x + correction``; ``x`` is (B, 1, D, H, W), ``cond`` is (B, 2)."""
        b, _, d, h, w = x.shape
        c = cond.to(x.dtype).view(b, 2, 1, 1, 1).expand(b, 2, d, h, w)
        y = torch.cat([x, c], dim=1)
        skips = []
        for enc, down in zip(self.enc, self.down):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.bottom(y)
        for up, dec in zip(self.up, self.dec):
            y = up(y)
            y = dec(torch.cat([y, skips.pop()], dim=1))
        return x + self.head(y)
