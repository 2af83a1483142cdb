"""Column finding on a held-out synthetic test set, against two baselines, in one run.

The test set is simulated here from seeds the training library never uses (library seeds are
small integers; these start at 10**9), in three scenarios that matter most: nanoparticle edges
(thin columns of 1–3 atoms, vacuum, supports), dumbbells (Si/GaAs [110], GaN [11-20]) and
interfaces/grain boundaries, at doses 1e2, 1e3, 1e4 and 1e5 e/Å².

Methods (all given the image's true pixel size where they can use it):

- atomseg: ``atomseg.locate`` with the shipped model;
- classical (oracle): Gaussian smoothing + ``peak_local_max`` with the true column spacing and,
  per image, the best threshold against the truth;
- Atomap (oracle separation): ``get_atom_positions`` with the true spacing, then centre of mass
  and 2D Gaussian refinement, as its documentation runs it (skipped if atomap is missing; pass
  ``--atomap-images`` to limit its cost).

The truth is what the model is asked to find: columns holding an atom of Z >= ``label_min_z``
(the model card's) that are resolved (nearest such column at least 3 px and the probe size
away; see ``label_min_separation_px``) and detectable at the image's dose (ideal-observer
signal-to-noise ratio of the column's own signal >= 5, Rose's criterion; see
``atomseg.sim.library.column_snr``). Other columns (light, such as O; unresolved, merged into
one blob; or too weak to tell from the noise at this dose) and columns centred just outside the
image, part of which shows at its border (``Sample.outside_columns``), are "don't care": a
detection on one is neither a hit nor a false positive, for every method alike; so is one at
the centre of a dumbbell neither column of which is asked for (``atomseg.detect.pair_centres``:
the pair images as one blob, and a finder that marks it marks it there). Per dose the
script also prints the share of resolved columns that are detectable, and atomseg's recall
over all resolved columns, so that nothing is hidden by the criterion.

Columns are matched one-to-one within 0.3 × the nearest-neighbour distance; precision, recall,
F1 and position RMSE (pm, over matched columns) are printed per dose, plus RMSE at 1e4 for pixel
sizes ≤ 0.2 Å (all images, and those drawn without scan distortion: scan-line jitter moves the
columns in the image away from their true positions by up to ~0.1 Å, which no finder can undo
from one frame), the Cramér-Rao bound of the RMSE over the detectable columns (the best any
unbiased finder could do, neighbours taken as known), and atomseg's speed on 512² images.

    python benchmarks/bench_atomseg_detect.py [--n 8] [--size 256] [--atomap-images 4]
                                              [--speed-only]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from atomseg.detect import classical_baseline, match_positions, nearest_neighbour_distance
from atomseg.infer import locate
from atomseg.sim import simulate_image

SCENARIOS = {
    "edges": dict(scene="particle"),
    "dumbbells": dict(scene="slab", structure=("Si", "GaAs", "GaN")),
    "interfaces": dict(scene=("interface", "grain_boundary")),
}
DOSES = (1e2, 1e3, 1e4, 1e5)
DETECTABLE_SNR = 5.0  # Rose's criterion


def _atomap(image, spacing_px):
    import atomap.api as am
    import hyperspy.api as hs

    s = hs.signals.Signal2D(image.astype(np.float64))
    sep = max(2, int(0.75 * spacing_px))
    points = am.get_atom_positions(s, separation=sep)
    if len(points) == 0:
        return np.zeros((0, 2))
    sub = am.Sublattice(points, image=s.data)
    sub.find_nearest_neighbors()
    sub.refine_atom_positions_using_center_of_mass(show_progressbar=False)
    sub.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    xy = np.asarray(sub.atom_positions, dtype=float).reshape(-1, 2)  # atomap gives (x, y)
    return xy[:, ::-1]


def _oracle_classical(image, spacing_px, true, tol, other):
    best = None
    for thr in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
        pred = classical_baseline(image, spacing_px=spacing_px, threshold=thr)
        pred = pred[["row", "col"]].to_numpy()
        m = match_positions(pred, true, max_distance_px=tol, ignore=other)
        # best F1; with nothing detectable to find (F1 0 throughout), the fewest false ones
        if best is None or (m["f1"], -m["fp"]) > (best["f1"], -best["fp"]):
            best = m
    return best


def _truth(s, min_z):
    """The truth of a simulated sample (module docstring; :meth:`atomseg.sim.Sample.truth`).

    Returns the mask of the asked-for columns in ``s.columns`` and the positions of those
    (``true``), of every resolved column (``every``), of the don't-care columns for the
    asked-for truth (``other``: present but not asked for, or centred just outside) and for the
    all-resolved truth (``rest``: present but not resolved, or centred just outside).
    """
    t = s.truth(min_z)
    return t["asked"], t["true"], t["resolved"], t["dont_care"], t["dont_care_resolved"]


def _draw_case(scenario, rng):
    kw = dict(SCENARIOS[scenario])
    for k, v in list(kw.items()):
        if isinstance(v, tuple):
            kw[k] = v[rng.integers(len(v))]
    if scenario == "dumbbells":
        kw["zone_axis"] = "11-20" if kw["structure"] == "GaN" else "110"
    return kw


def _summary(ms, pixel_sizes, jitters, px_max=None, undistorted=False):
    """(precision, recall, F1, RMSE pm, images) pooled over the images kept by the filters."""
    keep = [
        m
        for m, p, j in zip(ms, pixel_sizes, jitters)
        if (px_max is None or p <= px_max) and (not undistorted or j == 0)
    ]
    tp = sum(m["tp"] for m in keep)
    fp = sum(m["fp"] for m in keep)
    fn = sum(m["fn"] for m in keep)
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    f1 = 2 * prec * rec / max(prec + rec, 1e-12)
    sq = [m["rmse_pm"] ** 2 * m["tp"] for m in keep if m["tp"]]
    rmse = float(np.sqrt(sum(sq) / max(tp, 1)))
    return prec, rec, f1, rmse, len(keep)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="images per scenario and dose")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--atomap-images", type=int, default=4, help="per scenario and dose; 0: off")
    ap.add_argument("--model", default="default")
    ap.add_argument("--speed-only", action="store_true", help="only the speed measurement")
    args = ap.parse_args(argv)
    try:
        import atomap.api  # noqa: F401
    except ImportError:
        args.atomap_images = 0
        print("atomap not installed: its column is skipped (pip install atomap)")
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(2026)
    from atomseg.models import load_model

    # the truth is what the model was trained to find (see the module docstring)
    min_z = int(load_model(args.model).config.get("label_min_z", 1))
    config = {"label_min_z": min_z, "label_min_snr": DETECTABLE_SNR}
    methods = ["atomseg", "classical (oracle)", "Atomap (oracle sep.)"]
    print(
        f"{args.n} images of {args.size}² per scenario and dose; scenarios: {', '.join(SCENARIOS)}"
    )
    print("| dose e/Å² | method | precision | recall | F1 | RMSE pm | images |")
    print("|---|---|---|---|---|---|---|")
    at_1e4 = {m: ([], [], []) for m in methods}
    coverage = {d: np.zeros(3) for d in DOSES}  # resolved, detectable, found by atomseg
    bound = {d: np.zeros(2) for d in (*DOSES, "1e4 fine")}  # Cramér-Rao: sum of squares, n
    for dose in () if args.speed_only else DOSES:
        res = {m: ([], [], []) for m in methods}
        for scenario in SCENARIOS:
            for k in range(args.n):
                kw = _draw_case(scenario, rng)
                seed = 10**9 + int(dose) * 1000 + 100 * list(SCENARIOS).index(scenario) + k
                s = simulate_image(
                    shape=(args.size, args.size),
                    seed=seed,
                    dose_e_per_A2=dose,
                    config=config,  # labels (resolved columns) as the model defines them
                    **kw,
                )
                asked, true, every, other, rest = _truth(s, min_z)
                if len(every) < 4:
                    continue
                px = s.pixel_size_angstrom
                spacing = nearest_neighbour_distance(every)
                tol = 0.3 * spacing
                pm = 100.0 * px
                jitter = float(s.params.get("line_jitter_angstrom") or 0.0)

                def record(method, m, px=px, pm=pm, res=res, jitter=jitter):
                    m = dict(m, rmse_pm=m["rmse_px"] * pm if m["tp"] else 0.0)
                    res[method][0].append(m)
                    res[method][1].append(px)
                    res[method][2].append(jitter)

                table = locate(s.image, pixel_size_angstrom=px, model=args.model)
                found = table[["row", "col"]].to_numpy()
                record("atomseg", match_positions(found, true, max_distance_px=tol, ignore=other))
                m_all = match_positions(found, every, max_distance_px=tol, ignore=rest)
                coverage[dose] += np.array([len(every), len(true), m_all["tp"]])
                crb = s.columns.loc[asked, "position_crb_px"].to_numpy() * pm
                for key in (dose, "1e4 fine") if dose == 1e4 and px <= 0.2 else (dose,):
                    bound[key] += np.array([np.sum(crb**2), len(crb)])
                record("classical (oracle)", _oracle_classical(s.image, spacing, true, tol, other))
                if k < args.atomap_images:
                    try:
                        pred = _atomap(s.image, spacing)
                    except Exception:  # atomap can fail on empty/odd images: count as nothing
                        pred = np.zeros((0, 2))
                    m = match_positions(pred, true, max_distance_px=tol, ignore=other)
                    record("Atomap (oracle sep.)", m)
        for m in methods:
            if not res[m][0]:
                continue
            p, r, f1, rmse, _ = _summary(*res[m])
            n_img = len(res[m][0])
            if sum(x["tp"] + x["fn"] for x in res[m][0]) == 0:  # nothing detectable to find
                fp = sum(x["fp"] for x in res[m][0]) / n_img
                print(f"| {dose:.0e} | {m} | – | – | – | – | {n_img} ({fp:.1f} false/image) |")
                continue
            print(f"| {dose:.0e} | {m} | {p:.3f} | {r:.3f} | {f1:.3f} | {rmse:.1f} | {n_img} |")
            if dose == 1e4:
                at_1e4[m] = res[m]
    print()
    print(
        "| dose e/Å² | resolved columns | detectable (SNR >= 5) | atomseg recall, all resolved "
        "| Cramér-Rao bound of the RMSE, detectable columns, pm |"
    )
    print("|---|---|---|---|---|")
    for d, (n_all, n_det, n_hit) in coverage.items():
        if n_all:
            crb = np.sqrt(bound[d][0] / bound[d][1]) if bound[d][1] else float("nan")
            print(
                f"| {d:.0e} | {n_all:.0f} | {n_det / n_all:.1%} | {n_hit / n_all:.3f} | {crb:.1f} |"
            )
    if bound["1e4 fine"][1]:
        crb = np.sqrt(bound["1e4 fine"][0] / bound["1e4 fine"][1])
        print(f"Cramér-Rao bound of the RMSE at 1e4, pixel size ≤ 0.2 Å: {crb:.1f} pm")
    print()
    for m in methods:
        if at_1e4[m][0]:
            _, _, f1, rmse, _ = _summary(*at_1e4[m], px_max=0.2)
            _, _, f1_u, rmse_u, n_u = _summary(*at_1e4[m], px_max=0.2, undistorted=True)
            print(
                f"1e4, pixel size ≤ 0.2 Å: {m}: F1 {f1:.3f}, RMSE {rmse:.1f} pm; "
                f"without scan distortion ({n_u} images): F1 {f1_u:.3f}, RMSE {rmse_u:.1f} pm"
            )

    samples = [
        simulate_image(shape=(512, 512), seed=10**9 + 7 + i, config=config) for i in range(6)
    ]
    cases = {
        "at the model's 0.15 Å/px (no resampling)": [
            (
                simulate_image(
                    shape=(512, 512), seed=10**9 + 7 + i, config=config, pixel_size_angstrom=0.15
                ).image,
                0.15,
            )
            for i in range(6)
        ],  # fmt: skip
        "calibrated, 0.05-0.5 Å/px (resampled to 0.15)": [
            (s.image, s.pixel_size_angstrom) for s in samples
        ],
        "uncalibrated, scale searched (atomseg.infer.search_pixel_size)": [
            (s.image, None) for s in samples
        ],
    }
    locate(samples[0].image, model=args.model)  # warm-up
    print()
    for what, images in cases.items():
        t0 = time.perf_counter()
        for im, px in images:
            locate(im, pixel_size_angstrom=px, model=args.model)
        dt = (time.perf_counter() - t0) / len(images)
        print(f"speed: {1 / dt:.2f} images/s at 512², {what} (segmentation + detection)")


if __name__ == "__main__":
    main()
