"""Data Exchange HDF5, TIFF, MRC and .npy reading and writing."""

__all__: list[str] = []
