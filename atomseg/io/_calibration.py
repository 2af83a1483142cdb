"""Pixel sizes from file metadata, converted to ångström (private helpers)."""

from __future__ import annotations

import math
import warnings

#: ångström per unit, keys lower-case; "µ" (micro sign) and "μ" (Greek mu) are both accepted
_ANGSTROM_PER_UNIT = {
    "pm": 0.01,
    "picometer": 0.01,
    "picometre": 0.01,
    "å": 1.0,
    "\u212b": 1.0,  # the ANGSTROM SIGN code point
    "a": 1.0,
    "angstrom": 1.0,
    "angstroms": 1.0,
    "ang": 1.0,
    "nm": 10.0,
    "nanometer": 10.0,
    "nanometre": 10.0,
    "nanometers": 10.0,
    "µm": 1e4,
    "um": 1e4,
    "micron": 1e4,
    "microns": 1e4,
    "micrometer": 1e4,
    "micrometre": 1e4,
    "mm": 1e7,
    "cm": 1e8,
    "m": 1e10,
    "meter": 1e10,
    "meters": 1e10,
    "metre": 1e10,
}

#: above this a "pixel size" is taken to be a print resolution, not a calibration (1 µm)
_MAX_PLAUSIBLE_ANGSTROM = 1e4


def angstrom_per_unit(unit) -> float | None:
    """Ångström in one ``unit`` (nm, Å, pm, µm/um/micron, ...), or None if not a length unit."""
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    unit = str(unit).strip()
    if "\\u" in unit:  # ImageJ writes non-ASCII units escaped, e.g. "\\u00B5m"
        try:
            unit = unit.encode("ascii", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            return None
    unit = unit.replace("\u03bc", "\u00b5").lower()  # Greek mu -> micro sign
    return _ANGSTROM_PER_UNIT.get(unit)


def is_reciprocal(unit) -> bool:
    """True for units such as ``1/nm`` or ``nm^-1`` (a diffraction pattern or FFT)."""
    text = str(unit or "").replace(" ", "")
    return text.startswith("1/") or text.endswith(("^-1", "-1", "⁻¹"))


def pixel_size_from_axes(axes: list[dict], *, name: str) -> float | None:
    """Pixel size in Å from the last two RosettaSciIO axes (rows, cols), or None if unknown."""
    if len(axes) < 2:
        return None
    sizes = []
    for axis in axes[-2:]:
        units, scale = axis.get("units"), axis.get("scale")
        if is_reciprocal(units):
            warnings.warn(
                f"{name}: the image is calibrated in {units} (reciprocal space); "
                "no real-space pixel size is returned",
                UserWarning,
                stacklevel=4,
            )
            return None
        factor = angstrom_per_unit(units)
        if factor is None or scale is None or not math.isfinite(scale) or scale <= 0:
            return None
        sizes.append(float(scale) * factor)
    return column_pixel_size(*sizes, name=name)


def column_pixel_size(row_size: float, col_size: float, *, name: str) -> float:
    """The column pixel size, with a warning naming ``name`` when the pixels are not square."""
    if not math.isclose(row_size, col_size, rel_tol=1e-2):
        warnings.warn(
            f"{name}: non-square pixels ({row_size:g} Å along rows, {col_size:g} Å along "
            "columns); the column pixel size is returned",
            UserWarning,
            stacklevel=5,
        )
    return col_size


def tiff_pixel_size(tif) -> float | None:
    """Pixel size in Å of an open ``tifffile.TiffFile``, or None when it is not known.

    Sources, in order: ImageJ metadata (``unit`` with the XResolution tag in pixels per unit),
    FEI/Thermo Fisher metadata (``Scan/PixelWidth`` in metres), and the baseline resolution tags
    when ``ResolutionUnit`` is centimetre and the result is below 1 µm. Resolution in pixels per
    inch is a print setting (dpi), not a calibration, and is ignored.
    """
    page = tif.pages[0]
    xres = _resolution(page)
    ij = tif.imagej_metadata
    if ij is not None and ij.get("unit") is not None and xres:
        factor = angstrom_per_unit(ij.get("unit"))
        if factor is not None:
            return factor / xres
    fei = tif.fei_metadata
    if fei:
        try:
            width = float(fei["Scan"]["PixelWidth"])
        except (KeyError, TypeError, ValueError):
            width = 0.0
        if math.isfinite(width) and width > 0:
            return width * 1e10
    unit = getattr(page, "resolutionunit", None)
    if xres and unit is not None and int(unit) == 3:  # RESUNIT.CENTIMETER
        size = 1e8 / xres
        if size < _MAX_PLAUSIBLE_ANGSTROM:
            return size
    return None


def _resolution(page) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    try:
        num, den = tag.value
        value = num / den
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None
