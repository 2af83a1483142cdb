"""Scale bars and label boxes burned into an exported image.

A PNG or TIFF exported from the microscope's software often carries a scale bar: a filled
rectangle at the image's brightest value. The network reads its ends and edges as columns
(the real Au image with a 110 × 11 px bar: 4 "columns" on it). Such rectangles are found
here; ``locate`` and ``locate_stack`` drop the columns on them and warn.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: a burned-in rectangle holds at least this many pixels (smaller ones: a saturated pixel or
#: a letter's stroke)
MIN_BOX_PX = 64

#: and fills at least this share of its bounding box (a saturated column top, round, fills
#: π/4 of its box; a scale bar or a label's background all of it)
MIN_BOX_FILL = 0.95


def burned_in_boxes(image: np.ndarray) -> list[tuple[slice, slice]]:
    """The filled, axis-aligned rectangles at the image's maximum value (scale bars, label
    boxes), as (row, column) slices.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> burned_in_boxes(image)
    []
    >>> image[50:54, 10:40] = 2.0  # a scale bar
    >>> burned_in_boxes(image)
    [(slice(50, 54, None), slice(10, 40, None))]
    """
    img = np.asarray(image)
    top = img.max()
    at_top = img == top
    if np.count_nonzero(at_top) < MIN_BOX_PX:
        return []
    labels, _ = ndimage.label(at_top)
    boxes = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        area = np.count_nonzero(labels[box] == k)
        size = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
        if area >= MIN_BOX_PX and area >= MIN_BOX_FILL * size:
            boxes.append(box)
    return boxes


def on_boxes(boxes, rows, cols, margin_px: float) -> np.ndarray:
    """Whether each position lies on one of ``boxes`` or within ``margin_px`` of it.

    Examples
    --------
    >>> on_boxes([(slice(50, 54), slice(10, 40))], [52.0, 20.0], [39.5, 20.0], 2.0).tolist()
    [True, False]
    """
    rows, cols = np.asarray(rows, float), np.asarray(cols, float)
    hit = np.zeros(rows.shape, dtype=bool)
    for r, c in boxes:  # pixel i covers [i - 0.5, i + 0.5]
        in_rows = (rows >= r.start - 0.5 - margin_px) & (rows <= r.stop - 0.5 + margin_px)
        in_cols = (cols >= c.start - 0.5 - margin_px) & (cols <= c.stop - 0.5 + margin_px)
        hit |= in_rows & in_cols
    return hit


def check_annotations(image: np.ndarray) -> str | None:
    """Say that the image holds burned-in rectangles (:func:`burned_in_boxes`), or None.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> check_annotations(image) is None
    True
    >>> image[50:54, 10:40] = 2.0
    >>> print(check_annotations(image))  # doctest: +ELLIPSIS
    the image holds 1 filled rectangle at its brightest value (rows 50-53, cols 10-39): ...
    """
    boxes = burned_in_boxes(image)
    if not boxes:
        return None
    where = ", ".join(
        f"rows {r.start}-{r.stop - 1}, cols {c.start}-{c.stop - 1}" for r, c in boxes[:3]
    )
    more = f" and {len(boxes) - 3} more" if len(boxes) > 3 else ""
    s = "" if len(boxes) == 1 else "s"
    return (
        f"the image holds {len(boxes)} filled rectangle{s} at its brightest value ({where}"
        f"{more}): a burned-in scale bar or label? The columns found on it are dropped; crop "
        "it away (its text is not recognised)."
    )
