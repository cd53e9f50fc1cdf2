"""A two-tower run's towers in torch against ONNX Runtime fp32 and int8, at the batch sizes serving uses.

    SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/recommend_onnx.py --run RUN [--threads 1] [--repeats 300]

Exports the towers first (`shipyard optimize RUN --methods onnx,int8`'s ``export_towers``, which checks fp32
against torch to 1e-4 and measures each file's top-10 agreement with torch over every user with a history), then
times one call of:

- the user tower at batch 1 (an anonymous session, or one user's fold-in after an event), 8 and 64 (a serving
  micro-batch: ``max_batch_size`` is 64), histories taken from the run's own users;
- the item tower at batch 1 (a new item's vector from its metadata row).

Baseline: torch with the catalogue's item vectors computed once (`TorchUserTower`, what serving runs without
exported towers); ``torch, items recomputed`` is the model's own ``user_vectors_from`` (an MLP over every item on
each call: what serving ran before). Same process, same thread count for torch and ONNX Runtime; ratios are
baseline time / variant time (above 1: faster than the baseline).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipyard.artifact_recommend import load_recommender
from shipyard.models.recommend.towers import OnnxUserTower, TorchUserTower
from shipyard.models.recommend.two_tower import PAD
from shipyard.optimize.measure import ort_session
from shipyard.optimize.recommend_onnx import ItemTower, export_towers

log = logging.getLogger("bench.recommend_onnx")


def _time(fn: Any, inputs: list[Any], repeats: int) -> dict[str, float]:
    for x in inputs[:10]:  # warm-up
        fn(x)
    lat = []
    for n in range(repeats):
        t = time.perf_counter()
        fn(inputs[n % len(inputs)])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2], "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def _histories(live: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(users' last ``width`` items (N, width), their rows in the model (N,))."""
    rows, positions = [], []
    for state in live.users.values():
        items = [e.item for e in state.events][-width:]
        if items:
            row = np.full(width, PAD, np.int64)
            row[-len(items) :] = items
            rows.append(row)
            positions.append(state.position)
    return np.stack(rows), np.array(positions, np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--out", default="bench_recommend_onnx.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    report = export_towers(args.run, int8=True, threads=args.threads)
    live, _ = load_recommender(args.run, towers="torch")
    model = live.model.eval()
    folder = args.run / "optimized" / "towers"
    hist, rows = _histories(live, model.history)
    rng = np.random.default_rng(0)
    users = {
        "torch": TorchUserTower(model),
        "onnx fp32": OnnxUserTower(folder / "user_tower.onnx", "fp32", args.threads),
        "onnx int8": OnnxUserTower(folder / "user_tower.int8.onnx", "int8", args.threads),
        "torch, items recomputed": lambda h, u: model.user_vectors_from(h, u),
    }
    results: dict[str, Any] = {"towers.json": report, "threads": args.threads, "user tower": {}, "item tower": {}}
    for batch in (1, 8, 64):
        picks = [rng.choice(len(hist), batch, replace=False) for _ in range(50)]
        # batch 1: an anonymous session (no user row); larger: known users' fold-ins
        inputs = [(hist[p], np.full(batch, -1, np.int64) if batch == 1 else rows[p]) for p in picks]
        row = {name: _time(lambda x, f=f: f(*x), inputs, args.repeats) for name, f in users.items()}
        base = row["torch"]["p50_ms"]
        for name in row:
            row[name]["speed-up vs torch (p50)"] = base / row[name]["p50_ms"]
        results["user tower"][f"batch {batch}"] = row
        log.info("user tower batch %d: %s", batch, row)
    item_torch = ItemTower(model).eval()
    x = model.item_x.numpy()
    item_inputs = [(x[i : i + 1], np.array([i], np.int64)) for i in rng.choice(len(x), 50, replace=False)]
    sessions = {v: ort_session(folder / f, args.threads) for v, f in
                (("onnx fp32", "item_tower.onnx"), ("onnx int8", "item_tower.int8.onnx"))}  # fmt: skip

    def torch_item(a: Any) -> Any:
        with torch.no_grad():
            return item_torch(torch.as_tensor(a[0]), torch.as_tensor(a[1]))

    row = {"torch": _time(torch_item, item_inputs, args.repeats)}
    for name, s in sessions.items():
        names = [i.name for i in s.get_inputs()]
        row[name] = _time(lambda a, s=s, names=names: s.run(None, dict(zip(names, a, strict=True))), item_inputs,
                          args.repeats)  # fmt: skip
    for name in row:
        row[name]["speed-up vs torch (p50)"] = row["torch"]["p50_ms"] / row[name]["p50_ms"]
    results["item tower"]["batch 1"] = row
    log.info("item tower batch 1: %s", row)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
