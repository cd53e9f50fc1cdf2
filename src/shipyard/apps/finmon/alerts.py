"""Alert rules on a rolling baseline, evaluated when a bucket of the alert window closes (in stream time).

For each entity and closed bucket with at least ``min_volume`` documents, against the ``baseline`` buckets before it:
- volume z-score: (n - mean) / max(std, sqrt(mean), 0.5) (counts are Poisson-like: the std is floored);
- sentiment z-score: (bucket mean - baseline mean) / (baseline std / sqrt(n)), a standard error, so five
  documents need a larger shift than fifty;
- CUSUM over the recent buckets' standardised means (slack k, threshold h): a smaller, persistent shift.
One alert per entity and bucket, whatever rules fired (de-duplication: its key is entity/window/bucket, so a
re-evaluation after a restart adds nothing); none within ``cooldown`` of the entity's previous alert. Every
decision is a function of the store alone, so a restarted monitor decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.apps.finmon.config import AlertRules, window_seconds
from shipyard.apps.finmon.store import Store

CUSUM_SPAN = 30  # buckets: how far back the change detector looks


def _baseline(rows: list[dict[str, Any]], periods: int) -> dict[str, float]:
    n = [r["volume"] for r in rows]
    total = sum(n)
    mean = total / periods
    var = max(sum(v * v for v in n) / periods - mean * mean, 0.0)
    scored = sum(r["n_scored"] for r in rows)
    s_sum = sum(r["sum_score"] for r in rows)
    s_sq = sum(r["sum_sq"] for r in rows)
    mu = s_sum / scored if scored else 0.0
    sigma = math.sqrt(max(s_sq / scored - mu * mu, 0.0)) if scored else 0.0
    return {"total": total, "volume_mean": mean, "volume_std": math.sqrt(var), "mu": mu, "sigma": max(sigma, 0.1)}


def signals(current: dict[str, Any], history: list[dict[str, Any]], rules: AlertRules) -> dict[str, float] | None:
    """The rule values for ``current`` against ``history`` (the baseline buckets, oldest first), or None when
    the baseline is too thin to judge (warm-up)."""
    base = _baseline(history, rules.baseline)
    if base["total"] < rules.min_baseline_volume:
        return None
    n = current["volume"]
    vol_sigma = max(base["volume_std"], math.sqrt(base["volume_mean"]), 0.5)
    out = {"volume": n, "volume_baseline": base["volume_mean"], "volume_z": (n - base["volume_mean"]) / vol_sigma}
    mean = current["mean_sentiment"]
    out.update({"sentiment": mean, "sentiment_baseline": base["mu"], "sentiment_z": 0.0, "cusum_pos": 0.0,
                "cusum_neg": 0.0})  # fmt: skip
    if mean is None:
        return out
    out["sentiment_z"] = (mean - base["mu"]) / (base["sigma"] / math.sqrt(current["n_scored"]))
    pos = neg = 0.0
    for row in [*history[-CUSUM_SPAN:], current]:
        if not row["n_scored"]:
            continue
        x = (row["sum_score"] / row["n_scored"] - base["mu"]) / (base["sigma"] / math.sqrt(row["n_scored"]))
        pos, neg = max(0.0, pos + x - rules.cusum_k), max(0.0, neg - x - rules.cusum_k)
    out["cusum_pos"], out["cusum_neg"] = pos, neg
    return out


def fired(values: dict[str, float], rules: AlertRules) -> list[str]:
    rules_fired = []
    if values["volume_z"] >= rules.volume_z:
        rules_fired.append("volume_z")
    if abs(values["sentiment_z"]) >= rules.sentiment_z:
        rules_fired.append("sentiment_z")
    if max(values["cusum_pos"], values["cusum_neg"]) >= rules.cusum_h:
        rules_fired.append("cusum")
    return rules_fired


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class AlertEngine:
    def __init__(self, rules: AlertRules, store: Store, durable_sinks: list[str]) -> None:
        self.rules, self.store, self.sinks = rules, store, durable_sinks
        self.window = rules.window
        self.seconds = window_seconds(rules.window)
        self.cooldown = window_seconds(rules.cooldown)
        self.grace = window_seconds(rules.grace) if rules.grace != "0s" else 0
        saved = store.positions("_alerts").get(self.window)
        self.last_bucket: int | None = int(saved) if saved is not None else None

    def evaluate(self) -> list[dict[str, Any]]:
        """New alerts for every bucket closed since the last call (stream time: the newest stored document)."""
        newest = self.store.max_ts()
        if newest is None:
            return []
        closed_before = int((newest - self.grace) // self.seconds) * self.seconds  # buckets starting before it
        start = self.last_bucket + self.seconds if self.last_bucket is not None else 0
        if closed_before <= start:
            return []
        rows = self.store.db.execute(
            "SELECT entity, bucket FROM aggregates WHERE win = ? AND bucket >= ? AND bucket < ? AND n >= ? "
            "ORDER BY bucket, entity",
            (self.window, start, closed_before, self.rules.min_volume),
        ).fetchall()
        alerts = [a for entity, bucket in rows if (a := self._check(entity, int(bucket))) is not None]
        self.last_bucket = closed_before - self.seconds
        self.store.save_positions({("_alerts", self.window): str(self.last_bucket)})
        return alerts

    def _check(self, entity: str, bucket: int) -> dict[str, Any] | None:
        since = bucket - self.rules.baseline * self.seconds
        series = self.store.series(entity, self.window, since=since)
        history = [r for r in series if r["bucket"] < bucket]
        current = next(r for r in series if r["bucket"] == bucket)
        values = signals(current, history, self.rules)
        if values is None:
            return None
        rules_fired = fired(values, self.rules)
        if not rules_fired:
            return None
        if self.store.alert_between(entity, self.window, bucket - self.cooldown + 1, bucket + 1):
            return None  # cool-down after an earlier alert (or this bucket's own alert, already raised)
        negative = values["sentiment_z"] < 0 or values["cusum_neg"] > values["cusum_pos"]
        positive = values["sentiment_z"] > 0 or values["cusum_pos"] > values["cusum_neg"]
        direction = "negative" if negative else "positive" if positive else "volume"
        docs = self.store.documents_for(entity, bucket, bucket + self.seconds, limit=500)
        docs = [d for d in docs if d["score"] is not None]
        docs.sort(key=lambda d: d["score"], reverse=not negative)
        alert = {
            "entity": entity, "window": self.window, "bucket": bucket, "bucket_end": bucket + self.seconds,
            "direction": direction, "rules": rules_fired, "values": {k: _rounded(v) for k, v in values.items()},
            "top_documents": [{"id": d["id"], "score": round(d["score"], 4), "text": d["text"][:300]}
                              for d in docs[: self.rules.top_documents]],
        }  # fmt: skip
        alert_id = self.store.insert_alert(f"{entity}/{self.window}/{bucket}", alert, self.sinks)
        return {"id": alert_id, **alert} if alert_id is not None else None
