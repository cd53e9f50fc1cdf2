"""The HTTP ingest endpoint, the JSON API and the dashboard pages (FastAPI TestClient), and the APP object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from finmon_helpers import config_dict, keyword_model
from prometheus_client import generate_latest

from shipyard.apps.finmon import APP
from shipyard.apps.finmon.api import FinmonContext
from shipyard.apps.finmon.config import validate_config
from shipyard.apps.finmon.runner import Monitor

T0 = 1_700_000_000 - 1_700_000_000 % 3600


VOCABULARY = [
    "plant",
    "order",
    "network",
    "deal",
    "unit",
    "board",
    "market",
    "China",
    "Europe",
    "quarter",
    "guidance",
    "supplier",
    "contract",
]


def words(rng: np.random.Generator) -> str:
    """Distinct filler, so that the documents are not near-duplicates of each other."""
    return " ".join(rng.choice(VOCABULARY, 6)) + f" {rng.integers(1_000_000)}"


def test_ingest_api_and_pages(tmp_path: Path) -> None:
    # corrections stay local here (no run folder); test_finmon_corrections.py files them in the loop
    http = [{"type": "http", "max_batch": 500}]
    config = validate_config(config_dict(tmp_path, sources=http, corrections={"loop": False}))
    context = FinmonContext.from_config(config)
    app = FastAPI()
    for router in APP.routers(context):
        app.include_router(router, prefix="/v1/apps/finmon")
    for router in APP.pages(context):
        app.include_router(router, prefix="/apps/finmon")
    client = TestClient(app)

    rng = np.random.default_rng(0)
    docs = []
    for minute in range(90):  # a quiet baseline, then a burst of bad news about Nokia
        for k in range(2):
            word = rng.choice(["rose", "fell", "met analysts"])
            docs.append({"id": f"b{minute}-{k}", "ts": T0 + minute * 60 + k, "text": f"Nokia {word} {words(rng)}"})
    burst = [{"id": f"x{k}", "ts": T0 + 90 * 60 + k, "text": f"Nokia <b>profit</b> fell, a loss {words(rng)}"}
             for k in range(12)]  # fmt: skip
    tail = [{"id": "late", "ts": T0 + 93 * 60, "text": "Stora Enso opened a mill"}]
    for chunk in (docs[:100], {"documents": docs[100:]}, burst, tail):
        response = client.post("/v1/apps/finmon/documents", json=chunk)
        assert response.status_code == 202, response.text
    assert client.post("/v1/apps/finmon/documents", json=[{"text": "x"}] * 501).status_code == 413
    assert client.post("/v1/apps/finmon/documents", json=[1, 2]).status_code == 422

    monitor = Monitor(config, model=keyword_model, store=context.store)
    stats = monitor.run(until_idle=True)
    assert stats.documents == len(docs) + len(burst) + 1 and stats.alerts == 1
    assert monitor.run(until_idle=True).documents == 0  # the inbox position was saved
    metrics = generate_latest(monitor.metrics.registry).decode()
    assert 'finmon_alerts_total{direction="negative",entity="NOKIA"} 1.0' in metrics
    assert 'finmon_documents_total{source="http"} 193.0' in metrics

    entities = {e["entity"]: e for e in client.get("/v1/apps/finmon/entities").json()}
    assert entities["NOKIA"]["volume"] == 192 and entities["BAC"]["volume"] == 0
    series = client.get("/v1/apps/finmon/entities/NOKIA/series", params={"window": "1h"}).json()
    assert [p["volume"] for p in series["points"]] == [120, 72]
    assert client.get("/v1/apps/finmon/entities/NOPE/series").status_code == 404
    alerts = client.get("/v1/apps/finmon/alerts").json()
    assert len(alerts) == 1 and alerts[0]["entity"] == "NOKIA" and alerts[0]["direction"] == "negative"
    assert alerts[0]["bucket"] == T0 + 90 * 60 and alerts[0]["top_documents"][0]["id"].startswith("x")
    assert client.get("/v1/apps/finmon/alerts", params={"after_id": alerts[0]["id"]}).json() == []

    fixed = client.post("/v1/apps/finmon/documents/x3/correction", json={"label": "neutral"})
    assert fixed.status_code == 200 and context.store.count("corrections") == 1
    assert client.post("/v1/apps/finmon/documents/nope/correction", json={"label": "neutral"}).status_code == 404

    home = client.get("/apps/finmon/")
    assert home.status_code == 200 and home.text.count('<tr class="entity">') == 5 and "<svg" in home.text
    assert "cdn" not in home.text.lower() and "<script" not in home.text
    page = client.get("/apps/finmon/entities/NOKIA")
    assert page.status_code == 200 and 'class="alert-marker"' in page.text and "profit fell, a loss" in page.text
    assert "&lt;b&gt;" not in page.text and "<b>profit" not in page.text  # stored text is normalised, then escaped
    feed = client.get("/apps/finmon/alerts")
    assert feed.status_code == 200 and 'http-equiv="refresh"' in feed.text and feed.text.count('class="alert"') == 1
    assert client.get("/apps/finmon/entities/NOPE").status_code == 404
    monitor.close()


def test_app_object_fits_the_plugin_interface() -> None:
    assert APP.name == "finmon" and APP.summary and APP.cli.registered_commands
    names = {c.name or c.callback.__name__ for c in APP.cli.registered_commands}
    assert {"run", "backtest", "replay"} <= names
