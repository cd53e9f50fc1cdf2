"""Precision / recall of the PII detector on the labelled evaluation set.

Usage::

    python bench/pii_eval.py [--data tests/data/pii_eval/pii_eval.jsonl] [--errors N]

Entity-level scores per type and overall, two ways: ``exact`` (type and span must match exactly) and ``overlap``
(same type, spans overlap). Prints a table (Markdown-friendly) and, with ``--errors N``, up to N missed / spurious
spans per kind. The printed error spans are from the evaluation set's synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.data.pii import PII_TYPES, detect

logger = logging.getLogger("bench.pii_eval")

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_eval" / "pii_eval.jsonl"

Span = tuple[str, int, int]


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _exact(g: Span, p: Span) -> bool:
    return g == p


def _overlap(g: Span, p: Span) -> bool:
    return g[0] == p[0] and g[1] < p[2] and p[1] < g[2]


def _match(gold: list[Span], pred: list[Span], same: Callable[[Span, Span], bool]) -> tuple[list[Span], list[Span]]:
    """Greedy one-to-one matching; returns (unmatched gold, unmatched predictions)."""
    left = list(pred)
    missed = []
    for g in gold:
        hit = next((p for p in left if same(g, p)), None)
        if hit is None:
            missed.append(g)
        else:
            left.remove(hit)
    return missed, left


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores of ``detect`` over ``rows``: {mode: {type|"overall": {tp, fp, fn, precision, recall, f1}}}."""
    counts: dict[str, dict[str, Counter[str]]] = {m: {"tp": Counter(), "fp": Counter(), "fn": Counter()}
                                                  for m in ("exact", "overlap")}  # fmt: skip
    errors: dict[str, list[tuple[str, str, str]]] = {"missed": [], "spurious": []}
    for row in rows:
        text = row["text"]
        gold = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
        pred = [(f.type, f.start, f.end) for f in detect(text)]
        for mode, same in (("exact", _exact), ("overlap", _overlap)):
            missed, spurious = _match(gold, pred, same)
            c = counts[mode]
            for t, *_ in gold:
                c["tp"][t] += 1
            for t, *_ in missed:
                c["tp"][t] -= 1
                c["fn"][t] += 1
            for t, *_ in spurious:
                c["fp"][t] += 1
            if mode == "exact":
                errors["missed"] += [(t, text[s:e], text) for t, s, e in missed]
                errors["spurious"] += [(t, text[s:e], text) for t, s, e in spurious]
    result: dict[str, Any] = {"errors": errors, "n_lines": len(rows)}
    for mode, c in counts.items():
        table: dict[str, dict[str, float]] = {}
        for t in [*PII_TYPES, "overall"]:
            if t == "overall":
                tp, fp, fn = (sum(c[k].values()) for k in ("tp", "fp", "fn"))
            else:
                tp, fp, fn = c["tp"][t], c["fp"][t], c["fn"][t]
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            table[t] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}
        result[mode] = table
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [
        "| type | support | exact P | exact R | exact F1 | overlap P | overlap R |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in [*PII_TYPES, "overall"]:
        ex, ov = result["exact"][t], result["overlap"][t]
        support = int(ex["tp"] + ex["fn"])
        name = f"**{t}**" if t == "overall" else t
        lines.append(
            f"| {name} | {support} | {ex['precision']:.3f} | {ex['recall']:.3f} | {ex['f1']:.3f} "
            f"| {ov['precision']:.3f} | {ov['recall']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--errors", type=int, default=0, help="show up to N missed and N spurious spans")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    rows = load(args.data)
    t0 = time.perf_counter()
    result = evaluate(rows)
    elapsed = time.perf_counter() - t0
    n_ent = sum(len(r["entities"]) for r in rows)
    n_neg = sum(not r["entities"] for r in rows)
    logger.info("$ python bench/pii_eval.py --data %s", args.data)
    logger.info("%d lines, %d entities, %d lines without entities; detect() took %.1f ms/line",
                len(rows), n_ent, n_neg, 1000 * elapsed / max(1, len(rows)))  # fmt: skip
    logger.info("%s", format_table(result))
    for kind in ("missed", "spurious"):
        for t, value, text in result["errors"][kind][: args.errors]:
            logger.info("%s %-15s %r in %r", kind, t, value, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
