"""An image column as one array: every image checked against the fitted shape, stacked channels-first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shipyard.errors import ShipyardError

__all__ = ["stack_images"]


def stack_images(series: pd.Series, where: str, image_shape: tuple[int, int, int] | None) -> np.ndarray:
    """The column's images as uint8 (N, C, H, W); each must match ``image_shape`` (C, H, W) when it is set, else
    the first image's shape."""
    arrays = series.to_numpy()
    if len(arrays) == 0:
        if image_shape is None:
            raise ShipyardError("no images to fit on", where=where)
        c, h, w = image_shape
        return np.zeros((0, c, h, w), dtype=np.uint8)
    first = np.asarray(arrays[0])
    expected = first.shape if image_shape is None else None
    for row, array in zip(series.index, arrays, strict=True):
        if not isinstance(array, np.ndarray):
            raise ShipyardError(
                f"expected an image array, got {type(array).__name__}",
                where=f"{where}, row {row}, column {series.name!r}",
            )
        shape = array.shape
        if image_shape is not None:
            c, h, w = image_shape
            ok = shape == (h, w) if c == 1 and array.ndim == 2 else shape == (h, w, c)
        else:
            ok = shape == expected
        if not ok:
            want = expected if image_shape is None else image_shape
            raise ShipyardError(
                f"image has shape {shape}, expected {want}",
                where=f"{where}, row {row}, column {series.name!r}",
                hint="set `image_size` on the source to resize",
            )
    stacked = np.stack(list(arrays))
    if stacked.ndim == 3:
        stacked = stacked[:, None, :, :]
    elif stacked.ndim == 4:
        stacked = stacked.transpose(0, 3, 1, 2)
    else:
        raise ShipyardError(f"images must be (H, W) or (H, W, C), got {first.shape}", where=where)
    return stacked
