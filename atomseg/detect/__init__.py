"""Circular Hough detection, sub-pixel refinement and matching."""

__all__: list[str] = []
