"""Differentially private training (DP-SGD) for the engine, built from Opacus' lower-level pieces.

Configured by the job's ``privacy`` section::

    privacy:
      differential_privacy: {target_epsilon: 8, target_delta: 1.0e-5, max_grad_norm: 1.0, accountant: prv}

What happens when it is set:

- The model is checked with ``opacus.validators.ModuleValidator`` before any folder exists. BatchNorm mixes
  examples within a batch, which breaks per-example privacy, so a model with it is refused with the fix named
  (``model.batch_norm: false``; :func:`fix_model` is the programmatic GroupNorm swap, but a swapped module no
  longer matches its registered family, so the pipeline does not do it silently).
- The module is wrapped in ``GradSampleModule`` (per-example gradients) and the optimiser in ``DPOptimizer``
  (per-example clipping to ``max_grad_norm``, Gaussian noise ``noise_multiplier * max_grad_norm``, division by the
  *expected* batch size).
- Batches are Poisson-sampled: each training row joins each step's batch independently with probability
  ``q = batch_size / n``. The masks of an epoch come from a generator seeded by ``(seed, epoch)``, and the noise of
  a step from one seeded by ``(seed, global_step)``, so a resumed run rebuilds both exactly (no RNG to checkpoint).
- The noise multiplier is ``opacus.accountants.utils.get_noise_multiplier`` for ``target_epsilon`` over the
  planned steps; the spent epsilon is recomputed by the accountant (PRV or RDP) from the steps actually taken
  (early stopping spends less).

Not supported together with DP (refused with a clear error): ``gradient_accumulation > 1``, ``clip_grad_norm``
(DP clips per example), fp16 / bf16 precision, multi-process training.

Transformers train privately in every mode. ``frozen`` and ``freeze_lower`` train only Linear / LayerNorm weights
(cheap per example). ``full`` also trains the embedding tables: while DP trains, the model looks positions up per
example (``TransformerClassifier.per_example_positions``; the default shared ``(1, L)`` lookup would give one
batch-summed gradient for the position table), and Opacus materialises a dense per-example gradient of the
word-embedding table (batch x vocabulary x hidden floats, about 1.5 GB per step for MiniLM at batch 32), so it is
several times slower than ``freeze_lower``. An encoder that cannot take per-example positions is refused in
``full`` mode with ``freeze_lower`` named.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

from shipyard.config.errors import validate_section
from shipyard.config.privacy import PRIVACY_HINT, DPConfig, PrivacyConfig
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

__all__ = ["DPConfig", "DPSession", "PrivacyConfig", "check_model", "compute_epsilon", "fix_model", "parse_privacy"]


def parse_privacy(raw: dict[str, Any] | PrivacyConfig | None, *, where: str = "privacy") -> PrivacyConfig | None:
    """Validate a job's ``privacy`` section; every problem becomes one ConfigError naming the field."""
    if raw is None:
        return None
    return validate_section(PrivacyConfig, raw, where=where, hint=PRIVACY_HINT)


def check_training_config(cfg: Any, dp: DPConfig, world_size: int = 1) -> None:
    """Refuse training options that DP-SGD cannot honour (before any work is done)."""
    if cfg.gradient_accumulation != 1:
        raise ShipyardError(
            "differential privacy needs training.gradient_accumulation: 1 (Poisson batches are single steps)",
            where="training.gradient_accumulation",
            hint="raise training.batch_size instead",
        )
    if cfg.clip_grad_norm:
        raise ShipyardError(
            "training.clip_grad_norm cannot be combined with differential privacy, which clips each example's "
            "gradient to privacy.differential_privacy.max_grad_norm",
            where="training.clip_grad_norm",
            hint="remove training.clip_grad_norm",
        )
    if cfg.precision in ("fp16", "bf16"):
        raise ShipyardError(
            f"precision {cfg.precision} is not supported with differential privacy",
            where="training.precision",
            hint="use precision: fp32",
        )
    if world_size > 1:
        raise ShipyardError("differential privacy is single-process only", where="privacy")
    if cfg.soup is not None:
        raise ShipyardError(
            "a model soup cannot be combined with differential privacy: every ingredient would spend the privacy "
            "budget again on the same data",
            where="training.soup",
            hint="remove training.soup",
        )
    if cfg.batch_size < 8:
        raise ShipyardError(
            "training.batch_size must be at least 8 with differential privacy (it is the expected Poisson batch)",
            where="training.batch_size",
        )


