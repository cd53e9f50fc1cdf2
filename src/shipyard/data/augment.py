"""Image augmentation for training batches: random shift, rotation and scale as one affine warp per image
(``affine_grid`` + ``grid_sample``), no torchvision.

Every random number comes from the generator passed in, so a run resumed with the generator's saved state draws
exactly the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from shipyard.config.schema import AugmentationConfig
from shipyard.errors import ShipyardError


def augment_images(x: torch.Tensor, cfg: AugmentationConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly shift / rotate / scale a batch (N, C, H, W) of float images; returns a new tensor."""
    if x.ndim != 4:
        raise ShipyardError(f"augment_images expects (N, C, H, W), got shape {tuple(x.shape)}", where="augmentation")
    if not x.is_floating_point():
        raise ShipyardError(f"augment_images expects float images, got {x.dtype}", where="augmentation")
    if not cfg.enabled or x.shape[0] == 0:
        return x
    n = x.shape[0]
    # Draw on the generator's own device (usually CPU) so the stream does not depend on where x lives.
    u = torch.rand((n, 4), generator=generator, device=generator.device, dtype=torch.float64)
    u = (u * 2.0 - 1.0).to(device=x.device)  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(cfg.rotation)
    zoom = 1.0 + u[:, 1] * cfg.scale
    # normalised coordinates span [-1, 1], so a shift of `shift` x width is 2 * shift in grid units
    tx = u[:, 2] * cfg.shift * 2.0
    ty = u[:, 3] * cfg.shift * 2.0
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output coordinates to input coordinates: dividing by zoom makes zoom > 1 enlarge the content
    theta = torch.stack([torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1).to(
        dtype=x.dtype
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # border padding repeats the edge (background for digits) rather than inventing a constant
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
