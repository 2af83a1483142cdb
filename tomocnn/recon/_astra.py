"""The ``"astra"`` backend (private).

* CPU (``astra.use_cuda()`` is False): ASTRA's 2-D CPU algorithms (``SIRT``, ``SART``, ``CGLS``,
  ``FBP``) with the ``linear`` projector, one slice at a time, as TomoPy's ASTRA wrapper does.
  ASTRA has no CPU MLEM: asking for it raises a ``ValueError`` (use ``backend="torch"``).
* CUDA: ``SIRT3D_CUDA`` / ``CGLS3D_CUDA`` on the whole volume at once; ``FBP_CUDA``,
  ``SART_CUDA`` and ``EM_CUDA`` (2-D) slice by slice. Nothing here touches a CUDA algorithm
  unless ``astra.use_cuda()`` is True (a CUDA call without CUDA can abort the interpreter).

``n_iter`` counts full passes over the data for every algorithm: a SART pass is ``n_angles``
ASTRA SART iterations, taken in the order of ``theta`` (``ProjectionOrder = "sequential"``).
FBP sinograms are pre-weighted by each angle's angular spacing (see ``_angular_weights``), so
that a limited or uneven range is normalised as in the built-in backend; for ``n`` even angles
over pi the weights are 1 and ASTRA's own FBP is unchanged. ASTRA's FBP accepts only the plain
``parallel`` geometry, so with an off-centre rotation axis the (identical) ramp filter is
applied here and ASTRA's back-projector (``BP``/``BP_CUDA``) runs on the shifted geometry.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tomocnn.recon._geometry import _angular_weights, _astra_geometries, _filter_sinograms

_CPU_NAMES = {"sirt": "SIRT", "sart": "SART", "cgls": "CGLS", "fbp": "FBP"}
_CUDA2D_NAMES = {
    "sirt": "SIRT_CUDA",
    "sart": "SART_CUDA",
    "cgls": "CGLS_CUDA",
    "fbp": "FBP_CUDA",
    "mlem": "EM_CUDA",
}
_CUDA3D_NAMES = {"sirt": "SIRT3D_CUDA", "cgls": "CGLS3D_CUDA"}


def _fbp_row_weights(theta: np.ndarray) -> np.ndarray:
    return (_angular_weights(theta) * theta.size / math.pi).astype(np.float32)


def _run_2d(name, proj_geom, vol_geom, sino, iterations, options, projector_id=None):
    import astra

    sid = astra.data2d.create("-sino", proj_geom, sino)
    vid = astra.data2d.create("-vol", vol_geom, 0.0)
    cfg = astra.astra_dict(name)
    cfg["ProjectionDataId"] = sid
    cfg["ReconstructionDataId"] = vid
    if projector_id is not None:
        cfg["ProjectorId"] = projector_id
    cfg["option"] = dict(options)
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, iterations)
        return astra.data2d.get(vid).astype(np.float32)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, vid])


def _options(algorithm, min_constraint, filter_name):
    options = {}
    if algorithm in ("sirt", "sart") and min_constraint is not None:
        options["MinConstraint"] = float(min_constraint)
    if algorithm == "sart":
        options["ProjectionOrder"] = "sequential"
    if algorithm == "fbp":
        options["FilterType"] = filter_name
    return options


def _iterations(algorithm, n_iter, n_angles):
    if algorithm == "fbp":
        return 1
    if algorithm == "sart":
        return n_iter * n_angles
    return n_iter


def reconstruct_astra(
    proj, theta, centers, *, algorithm, n_iter, filter_name, min_constraint, out, bar
):
    """Reconstruct ``proj`` into ``out`` with ASTRA (CUDA if available, else CPU)."""
    import astra

    if astra.use_cuda():
        return _reconstruct_cuda(
            proj,
            theta,
            centers,
            algorithm=algorithm,
            n_iter=n_iter,
            filter_name=filter_name,
            min_constraint=min_constraint,
            out=out,
            bar=bar,
        )
    if algorithm not in _CPU_NAMES:
        raise ValueError(
            f"ASTRA has no CPU implementation of {algorithm!r} (its EM is CUDA only); "
            "use backend='torch' (or 'auto') for mlem"
        )
    n_angles, n_rows, n_cols = proj.shape
    options = _options(algorithm, min_constraint, filter_name)
    iterations = _iterations(algorithm, n_iter, n_angles)
    row_w = _fbp_row_weights(theta)[:, None] if algorithm == "fbp" else None
    projectors = {}
    try:
        for r in range(n_rows):
            c = float(centers[r])
            if c not in projectors:
                pg, vg = _astra_geometries(theta, n_cols, c)
                projectors[c] = (astra.create_projector("linear", pg, vg), pg, vg)
            pid, pg, vg = projectors[c]
            sino = np.ascontiguousarray(proj[:, r, :], dtype=np.float32)
            name = _CPU_NAMES[algorithm]
            if row_w is not None:
                sino = sino * row_w
                if pg["type"] != "parallel":
                    # ASTRA's CPU FBP takes only the plain parallel geometry: apply the same
                    # ramp filter here and ASTRA's back-projector on the shifted geometry
                    sino = _filter_sinograms(sino, filter_name) * np.float32(math.pi / n_angles)
                    name = "BP"
            out[r] = _run_2d(name, pg, vg, sino, iterations, options, pid)
            bar.update(1)
    finally:
        for pid, _, _ in projectors.values():
            astra.projector.delete(pid)
    return out


# --- CUDA ---------------------------------------------------------------------------------


def _par3d_vectors(theta, n_cols, center, y_sign, z_sign):
    """``parallel3d_vec`` rows (ray, detector centre, u, v) for our convention.

    ``y_sign = -1`` when ASTRA's 3-D ``y`` runs against the row index (as in its 2-D
    geometry), ``+1`` when it runs with it; ``z_sign`` likewise for slices vs detector rows.
    """
    theta = np.asarray(theta, dtype=np.float64)
    s, c = np.sin(theta), np.cos(theta)
    # 2-D convention (y up): ray (sin, -cos), u (cos, sin); mirror y when y_sign = +1
    ray = np.stack([s, y_sign * c, np.zeros_like(s)], axis=1)
    u = np.stack([c, -y_sign * s, np.zeros_like(s)], axis=1)
    v = np.tile([0.0, 0.0, float(z_sign)], (theta.size, 1))
    d = (n_cols / 2.0 - center) * u
    return np.concatenate([ray, d, u, v], axis=1)


@functools.lru_cache(maxsize=1)
def _cuda3d_orientation():
    """Find (y_sign, z_sign) of ASTRA's 3-D CUDA frame by projecting one voxel (cached).

    The voxel (slice 1, row 3, column 11) of an (8, 16, 16) volume is projected at 0 and
    90 degrees with the 2-D-like vectors; our convention puts it at detector column 11 at 0
    degrees and at column ``-a1 + 7.5 = 12`` at 90 degrees (``a1 = 3.5 - 8``), on detector row 1.
    A mirrored answer at 90 degrees means ASTRA's 3-D ``y`` runs with the row index; a
    mirrored row, that its ``z`` runs against the slice index. Returns None if the answer
    is anything else; the caller then falls back to 2-D slices.
    """
    import astra

    n_rows, n = 8, 16
    vol = np.zeros((n_rows, n, n), dtype=np.float32)
    vol[1, 3, 11] = 1.0
    theta = np.array([0.0, math.pi / 2])
    vol_geom = astra.create_vol_geom(n, n, n_rows)
    vectors = _par3d_vectors(theta, n, n / 2.0, -1.0, 1.0)
    proj_geom = astra.create_proj_geom("parallel3d_vec", n_rows, n, vectors)
    sid, sino = astra.create_sino3d_gpu(vol, proj_geom, vol_geom)
    astra.data3d.delete(sid)
    peaks = [np.unravel_index(int(np.argmax(sino[:, a, :])), (n_rows, n)) for a in (0, 1)]
    (row0, col0), (row1, col1) = peaks
    if col0 != 11 or row0 != row1:
        return None
    y_sign = {12: -1.0, n - 1 - 12: 1.0}.get(int(col1))
    z_sign = {1: 1.0, n_rows - 2: -1.0}.get(int(row0))
    if y_sign is None or z_sign is None:
        return None
    return y_sign, z_sign


def _reconstruct_cuda(
    proj, theta, centers, *, algorithm, n_iter, filter_name, min_constraint, out, bar
):
    import astra

    n_angles, n_rows, n_cols = proj.shape
    orientation = _cuda3d_orientation() if algorithm in _CUDA3D_NAMES else None
    if orientation is not None and np.all(centers == centers[0]):
        y_sign, z_sign = orientation
        vectors = _par3d_vectors(theta, n_cols, float(centers[0]), y_sign, z_sign)
        proj_geom = astra.create_proj_geom("parallel3d_vec", n_rows, n_cols, vectors)
        vol_geom = astra.create_vol_geom(n_cols, n_cols, n_rows)
        sino = np.ascontiguousarray(np.transpose(proj, (1, 0, 2)), dtype=np.float32)
        sid = astra.data3d.create("-sino", proj_geom, sino)
        vid = astra.data3d.create("-vol", vol_geom, 0.0)
        cfg = astra.astra_dict(_CUDA3D_NAMES[algorithm])
        cfg["ProjectionDataId"] = sid
        cfg["ReconstructionDataId"] = vid
        cfg["option"] = _options(algorithm, min_constraint, filter_name)
        aid = astra.algorithm.create(cfg)
        try:
            astra.algorithm.run(aid, n_iter)
            out[...] = astra.data3d.get(vid).astype(np.float32)
        finally:
            astra.algorithm.delete(aid)
            astra.data3d.delete([sid, vid])
        bar.update(n_rows)
        return out
    options = _options(algorithm, min_constraint, filter_name)
    iterations = _iterations(algorithm, n_iter, n_angles)
    row_w = _fbp_row_weights(theta)[:, None] if algorithm == "fbp" else None
    for r in range(n_rows):
        pg, vg = _astra_geometries(theta, n_cols, float(centers[r]))
        sino = np.ascontiguousarray(proj[:, r, :], dtype=np.float32)
        name = _CUDA2D_NAMES[algorithm]
        if row_w is not None:
            sino = sino * row_w
            if pg["type"] != "parallel":  # as on the CPU: our (= ASTRA's) filter, then BP
                sino = _filter_sinograms(sino, filter_name) * np.float32(math.pi / n_angles)
                name = "BP_CUDA"
        out[r] = _run_2d(name, pg, vg, sino, iterations, options)
        bar.update(1)
    return out
