"""3D phantoms and simulated tilt series."""

__all__: list[str] = []
