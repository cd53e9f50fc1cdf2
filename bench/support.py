"""The support assistant end to end on scripted conversations written from the held-out Bitext queries.

Conversations (>= 200, seeded) from the retrieval run's test split (queries never trained on):
- FAQ: one held-out query; expected: an answer written for its intent, or an escalation when the intent is on the
  config's escalation list (complaint, contact_human_agent, payment_issue);
- order: "where is my order N?" with a demo order N, then "and when will it arrive?"; expected: the tool's status
  for N both times (the follow-up names no number), no escalation;
- person: a held-out query, then "I'd like to talk to a real person"; expected: the second turn escalates.
Answer accuracy counts turns that must not escalate; escalation precision / recall count every turn; intent
accuracy counts the turns with a held-out query (the intent the assistant settled on against the query's own).
Latency is per turn, one conversation at a time; throughput runs the same conversations from 64 threads at once
through the in-process assistant (the HTTP layer is measured by bench/serve_load.py).

When the config names an intent run (`intent.run`, a trained classifier), the same conversations also go, one at a
time, through the named baseline: the same config with the intent taken from the vote of the retrieved answers
(`intent.vote_k`) and escalating under `--vote-min-confidence` (0.3, the bundled config's value while it voted).

    .venv/bin/python bench/support.py --config examples/support/support.yaml [--conversations 240]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shipyard.apps.support.assistant import Assistant
from shipyard.apps.support.config import IntentConfig, load_support_config, resolve
from shipyard.apps.support.tools import demo_orders, write_orders

PERSON = "I'd like to talk to a real person"


def script(test: pd.DataFrame, orders: list[dict[str, str]], n: int, seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    rows = test.sample(frac=1.0, random_state=seed).to_dict("records")
    out = []
    for i in range(n):
        kind = ("faq", "faq", "order", "person")[i % 4]
        row = rows[i % len(rows)]
        if kind == "faq":
            out.append([{"text": row["query"], "intent": row["group"]}])
        elif kind == "order":
            o = orders[rng.randrange(len(orders))]
            out.append(
                [
                    {"text": f"where is my order {o['order_id']}?", "order": o},
                    {"text": "and when will it arrive?", "order": o},
                ]
            )
        else:
            out.append([{"text": row["query"], "intent": row["group"]}, {"text": PERSON, "person": True}])
    return out


def run_conversation(bot: Assistant, turns: list[dict[str, Any]], escalate: set[str]) -> list[dict[str, Any]]:
    cid = bot.store.new_conversation()
    results = []
    for turn in turns:
        t = time.perf_counter()
        reply = bot.reply(cid, turn["text"])
        ms = (time.perf_counter() - t) * 1000
        must = bool(turn.get("person")) or turn.get("intent") in escalate
        if "order" in turn:
            ok = turn["order"]["status"] in reply.answer and turn["order"]["order_id"] in reply.answer
        elif "intent" in turn and not must:
            ok = (
                reply.passage_id is not None
                and bot.searcher.index.passages[reply.passage_id]["group"] == turn["intent"]
            )
        else:
            ok = None
        intent_ok = reply.intent == turn["intent"] if "intent" in turn else None
        low = bool(reply.reason and reply.reason.startswith("low confidence"))
        results.append({"must": must, "did": reply.escalated, "ok": ok, "intent_ok": intent_ok, "low": low, "ms": ms})
    return results


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in results if r["ok"] is not None]
    labelled = [r for r in results if r["intent_ok"] is not None]
    tp = sum(r["must"] and r["did"] for r in results)
    ms = [r["ms"] for r in results]
    return {
        "turns": len(results),
        "answer_accuracy": round(sum(r["ok"] for r in answered) / len(answered), 4),
        "escalation_precision": round(tp / max(1, sum(r["did"] for r in results)), 4),
        "escalation_recall": round(tp / max(1, sum(r["must"] for r in results)), 4),
        "intent_accuracy": round(sum(r["intent_ok"] for r in labelled) / max(1, len(labelled)), 4),
        "low_confidence_escalations": sum(r["low"] for r in results),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "sequential_turns_per_s": round(1000 / statistics.mean(ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("examples/support/support.yaml"))
    parser.add_argument("--conversations", type=int, default=240)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vote-min-confidence", type=float, default=0.3, help="The vote baseline's threshold.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg, base = load_support_config(args.config)
    db = resolve(base, cfg.tools.order_status.db) if cfg.tools.order_status else None
    orders = demo_orders(500)
    if db is not None and not db.exists():
        write_orders(db, orders)
    bot = Assistant(cfg, base)
    test = pd.read_parquet(resolve(base, cfg.retrieval_run) / "splits" / "test.parquet")
    convs = script(test, orders, args.conversations, args.seed)
    escalate = set(cfg.escalation.intents)
    for warm in ("where is my order?", "how do I reset my password?"):  # first calls load lazily: not timed
        bot.reply(bot.store.new_conversation(), warm)
    baseline = None
    if cfg.intent.run is not None:  # the named baseline: the retrieval vote, same searcher, store and tools
        vote_cfg = cfg.model_copy(
            update={
                "intent": IntentConfig(vote_k=cfg.intent.vote_k),
                "escalation": cfg.escalation.model_copy(update={"min_confidence": args.vote_min_confidence}),
            }
        )
        vote = Assistant(vote_cfg, base, searcher=bot.searcher, store=bot.store, tools=bot.tools)
        baseline = summarise([r for c in convs for r in run_conversation(vote, c, escalate)])
        print("baseline (retrieval vote):", json.dumps(baseline), flush=True)
    results = [r for c in convs for r in run_conversation(bot, c, escalate)]
    print("sequential:", json.dumps(summarise(results)), flush=True)  # kept should the concurrent part fail
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        concurrent = [r for rs in pool.map(lambda c: run_conversation(bot, c, escalate), convs) for r in rs]
    wall = time.perf_counter() - started
    summary = {
        "conversations": len(convs),
        **summarise(results),
        "concurrent_turns_per_s": round(len(concurrent) / wall, 1),
        # the same checks on the concurrent run's answers (its latencies include the wait for the other threads)
        "concurrent": {k: v for k, v in summarise(concurrent).items() if k != "sequential_turns_per_s"},
        "concurrency": args.concurrency,
        # the exported ONNX encoder when `shipyard optimize` made one (as the server), else torch
        "encoder": bot.searcher.onnx_file.name if bot.searcher.onnx_file else "torch",
    }
    summary["throughput_ratio_vs_sequential"] = round(
        summary["concurrent_turns_per_s"] / summary["sequential_turns_per_s"], 2
    )
    summary["intent"] = cfg.intent.run or f"vote of {cfg.intent.vote_k}"
    if baseline is not None:
        summary["baseline_vote"] = baseline
        summary["ratios_vs_vote"] = {  # trained classifier / retrieval vote, one at a time, same conversations
            k: round(summary[k] / baseline[k], 3) if baseline[k] else None
            for k in ("answer_accuracy", "intent_accuracy", "escalation_precision", "escalation_recall", "p50_ms")
        }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
