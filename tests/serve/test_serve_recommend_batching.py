"""Micro-batched /recommend: concurrent requests are answered in one batch exactly as one by one, a bad request
fails alone, and an event recorded before a request is reflected in its answer.

Real MovieLens-100K data (the first 60 users' ratings, the movies' titles and genres, the users' age / gender /
occupation), with BPR and two-tower models at seeded initial weights: what is checked is how requests are
batched, not how well the models rank.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from shipyard.artifact_recommend import save_recommender
from shipyard.models.recommend.factor import BPR
from shipyard.models.recommend.two_tower import TwoTower
from shipyard.serve.app import create_app

GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@pytest.fixture(scope="module")
def folders(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ml = data_dir / "movielens-100k"
    events = pd.read_csv(ml / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    events = events[events.user_id <= 60]
    items = pd.read_csv(ml / "u.item", sep="|", encoding="latin-1", header=None)
    flags = items.iloc[:, 5:24].to_numpy(np.float32)
    meta = {"title": items[1].tolist(), "genres": [[g for g, f in zip(GENRES, row, strict=True) if f] for row in flags]}
    users = pd.read_csv(ml / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occ", "zip"])
    users = users[users.user_id <= 60]
    user_x = np.c_[users.age.to_numpy(np.float32) / 50, (users.gender == "F").to_numpy(np.float32)]
    user_ids, item_ids = users.user_id.tolist(), items[0].tolist()
    root = tmp_path_factory.mktemp("rec_batching")
    torch.manual_seed(0)
    models = {
        "bpr": (BPR(len(user_ids), len(item_ids), dim=16), "bpr", {"dim": 16}),
        "tt": (TwoTower(flags, user_x, dim=16, hidden=32, history=10), "two_tower",
               {"dim": 16, "hidden": 32, "history": 10}),
    }  # fmt: skip
    out = {}
    for name, (model, kind, params) in models.items():
        out[name] = save_recommender(
            root / name / "model", model=model.eval(), kind=kind, params=params, user_ids=user_ids,
            item_ids=item_ids, interactions=events, item_meta=meta,
        )  # fmt: skip
    return out


QUERIES: list[dict[str, Any]] = [
    {"user_id": 1},
    {"user_id": 2, "k": 5, "category": "Drama"},
    {"user_id": 3, "mmr": 0.5},
    {"user_id": 4, "exclude_seen": False},
    {"user_id": 999_999},  # unknown: popularity, said in the answer
    {"recent": [1, 50, 181]},
    {"recent": [7], "k": 3, "category": "Comedy"},
    {"recent": []},  # an empty session: popularity
    *({"user_id": u, "k": 10} for u in range(5, 30)),
    *({"recent": [u, u + 100], "k": 8} for u in range(1, 20)),
]


def _ask(client: httpx.AsyncClient, model: str, q: dict[str, Any]) -> Any:
    if "recent" not in q and q["user_id"] % 2:  # odd users ask by GET, even ones and sessions by POST
        return client.get(f"/v1/models/{model}/recommend", params=q)
    return client.post(f"/v1/models/{model}/recommend", json=q)


async def _answers(app: Any, model: str, queries: list[dict[str, Any]], *, together: bool) -> list[Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        if together:
            return list(await asyncio.gather(*(_ask(client, model, q) for q in queries)))
        return [await _ask(client, model, q) for q in queries]


def _record_batches(folders: dict[str, Path]) -> tuple[Any, list[int]]:
    app = create_app(folders, auth=False, rate_limit_per_s=0, max_batch_size=64, max_wait_ms=20)
    sizes: list[int] = []
    for batcher in app.state.serve.extra_batchers:
        fn = batcher.fn

        def counted(records: list[dict[str, Any]], fn: Any = fn) -> list[Any]:
            sizes.append(len(records))
            return fn(records)

        batcher.fn = counted
    return app, sizes


def _same(a: Any, b: Any) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    ja, jb = a.json(), b.json()
    if a.status_code != 200:
        assert ja == jb
        return
    assert [it["item_id"] for it in ja["items"]] == [it["item_id"] for it in jb["items"]]
    assert [it["reason"] for it in ja["items"]] == [it["reason"] for it in jb["items"]]
    assert np.allclose([it["score"] for it in ja["items"]], [it["score"] for it in jb["items"]], atol=1e-5)
    assert ja["fallback"] == jb["fallback"]


@pytest.mark.parametrize("model", ["bpr", "tt"])
def test_concurrent_requests_answer_as_one_by_one(folders: dict[str, Path], model: str) -> None:
    alone = asyncio.run(_answers(create_app(folders, auth=False, rate_limit_per_s=0), model, QUERIES, together=False))
    app, sizes = _record_batches(folders)
    together = asyncio.run(_answers(app, model, QUERIES, together=True))
    assert max(sizes) > 1 and sum(sizes) == len(QUERIES)  # really batched, every request once
    for a, b in zip(alone, together, strict=True):
        assert a.status_code == 200, a.text
        _same(a, b)
    assert together[4].json()["fallback"] == "popularity" and together[7].json()["fallback"] == "popularity"
    assert all("Drama" in it["genres"] for it in together[1].json()["items"])
    assert {1, 50, 181}.isdisjoint(it["item_id"] for it in together[5].json()["items"])


@pytest.mark.parametrize("model", ["bpr", "tt"])
def test_a_bad_request_fails_alone(folders: dict[str, Path], model: str) -> None:
    bad = [{"recent": [1, 777_777]}, {"user_id": 1, "category": "Opera"}, {"user_id": 1, "k": 0}]
    queries = [*QUERIES[:10], *bad, *QUERIES[10:20]]
    alone = asyncio.run(_answers(create_app(folders, auth=False), model, queries, together=False))
    app, sizes = _record_batches(folders)
    together = asyncio.run(_answers(app, model, queries, together=True))
    assert max(sizes) > 1
    for a, b in zip(alone, together, strict=True):
        _same(a, b)
    codes = [r.status_code for r in together]
    assert codes[10] == 404 and "777777" in together[10].json()["error"]["message"]
    assert codes[11] == 422 and "Opera" in together[11].json()["error"]["message"]
    assert codes[12] == 422  # k >= 1 (request validation)
    assert codes[:10] + codes[13:] == [200] * 20


@pytest.mark.parametrize("model", ["bpr", "tt"])
def test_an_event_before_a_request_is_reflected(folders: dict[str, Path], model: str) -> None:
    app, sizes = _record_batches(folders)

    async def scenario() -> tuple[list[int], list[int], list[Any]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            url = f"/v1/models/{model}/recommend"
            before = [it["item_id"] for it in (await client.get(url, params={"user_id": 40})).json()["items"]]
            event = {"user_id": 40, "item_id": before[0], "rating": 5}
            assert (await client.post(f"/v1/models/{model}/events", json=event)).json()["recorded"]
            answers = await asyncio.gather(
                client.get(url, params={"user_id": 40}), *(_ask(client, model, q) for q in QUERIES[:20])
            )
            after = [it["item_id"] for it in answers[0].json()["items"]]
            return before, after, answers

    before, after, answers = asyncio.run(scenario())
    assert max(sizes) > 1 and all(r.status_code == 200 for r in answers)
    assert before[0] not in after and after != before  # the clicked item is seen now, and the vector moved


def test_a_lone_client_does_not_wait_for_company(folders: dict[str, Path]) -> None:
    """Concurrency 1: each request runs at once, however long max_wait_ms is (predict's rule)."""
    app = create_app(folders, auth=False, max_wait_ms=3000)

    async def one_by_one() -> list[float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            took = []
            for q in QUERIES[:6]:
                t = asyncio.get_running_loop().time()
                assert (await _ask(client, "tt", q)).status_code == 200
                took.append(asyncio.get_running_loop().time() - t)
            return took

    assert max(asyncio.run(one_by_one())) < 2.0  # a wait would take 3 s
