"""Image sources as frames of ``image`` (uint8 arrays) and ``label``: sklearn's 8x8 digits, an IDX pair (MNIST's
format, gzipped or not) and a folder of ``<label>/<image>`` files. Every bad file is a ShipyardError naming it.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.schema import SourceConfig
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "load_idx", "load_image_folder", "load_sklearn_digits"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# IDX magic numbers: two zero bytes, the type code 0x08 (unsigned byte) and the number of dimensions.
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def _object_column(arrays: Any) -> pd.Series:
    out = np.empty(len(arrays), dtype=object)
    for i, array in enumerate(arrays):
        out[i] = array
    return pd.Series(out, dtype="object")


def load_sklearn_digits(cfg: SourceConfig) -> pd.DataFrame:
    from sklearn.datasets import load_digits  # heavy: scikit-learn's datasets, only for this source

    digits = load_digits()
    # sklearn's digits are 0..16 intensities; scale to the 0..255 uint8 range every other image source uses.
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    if cfg.limit is not None:
        images, labels = images[: cfg.limit], labels[: cfg.limit]
    return pd.DataFrame({"image": _object_column(images), "label": labels})


def _read_maybe_gzip(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ShipyardError(f"IDX {what} file does not exist", where=str(path))
    raw = path.read_bytes()
    if not raw:
        raise ShipyardError(f"IDX {what} file is empty", where=str(path))
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ShipyardError(f"corrupt gzip data: {exc}", where=str(path)) from None
    return raw


def _parse_idx(path: Path, raw: bytes, expected_magic: int, what: str) -> np.ndarray:
    if len(raw) < 4:
        raise ShipyardError(f"IDX {what} file is truncated: {len(raw)} bytes, no header", where=str(path))
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ShipyardError(
            f"wrong IDX magic number 0x{magic:08x} for {what}, expected 0x{expected_magic:08x}",
            where=str(path),
            hint="are `images` and `labels` swapped?" if magic in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) else None,
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ShipyardError(f"IDX {what} file is truncated inside its header", where=str(path))
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    body = len(raw) - header
    if body != expected:
        raise ShipyardError(
            f"IDX {what} file holds {body} data bytes but its header {dims} needs {expected}",
            where=str(path),
            hint="the file is truncated or corrupt",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx(images_path: Path, labels_path: Path, cfg: SourceConfig) -> pd.DataFrame:
    images = _parse_idx(images_path, _read_maybe_gzip(images_path, "images"), IDX_IMAGES_MAGIC, "images")
    labels = _parse_idx(labels_path, _read_maybe_gzip(labels_path, "labels"), IDX_LABELS_MAGIC, "labels")
    if images.shape[0] != labels.shape[0]:
        raise ShipyardError(
            f"{images.shape[0]} images but {labels.shape[0]} labels",
            where=f"{images_path} / {labels_path}",
            hint="the two files of an IDX pair must hold the same number of items",
        )
    if cfg.limit is not None:
        images, labels = images[: cfg.limit], labels[: cfg.limit]
    if cfg.image_size is not None and tuple(images.shape[1:3]) != tuple(cfg.image_size):
        images = np.stack([_resize(img, cfg.image_size) for img in images])
    return pd.DataFrame({"image": _object_column(images), "label": labels.astype(np.int64)})


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image  # Pillow: only image sources need it

    height, width = size
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.BILINEAR))


def _image_files(root: Path) -> Iterator[tuple[Path, str]]:
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(label_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield file, label_dir.name


def load_image_folder(root: Path, cfg: SourceConfig) -> pd.DataFrame:
    from PIL import Image, UnidentifiedImageError  # Pillow: only image sources need it

    if not root.exists():
        raise ShipyardError("image folder does not exist", where=str(root))
    if not root.is_dir():
        raise ShipyardError("expected a folder laid out as <root>/<label>/*.png", where=str(root))
    files = list(_image_files(root))
    if cfg.limit is not None:
        files = files[: cfg.limit]
    if not files:
        raise ShipyardError("no images found; expected <root>/<label>/*.png (or .jpg)", where=str(root))
    arrays: list[np.ndarray] = []
    labels: list[str] = []
    first_shape: tuple[int, ...] | None = None
    iterator: Any = files
    if len(files) > 2000:
        from rich.progress import track  # rich's bar: only for a folder of images

        iterator = track(files, description=f"reading {len(files)} images", transient=True)
    for file, label in iterator:
        try:
            with Image.open(file) as img:
                img.load()  # decode now: a truncated file fails here, not later in the preprocessor
                img = img.convert("L" if cfg.grayscale else "RGB")
                if cfg.image_size is not None:
                    height, width = cfg.image_size
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8).copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ShipyardError(
                f"cannot read image: {exc}", where=str(file), hint="the file is truncated or corrupt"
            ) from None
        if first_shape is None:
            first_shape = array.shape
        elif array.shape != first_shape:
            raise ShipyardError(
                f"image is {array.shape} but earlier images are {first_shape}",
                where=str(file),
                hint="set `image_size` to resize every image",
            )
        arrays.append(array)
        labels.append(label)
    return pd.DataFrame({"image": _object_column(arrays), "label": pd.Series(labels, dtype="object")})
