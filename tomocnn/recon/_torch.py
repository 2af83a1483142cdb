"""The built-in ``"torch"`` backend: ASTRA's 2-D projector as a sparse matrix, batched (private).

ASTRA's CPU algorithms reconstruct one slice at a time and walk the rays for every iteration.
Here the projector of one ``(N, N)`` slice is taken once from ASTRA (``astra.projector.matrix``:
the same weights as ASTRA's CPU ``linear`` projector, so the two agree by construction), and
every algorithm runs on all the slices at once as sparse x dense matrix products
(``torch.sparse`` CSR; MKL on a CPU, cuSPARSE on a GPU). The volume block is stored as a
``(N * N, n_slices)`` matrix and the sinograms as ``(n_angles * n_cols, n_slices)``.

The update rules are those of ASTRA's CPU algorithms (SIRT, SART, CGLS) and of TomoPy's MLEM;
tests compare them with ASTRA slice by slice.
"""

from __future__ import annotations

import collections
import functools
import threading
import warnings

import numpy as np

from tomocnn.recon._geometry import _angular_weights, _filter_sinograms, _system_matrix

_EPS = 1e-6


def _resolve_device(device):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device")
    return device


def _to_torch_csr(matrix, device):
    import torch

    # 32-bit indices where they fit: ~10 % faster products (less memory traffic)
    idx = np.int32 if matrix.nnz < 2**31 - 1 else np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(idx)),
            torch.from_numpy(matrix.indices.astype(idx)),
            torch.from_numpy(matrix.data.astype(np.float32)),
            size=matrix.shape,
            dtype=torch.float32,
        ).to(device)


def _inverse(x, eps=_EPS):
    import torch

    return torch.where(x > eps, 1.0 / torch.clamp(x, min=eps), torch.zeros_like(x))


class _SliceOperator:
    """Projector ``A`` of one slice and its adjoint, applied to many slices at once."""

    def __init__(self, theta, n_cols, center, *, projector="linear", device=None):
        import torch

        self.theta = np.asarray(theta, dtype=np.float64)
        self.n_angles = self.theta.size
        self.n_cols = int(n_cols)
        self.device = _resolve_device(device)
        matrix = _system_matrix(self.theta, self.n_cols, center, projector)
        self._matrix = matrix
        self.nnz = int(matrix.nnz)
        self.A = _to_torch_csr(matrix, self.device)
        self.AT = _to_torch_csr(matrix.T.tocsr(), self.device)
        rows = np.asarray(matrix.sum(axis=1), dtype=np.float32).ravel()
        cols = np.asarray(matrix.sum(axis=0), dtype=np.float32).ravel()
        self.row_sums = torch.from_numpy(rows).to(self.device)[:, None]
        self.col_sums = torch.from_numpy(cols).to(self.device)[:, None]

    def forward(self, x):
        return self.A @ x

    def adjoint(self, y):
        return self.AT @ y

    @functools.cached_property
    def per_angle(self):
        """``[(A_a, A_a^T, 1/row sums, 1/col sums)]`` for each angle (SART)."""
        import torch

        out = []
        n = self.n_cols
        for a in range(self.n_angles):
            sub = self._matrix[a * n : (a + 1) * n]
            rows = torch.from_numpy(np.asarray(sub.sum(axis=1), np.float32).ravel())
            cols = torch.from_numpy(np.asarray(sub.sum(axis=0), np.float32).ravel())
            out.append(
                (
                    _to_torch_csr(sub.tocsr(), self.device),
                    _to_torch_csr(sub.T.tocsr(), self.device),
                    _inverse(rows.to(self.device))[:, None],
                    _inverse(cols.to(self.device))[:, None],
                )
            )
        return out


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_MAX_NNZ = 40_000_000  # ~1 GB of cached matrices (A and A^T, values and indices)
_CACHE_MAX_ITEMS = 8
_CACHE_LOCK = threading.Lock()


def _operator(theta, n_cols, center, *, projector="linear", device=None) -> _SliceOperator:
    """The :class:`_SliceOperator` of this geometry and device, from a small LRU cache.

    The cache keeps the most recent operators up to 8 of them and 40 million non-zeros in
    all (a 64^3 geometry with 61 angles has 0.4 million).
    """
    dev = _resolve_device(device)
    key = (
        np.ascontiguousarray(theta, dtype=np.float64).tobytes(),
        int(n_cols),
        float(center),
        projector,
        str(dev),
    )
    with _CACHE_LOCK:
        op = _CACHE.get(key)
        if op is not None:
            _CACHE.move_to_end(key)
            return op
    op = _SliceOperator(theta, n_cols, center, projector=projector, device=dev)
    with _CACHE_LOCK:
        _CACHE[key] = op
        while len(_CACHE) > 1 and (
            len(_CACHE) > _CACHE_MAX_ITEMS or sum(o.nnz for o in _CACHE.values()) > _CACHE_MAX_NNZ
        ):
            _CACHE.popitem(last=False)
    return op


