"""Dynamic micro-batching and graceful shutdown, driven concurrently through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import auth

from shipyard.artifact import Artifact
from shipyard.serve.batching import BatcherClosed, MicroBatcher


def _rows(n: int) -> list[dict[str, Any]]:
    colors = ["red", "green", "blue"]
    return [{"a": (i - n / 2) / 7, "b": float(i % 9), "color": colors[i % 3]} for i in range(n)]


async def _ready(client: httpx.AsyncClient) -> None:
    for _ in range(500):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never ready")


def _metric(text: str, pattern: str) -> float:
    match = re.search(pattern + r" ([0-9.e+-]+)", text)
    assert match, pattern
    return float(match.group(1))


def test_concurrent_requests_are_batched_and_match_single_predictions(runs: dict, keys: dict[str, Any]) -> None:
    from shipyard.serve.app import create_app

    app = create_app({"clf": runs["clf"]}, key_store_path=keys["db"], max_wait_ms=20, max_batch_size=16)
    rows = _rows(48)

    async def main() -> tuple[list[httpx.Response], str]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=auth(keys["predict"])
            ) as c:
                await _ready(c)
                responses = await asyncio.gather(
                    *(c.post("/v1/models/clf/predict", json={"instance": r}) for r in rows)
                )
                return list(responses), (await c.get("/metrics")).text

    responses, metrics = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * len(rows)
    artifact = Artifact.load(runs["clf"])
    for row, response in zip(rows, responses, strict=True):
        single = artifact.predict_records([row])[0]
        got = response.json()["prediction"]
        assert got["label"] == single["label"]
        assert got["probabilities"]["yes"] == pytest.approx(single["probabilities"]["yes"], abs=1e-5)
    batches = _metric(metrics, r'shipyard_batch_size_count\{model="clf"\}')
    instances = _metric(metrics, r'shipyard_batch_size_sum\{model="clf"\}')
    singles = _metric(metrics, r'shipyard_batch_size_bucket\{le="1.0",model="clf"\}')
    assert instances == len(rows)
    assert batches < len(rows) / 2, f"{batches} batches for {len(rows)} concurrent requests"
    assert singles < batches  # some batches held more than one request
    assert _metric(metrics, r'shipyard_batch_size_bucket\{le="16.0",model="clf"\}') == batches  # never above max


def test_batcher_isolates_a_failing_request_and_respects_the_size_cap() -> None:
    seen: list[int] = []

    def fn(records: list[dict[str, Any]]) -> list[Any]:
        seen.append(len(records))
        if any(r.get("bad") for r in records):
            raise ValueError("bad record")
        time.sleep(0.01)
        return [r["x"] * 2 for r in records]

    async def main() -> list[Any]:
        batcher = MicroBatcher(fn, max_batch_size=5, max_wait_ms=20)
        jobs = [batcher.submit([{"x": i}, {"x": i + 100}]) for i in range(6)]
        jobs.append(batcher.submit([{"bad": True, "x": 0}]))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.close()
        with pytest.raises(BatcherClosed):
            await batcher.submit([{"x": 1}])
        return list(results)

    results = asyncio.run(main())
    assert results[:6] == [[2 * i, 2 * (i + 100)] for i in range(6)]
    assert isinstance(results[6], ValueError)
    assert max(seen) <= 5


def test_graceful_shutdown_finishes_in_flight_and_refuses_new(
    runs: dict, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.serve.state as app_module
    from shipyard.serve.app import create_app

    real = app_module.make_predictor

    def slow_predictor(artifact: Any) -> Any:
        fn = real(artifact)

        def slow(records: list[dict[str, Any]]) -> list[Any]:
            time.sleep(0.4)
            return fn(records)

        return slow

    monkeypatch.setattr(app_module, "make_predictor", slow_predictor)
    app = create_app({"clf": runs["clf"]}, key_store_path=keys["db"])
    state = app.state.serve
    row = _rows(1)[0]

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=auth(keys["predict"])
            ) as c:
                await _ready(c)
                in_flight = asyncio.create_task(c.post("/v1/models/clf/predict", json={"instance": row}))
                while state.inflight == 0:
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)
                state.begin_shutdown()
                out["new"] = await c.post("/v1/models/clf/predict", json={"instance": row})
                out["readyz"] = await c.get("/readyz")
                out["healthz"] = await c.get("/healthz")
                out["old"] = await in_flight
        return out

    out = asyncio.run(main())
    assert out["old"].status_code == 200
    assert out["new"].status_code == 503 and out["new"].json()["error"]["type"] == "unavailable"
    assert out["readyz"].status_code == 503
    assert out["healthz"].status_code == 200


def test_client_predict_remote_against_asgi(
    runs: dict, keys: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """predict_remote reads CSV, casts by the server's schema, batches, and writes CSV / JSONL."""
    import pandas as pd
    from fastapi.testclient import TestClient

    import shipyard.serve.client as client_module
    from shipyard.serve.app import create_app

    app = create_app({"clf": runs["clf"]}, key_store_path=keys["db"], max_batch_size=7)
    rows = pd.read_csv(runs["clf"].parent / "data.csv").head(20)
    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)  # includes the target column, which the client drops
    with TestClient(app) as tc:
        for _ in range(500):
            if tc.get("/readyz").status_code == 200:
                break
            time.sleep(0.01)

        class _Client:  # httpx.Client stand-in that routes to the TestClient
            def __init__(self, headers: dict[str, str], timeout: float) -> None:
                self.headers = headers

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: Any) -> None:
                return None

            def request(self, method: str, url: str, **kwargs: Any) -> Any:
                headers = {**self.headers, **kwargs.pop("headers", {})}
                return tc.request(method, url.replace("http://server", ""), headers=headers, **kwargs)

        monkeypatch.setattr(httpx, "Client", _Client)
        n = client_module.predict_remote("http://server", "clf", src, tmp_path / "out.csv", keys["predict"])
        n2 = client_module.predict_remote("http://server", "clf", src, tmp_path / "out.jsonl", keys["predict"])
    assert n == n2 == 20
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["label", "p_no", "p_yes"]
    expected = Artifact.load(runs["clf"]).predict_frame(rows.drop(columns=["label"]))
    assert list(out["label"]) == list(expected["label"])
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 20
