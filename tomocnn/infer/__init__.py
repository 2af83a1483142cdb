"""Inference: remove the missing wedge from reconstructions, tiled, streamed or on Dask.

``remove_wedge(rec, theta)`` is the drop-in step after ``tomopy.recon``: the same shape, dtype and
intensity units out, voxels outside the circular field of view passed through. Volumes are
``(n_rows, N, N)`` and ``theta`` is in radians, as in TomoPy.

- In memory: an ndarray is processed in tiles with overlap and cross-fading, batched, on CPU or
  GPU; for a fixed network the result equals whole-volume inference to float32 rounding.
- Streaming: an ``h5py.Dataset`` input and/or ``out=`` dataset is processed slab by slab along
  axis 0, so peak memory is set by one slab, not by the volume.
- Dask: a dask array gives a lazy dask array (``map_overlap``) that runs under a
  ``distributed.Client`` and equals the in-memory result.
- Files: :func:`denoise_file` (``tomocnn denoise``) and :func:`pipeline_file`
  (``tomocnn pipeline``: reconstruction, then wedge removal) write HDF5 atomically;
  :func:`default_algorithm` names the reconstruction a model works best after;
  :func:`faithfulness` words the reprojection report they store.
- Data consistency: ``remove_wedge(..., projections=, consistency_iters=N)`` runs N iterations
  on the measured angles from the network's output.
"""

from tomocnn.infer.files import default_algorithm, denoise_file, faithfulness, pipeline_file
from tomocnn.infer.wedge import remove_wedge

__all__ = ["remove_wedge", "denoise_file", "pipeline_file", "default_algorithm", "faithfulness"]
