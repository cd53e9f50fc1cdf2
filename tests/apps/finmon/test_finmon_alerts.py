"""Window aggregates, alert rules (z-scores, CUSUM, cool-down, de-duplication), the webhook outbox, and the
lead-lag backtest on synthetic series with a known lag."""

from __future__ import annotations

import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from finmon_helpers import config_dict, free_port

from shipyard.apps.finmon.alerts import AlertEngine, signals
from shipyard.apps.finmon.backtest import DISCLAIMER, fisher_ci, lead_lag, report
from shipyard.apps.finmon.config import AlertRules, Webhook, validate_config
from shipyard.apps.finmon.processing import Document
from shipyard.apps.finmon.sinks import WebhookDispatcher
from shipyard.apps.finmon.store import Store

T0 = 1_700_000_000 - 1_700_000_000 % 86400  # a day boundary


def doc(i: int, ts: float, score: float, entities: tuple[str, ...] = ("NOKIA",), dup: str | None = None) -> Document:
    d = Document(id=f"d{i}", text=f"text {i}", ts=ts, source="t", received_at=ts, entities=list(entities), dup_of=dup)
    d.score, d.label = score, "negative" if score < -0.33 else "positive" if score > 0.33 else "neutral"
    d.entity_scores = dict.fromkeys(entities, score)
    return d


def test_window_aggregates_are_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", ["1min", "1h", "1d"])
    assert stat.S_IMODE(os.stat(tmp_path / "s.sqlite").st_mode) == 0o600
    docs = [doc(0, T0 + 10, 0.5), doc(1, T0 + 50, -0.5, ("NOKIA", "BAC")), doc(2, T0 + 70, 1.0),
            doc(3, T0 + 3700, -1.0), doc(4, T0 + 80, -1.0, dup="d0")]  # fmt: skip
    assert len(store.write_batch(docs, [], {("src", "f"): "10"})) == 5
    assert store.write_batch(docs, [], {}) == []  # a replayed batch adds nothing
    minute = {r["bucket"]: r for r in store.series("NOKIA", "1min")}
    assert minute[T0]["volume"] == 2 and minute[T0]["mean_sentiment"] == 0.0 and minute[T0]["share_negative"] == 0.5
    assert minute[T0 + 60]["volume"] == 1  # the near-duplicate d4 is stored but not counted
    hour = store.series("NOKIA", "1h")
    assert [(r["bucket"], r["volume"]) for r in hour] == [(T0, 3), (T0 + 3600, 1)]
    day = store.series("NOKIA", "1d")[0]
    assert day["volume"] == 4 and abs(day["mean_sentiment"] - 0.0) < 1e-9
    assert store.series("BAC", "1d")[0]["volume"] == 1
    assert store.positions("src") == {"f": "10"} and store.count("documents") == 5


def _baseline_and_bursts(store: Store) -> None:
    rng = np.random.default_rng(0)
    docs, i = [], 0
    for minute in range(180):
        for _ in range(2):  # two documents a minute, mildly positive on average
            docs.append(doc(i, T0 + minute * 60 + rng.uniform(0, 59), float(np.clip(rng.normal(0.1, 0.4), -1, 1))))
            i += 1
        if minute in (100, 110, 140):  # bursts of negative news; 110 falls in 100's cool-down
            for _ in range(15):
                docs.append(doc(i, T0 + minute * 60 + rng.uniform(0, 59), -0.9))
                i += 1
    docs.append(doc(i, T0 + 181 * 60, 0.0))  # moves stream time on, closing minute 179
    store.write_batch(sorted(docs, key=lambda d: d.ts), [], {})


