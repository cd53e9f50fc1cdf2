"""Data-parallel training on one CPU machine: `torchrun` with N processes vs one process with N threads.

Both sides run the whole `shipyard train` command on the same job (all-MiniLM-L6-v2 fine-tuned on the first
2,000 SST-2 training sentences for one epoch, batch 32, max length 64, seed 0) and are scored on the labelled
SST-2 `test.tsv`. The baseline (a) is one process with `training.num_threads: N`; (b) is `torchrun
--nproc_per_node=N` with one thread per process. The runs alternate (a, b, b, a by default) so machine noise falls
on both sides. Training examples/s comes from each run's metrics.json (rows trained over the wall-clock time of
the training loop, all ranks together); the whole-run time includes start-up, data preparation, evaluation and
the report. Data comes from `SHIPYARD_DATA_DIR`.

    .venv/bin/python bench/ddp_cpu.py [--procs 2] [--rows 2000] [--order abba]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipyard.settings import data_dir

JOB = """task: classification
data:
  source: {{path: "{sst2}/train.tsv", format: tsv, limit: {rows}}}
  validation_source: {{path: "{sst2}/dev.tsv", format: tsv, limit: 500}}
  test_source: {{path: "{sst2}/test.tsv", format: tsv}}
  target: label
  features: [{{name: sentence, type: text}}]
  split: {{method: stratified, validation: 0.0, test: 0.0}}
  text: {{max_length: 64}}
model: {{type: transformer, pretrained: minilm, pooling: mean, mode: full}}
training:
  optimizer: adamw
  learning_rate: 0.0001
  schedule: {{name: linear, warmup_ratio: 0.06}}
  batch_size: 32
  epochs: 1
  seed: 0
  num_threads: {threads}
"""


def run(side: str, procs: int, rows: int, work: Path, index: int) -> dict[str, float]:
    threads = procs if side == "a" else 1
    job = work / f"job-{side}-{index}.yaml"
    job.write_text(JOB.format(sst2=data_dir() / "sst2", rows=rows, threads=threads))
    run_dir = work / "runs" / f"{side}-{index}"
    train = ["-m", "shipyard.cli", "train", str(job), "--run-dir", str(run_dir), "--quiet"]
    if side == "a":
        cmd = [sys.executable, *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--standalone", *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"side {side} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "examples_per_s": metrics["training"]["examples_per_second"],
        "wall_s": wall,
        "accuracy": metrics["test"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--order", default="abba")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, side in enumerate(args.order):
            res = run(side, args.procs, args.rows, Path(tmp), i)
            results[side].append(res)
            label = f"one process, {args.procs} threads" if side == "a" else f"torchrun, {args.procs} processes"
            print(
                f"{side} ({label}): {res['examples_per_s']:.1f} examples/s, whole run {res['wall_s']:.1f} s, "
                f"test accuracy {res['accuracy']:.4f}",
                flush=True,
            )
    a = statistics.mean(r["examples_per_s"] for r in results["a"])
    b = statistics.mean(r["examples_per_s"] for r in results["b"])
    wa = statistics.mean(r["wall_s"] for r in results["a"])
    wb = statistics.mean(r["wall_s"] for r in results["b"])
    print(f"training examples/s: (a) {a:.1f}  (b) {b:.1f}  ratio b/a {b / a:.2f}x")
    print(f"whole run: (a) {wa:.1f} s  (b) {wb:.1f} s  ratio a/b {wa / wb:.2f}x")


if __name__ == "__main__":
    main()
