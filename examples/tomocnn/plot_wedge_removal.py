"""Remove the missing wedge from a simulated ±60° nanoparticle tomogram.

The same steps as a user's script around TomoPy: a tilt series, a reconstruction (here the
built-in SIRT, and MLEM, the default model's recommended input; ``tomopy.recon`` works the
same), then ``tomocnn.remove_wedge``. Saves a before/after orthoslice figure and prints
PSNR/SSIM against the truth.

    python examples/tomocnn/plot_wedge_removal.py [--out tomocnn_wedge_removal.png]
"""

import argparse

from tomocnn.demo import run_demo

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="tomocnn_wedge_removal.png")
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
run_demo(figure=args.out, size=64, seed=args.seed)
