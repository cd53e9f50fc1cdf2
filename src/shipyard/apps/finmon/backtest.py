"""Lead-lag correlation between an entity's sentiment and its next-period returns.

For each entity and lag L (0..max_lag periods), the Pearson correlation of sentiment in period t with the return
from t+L to t+L+1, with a confidence interval (Fisher z by default, or a percentile bootstrap). Correlation in the
past is not a trading signal: it says nothing of causation, costs, capacity or whether it persists, and the
report says so every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shipyard.errors import ShipyardError

DISCLAIMER = (
    "Correlation is not a trading signal: these figures describe the past sample only; they do not show causation, "
    "ignore costs and capacity, and a lag chosen as the best of several is optimistic (multiple comparisons)."
)


@dataclass
class LagResult:
    entity: str
    lag: int
    n: int
    r: float
    low: float
    high: float
    p_value: float


def read_prices(path: str | Path) -> pd.DataFrame:
    """A long price CSV with columns ``date`` (or ``ts``), ``entity`` and ``close``."""
    path = Path(path)
    if not path.is_file():
        raise ShipyardError("price file does not exist", where=str(path))
    frame = pd.read_csv(path)
    time_col = "date" if "date" in frame.columns else "ts" if "ts" in frame.columns else None
    missing = {"entity", "close"} - set(frame.columns)
    if time_col is None or missing:
        raise ShipyardError(
            "the price CSV needs columns date (or ts), entity and close", where=str(path),
            hint=f"found columns {list(frame.columns)}",
        )  # fmt: skip
    dates = pd.to_datetime(frame[time_col], unit="s" if time_col == "ts" else None, utc=True)
    return pd.DataFrame({"period": dates.dt.floor("D"), "entity": frame["entity"].astype(str), "close": frame["close"]})


def fisher_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    if n <= 3:
        return -1.0, 1.0
    z, se = math.atanh(max(min(r, 0.999999), -0.999999)), 1 / math.sqrt(n - 3)
    q = stats.norm.ppf(0.5 + level / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, level: float = 0.95, draws: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), size=(draws, len(x)))
    xs, ys = x[idx], y[idx]
    xs, ys = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    denom = np.sqrt((xs * xs).sum(axis=1) * (ys * ys).sum(axis=1))
    rs = np.where(denom > 0, (xs * ys).sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)
    return float(np.quantile(rs, 0.5 - level / 2)), float(np.quantile(rs, 0.5 + level / 2))


def lead_lag(
    sentiment: pd.DataFrame, prices: pd.DataFrame, *, max_lag: int = 5, method: str = "fisher"
) -> list[LagResult]:
    """``sentiment``: columns period, entity, sentiment; ``prices``: period, entity, close (both one row per
    entity and period). Sentiment at t against the return from t+lag to t+lag+1."""
    out: list[LagResult] = []
    for entity, px in prices.sort_values("period").groupby("entity"):
        px = px.set_index("period")["close"]
        returns = px.pct_change().shift(-1)  # the return from t to t+1, indexed at t
        sent = sentiment[sentiment["entity"] == entity].set_index("period")["sentiment"]
        for lag in range(max_lag + 1):
            joined = pd.concat([sent, returns.shift(-lag)], axis=1, keys=["s", "r"]).dropna()
            n = len(joined)
            if n < 5 or joined["s"].std() == 0 or joined["r"].std() == 0:
                continue
            r, p = stats.pearsonr(joined["s"], joined["r"])
            x, y = joined["s"].to_numpy(), joined["r"].to_numpy()
            low, high = fisher_ci(float(r), n) if method == "fisher" else bootstrap_ci(x, y)
            out.append(LagResult(str(entity), lag, n, float(r), low, high, float(p)))
    return out


def sentiment_from_store(db: Any, window: str = "1d") -> pd.DataFrame:
    rows = db.execute(
        "SELECT entity, bucket, sum_score, n_scored FROM aggregates WHERE win = ? AND n_scored > 0", (window,)
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["entity", "bucket", "sum_score", "n_scored"])
    frame["period"] = pd.to_datetime(frame["bucket"], unit="s", utc=True).dt.floor("D")
    frame["sentiment"] = frame["sum_score"] / frame["n_scored"]
    return frame.groupby(["period", "entity"], as_index=False)["sentiment"].mean()


def report(results: list[LagResult]) -> str:
    lines = ["entity      lag    n       r   95% CI              p", "-" * 56]
    best: dict[str, LagResult] = {}
    for res in results:
        lines.append(f"{res.entity:<10} {res.lag:>4} {res.n:>4} {res.r:>7.3f}   [{res.low:>6.3f}, {res.high:>6.3f}]  "
                     f"{res.p_value:.3g}")  # fmt: skip
        if res.entity not in best or abs(res.r) > abs(best[res.entity].r):
            best[res.entity] = res
    lines.append("")
    for entity, res in sorted(best.items()):
        lines.append(f"{entity}: strongest at lag {res.lag} (r = {res.r:.3f}, 95% CI [{res.low:.3f}, {res.high:.3f}])")
    lines += ["", DISCLAIMER]
    return "\n".join(lines)
