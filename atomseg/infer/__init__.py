"""Segmentation and column finding on images, stacks and volume slices.

``segment`` returns the U-net probability map; ``locate`` returns one table row per column;
``locate_stack`` does every frame of a tilt series or every slice of a volume along any axis;
``locate_atoms`` links a tomogram's slices into one row per atom (3D, sub-voxel).
``guess_pixel_size`` estimates the scale of an uncalibrated image from its lattice and
``search_pixel_size`` (what the functions above use) refines it with the network;
``check_pixel_size`` says when a given one looks wrong, ``check_polarity`` when the image
looks inverted (BF/ABF contrast, columns dark) and ``check_annotations`` when it holds a
burned-in scale bar (whose columns are dropped); the three functions above warn then.
"""

from atomseg.infer.annotations import burned_in_boxes, check_annotations
from atomseg.infer.atoms import link_frames, locate_atoms
from atomseg.infer.columns import detect_files, locate, locate_stack, save_overlay, segment
from atomseg.infer.polarity import INVERTED_SKEWNESS, check_polarity, polarity_skewness
from atomseg.infer.scale import (
    check_pixel_size,
    guess_pixel_size,
    lattice_spacing_px,
    search_pixel_size,
)

__all__ = [
    "segment",
    "locate",
    "locate_stack",
    "locate_atoms",
    "link_frames",
    "save_overlay",
    "detect_files",
    "guess_pixel_size",
    "search_pixel_size",
    "check_pixel_size",
    "lattice_spacing_px",
    "check_polarity",
    "polarity_skewness",
    "INVERTED_SKEWNESS",
    "check_annotations",
    "burned_in_boxes",
]
