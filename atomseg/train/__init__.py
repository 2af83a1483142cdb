"""Training the U-net on a simulated library."""

__all__: list[str] = []
