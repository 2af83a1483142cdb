"""Training the wedge-removal CNN."""

__all__: list[str] = []
