"""Synthetic ADF-STEM images with exact ground truth."""

__all__: list[str] = []
