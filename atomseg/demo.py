"""``atomseg demo``: the whole job on built-in defaults.

Simulates a HAADF-STEM image of a gold nanoparticle in [110] (at 1e4 e/Å² unless told; another
structure and zone axis can be asked for), finds its columns
with the shipped model, prints how many of the columns the image shows were found (precision,
recall, F1 and position RMSE against the simulation's exact truth, as the benchmark counts
them) and saves the detections drawn on the image as a PNG.
"""

from __future__ import annotations

import os
import time

__all__ = ["run_demo"]


def run_demo(
    figure: str | os.PathLike | None = "atomseg_demo.png",
    *,
    size: int = 512,
    dose_e_per_A2: float = 1e4,
    seed: int = 0,
    structure: str = "Au",
    zone_axis: str = "110",
    model="default",
    verbose: bool = True,
) -> dict:
    """Simulate a nanoparticle image, locate its columns, score them against the truth.

    The truth is what the benchmark asks for: columns with an atom of Z >= the model's
    ``label_min_z``, resolved, and detectable at the dose (SNR >= 5); a detection on another
    column that is present (light, unresolved, too weak, or centred just outside) counts neither
    way. Columns are matched one-to-one within 0.3 × the nearest-neighbour distance.

    Parameters
    ----------
    figure : path or None
        PNG of the detections on the image (None: no figure).
    size : int
        Image side, pixels (>= 64).
    dose_e_per_A2 : float
        Electron dose.
    seed : int
        Image seed (particle shape, imaging conditions and noise).
    structure, zone_axis : str
        The crystal and the zone axis (names as in :mod:`atomseg.sim.crystals`); None: drawn
        at random from the seed, as in the training library.
    model : str, path or ColumnModel
        As for :func:`atomseg.locate`.
    verbose : bool
        Print what was simulated and found.

    Returns
    -------
    dict
        ``structure``, ``pixel_size_angstrom``, ``columns`` (found), ``asked`` (columns to
        find), ``precision``, ``recall``, ``f1``, ``rmse_pm``, ``seconds`` (of ``locate``).

    Examples
    --------
    >>> result = run_demo(None, size=96, seed=1, verbose=False)
    >>> result["structure"], 0.0 <= result["f1"] <= 1.0
    ('Au [110]', True)
    """
    from atomseg.detect import match_positions, nearest_neighbour_distance
    from atomseg.infer import locate, save_overlay
    from atomseg.infer.columns import _get_model
    from atomseg.sim import simulate_image

    if int(size) < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    model = _get_model(model)
    min_z = int(model.config.get("label_min_z", 1))
    sample = simulate_image(
        shape=(int(size), int(size)),
        seed=int(seed),
        dose_e_per_A2=float(dose_e_per_A2),
        scene="particle",
        **({} if structure is None else {"structure": structure}),
        **({} if zone_axis is None else {"zone_axis": zone_axis}),
        config={"label_min_z": min_z, "label_min_snr": 5.0},
    )
    truth = sample.truth(min_z)
    true, ignore = truth["true"], truth["dont_care"]
    px = sample.pixel_size_angstrom
    start = time.perf_counter()
    table = locate(sample.image, pixel_size_angstrom=px, model=model)
    seconds = time.perf_counter() - start
    resolved = truth["resolved"]
    spacing = nearest_neighbour_distance(resolved) if len(resolved) > 1 else 10.0
    m = match_positions(table[["row", "col"]].to_numpy(), true, max_distance_px=0.3 * spacing,
                        ignore=ignore)  # fmt: skip
    result = {
        "structure": f"{sample.params['structure']} [{sample.params['zone_axis']}]",
        "pixel_size_angstrom": float(px),
        "columns": len(table),
        "asked": len(true),
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "rmse_pm": m["rmse_px"] * px * 100 if m["tp"] else float("nan"),
        "seconds": seconds,
    }
    say = print if verbose else (lambda *a, **k: None)
    say(
        f"{result['structure']} nanoparticle, {size}² at {px:.3f} Å/px, "
        f"{dose_e_per_A2:.0e} e/Å² (seed {seed})"
    )
    say(
        f"found {result['columns']} columns in {seconds:.2f} s; scored against the "
        f"{result['asked']} the image shows clearly (SNR >= 5; fainter ones count neither way): "
        f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}, "
        f"RMSE {result['rmse_pm']:.1f} pm"
    )
    if figure is not None:
        title = f"{result['structure']}: {len(table)} columns (F1 {m['f1']:.3f} vs truth)"
        save_overlay(sample.image, table, figure, title=title)
        say(f"detections drawn on the image: {figure}")
    return result
