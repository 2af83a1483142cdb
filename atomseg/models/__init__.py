"""The U-net, the model registry and the shipped weights."""

__all__: list[str] = []
