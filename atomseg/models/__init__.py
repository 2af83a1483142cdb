"""The column-segmentation U-net, the model registry and the shipped weights.

``load_model(name)`` returns a :class:`ColumnModel`; ``list_models()`` lists shipped models.
Torch is imported only when a network is built or loaded.
"""

from atomseg.models.registry import (
    ColumnModel,
    list_models,
    load_model,
    normalise_image,
    save_model,
)

__all__ = ["ColumnModel", "list_models", "load_model", "normalise_image", "save_model"]
