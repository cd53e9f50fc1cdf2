"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright, against `shipyard serve`.

One server (a weak champion trained with a tiny learning rate, logging every prediction) and one browser session:
log in, label five queued items with the keyboard (and undo / skip), see a drift alert after drifted traffic is
sent, and promote a better challenger (the switch goes through the server's zero-downtime version route).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from shipyard.store.keys import KeyStore

FEATURES = ["age", "workclass", "education", "education-num", "marital-status", "occupation", "relationship",
            "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country"]  # fmt: skip


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI installs it")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _records(frame) -> list[dict]:
    return [{k: (None if v != v else v) for k, v in r.items()} for r in frame[FEATURES].to_dict("records")]


@pytest.fixture(scope="module")
def server(tmp_path_factory, adult_young_run: Path, adult_trainer, data_dir: Path):
    """A running `shipyard serve` of a weak champion; yields (url, admin key, challenger run, work folder)."""
    import pandas as pd

    browser = chromium()
    work = tmp_path_factory.mktemp("ui-browser")
    frame = pd.read_csv(data_dir / "adult" / "adult.data", skipinitialspace=True, na_values=["?"])
    frame = frame.dropna(subset=FEATURES)  # the API refuses a missing category
    young = frame[frame["age"] < 40].sample(n=800, random_state=11)
    champion = adult_trainer(young, work / "weak", epochs=1, name="weak", learning_rate=1e-6)
    keys = KeyStore.for_root(work / "runs")
    admin = keys.create("ops", "admin")
    port = _free_port()
    proc = _start(work, champion, port)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"the server exited: {(work / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        else:
            pytest.fail("the server did not get ready in 120 s")
        yield {"url": url, "key": admin, "challenger": adult_young_run, "frame": frame, "browser": browser}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _predict(server: dict, rows) -> list[dict]:
    out = []
    headers = {"Authorization": f"Bearer {server['key']}"}
    records = _records(rows)
    for start in range(0, len(records), 50):
        response = httpx.post(
            f"{server['url']}/v1/models/adult/predict", json={"instances": records[start : start + 50]},
            headers=headers, timeout=60,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        out.extend(response.json()["predictions"])
    return out


def test_label_drift_alert_and_promotion_in_a_browser(server):
    from playwright.sync_api import expect, sync_playwright

    frame = server["frame"]
    calm = frame[frame["age"] < 40].sample(n=150, random_state=12)
    answers = _predict(server, calm)
    assert all(len(a["prediction_id"]) == 32 for a in answers)  # every answer has an id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=server["browser"], headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(60_000)
        # log in: the key goes into an HttpOnly cookie
        page.goto(f"{server['url']}/ui")
        expect(page).to_have_url(f"{server['url']}/ui/login")
        page.fill("#key", server["key"])
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Served models")
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["shipyard_ui_key"]["httpOnly"]
        # label five queued items with the keyboard (and an undo and a skip on the way)
        page.goto(f"{server['url']}/ui/label/adult")
        page.click("#build")
        expect(page.locator("#remaining")).to_contain_text("50 waiting")
        for done in range(1, 6):
            page.keyboard.press("1")
            expect(page.locator("#labelled")).to_have_text(f"{done} labelled in this session")
        page.keyboard.press("u")
        expect(page.locator("#labelled")).to_have_text("4 labelled in this session")
        page.keyboard.press("2")
        expect(page.locator("#labelled")).to_have_text("5 labelled in this session")
        page.keyboard.press("s")
        expect(page.locator("#remaining")).to_contain_text("44 waiting")
        # no alert on in-distribution traffic; an alert after drifted traffic
        page.goto(f"{server['url']}/ui/monitor/adult")
        page.click("#check-now")
        expect(page.locator("#last-status")).to_have_text("ok")
        everyone = frame.drop(calm.index).sample(n=400, random_state=13)
        drifted = _predict(server, everyone)
        page.click("#check-now")
        expect(page.locator("#last-status")).to_have_text("drift")
        expect(page.locator("#alerts .alert").first).to_contain_text("input drift")
        # feedback on the drifted traffic, then promote the better challenger from the model page
        headers = {"Authorization": f"Bearer {server['key']}"}
        for answer, truth in zip(drifted[:300], everyone["Y"][:300], strict=True):
            response = httpx.post(
                f"{server['url']}/v1/models/adult/feedback",
                json={"prediction_id": answer["prediction_id"], "label": truth}, headers=headers, timeout=30,
            )  # fmt: skip
            assert response.status_code == 201, response.text
        page.goto(f"{server['url']}/ui/models/adult")
        page.fill("#challenger", str(server["challenger"]))
        page.fill("#why", "better on the new population")
        page.click("#promote button[type=submit]")
        expect(page.locator(".message")).to_contain_text("promoted: version 2")
        expect(page.locator("table.history")).to_contain_text("promote")
        browser.close()
    served = httpx.get(f"{server['url']}/v1/models/adult", headers=headers, timeout=10).json()
    assert served["version"] == 2


def _start(work: Path, champion: Path, port: int) -> subprocess.Popen:
    loop_cfg = work / "loop.yaml"
    loop_cfg.write_text(
        yaml.safe_dump(
            {
                "loop": {
                    "monitor": {"thresholds": {"min_rows": 100}, "interval_s": 3600},
                    "promotion": {"min_feedback": 30, "holdout_tolerance": 0.05},
                }
            }
        )
    )
    cmd = [
        sys.executable, "-m", "shipyard.cli", "serve", f"adult={champion}", "--port", str(port),
        "--store", str(work / "runs" / "shipyard.db"), "--log-predictions", "adult=1:30",
        "--loop-config", str(loop_cfg), "--rate-limit", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(work / "server.log", "w") as log:  # a file, never a pipe nobody reads: a full one stalls the server
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
