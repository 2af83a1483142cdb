"""The ``"tomopy"`` backend: ``tomopy.recon`` itself, imported lazily (private).

TomoPy is distributed on conda-forge only. It implements ``sirt``, ``mlem`` and ``fbp`` under
the same names; ``sart`` and ``cgls`` are not TomoPy algorithms (use ``backend="astra"`` or
``"torch"``). Arrays, ``theta`` and ``center`` are passed through unchanged: they already follow
TomoPy's conventions. FBP intensities follow TomoPy's own normalisation.
"""

from __future__ import annotations

import numpy as np

TOMOPY_ALGORITHMS = ("sirt", "mlem", "fbp")
_TOMOPY_FILTERS = {
    "ram-lak": "ramlak",
    "shepp-logan": "shepp",
    "cosine": "cosine",
    "hamming": "hamming",
    "hann": "hann",
}


def _import_tomopy():
    try:
        import tomopy
    except ImportError as exc:
        raise ImportError(
            "backend='tomopy' needs TomoPy, which is distributed on conda-forge only: "
            "conda install -c conda-forge tomopy (or use backend='torch' or 'astra')"
        ) from exc
    return tomopy


def reconstruct_tomopy(
    proj, theta, centers, *, algorithm, n_iter, filter_name, out, bar, init_recon=None
):
    """Reconstruct ``proj`` into ``out`` with ``tomopy.recon``, a block of rows at a time."""
    if algorithm not in TOMOPY_ALGORITHMS:
        raise ValueError(
            f"TomoPy has no {algorithm!r}; backend='tomopy' supports {TOMOPY_ALGORITHMS} "
            "(use backend='torch' or 'astra' for sart and cgls)"
        )
    tomopy = _import_tomopy()
    n_rows = proj.shape[1]
    kwargs = {"algorithm": algorithm, "sinogram_order": False}
    if algorithm == "fbp":
        kwargs["filter_name"] = _TOMOPY_FILTERS[filter_name]
    else:
        kwargs["num_iter"] = n_iter
    step = 16
    for start in range(0, n_rows, step):
        stop = min(n_rows, start + step)
        rec = tomopy.recon(
            np.ascontiguousarray(proj[:, start:stop, :]),
            theta.astype(np.float32),
            center=centers[start:stop].astype(np.float32),
            init_recon=None
            if init_recon is None
            else np.ascontiguousarray(init_recon[start:stop], dtype=np.float32),
            **kwargs,
        )
        out[start:stop] = np.asarray(rec, dtype=np.float32)
        bar.update(stop - start)
    return out