def test_burst_alert_with_cooldown_and_dedup(tmp_path: Path) -> None:
    rules = AlertRules(window="1min", baseline=60, min_volume=5, cooldown="30min")
    store = Store(tmp_path / "s.sqlite", ["1min"])
    _baseline_and_bursts(store)
    engine = AlertEngine(rules, store, durable_sinks=["webhook"])
    alerts = engine.evaluate()
    assert [(a["bucket"] - T0) // 60 for a in alerts] == [100, 140]  # 110 is inside 100's cool-down
    first = alerts[0]
    assert first["direction"] == "negative" and "volume_z" in first["rules"] and "sentiment_z" in first["rules"]
    assert first["values"]["volume"] == 17 and len(first["top_documents"]) == 5
    assert all(d["score"] == -0.9 for d in first["top_documents"])
    assert store.count("outbox") == 2
    # a restarted engine (or a re-evaluation of the same buckets) adds nothing
    store.db.execute("DELETE FROM positions")
    assert AlertEngine(rules, store, ["webhook"]).evaluate() == [] and store.count("alerts") == 2


def test_cusum_catches_a_small_persistent_shift() -> None:
    rules = AlertRules(window="1min", baseline=60, min_volume=1, sentiment_z=4, cusum_k=1, cusum_h=8)
    rng = np.random.default_rng(1)
    history = []
    for b in range(60):
        scores = np.clip(rng.normal(0.1, 0.4, 4), -1, 1)
        history.append({"bucket": b, "volume": 4, "n_scored": 4, "sum_score": float(scores.sum()),
                        "sum_sq": float((scores**2).sum()), "mean_sentiment": float(scores.mean())})  # fmt: skip
    shifted = [{"bucket": 60 + k, "volume": 4, "n_scored": 4, "sum_score": -0.4 * 4, "sum_sq": 0.16 * 4,
                "mean_sentiment": -0.4} for k in range(8)]  # fmt: skip
    first = signals(shifted[0], history, rules)
    assert first is not None and abs(first["sentiment_z"]) < 4 and first["cusum_neg"] < 8  # one bucket: no alarm
    last = signals(shifted[-1], history[-53:] + shifted[:-1], rules)
    assert last is not None and last["cusum_neg"] >= 8 and abs(last["sentiment_z"]) < 4
    assert signals(shifted[0], history[:2], rules.model_copy(update={"min_baseline_volume": 10})) is None


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append({"body": json.loads(body), "key": self.headers["idempotency-key"]})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_down_then_up_delivers_each_alert_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", ["1min"])
    _baseline_and_bursts(store)
    port = free_port()
    settings = Webhook(
        url=f"http://127.0.0.1:{port}/hook", backoff_seconds=1, max_backoff_seconds=30, timeout_seconds=1
    )
    dispatcher = WebhookDispatcher(settings, store)
    AlertEngine(AlertRules(window="1min", baseline=60), store, ["webhook"]).evaluate()
    now = 1000.0
    for _ in range(5):  # the endpoint is down for a while: every try fails, the back-off grows
        assert dispatcher.dispatch(now=now) == 0
        now += 60
    attempts = [r[0] for r in store.db.execute("SELECT attempts FROM outbox").fetchall()]
    assert attempts == [5, 5]
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    next_try = store.db.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()[0]
    assert next_try == now - 60 + 16  # back-off after the fifth failure: 1 s * 2**4
    assert dispatcher.dispatch(now=now) == 2  # the endpoint is back: both alerts go out
    assert dispatcher.dispatch(now=now + 600) == 0  # nothing left: delivered ones are never sent again
    server.shutdown()
    dispatcher.close()
    keys = [r["key"] for r in _Receiver.received]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert {r["body"]["entity"] for r in _Receiver.received} == {"NOKIA"}


def test_backtest_recovers_a_known_lag() -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-01-01", periods=400, freq="D", tz="UTC")
    sentiment = rng.normal(0, 1, len(days))
    returns = 0.01 * rng.normal(0, 1, len(days))
    returns[3:] += 0.01 * sentiment[:-3]  # sentiment on day t moves the return from t+2 to t+3 (lag 2)
    close = 100 * np.cumprod(1 + returns)
    prices = pd.DataFrame({"period": days, "entity": "ACME", "close": close})
    sent = pd.DataFrame({"period": days, "entity": "ACME", "sentiment": sentiment})
    results = lead_lag(sent, prices, max_lag=5)
    best = max(results, key=lambda r: abs(r.r))
    assert best.lag == 2 and best.r > 0.4 and best.low > 0.3 and best.high < 1
    others = [r for r in results if r.lag != 2]
    assert all(r.low < 0 < r.high or abs(r.r) < 0.15 for r in others)
    boot = lead_lag(sent, prices, max_lag=2, method="bootstrap")
    assert boot[2].low > 0.3 and boot[0].low < 0 < boot[0].high
    text = report(results)
    assert "strongest at lag 2" in text and DISCLAIMER in text
    low, high = fisher_ci(0.0, 103)
    assert abs(low + high) < 1e-9 and 0.19 < high < 0.2


def test_config_alert_window_must_be_aggregated(tmp_path: Path) -> None:
    config = validate_config(config_dict(tmp_path, windows=["1min", "5min", "1h"], alerts={"window": "5min"}))
    assert config.alerts.window == "5min"
