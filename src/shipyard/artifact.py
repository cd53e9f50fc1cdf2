"""Artifacts: a folder that holds one servable model, and nothing that is ever unpickled.

``shipyard.json`` says what the model is (task, family and parameters, input shape, features, labels, target
scale, metrics); weights are in ``model.safetensors`` (torch backend), ``model.onnx`` (ONNX backend) or a family's
own text format (``lightgbm``: LightGBM's ``model.txt``, parsed and never executed); the
fitted preprocessing is ``preprocessor.json`` + ``preprocessor.safetensors``. Loading refuses any folder that
holds a pickle file, so a downloaded artifact cannot run code on load.
"""

from __future__ import annotations

import io
import json
import logging
import pickletools
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from shipyard.data.preprocess import Preprocessor
from shipyard.errors import ShipyardError
from shipyard.io import INCOMPLETE, atomic_save_safetensors, atomic_write_json
from shipyard.models.registry import build_for_task
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
META = "shipyard.json"
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".ckpt", ".npy", ".npz"}


PICKLE_HEAD_BYTES = 64 * 1024


def _is_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length, then that many bytes of JSON (its first byte may look like 0x80)."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


def looks_like_pickle(path: Path) -> bool:
    """Whether a file's *content* is a pickle, whatever its name, judged without unpickling anything.

    Protocol 2+ pickles start with PROTO (0x80, 2-5). Protocol 0/1 have no magic, so the first 64 KiB are
    disassembled with :mod:`pickletools` (which parses opcodes and checks the stack, never runs them): a file
    that parses to STOP, or a larger file whose head parses to its very end, is a pickle. A zip holding a
    ``.pkl`` member (a torch checkpoint's ``data.pkl``) counts too.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(PICKLE_HEAD_BYTES)
    if head[:1] == b"\x80" and head[1:2] in {bytes([v]) for v in range(2, 6)} and not _is_safetensors(head, size):
        return True
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                return any(name.lower().endswith((".pkl", ".pickle")) for name in zf.namelist())
        except zipfile.BadZipFile:
            return False
    if not head:
        return False
    if size <= len(head):  # the whole file: a pickle iff it disassembles cleanly to STOP
        try:
            pickletools.dis(head, out=io.StringIO())
        except Exception:
            return False
        return True
    parsed, last = 0, 0
    try:
        for _op, _arg, pos in pickletools.genops(head):
            parsed, last = parsed + 1, pos
    except Exception:
        pass
    return parsed >= 16 and last >= len(head) - 4096  # opcodes all the way to where the head was cut


def refuse_pickles(folder: Path) -> None:
    """Raise if the folder holds a pickle: by name, or by content for every file whatever its name."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ShipyardError(
                "refusing to load a model folder that contains a pickle-capable file",
                where=str(path),
                hint="artifacts hold safetensors, ONNX and JSON only",
            )
        if looks_like_pickle(path):
            raise ShipyardError(
                "refusing to load a pickled file inside a model folder",
                where=str(path),
                hint="artifacts hold safetensors, ONNX and JSON only; remove the file",
            )


def refuse_incomplete(path: Path) -> None:
    """Raise if ``path`` (a run folder, its ``model/`` or ``optimized/<method>/``) belongs to a run that never
    finished: the pipeline removes the run's ``.incomplete`` marker only after report and model card are written.
    """
    path = Path(path)
    candidates = [path]
    if path.name == "model":
        candidates.append(path.parent)
    elif path.parent.name == "optimized":
        candidates.append(path.parent.parent)
    for run_dir in candidates:
        if (run_dir / INCOMPLETE).exists():
            raise ShipyardError(
                "the run did not finish (its report and model card were never written), so its model is not served",
                where=str(run_dir),
                hint="look at `shipyard runs show` for the error, then train again or --resume the run",
            )