def check_model(model: nn.Module, model_type: str = "") -> None:
    """Raise a ShipyardError naming the fix when ``model`` has layers DP-SGD cannot train privately."""
    from opacus.validators import ModuleValidator  # heavy: Opacus, only for DP-SGD

    if _trainable_positions(model) and not getattr(model, "takes_position_ids", False):
        raise ShipyardError(
            "differential privacy with model.mode: full needs an encoder that takes per-example position_ids "
            "(its position table is looked up once for the whole batch, so per-example gradients are wrong)",
            where="model.mode",
            hint="set model.mode: freeze_lower with freeze_layers (or mode: frozen), which keeps the embeddings fixed",
        )
    was_training = model.training
    model.train()  # the validator also insists on training mode, which the engine sets itself
    try:
        errors = ModuleValidator.validate(model, strict=False)
    finally:
        model.train(was_training)
    if not errors:
        return
    names = sorted({type(e).__name__ + ": " + str(e).split("\n")[0][:120] for e in errors})
    batch_norm = any("BatchNorm" in str(e) for e in errors)
    hint = (
        "set model.batch_norm: false (BatchNorm mixes examples in a batch; in Python, "
        "shipyard.training.privacy.fix_model swaps it for GroupNorm)"
        if batch_norm
        else "use layers Opacus supports (Linear, Conv, LayerNorm, GroupNorm, Embedding, ...)"
    )
    raise ShipyardError(
        f"model `{model_type or type(model).__name__}` cannot be trained with differential privacy: "
        + "; ".join(names),
        where="model.batch_norm" if batch_norm else "model",
        hint=hint,
    )


def _trainable_positions(model: nn.Module) -> bool:
    """Whether a transformer's position-embedding table trains (mode full): it then needs per-example lookups."""
    if not hasattr(model, "per_example_positions"):
        return False
    return any(p.requires_grad for name, p in model.named_parameters() if name.endswith("position_embeddings.weight"))


def _embedding_grad_bytes(model: nn.Module, batch_size: int) -> int:
    """Bytes of the dense per-example gradients Opacus builds for trainable embedding tables in one step."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.weight.requires_grad:
            total += batch_size * module.weight.numel() * module.weight.element_size()
    return total


def fix_model(model: nn.Module) -> nn.Module:
    """Opacus' automatic fix: BatchNorm -> GroupNorm (and other swaps). The result is a different architecture."""
    from opacus.validators import ModuleValidator  # heavy: Opacus, only for DP-SGD

    return ModuleValidator.fix(model)


def compute_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """The epsilon spent after ``steps`` DP-SGD steps (0 steps: 0)."""
    if steps <= 0:
        return 0.0
    from opacus.accountants import create_accountant  # heavy: Opacus, only for DP-SGD

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is still valid
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta))


