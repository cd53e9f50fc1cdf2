"""Trains a small BPR recommendation job (`run_recommendation_job`); run as a subprocess by the kill-and-resume
test. ``python _rec_train_script.py EVENTS_CSV RUN_DIR fresh|resume [SLEEP_PER_STEP]``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from shipyard.config.schema import Job


def job(events: Path) -> Job:
    return Job.model_validate(
        {
            "task": "recommendation",
            "recommend": {"data": {"format": "csv", "path": str(events), "implicit": True}, "model": {"type": "bpr"}},
            "training": {"optimizer": "adam", "learning_rate": 0.02, "batch_size": 64, "epochs": 2, "seed": 5,
                         "checkpoint_every_steps": 4, "num_threads": 1},
        }
    )  # fmt: skip


def main(events: Path, run_dir: Path, mode: str, slow: float = 0.0) -> None:
    from shipyard.models.recommend.factor import BPR
    from shipyard.pipeline_recommend import run_recommendation_job

    if slow:  # slowed so that the test can kill it inside the second epoch
        forward = BPR.forward

        def slowed(self: BPR, *args: object, **kwargs: object) -> object:
            time.sleep(slow)
            return forward(self, *args, **kwargs)

        BPR.forward = slowed  # type: ignore[method-assign]
    run_recommendation_job(job(events), base_dir=events.parent, run_dir=run_dir, resume=mode == "resume")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
