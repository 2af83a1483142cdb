"""The residual 3D CNN, the model registry and the shipped weights."""

__all__: list[str] = []