def noise_for_target(dp: DPConfig, sample_rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier  # heavy: Opacus, only for DP-SGD

    try:
        with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is still valid
            warnings.simplefilter("ignore", UserWarning)
            sigma = get_noise_multiplier(
                target_epsilon=dp.target_epsilon,
                target_delta=dp.target_delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=dp.accountant,
            )
        return float(sigma)
    except ValueError as exc:
        raise ShipyardError(
            f"cannot reach epsilon={dp.target_epsilon}: {exc}",
            where="privacy.differential_privacy.target_epsilon",
            hint="raise target_epsilon, lower the number of steps, or use more data",
        ) from None


def poisson_batches(n: int, sample_rate: float, steps: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """``steps`` Poisson-sampled batches (index tensors, possibly empty), a pure function of (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 0x5EED)
    out = []
    for _ in range(steps):
        mask = torch.rand(n, generator=gen) < sample_rate
        out.append(mask.nonzero().flatten())
    return out


class DPSession:
    """The engine's DP-SGD state for one fit: wraps the module and optimiser, samples batches, reports epsilon."""

    def __init__(self, dp: DPConfig, cfg: Any, *, n: int, total_steps: int, per_epoch: int, world_size: int = 1):
        check_training_config(cfg, dp, world_size)
        if n < 2:
            raise ShipyardError("differential privacy needs at least 2 training rows", where="data")
        self.dp = dp
        self.seed = int(cfg.seed)
        self.n = n
        self.batch_size = min(int(cfg.batch_size), n)
        self.sample_rate = self.batch_size / n
        self.per_epoch = per_epoch
        self.planned_steps = total_steps
        self.noise_multiplier = noise_for_target(dp, self.sample_rate, total_steps)
        self.module: Any = None
        self.optimizer: Any = None
        self._model: Any = None
        log.info(
            "DP-SGD: q=%.5f, %d planned steps, noise multiplier %.4f for epsilon=%g, delta=%g (%s)",
            self.sample_rate,
            total_steps,
            self.noise_multiplier,
            dp.target_epsilon,
            dp.target_delta,
            dp.accountant,
        )

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
        """GradSampleModule around ``model`` and DPOptimizer around ``optimizer`` (the model itself is untouched
        apart from Opacus' hooks, so its state dict and checkpoints stay the same)."""
        from opacus import GradSampleModule  # heavy: Opacus, only for DP-SGD
        from opacus.optimizers import DPOptimizer  # heavy: Opacus

        check_model(model)
        if hasattr(model, "per_example_positions"):  # a transformer: see TransformerClassifier.encode
            model.per_example_positions = True
            self._model = model
        gb = _embedding_grad_bytes(model, self.batch_size) / 1e9
        if gb >= 0.5:  # full fine-tuning under DP: the cost is the per-example embedding gradient, not compute
            log.warning(
                "DP-SGD trains embedding tables: about %.1f GB of per-example gradients per step; "
                "model.mode: freeze_lower is much faster",
                gb,
            )
        # Opacus' hooks fire on the first layer whose input needs no gradient: expected, not a problem
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        self.module = GradSampleModule(model, batch_first=True, loss_reduction="mean")
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.dp.max_grad_norm,
            expected_batch_size=self.batch_size,
            loss_reduction="mean",
        )
        return self.module, self.optimizer

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        return poisson_batches(self.n, self.sample_rate, self.per_epoch, self.seed, epoch)

    def before_step(self, global_step: int) -> None:
        """Seed this step's noise from (seed, step): a resumed run draws the same noise."""
        self.optimizer.generator = torch.Generator(device=self._device()).manual_seed(
            (self.seed * 7_919 + global_step * 104_729 + 17) % (2**63)
        )

    def empty_batch(self) -> None:
        """A Poisson batch can be empty: the step still happens, with noise only (as Opacus' data loader does)."""
        for p in self.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)

    def _device(self) -> torch.device:
        params = self.optimizer.params
        return params[0].device if params else torch.device("cpu")

    def close(self) -> None:
        """Remove Opacus' hooks so inference and export see the plain module."""
        if self.module is not None:
            self.module._close()
            self.module = None
        if self._model is not None:  # back to the shared position lookup that export and serving trace
            self._model.per_example_positions = False
            self._model = None

    def report(self, steps: int) -> dict[str, Any]:
        epsilon = compute_epsilon(
            self.noise_multiplier, self.sample_rate, steps, self.dp.target_delta, self.dp.accountant
        )
        return {
            "epsilon": round(epsilon, 4),
            "delta": self.dp.target_delta,
            "target_epsilon": self.dp.target_epsilon,
            "noise_multiplier": round(self.noise_multiplier, 6),
            "max_grad_norm": self.dp.max_grad_norm,
            "sample_rate": round(self.sample_rate, 8),
            "steps": int(steps),
            "planned_steps": int(self.planned_steps),
            "accountant": self.dp.accountant,
            "mechanism": "DP-SGD (Opacus): per-example clipping, Gaussian noise, Poisson sampling",
        }
