"""The finmon pages in a real browser: Debian's chromium, headless, driven by Playwright, against the app
`shipyard serve --apps finmon` builds (in a thread here; the monitor runs in the test, on the same store, as
`shipyard app finmon run` would).

Log in, watch the live alert feed (empty, then the alert appears by itself once the monitor has processed the
ingested stream), open the entity page from the alert, correct a document's sentiment through its form, and find
the correction in the loop's feedback store of the model's run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from finmon_helpers import burst_stream, config_dict, free_port, keyword_model

from shipyard.apps.finmon.config import load_config
from shipyard.apps.finmon.corrections import prediction_id
from shipyard.apps.finmon.runner import Monitor
from shipyard.loop.feedback import labelled_rows
from shipyard.loop.store import LoopStore
from shipyard.store.keys import KeyStore

T0 = 1_700_000_000 - 1_700_000_000 % 3600
MODEL_NAME = "finmon-browser-test"


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI installs it")
    return path


@contextlib.contextmanager
def _serving(keys: Path, port: int) -> Iterator[str]:
    """The app `shipyard serve --apps finmon` runs (serve's own build_app, the CLI's app resolver), under uvicorn
    in a thread of this process: the imports it needs (torch among them) are already paid for here."""
    from shipyard.cli.serve import resolve_apps
    from shipyard.config.serve import ServeSettings
    from shipyard.serve.workers import build_app

    settings = ServeSettings(port=port, key_store_path=keys, apps=("finmon",), rate_limit_per_s=0)
    config = uvicorn.Config(build_app({}, settings, resolve_apps), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_feed_entity_page_and_correction_in_a_browser(
    tmp_path: Path, tiny_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    browser_path = chromium()
    data = config_dict(tmp_path, tiny_run, sources=[{"type": "http"}], corrections={"model_name": MODEL_NAME})
    config_file = tmp_path / "finmon.yaml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    key = KeyStore(tmp_path / "keys.db").create("analyst", "predict")
    monkeypatch.setenv("SHIPYARD_FINMON_CONFIG", str(config_file))
    with _serving(tmp_path / "keys.db", free_port()) as url:
        docs = burst_stream(T0)
        answer = httpx.post(f"{url}/v1/apps/finmon/documents", json={"documents": docs},
                            headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
        assert answer.status_code == 202 and answer.json() == {"accepted": len(docs)}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{url}/ui/login")
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.goto(f"{url}/ui/apps/finmon/alerts")
            expect(page.locator("h1")).to_have_text("Live alert feed")
            expect(page.locator("body")).to_contain_text("no alerts yet")
            # the monitor processes the ingested stream; the open feed shows the alert on its own refresh
            monitor = Monitor(load_config(config_file), model=keyword_model)
            assert monitor.run(until_idle=True).alerts == 1
            monitor.close()
            row = page.locator("tr.alert")
            expect(row).to_have_count(1, timeout=12_000)
            expect(row).to_contain_text("NOKIA")
            expect(row).to_contain_text("negative")
            row.locator("a", has_text="NOKIA").click()
            expect(page.locator("h1")).to_have_text("Nokia (NOKIA)")
            expect(page.locator(".alert-marker").first).to_be_attached()
            # correct the newest document (a bad-news story, scored negative) to neutral through its form
            first = page.locator("tr.document").first
            doc_id = first.locator("input[name=doc_id]").get_attribute("value")
            first.locator("select[name=label]").select_option("neutral")
            first.locator("button", has_text="correct").click()
            expect(page.locator(".message")).to_contain_text(f"corrected {doc_id}: neutral (filed for retraining)")
            expect(page.locator("tr.document").first).to_contain_text("corrected: neutral")
            browser.close()
    rows = labelled_rows(LoopStore.open(tiny_run.parent), MODEL_NAME)  # what `shipyard retrain` learns from
    assert list(rows["_id"]) == [prediction_id(MODEL_NAME, str(doc_id))] and list(rows["_target"]) == ["neutral"]
