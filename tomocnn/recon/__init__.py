"""Tomographic reconstruction backends."""

__all__: list[str] = []
