"""How faithful a volume is to the measured projections: the reprojection residual.

A reconstruction, or a CNN's output, is re-projected at the *measured* angles and compared with
the measured projections. A volume that moved away from what was measured (smoothed real
structure, invented intensity) shows it here, whatever it looks like.
"""

from __future__ import annotations

import numpy as np

__all__ = ["consistency"]


def consistency(volume, projections, theta, *, center=None) -> dict:
    """Reprojection residual and mass ratio of a volume against its measured tilt series.

    Parameters
    ----------
    volume : ndarray or h5py.Dataset, shape (n_rows, N, N)
        A reconstruction in TomoPy's layout (read slab by slab).
    projections : ndarray, shape (n_angles, n_rows, N)
        The measured projections it should explain (line integrals, aligned).
    theta : ndarray, shape (n_angles,)
        Their angles, radians.
    center : float, optional
        Rotation centre, TomoPy's convention (None: ``N / 2``).

    Returns
    -------
    dict
        ``residual``: ``||P v - p|| / ||p||`` over the whole series; ``residual_per_angle``:
        the same per projection, shape ``(n_angles,)``; ``mass_ratio``: ``sum(P v) / sum(p)``
        (1 when the volume holds the measured mass); ``theta_deg``: the angles.

    Examples
    --------
    >>> import numpy as np
    >>> from tomocnn.recon import consistency
    >>> from tomocnn.sim import project
    >>> vol = np.zeros((2, 16, 16), np.float32)
    >>> vol[:, 5:11, 6:10] = 1
    >>> theta = np.deg2rad(np.arange(-60.0, 61.0, 10.0))
    >>> c = consistency(vol, project(vol, theta), theta)
    >>> round(c["residual"], 6), round(c["mass_ratio"], 6)
    (0.0, 1.0)
    >>> round(consistency(1.1 * vol, project(vol, theta), theta)["mass_ratio"], 3)
    1.1
    """
    from tomocnn.io._files import block_starts
    from tomocnn.recon._checks import _check_projections, _check_theta
    from tomocnn.sim import project

    proj = _check_projections(projections)
    theta = _check_theta(theta, proj.shape[0])
    shape = tuple(getattr(volume, "shape", np.shape(volume)))
    if len(shape) != 3 or shape[0] != proj.shape[1] or shape[1:] != (proj.shape[2],) * 2:
        raise ValueError(
            f"volume of shape {shape} does not match projections of shape {proj.shape}: "
            f"expected ({proj.shape[1]}, {proj.shape[2]}, {proj.shape[2]})"
        )
    diff2 = np.zeros(proj.shape[0])
    meas2 = np.zeros(proj.shape[0])
    mass = 0.0
    for r0, r1 in block_starts(shape, 4):
        slab = np.asarray(volume[r0:r1], dtype=np.float32)
        rep = project(slab, theta, center=center).astype(np.float64)
        meas = proj[:, r0:r1].astype(np.float64)
        diff2 += ((rep - meas) ** 2).sum(axis=(1, 2))
        meas2 += (meas**2).sum(axis=(1, 2))
        mass += rep.sum()
    total = float(proj.sum(dtype=np.float64))
    return {
        "residual": float(np.sqrt(diff2.sum() / max(meas2.sum(), 1e-30))),
        "residual_per_angle": np.sqrt(diff2 / np.maximum(meas2, 1e-30)),
        "mass_ratio": float(mass / total) if total != 0 else float("nan"),
        "theta_deg": np.rad2deg(theta),
    }
