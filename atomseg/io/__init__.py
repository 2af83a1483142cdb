"""Reading STEM images with their calibration."""

__all__: list[str] = []
