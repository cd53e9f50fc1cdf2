"""Where the monitor spends its time outside the model: the bench stream (bench/finmon.py, built from a run's
held-out PhraseBank sentences) through the file source with a constant stand-in for the model, under cProfile.
Prints documents/s of the pipeline alone and the top functions by cumulative time.

    PYTHONPATH=src python bench/finmon_profile.py --run RUN_DIR [--documents 6000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import finmon as bench  # the stream and config of bench/finmon.py

from shipyard.apps.finmon.runner import Monitor


def neutral(texts: list[str]) -> np.ndarray:
    """The stand-in model: every sentence neutral, no time spent."""
    out = np.zeros((len(texts), 3), dtype=np.float32)
    out[:, 1] = 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True, help="a Financial PhraseBank run (its test split is used)")
    parser.add_argument("--documents", type=int, default=6000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    docs, _ = bench.build_stream(pd.read_parquet(args.run / "splits" / "test.parquet"), args.documents)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "in"
        folder.mkdir()
        (folder / "replay.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        monitor = Monitor(bench.config(root, args.run, [{"type": "folder", "path": str(folder)}], "profile"),
                          model=neutral)  # fmt: skip
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        stats = monitor.run(until_idle=True)
        profile.disable()
        seconds = time.perf_counter() - started
        monitor.close()
    print(json.dumps({"documents": stats.documents, "seconds_profiled": round(seconds, 2),
                      "docs_per_s_profiled": round(stats.documents / seconds, 1)}))  # fmt: skip
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
