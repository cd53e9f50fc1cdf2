"""A recommender's model folder: weights, ids, item metadata, the FAISS index and the users' histories.

```
model/
  shipyard.json          task: recommendation, model type + params, metrics, counts
  model.safetensors      the module's state dict (two-tower: its item / user feature rows too)
  ids.json               {"users": [...], "items": [...]}: row i of the weights is users[i] / items[i]
  items.json             item metadata shown with recommendations (title, genres)
  items.faiss            the FAISS index over the item vectors (FAISS's own format; no pickle)
  interactions.parquet   the training events (user_id, item_id, rating, timestamp): exclude-seen, fold-in and
                         reasons; personal data: 0600 and reached by `shipyard data forget`
```

Everything is written atomically; loading refuses pickles and unfinished runs like every other artifact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from shipyard.artifact import FORMAT_VERSION, META, refuse_incomplete, refuse_pickles
from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors, atomic_write_bytes, atomic_write_json, atomic_write_parquet
from shipyard.models.recommend.factor import BPR, BiasedMF
from shipyard.models.recommend.index import ItemIndex
from shipyard.models.recommend.live import Event, LiveRecommender
from shipyard.models.recommend.towers import Choice, sample_histories, serving_user_tower
from shipyard.models.recommend.two_tower import TwoTower

TASK = "recommendation"
KINDS = ("mf", "bpr", "two_tower")
INTERACTIONS = "interactions.parquet"


def save_recommender(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    kind: str,
    params: dict[str, Any],
    user_ids: list[Any],
    item_ids: list[Any],
    interactions: pd.DataFrame,
    item_meta: dict[str, list[Any]] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    if kind not in KINDS:
        raise ShipyardError(f"unknown recommender {kind!r}; expected one of {', '.join(KINDS)}", where="model.type")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(folder / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write_json(folder / "ids.json", {"users": user_ids, "items": item_ids})
    atomic_write_json(folder / "items.json", item_meta or {})
    index = ItemIndex(model.item_vectors())
    atomic_write_bytes(folder / "items.faiss", index.to_bytes())
    events = interactions[["user_id", "item_id", "rating", "timestamp"]].reset_index(drop=True)
    atomic_write_parquet(folder / INTERACTIONS, events, private=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "backend": "torch",
        "task": TASK,
        "model": {"type": kind, "params": params},
        "n_users": len(user_ids),
        "n_items": len(item_ids),
        "metrics": metrics or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    atomic_write_json(folder / META, meta)
    return folder


def is_recommender(folder: str | Path) -> bool:
    path = Path(folder) / META
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("task") == TASK
    except (OSError, ValueError):
        return False


def _build(kind: str, params: dict[str, Any], state: dict[str, torch.Tensor], n_users: int, n_items: int) -> Any:
    if kind == "mf":
        model: Any = BiasedMF(n_users, n_items, dim=params["dim"], reg=params.get("reg", 0.05))
    elif kind == "bpr":
        model = BPR(n_users, n_items, dim=params["dim"], reg=params.get("reg", 1e-4))
    else:
        model = TwoTower(
            np.zeros(tuple(state["item_x"].shape), np.float32),
            np.zeros(tuple(state["user_x"].shape), np.float32),
            dim=params["dim"],
            hidden=params["hidden"],
            history=params["history"],
            temperature=params.get("temperature", 0.1),
        )
    model.load_state_dict(state)
    return model.eval()


def load_recommender(
    folder: str | Path, *, allow_incomplete: bool = False, towers: Choice = "auto"
) -> tuple[LiveRecommender, dict[str, Any]]:
    """The live recommender of a model folder, and its ``shipyard.json``. A two-tower run's user tower is the
    ONNX file `shipyard optimize` exported when there is one (``towers``: auto, torch, fp32, int8; see
    `shipyard.models.recommend.towers`)."""
    folder = Path(folder)
    if (folder / "model").is_dir():
        folder = folder / "model"
    if not allow_incomplete:
        refuse_incomplete(folder)
    refuse_pickles(folder)
    for name in (META, "model.safetensors", "ids.json", "items.faiss", INTERACTIONS):
        if not (folder / name).is_file():
            raise ShipyardError(f"the recommender folder has no {name}", where=str(folder))
    meta = json.loads((folder / META).read_text())
    if meta.get("task") != TASK:
        raise ShipyardError(f"not a recommender (task {meta.get('task')!r})", where=str(folder / META))
    ids = json.loads((folder / "ids.json").read_text())
    kind, params = meta["model"]["type"], meta["model"]["params"]
    model = _build(kind, params, load_file(str(folder / "model.safetensors")), len(ids["users"]), len(ids["items"]))
    index = ItemIndex.from_bytes((folder / "items.faiss").read_bytes(), model.item_vectors())
    events = pd.read_parquet(folder / INTERACTIONS)
    histories = histories_from(events, ids["items"])
    user_tower = None
    if kind == "two_tower":
        sample = sample_histories([[e.item for e in h] for h in histories.values()], model.history)
        user_tower = serving_user_tower(model, folder, sample, towers)
    live = LiveRecommender(
        model,
        kind,
        user_ids=ids["users"],
        item_ids=ids["items"],
        histories=histories,
        item_meta=json.loads((folder / "items.json").read_text()) if (folder / "items.json").is_file() else {},
        index=index,
        user_tower=user_tower,
    )
    return live, meta


def histories_from(events: pd.DataFrame, item_ids: list[Any]) -> dict[Any, list[Event]]:
    """Each user's events in time order, items as positions (events of items the model lacks are skipped)."""
    pos = {v: i for i, v in enumerate(item_ids)}
    ordered = events.sort_values("timestamp", kind="stable")
    out: dict[Any, list[Event]] = {}
    for user, item, rating, ts in ordered[["user_id", "item_id", "rating", "timestamp"]].itertuples(index=False):
        p = pos.get(item.item() if isinstance(item, np.generic) else item)
        if p is not None:
            key = user.item() if isinstance(user, np.generic) else user
            out.setdefault(key, []).append(Event(p, float(rating), int(ts)))
    return out
