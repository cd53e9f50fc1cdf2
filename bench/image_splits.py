"""Stored image splits (issue #13): what reading a run's rows costs now that image runs keep theirs in the run folder.

The job is examples/mnist_mlp.yaml's data section on the full MNIST (60,000 training images split 95 / 5 into
train / validation, the 10,000 t10k images as test). Both sides end with the same thing a later stage
(`optimize`, `evaluate`, erasure) needs: every split's frame and model inputs through the run's fitted
preprocessor.

- (a) baseline, what image runs did before: read the IDX sources again and redo the data stage
  (`prepare_data`: parse, clean, split, fit, transform);
- (b) now: read `splits/{train,validation,test}.safetensors` (`data/split_files.read_split`) and transform them
  with the already fitted preprocessor.

It also reports the one-off cost at training time (writing the three files), their size on disk, and the peak of
traced memory (tracemalloc, which counts NumPy's buffers): reading the three files alone, and each side whole.
Each side runs ``--repeats`` times, alternating, and the median is kept. Data comes from `SHIPYARD_DATA_DIR`.

    .venv/bin/python bench/image_splits.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from shipyard.config.schema import Job
from shipyard.data.prepare import prepare_data
from shipyard.data.split_files import image_split_frame, read_split, write_split
from shipyard.settings import data_dir


def _job() -> Job:
    mnist = data_dir() / "mnist"
    return Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {
                    "format": "idx",
                    "images": str(mnist / "train-images-idx3-ubyte.gz"),
                    "labels": str(mnist / "train-labels-idx1-ubyte.gz"),
                },
                "test_source": {
                    "format": "idx",
                    "images": str(mnist / "t10k-images-idx3-ubyte.gz"),
                    "labels": str(mnist / "t10k-labels-idx1-ubyte.gz"),
                },
                "target": "label",
                "split": {"method": "stratified", "validation": 0.05, "test": 0.0},
                "cleaning": {"drop_duplicates": False},
            },
            "model": {"type": "mlp"},
        }
    )


def _baseline(job: Job) -> Any:
    return prepare_data(job, base_dir=Path.cwd(), input_kinds=("tabular", "image"))


def _stored(folder: Path, pre: Any) -> dict[str, Any]:
    frames = {name: read_split(folder / f"{name}.safetensors") for name in ("train", "validation", "test")}
    return {name: pre.transform(frame) for name, frame in frames.items()}


def _peak(work: Any) -> float:
    """The peak of traced memory (MiB) while ``work`` runs and its result is alive."""
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    job = _job()
    prepared = _baseline(job)
    pre = prepared.preprocessor
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "splits"
        started = time.perf_counter()
        for name, split in prepared.splits.items():
            key = "test_source" if name == "test" else "source"
            write_split(folder / f"{name}.safetensors", image_split_frame(split.frame, key))
        write_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in folder.iterdir())
        rows = sum(len(s.frame) for s in prepared.splits.values())
        del prepared
        times: dict[str, list[float]] = {"a": [], "b": []}
        for _ in range(args.repeats):
            for side in ("a", "b"):
                started = time.perf_counter()
                _baseline(job) if side == "a" else _stored(folder, pre)
                times[side].append(time.perf_counter() - started)
        peaks = {
            "read": _peak(lambda: [read_split(p) for p in sorted(folder.iterdir())]),
            "a": _peak(lambda: _baseline(job)),
            "b": _peak(lambda: _stored(folder, pre)),
        }
    a, b = statistics.median(times["a"]), statistics.median(times["b"])
    print(f"rows: {rows}; three split files: {size / 2**20:.1f} MiB; written once at training in {write_s:.2f} s")
    print(f"(a) baseline, the sources read and the data stage redone: {a:.2f} s (median of {args.repeats})")
    print(f"(b) the stored splits read and transformed:             {b:.2f} s (median of {args.repeats})")
    print(f"ratio a / b: {a / b:.1f}x")
    print(
        f"peak traced memory: reading the three files {peaks['read']:.0f} MiB; (a) {peaks['a']:.0f} MiB; "
        f"(b) {peaks['b']:.0f} MiB (most of both is the preprocessor's float inputs)"
    )


if __name__ == "__main__":
    main()
