"""``tomocnn demo``: runs end to end on a tiny volume and feeds the model its recommended input."""

import numpy as np
import pytest
import torch

from tomocnn.demo import run_demo
from tomocnn.models import WedgeModel, WedgeNet3D

pytest.importorskip("astra")


def _tiny(card):
    torch.manual_seed(0)
    return WedgeModel(WedgeNet3D(width=4, levels=2), {"name": "tiny", **card})


@pytest.mark.parametrize(
    ("card", "rows"),
    [
        ({}, ["SIRT", "CNN"]),
        ({"supported": {"recommended_algorithm": "mlem"}}, ["SIRT", "MLEM", "CNN"]),
    ],
)
def test_demo_prints_figures_and_saves_the_orthoslices(tmp_path, capsys, card, rows):
    png = tmp_path / "demo.png"
    res = run_demo(figure=png, size=16, model=_tiny(card))
    assert list(res) == rows
    for r in res.values():
        assert np.isfinite(r["psnr_db"]) and -1 <= r["ssim"] <= 1
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert all(name in out for name in rows)
