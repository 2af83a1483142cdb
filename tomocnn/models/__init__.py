"""The residual 3D CNN (``WedgeNet3D``), the model registry and the shipped weights.

``load_model(name)`` returns a :class:`WedgeModel`; ``list_models()`` lists shipped models.
Torch is imported only when a network is built or loaded.
"""

from tomocnn.models.registry import WedgeModel, list_models, load_model, save_model

__all__ = ["WedgeModel", "list_models", "load_model", "save_model", "WedgeNet3D"]


def __getattr__(name):
    if name == "WedgeNet3D":
        from tomocnn.models.network import WedgeNet3D

        return WedgeNet3D
    raise AttributeError(f"module 'tomocnn.models' has no attribute {name!r}")
