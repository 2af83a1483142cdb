"""The U-net that segments atomic columns.

A compact 2D U-net (convolution, batch normalisation, ReLU; max-pool down, transposed
convolution up, skip connections) mapping a normalised image to the logit of "inside a column
disc". Input sizes must be multiples of ``2**(levels - 1)``; :func:`atomseg.infer.segment` pads.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """2D U-net returning one logit map.

    Parameters
    ----------
    width : int
        Channels of the first level; level ``l`` has ``width * 2**l``.
    levels : int
        Resolution levels (2 or more).

    Examples
    --------
    >>> import torch
    >>> net = UNet(width=4, levels=3).eval()
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, width: int = 16, levels: int = 4):
        super().__init__()
        if levels < 2 or width < 1:
            raise ValueError(f"need levels >= 2 and width >= 1, got levels={levels}, width={width}")
        self.width = int(width)
        self.levels = int(levels)
        chans = [width * 2**l for l in range(levels)]
        self.enc = nn.ModuleList()
        c_in = 1
        for l in range(levels - 1):
            self.enc.append(_block(c_in, chans[l]))
            c_in = chans[l]
        self.pool = nn.MaxPool2d(2)
        self.bottom = _block(chans[-2], chans[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for l in reversed(range(levels - 1)):
            self.up.append(nn.ConvTranspose2d(chans[l + 1], chans[l], 2, stride=2))
            self.dec.append(_block(2 * chans[l], chans[l]))
        self.head = nn.Conv2d(chans[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, 1, H, W) normalised images to (B, 1, H, W) logits."""
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
