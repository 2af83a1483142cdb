"""Tiled, streamed and Dask inference."""

__all__: list[str] = []
