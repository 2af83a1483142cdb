"""Circular Hough detection, sub-pixel refinement and matching against a ground truth.

Column finding on a segmentation (probability) map, after the U-net:

hough_circle               circular Hough transform by FFT; equals scikit-image's on binary edges
detect_columns             probability map -> table of columns: row, col, score, radius, intensity
refine_positions           sub-pixel refinement on an image: iterated centroid or Gaussian fit
match_positions            one-to-one matching of predicted and true columns (precision, recall,
                           F1, RMSE)
nearest_neighbour_distance median nearest-neighbour distance of a set of columns
pair_centres               centres of the dumbbells no column of which is asked for (a
                           detection there is "don't care" in the benchmarks)
classical_baseline         smoothing + local maxima + centroid, the non-learnt reference
contrast_to_noise          how far each column stands out of the image's own noise (the
                           detection gate); noise_sigma, the robust noise estimate it uses
gate_columns               the gate, letting fainter columns through where the lattice of the
                           clear ones puts a column; lattice_vectors, lattice_support

Conventions: positions are ``(row, col)`` in pixels of the input image, as sub-pixel floats
(pixel ``(i, j)`` has its centre at ``(i, j)``); distances and radii are in pixels (``_px``).
"""

from .baseline import classical_baseline
from .contrast import contrast_to_noise, noise_sigma
from .hough import detect_columns, hough_circle
from .lattice import gate_columns, lattice_support, lattice_vectors
from .metrics import match_positions, nearest_neighbour_distance, pair_centres
from .refine import refine_positions

__all__ = [
    "hough_circle",
    "detect_columns",
    "refine_positions",
    "match_positions",
    "nearest_neighbour_distance",
    "pair_centres",
    "classical_baseline",
    "contrast_to_noise",
    "noise_sigma",
    "gate_columns",
    "lattice_vectors",
    "lattice_support",
]
