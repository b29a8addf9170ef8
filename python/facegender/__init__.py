"""facegender from Python: the same chain as ``facegender predict`` and ``preprocess``.

Faces are found by MediaPipe BlazeFace, given dlib's 68 landmarks, aligned, and labelled by the
project's int8 classifier (with dlib's face-recognition descriptor where the host model is
installed), all in Rust. Models load once per :class:`Pipeline`; every heavy call releases the
GIL while it works.

>>> import facegender
>>> p = facegender.Pipeline()                       # models/ of the checkout, or $FACEGENDER_MODELS
>>> rows = p.predict_paths(["photo.jpg"])            # dict of numpy columns, one row per face
>>> rows["label"], rows["probability"], rows["box"]

Rows: one per face, and one for each photo without a face (status ``no_face``) or that could not
be read (status ``unreadable``, with ``error``). A face's status is ``ok`` (labelled),
``too_small`` or ``uncertain`` (top probability under ``min_probability``: no label). Columns:

- ``photo`` (int64): index of the input the row came from; ``image`` (str): its path or name
- ``status``, ``error`` (str or None); ``face`` (int64, -1 on a photo row)
- ``box`` (float32, N x 4: x0, y0, x1, y1 in photo pixels), ``score`` (float32)
- ``label`` (str or None), ``probability`` (float32: the top class's)
- ``logits`` (int8, N x classes; twice as wide with ``mirror``: the crop's, then its mirror
  image's), ``has_logits`` (bool: rows without a classification hold zeros)
- host chain: ``landmarks`` (int32, N x 68 x 2); device chain: ``keypoints`` (float32, N x 6 x 2)
- host model only: ``head_logits``, ``combined_logits`` (float32, N x classes)

Missing floats are NaN. The values equal ``facegender predict --json``'s for the same photos and
settings.

The Ray Data pipeline for datasets larger than one machine is :mod:`facegender.distributed`.
"""

from ._native import FacegenderError, Pipeline, cpu, to_json_lines

__all__ = ["FacegenderError", "Pipeline", "cpu", "to_json_lines"]


def _restore(settings):
    """Rebuilds a pickled :class:`Pipeline` from its settings (it loads its models again)."""
    return Pipeline(**settings)
