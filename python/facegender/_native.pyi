"""Type stubs for the Rust extension module (see facegender/__init__.py for the columns)."""

from os import PathLike
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

StrPath = str | PathLike[str]
Columns = dict[str, npt.NDArray[Any]]

class FacegenderError(Exception):
    """A model could not be loaded, or a setting is invalid."""

class Pipeline:
    """The detector, dlib's landmarks and the classifier, loaded once.

    models_dir: the models folder (default: $FACEGENDER_MODELS, ./models, or the checkout's).
    model: a host model folder or an exported student (default: models/gender-host if
    installed, else models/gender). dlib: dlib's 68-point model file (default:
    $FACEGENDER_DLIB_MODEL or Debian's). device_chain: run the microcontroller's chain (int8
    detector, keypoint alignment, the student alone). mirror: average each face with its mirror
    image (host chain). threads: worker threads for a batch (a pool is made on first use).
    Pickles as its settings: an engine ships it to workers, which load the models there.
    """

    def __init__(
        self,
        models_dir: StrPath | None = None,
        *,
        model: StrPath | None = None,
        dlib: StrPath | None = None,
        device_chain: bool = False,
        mirror: bool = False,
        min_face: float = 32.0,
        min_probability: float = 0.6,
        threshold: float = 0.5,
        detector: str = "front",
        threads: int = 1,
    ) -> None: ...
    @property
    def classes(self) -> list[str]:
        """The classes, in the order of the logits' columns."""
    @property
    def model_sha256(self) -> str:
        """sha256 of what decides a label (the student, and host.json for a host model)."""
    @property
    def is_host_model(self) -> bool: ...
    @property
    def models_dir(self) -> Path:
        """The models folder in use (resolved as the CLI resolves it)."""
    @property
    def settings(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this pipeline."""
    def predict_paths(self, paths: Sequence[StrPath]) -> Columns:
        """Labels every face in each photo file: one row per face or faceless photo."""
    def predict_bytes(
        self, blobs: Sequence[bytes], names: Sequence[StrPath] | None = None
    ) -> Columns:
        """Labels every face in encoded photos (JPEG, PNG, WebP, BMP, GIF)."""
    def predict_array(self, image: npt.NDArray[np.uint8], name: str = "array") -> Columns:
        """Labels every face in an H x W x 3 RGB uint8 array."""
    def crops(
        self,
        paths: Sequence[StrPath],
        crop: int = 64,
        scale: float = 0.75,
        align: str = "inner-eyes-bottom-lip",
        skip_multi: bool = False,
        min_face: float = 24.0,
    ) -> tuple[npt.NDArray[np.uint8], Columns]:
        """preprocess's aligned crop of each photo's largest face: N x S x S x 3 (zeros where
        there is none) and columns image, status, reason, faces, box, has_crop."""

def to_json_lines(pipeline: Pipeline, paths: Sequence[StrPath]) -> list[str]:
    """One JSON line per photo, exactly as ``facegender predict --json`` prints them."""

def cpu() -> dict[str, str]:
    """The CPU model, its SIMD features the engines use, and the core kernels' level."""
