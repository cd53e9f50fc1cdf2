"""``POST /v1/models/<name>/search`` on a tiny retrieval run: keys, batching, filters, passages admin route."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import auth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieval"))
from retrieval_helpers import tiny_run


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("retrieval_run"))


def test_search_route(make_client: Any, keys: dict[str, Any], retrieval_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(retrieval_run, run)  # the passages route writes the index back
    client = make_client({"faq": run})
    key = auth(keys["predict"])
    assert client.post("/v1/models/faq/search", json={"query": "refund"}).status_code == 401
    answer = client.post("/v1/models/faq/search", json={"query": "I want my money back", "k": 3}, headers=key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 1 and len(body["results"]) == 3
    assert {"id", "text", "group", "score"} <= set(body["results"][0])
    only = client.post(
        "/v1/models/faq/search",
        json={"query": "where is my parcel", "k": 5, "filters": {"group": "complaint"}, "ranking": "bm25"},
        headers=key,
    ).json()["results"]
    assert only and all(r["group"] == "complaint" for r in only)
    for bad in ({"query": "x", "k": 0}, {"query": 3}, {"query": "x" * 10_001}, {"query": "x", "extra": 1}):
        assert client.post("/v1/models/faq/search", json=bad, headers=key).status_code == 422
    assert client.post("/v1/models/faq/search", json={"query": ""}, headers=key).status_code == 200
    info = client.get("/v1/models/faq", headers=key).json()
    assert info["task"] == "retrieval" and info["predict_url"].endswith("/search")
    new = {"id": 999_001, "text": "Our shop opens at 9 am on Sundays.", "group": "opening_hours"}
    denied = client.post("/v1/models/faq/passages", json={"add": [new]}, headers=key)
    assert denied.status_code == 403
    admin = auth(keys["admin"])
    changed = client.post("/v1/models/faq/passages", json={"add": [new], "delete": [0]}, headers=admin)
    assert changed.status_code == 200 and changed.json()["added"] == 1 and changed.json()["deleted"] == 1
    hits = client.post(
        "/v1/models/faq/search", json={"query": "when does the shop open on Sunday", "k": 1}, headers=key
    ).json()["results"]
    assert hits[0]["id"] == 999_001
    assert "shipyard_" in client.get("/metrics").text
