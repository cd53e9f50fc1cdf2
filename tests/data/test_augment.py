"""augment_images: shapes, determinism from the generator, and that the warps do what they say."""

from __future__ import annotations

import torch

from shipyard.config.schema import AugmentationConfig
from shipyard.data.augment import augment_images


def batch() -> torch.Tensor:
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    return x


def test_disabled_is_identity() -> None:
    x = batch()
    assert augment_images(x, AugmentationConfig(), torch.Generator().manual_seed(0)) is x


def test_same_generator_state_same_result() -> None:
    cfg = AugmentationConfig(shift=0.2, rotation=30, scale=0.2)
    g = torch.Generator().manual_seed(7)
    first = augment_images(batch(), cfg, g)
    state = g.get_state()
    second = augment_images(batch(), cfg, g)
    assert first.shape == (4, 1, 16, 16)
    assert not torch.equal(first, second)  # the generator advanced
    g2 = torch.Generator()
    g2.set_state(state)  # "resume": the same state draws the same augmentation
    assert torch.equal(augment_images(batch(), cfg, g2), second)
    # nothing else is random: the global RNG does not change the result
    torch.manual_seed(123)
    assert torch.equal(augment_images(batch(), cfg, torch.Generator().manual_seed(7)), first)


def test_shift_moves_mass_and_keeps_it() -> None:
    x = batch()
    out = augment_images(x, AugmentationConfig(shift=0.2), torch.Generator().manual_seed(1))
    moved = [not torch.allclose(out[i], x[i]) for i in range(4)]
    assert any(moved)
    # a shift of at most 20% keeps the centred square inside the image
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.05, atol=0.5)
