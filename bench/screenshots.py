"""Screenshots of every dashboard page into docs/screenshots/ (made by this script, never by hand).

It trains two small Adult models (a champion on 2,000 rows of people under 40, a challenger on 4,000 rows of
everyone), serves the champion with `shipyard serve` (every prediction logged), sends in-distribution and then
drifted traffic with feedback, builds a labelling queue, runs two drift checks, promotes the challenger from the
model page, and photographs each page with Debian's chromium (headless, through Playwright).

    PYTHONPATH=src SHIPYARD_DATA_DIR=../shared/data .venv/bin/python bench/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

import shipyard
from shipyard.config.schema import Job
from shipyard.settings import data_dir
from shipyard.store.keys import KeyStore

log = logging.getLogger("bench.screenshots")
FEATURES = ["age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship",
            "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country"]  # fmt: skip


def train(frame: pd.DataFrame, work: Path, name: str) -> Path:
    frame.to_csv(work / f"{name}.csv", index=False)
    job = Job.model_validate(
        {
            "name": name,
            "task": "classification",
            "data": {"source": {"path": str(work / f"{name}.csv"), "format": "csv"}, "target": "Y",
                     "drop_columns": ["fnlwgt"], "split": {"method": "stratified", "validation": 0.15, "test": 0.15}},
            "model": {"type": "mlp", "hidden": [32]},
            "training": {"epochs": 3, "batch_size": 128, "seed": 0, "learning_rate": 0.003},
            "output": {"runs_root": str(work / "runs"), "name": name},
        }
    )  # fmt: skip
    return shipyard.run(job).run_dir


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v != v else v) for k, v in r.items()} for r in frame[FEATURES].to_dict("records")]


def start_server(work: Path, champion: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {
        "loop": {
            "monitor": {"thresholds": {"min_rows": 100}},
            "promotion": {"min_feedback": 30, "holdout_tolerance": 0.05},
        }
    }
    (work / "loop.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "shipyard.cli", "serve", f"adult={champion}", "--port", str(port), "--store",
           str(work / "runs" / "shipyard.db"), "--log-predictions", "adult=1:30", "--loop-config",
           str(work / "loop.yaml"), "--rate-limit", "0"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, cwd=work, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not get ready")


def photograph(url: str, key: str, adult: pd.DataFrame, challenger: Path, out: Path, browser_path: str) -> None:
    """Drive the dashboard through the loop and photograph each page."""
    from playwright.sync_api import sync_playwright

    headers = {"Authorization": f"Bearer {key}"}

    def predict(frame: pd.DataFrame) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        rows = records(frame)
        for i in range(0, len(rows), 50):
            r = httpx.post(f"{url}/v1/models/adult/predict", json={"instances": rows[i : i + 50]},
                           headers=headers, timeout=60)  # fmt: skip
            answers.extend(r.json()["predictions"])
        return answers

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)

        def shot(name: str) -> None:
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            log.info("%s.png", name)

        page.goto(f"{url}/ui/login")
        shot("login")
        page.fill("#key", key)
        page.click("button[type=submit]")
        calm = adult[adult["age"] < 40].sample(n=300, random_state=2)
        predict(calm)
        page.goto(f"{url}/ui/monitor/adult")
        page.click("#check-now")
        everyone = adult.drop(calm.index).sample(n=500, random_state=3)
        answers = predict(everyone)
        for answer, truth in zip(answers[:300], everyone["Y"][:300], strict=True):
            httpx.post(f"{url}/v1/models/adult/feedback", headers=headers, timeout=30,
                       json={"prediction_id": answer["prediction_id"], "label": truth})  # fmt: skip
        page.click("#check-now")
        page.wait_for_selector("#last-status")
        shot("monitor")
        page.goto(f"{url}/ui/label/adult")
        page.click("#build")
        page.wait_for_selector("#item table")
        shot("label")
        page.goto(f"{url}/ui/models/adult")
        page.fill("#challenger", str(challenger))
        page.fill("#why", "better on the whole population")
        page.click("#promote button[type=submit]")
        page.wait_for_selector(".message")
        shot("model")
        page.goto(f"{url}/ui")
        shot("overview")
        page.goto(f"{url}/ui/runs")
        shot("runs")
        run_id = json.loads((challenger / "run.json").read_text())["run_id"]
        page.goto(f"{url}/ui/runs/{run_id}")
        shot("run")
        page.goto(f"{url}/ui/try/adult")
        for name, value in records(everyone.head(1))[0].items():
            page.fill(f"[name='{name}']", "" if value is None else str(value))
        page.click("form.try button[type=submit]")
        page.wait_for_selector("#answer")
        shot("try")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    browser_path = shutil.which("chromium")
    if browser_path is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    adult = pd.read_csv(data_dir() / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])
    adult = adult.dropna(subset=FEATURES)  # the API refuses a missing category
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        work = Path(tmp)
        champion = train(adult[adult["age"] < 40].sample(n=2000, random_state=0), work, "adult-young")
        challenger = train(adult.sample(n=4000, random_state=1), work, "adult-everyone")
        key = KeyStore.for_root(work / "runs").create("ops", "admin")
        proc, url = start_server(work, champion)

        try:
            photograph(url, key, adult, challenger, args.out, browser_path)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
