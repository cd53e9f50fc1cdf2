"""Mixed precision: pick what the hardware really supports and say so when a request can't be honoured."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Precision:
    name: str  # what actually runs: fp32 | bf16 | fp16
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_precision(requested: str, device: torch.device) -> Precision:
    kind = device.type
    if kind == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return Precision("bf16" if bf16_ok else "fp16", kind)
        if requested == "bf16" and not bf16_ok:
            log.warning("precision bf16 asked for, but this GPU lacks bf16; using fp16 with a gradient scaler")
            return Precision("fp16", kind)
        return Precision(requested, kind)
    # CPU
    if requested == "fp32":
        return Precision("fp32", kind)
    if requested in ("bf16", "auto") and cpu_has_native_bf16():
        return Precision("bf16", kind)
    if requested == "auto":
        return Precision("fp32", kind)
    reason = "fp16 autocast is for GPUs" if requested == "fp16" else "this CPU has no native bf16 (AVX512-BF16 / AMX)"
    log.warning("precision %s asked for, but %s; training in fp32 instead", requested, reason)
    return Precision("fp32", kind)