def save_torch_artifact(
    folder: Path,
    *,
    model: nn.Module,
    preprocessor: Any,
    task: str,
    model_type: str,
    model_params: dict[str, Any],
    input_spec: InputSpec,
    features: list[dict[str, str]],
    target: str,
    labels: list[str] | None,
    target_scale: tuple[float, float] | None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backend = getattr(model, "native_backend", None) or "torch"
    if backend == "torch":
        state = {k: v for k, v in model.state_dict().items()}
        atomic_save_safetensors(folder / "model.safetensors", state)
    else:  # a family with its own format (LightGBM's text file): it says what to record about it
        extra = {**(extra or {}), "native": model.save(folder)}
    preprocessor.save(folder)
    if hasattr(model, "save_extra"):
        model.save_extra(folder)  # e.g. a transformer's tokenizer and encoder config
    meta = {
        "format_version": FORMAT_VERSION,
        "backend": backend,
        "task": task,
        "model": {"type": model_type, "params": model_params},
        "input": {
            "kind": input_spec.kind,
            "n_features": input_spec.n_features,
            "image_shape": list(input_spec.image_shape) if input_spec.image_shape else None,
            "n_outputs": input_spec.n_outputs,
        },
        "features": features,
        "target": target,
        "labels": labels,
        "target_scale": list(target_scale) if target_scale else None,
        "metrics": metrics or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        **(extra or {}),
    }
    atomic_write_json(folder / META, meta)
    return folder


@dataclass
class Artifact:
    path: Path
    meta: dict[str, Any]
    preprocessor: Any
    model: nn.Module | None = None  # torch backend
    session: Any = None  # ONNX Runtime backend
    members: list[tuple[Artifact, float]] | None = None  # ensemble backend: member artifacts and their weights

    # ----------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path, *, allow_incomplete: bool = False) -> Artifact:
        """The artifact in ``path`` (a model folder, or a run folder: its ``model/``).

        ``allow_incomplete`` is for the pipeline itself, which optimises a run's model before the run is done.
        """
        path = Path(path)
        if not allow_incomplete:
            refuse_incomplete(path)
        if (path / "model" / META).is_file():  # a run folder: use its model
            path = path / "model"
        if not (path / META).is_file():
            raise ShipyardError(f"not a model folder: no {META}", where=str(path))
        refuse_pickles(path)
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ShipyardError(f"{META} is not valid JSON ({exc.msg}, line {exc.lineno})", where=str(path)) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ShipyardError(f"unsupported artifact format_version {meta.get('format_version')!r}", where=str(path))
        preprocessor = Preprocessor.load(path)
        art = cls(path=path, meta=meta, preprocessor=preprocessor)
        if meta["backend"] == "onnx":
            art.session = _onnx_session(path / meta.get("onnx_file", "model.onnx"))
        elif meta["backend"] == "ensemble":  # `model: {type: auto}`: member artifacts in members/, averaged
            art.members = [
                (cls.load(path / m["path"], allow_incomplete=True), float(m["weight"])) for m in meta["members"]
            ]
        elif meta["backend"] == "lightgbm":  # LightGBM's own text format, parsed (never executed)
            from shipyard.models.trees import TreeModel

            spec = InputSpec.from_meta(meta)
            art.model = TreeModel.load(path, dict(meta["model"]["params"]), spec, meta.get("native", {}))
        else:
            art.model = art._build_torch()
        return art

    def _build_torch(self) -> nn.Module:
        spec = InputSpec.from_meta(self.meta)
        params = dict(self.meta["model"]["params"])
        params.update(self.meta.get("artifact_params", {}))
        scale = tuple(self.meta["target_scale"]) if self.meta.get("target_scale") else None
        model = build_for_task(self.meta["model"]["type"], params, spec, scale, artifact_dir=self.path)
        model.load_state_dict(load_file(str(self.path / "model.safetensors")))
        return model.eval()

    # ----------------------------------------------------------- properties
    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def labels(self) -> list[str] | None:
        return self.meta.get("labels")

    @property
    def features(self) -> list[dict[str, str]]:
        return self.meta["features"]

    @property
    def backend(self) -> str:
        return self.meta["backend"]

    @property
    def text_features(self) -> list[str]:
        """The model's text columns (kept as strings when read, even when a value is all digits)."""
        return [f["name"] for f in self.features if f.get("type") == "text"]

    @property
    def read_options(self) -> dict[str, Any]:
        """How the training data was read (format, encoding, delimiter, column names...: data/rows.py), recorded
        in shipyard.json. Artifacts from before it was recorded: the training source in their run's config.yaml."""
        if "read_options" in self.meta:
            return dict(self.meta["read_options"])
        for folder in (self.path.parent, self.path.parent.parent, self.path.parent.parent.parent):
            if (folder / "config.yaml").is_file():
                config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
                data = config.get("data") or {}
                return dict(data.get("test_source") or data.get("source") or {})
        return {}  # a bare model folder: read files with the defaults

    # ----------------------------------------------------------- inference
    def raw_outputs(self, inputs: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Logits (classification) or values (regression) for already-preprocessed inputs."""
        if self.members is not None:
            raise ShipyardError(
                "an ensemble's members each preprocess rows their own way; predict from rows (predict_frame)",
                where=str(self.path),
            )
        n = len(next(iter(inputs.values())))
        chunks = []
        for start in range(0, n, batch_size):
            part = {k: v[start : start + batch_size] for k, v in inputs.items()}
            if self.session is not None:
                feed = {i.name: part[i.name] for i in self.session.get_inputs()}
                chunks.append(np.asarray(self.session.run(None, feed)[0], dtype=np.float32))
            else:
                assert self.model is not None
                with torch.inference_mode():
                    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in part.items()}
                    chunks.append(self.model(**tensors).float().numpy())
        if not chunks:
            width = self.meta["input"]["n_outputs"]
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    def frame_outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Logits (classification) or values (regression) for raw rows (an ensemble's members each preprocess)."""
        if self.members is not None:
            return self.ensemble_outputs(frame)
        return self.raw_outputs(self.preprocessor.transform(frame))

    def predict_frame(self, frame: pd.DataFrame) -> dict[str, Any]:
        return self.outputs_to_predictions(self.frame_outputs(frame))

    def ensemble_outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """The weighted average of the members' probabilities as log-probabilities (a softmax of them gives the
        average back), or of their values (regression)."""
        assert self.members is not None
        total: np.ndarray | None = None
        for member, weight in self.members:
            pred = member.predict_frame(frame)
            part = pred["probabilities"] if self.task == "classification" else pred["value"].reshape(-1, 1)
            part = np.asarray(part, dtype=np.float64) * weight
            total = part if total is None else total + part
        assert total is not None
        if self.task == "classification":
            return np.log(np.clip(total, 1e-30, None)).astype(np.float32)
        return total.astype(np.float32)

    def outputs_to_predictions(self, outputs: np.ndarray) -> dict[str, Any]:
        if self.task == "classification":
            logits = torch.from_numpy(outputs.astype(np.float32))
            proba = torch.softmax(logits, dim=-1).numpy()
            idx = proba.argmax(axis=1)
            labels = self.labels or [str(i) for i in range(proba.shape[1])]
            named = [labels[i] for i in idx]
            out = {"label": named, "index": idx, "probabilities": proba, "outputs": outputs}
            abstain = self.meta.get("abstain")  # out-of-scope rejection (evaluation/abstain.py)
            if abstain:
                rejected = proba.max(axis=1) < float(abstain["threshold"])
                out["label"] = [str(abstain["label"]) if r else n for n, r in zip(named, rejected, strict=True)]
                out["abstained"] = rejected
            return out
        values = outputs.reshape(len(outputs), -1)[:, 0]
        return {"value": values, "outputs": outputs}

    def predict_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        frame = pd.DataFrame.from_records(records)
        pred = self.predict_frame(frame)
        out = []
        for i in range(len(frame)):
            if self.task == "classification":
                labels = self.labels or []
                out.append(
                    {
                        "label": pred["label"][i],
                        "probabilities": {
                            lab: float(p) for lab, p in zip(labels, pred["probabilities"][i], strict=False)
                        },
                    }
                )
                if "abstained" in pred:
                    out[-1]["abstained"] = bool(pred["abstained"][i])
            else:
                out.append({"value": float(pred["value"][i])})
        return out


def _onnx_session(path: Path) -> Any:
    import onnxruntime as ort  # heavy: ONNX Runtime, only for an optimised (ONNX) model

    if not path.is_file():
        raise ShipyardError("ONNX file missing", where=str(path))
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
