"""Segmentation and column finding on images, stacks and volume slices."""

__all__: list[str] = []
