"""The recommend application: its API and shop-front page, in a TestClient and in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.apps import get_app
from shipyard.apps.recommend.cli import shop_app

JOB = """task: recommendation
recommend:
  data: {{format: csv, path: events.csv, items: items.csv}}
  model: {{type: bpr, dim: 16}}
training: {{optimizer: adam, learning_rate: 0.02, batch_size: 1024, epochs: 2}}
output: {{runs_root: "{runs}"}}
"""


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shop")
    names = ["user_id", "item_id", "rating", "timestamp"]
    raw = pd.read_csv(data_dir / "movielens-100k" / "u.data", sep="\t", names=names)
    raw[raw.user_id <= 40].to_csv(folder / "events.csv", index=False)
    items = pd.read_csv(data_dir / "movielens-100k" / "u.item", sep="|", encoding="latin-1", header=None)
    pd.DataFrame({"item_id": items[0], "title": items[1]}).to_csv(folder / "items.csv", index=False)
    (folder / "job.yaml").write_text(JOB.format(runs=folder / "runs"))
    return shipyard.train(folder / "job.yaml").run_dir


def test_registered_with_cli_api_and_pages() -> None:
    app = get_app("recommend")
    assert set(app.contributes()) == {"cli", "routers", "pages"}


def test_shop_api(run_dir: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(shop_app(run_dir, auth=False)) as client:
        users = client.get("/v1/apps/recommend/users?limit=5").json()["users"]
        assert len(users) == 5
        shelf = client.post("/v1/apps/recommend/recommend", json={"user_id": users[0], "k": 5}).json()
        assert len(shelf["items"]) == 5 and shelf["items"][0]["reason"]
        page = client.get("/ui/apps/recommend/")
        assert page.status_code == 200 and "shop.js" in page.text
        assert "/v1/apps/recommend" in client.get("/ui/apps/recommend/shop.js").text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(run_dir: Path) -> Any:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(shop_app(run_dir, auth=False), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started and time.time() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_shop_front_in_headless_chromium(server: str, run_dir: Path) -> None:
    browser_path = shutil.which("chromium")
    if browser_path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI installs it")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{server}/ui/apps/recommend/")
        page.wait_for_selector("#items li")
        assert "Popular picks" in page.inner_text("#fallback")  # anonymous, no clicks yet
        page.select_option("#user", index=1)  # the first known user
        expect(page.locator("#fallback")).to_have_text("")  # the page's CSP forbids eval: no wait_for_function
        first = page.get_attribute("#items li:first-child", "data-item")
        page.click("#items li:first-child .title")  # a click is an event: the list changes at once
        expect(page.locator("#items li").first).not_to_have_attribute("data-item", first or "")
        assert first not in [li.get_attribute("data-item") for li in page.query_selector_all("#items li")]
        assert "because you liked" in page.inner_text("#items")
        rated = page.get_attribute("#items li:first-child", "data-item")
        page.click("#items li:first-child button[data-rating='5']")  # a rating goes to the event log
        expect(page.locator(f"#items li[data-item='{rated}']")).to_have_count(0)  # recorded: now seen
        browser.close()
    ratings = [json.loads(ln)["rating"] for ln in (run_dir / "events.jsonl").read_text().splitlines()]
    assert 1.0 in ratings and 5.0 in ratings