# --- layout conversions -------------------------------------------------------------------


def _sino_block(proj, rows, device):
    """``proj[:, rows, :]`` as a ``(n_angles * n_cols, n_rows)`` float32 tensor."""
    import torch

    block = np.ascontiguousarray(np.transpose(proj[:, rows, :], (0, 2, 1)), dtype=np.float32)
    n_angles, n_cols, n_rows = block.shape
    return torch.from_numpy(block.reshape(n_angles * n_cols, n_rows)).to(device)


def _vol_block_to_numpy(x, n_cols):
    """``(N * N, n_rows)`` tensor to a ``(n_rows, N, N)`` float32 array."""
    arr = x.detach().to("cpu").numpy()
    return np.ascontiguousarray(arr.T).reshape(-1, n_cols, n_cols)


def _vol_to_block(volume, device):
    import torch

    n_rows = volume.shape[0]
    arr = np.ascontiguousarray(volume.reshape(n_rows, -1).T, dtype=np.float32)
    return torch.from_numpy(arr).to(device)


# --- algorithms (x, b: (N*N, B) / (n_angles*n_cols, B) tensors) -----------------------------


def _start(op, b, x0, fill: float):
    """The first iterate: ``x0`` (a ``(N*N, B)`` tensor) or a constant."""
    import torch

    if x0 is not None:
        return x0.clone()
    return torch.full((op.A.shape[1], b.shape[1]), fill, dtype=torch.float32, device=b.device)


def _sirt(op, b, n_iter, min_constraint, tick, x0=None):

    inv_r = _inverse(op.row_sums)
    inv_c = _inverse(op.col_sums)
    x = _start(op, b, x0, 0.0)
    for _ in range(n_iter):
        r = b - op.forward(x)
        r.mul_(inv_r)
        x.add_(op.adjoint(r).mul_(inv_c))
        if min_constraint is not None:
            x.clamp_(min=min_constraint)
        tick()
    return x


def _sart(op, b, n_iter, min_constraint, tick, x0=None):

    n = op.n_cols
    x = _start(op, b, x0, 0.0)
    blocks = op.per_angle
    for _ in range(n_iter):
        for a, (A_a, AT_a, inv_r, inv_c) in enumerate(blocks):
            r = b[a * n : (a + 1) * n] - A_a @ x
            r.mul_(inv_r)
            x.add_((AT_a @ r).mul_(inv_c))
            if min_constraint is not None:
                x.clamp_(min=min_constraint)
        tick()
    return x


def _cgls(op, b, n_iter, min_constraint, tick, x0=None):
    import torch

    x = _start(op, b, x0, 0.0)
    r = b - op.forward(x) if x0 is not None else b.clone()
    p = op.adjoint(r)
    gamma = (p * p).sum(dim=0)
    for _ in range(n_iter):
        q = op.forward(p)
        qq = (q * q).sum(dim=0)
        alpha = torch.where(qq > 0, gamma / torch.where(qq > 0, qq, 1.0), 0.0)
        x.add_(p * alpha)
        r.sub_(q * alpha)
        s = op.adjoint(r)
        gamma_new = (s * s).sum(dim=0)
        beta = torch.where(gamma > 0, gamma_new / torch.where(gamma > 0, gamma, 1.0), 0.0)
        p = s + p * beta
        gamma = gamma_new
        tick()
    return x


def _mlem(op, b, n_iter, min_constraint, tick, x0=None):
    import torch

    b = torch.clamp(b, min=0.0)
    sens_inv = _inverse(op.col_sums)
    # a start of zero stays zero under MLEM's multiplicative update: floor it just above
    x = _start(op, b, x0, 1.0)
    if x0 is not None:
        x.clamp_(min=_EPS)
    for _ in range(n_iter):
        est = op.forward(x)
        ratio = torch.where(est > _EPS, b / torch.clamp(est, min=_EPS), torch.zeros_like(est))
        x.mul_(op.adjoint(ratio).mul_(sens_inv))
        tick()
    return x


def _fbp(op, proj_rows, filter_name, tick):
    """Filtered back-projection; ``proj_rows`` is a numpy ``(n_angles, B, n_cols)`` block."""
    import torch

    weights = _angular_weights(op.theta).astype(np.float32)
    filtered = _filter_sinograms(proj_rows, filter_name) * weights[:, None, None]
    b = torch.from_numpy(
        np.ascontiguousarray(np.transpose(filtered, (0, 2, 1))).reshape(-1, filtered.shape[1])
    ).to(op.device)
    x = op.adjoint(b)
    tick()
    return x


_ITERATIVE = {"sirt": _sirt, "sart": _sart, "cgls": _cgls, "mlem": _mlem}


def _slices_per_block(n_cols: int, n_angles: int) -> int:
    # keep each dense block around 64 MiB (volume and sinogram columns together)
    per_slice = 4 * (n_cols * n_cols + 2 * n_angles * n_cols)
    return max(1, int(64 * 2**20 // per_slice))


def reconstruct_torch(
    proj,
    theta,
    centers,
    *,
    algorithm,
    n_iter,
    filter_name,
    min_constraint,
    device,
    out,
    bar,
    init_recon=None,
):
    """Reconstruct ``proj`` (validated float32) into ``out`` with the built-in backend."""
    import torch

    n_angles, n_rows, n_cols = proj.shape
    block = _slices_per_block(n_cols, n_angles)
    groups = {}
    for r, c in enumerate(centers):
        groups.setdefault(float(c), []).append(r)
    units = max(1, n_iter if algorithm != "fbp" else 1)
    with torch.inference_mode():
        for center, rows in groups.items():
            op = _operator(theta, n_cols, center, device=device)
            for start in range(0, len(rows), block):
                sel = np.asarray(rows[start : start + block])
                tick = _Ticker(bar, len(sel), units)
                if algorithm == "fbp":
                    x = _fbp(op, proj[:, sel, :], filter_name, tick)
                else:
                    b = _sino_block(proj, sel, op.device)
                    x0 = None if init_recon is None else _vol_to_block(init_recon[sel], op.device)
                    x = _ITERATIVE[algorithm](op, b, n_iter, min_constraint, tick, x0)
                tick.finish()
                result = _vol_block_to_numpy(x, n_cols)
                if _contiguous(sel):
                    out[int(sel[0]) : int(sel[-1]) + 1] = result
                else:
                    for i, r in enumerate(sel):
                        out[int(r)] = result[i]
    return out


class _Ticker:
    """Advance a bar over slices by whole slices while a block runs ``units`` iterations."""

    def __init__(self, bar, n_slices: int, units: int):
        self.bar, self.n, self.units = bar, n_slices, units
        self.done = self.shown = 0

    def __call__(self):
        self.done += 1
        now = min(self.n, (self.done * self.n) // self.units)
        if now > self.shown:
            self.bar.update(now - self.shown)
            self.shown = now

    def finish(self):
        if self.shown < self.n:
            self.bar.update(self.n - self.shown)
            self.shown = self.n


def _contiguous(sel: np.ndarray) -> bool:
    return bool(sel.size) and int(sel[-1]) - int(sel[0]) + 1 == sel.size


def project_torch(volume, theta, center, *, projector="linear", device=None):
    """Forward-project ``volume (n_rows, N, N)``; returns ``(n_angles, n_rows, N)`` float32."""
    import torch

    n_rows, n_cols, _ = volume.shape
    op = _operator(theta, n_cols, center, projector=projector, device=device)
    out = np.empty((op.n_angles, n_rows, n_cols), dtype=np.float32)
    block = _slices_per_block(n_cols, op.n_angles)
    with torch.inference_mode():
        for start in range(0, n_rows, block):
            stop = min(n_rows, start + block)
            y = op.forward(_vol_to_block(volume[start:stop], op.device))
            y = y.to("cpu").numpy().reshape(op.n_angles, n_cols, stop - start)
            out[:, start:stop, :] = np.transpose(y, (0, 2, 1))
    return out


def backproject_torch(proj, theta, center, *, projector="linear", device=None):
    """Adjoint of :func:`project_torch`; returns ``(n_rows, N, N)`` float32."""
    import torch

    n_angles, n_rows, n_cols = proj.shape
    op = _operator(theta, n_cols, center, projector=projector, device=device)
    out = np.empty((n_rows, n_cols, n_cols), dtype=np.float32)
    block = _slices_per_block(n_cols, n_angles)
    with torch.inference_mode():
        for start in range(0, n_rows, block):
            stop = min(n_rows, start + block)
            x = op.adjoint(_sino_block(proj, np.arange(start, stop), op.device))
            out[start:stop] = _vol_block_to_numpy(x, n_cols)
    return out
