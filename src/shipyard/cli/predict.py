"""`shipyard predict`, `evaluate` and `explain`: use a trained model on new rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import console, print_json
from shipyard.errors import ShipyardError


@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder or model folder.")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled data file (default: the run's stored test split).")
    ] = None,
) -> None:
    """Evaluate a saved model on labelled data."""
    from shipyard.evaluation.saved import evaluate_run  # lazy: pulls torch, too slow for `shipyard --help`

    metrics = evaluate_run(run, data)
    console.print_json(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list | dict)}))


@handle_errors
def predict(
    run: Annotated[Path | None, typer.Argument(help="Run folder or model folder.")] = None,
    input: Annotated[Path, typer.Option("--input", help="CSV or JSONL rows to predict.")] = ...,  # type: ignore[assignment]
    output: Annotated[Path | None, typer.Option(help="Write predictions here (CSV or JSONL).")] = None,
    url: Annotated[str | None, typer.Option(help="Call a running shipyard server instead.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name on the server (with --url).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="SHIPYARD_API_KEY", help="Bearer key (with --url).")] = None,
) -> None:
    """Predict with a saved model (or a running server) and write one row per input row."""
    # lazy: pulls torch, too slow for `shipyard --help`
    from shipyard.inference import default_output_for, predict_file  # lazy: pulls torch, too slow for `shipyard --help`
    from shipyard.serve.client import predict_remote  # lazy: pulls httpx

    if output is None:  # never compute predictions only to drop them: write them next to the input
        output = default_output_for(input)
    if url:
        if not model:
            raise ShipyardError("--model is required with --url", where="--model")
        rows = predict_remote(url, model, input, output, api_key)
    else:
        if run is None:
            raise ShipyardError("give a run or model folder, or --url", where="RUN")
        rows = predict_file(run, input, output)
    console.print(f"{rows} predictions written to {output}")


@handle_errors
def explain(
    run: Annotated[Path, typer.Argument(help="Run folder or model folder.")],
    input: Annotated[Path, typer.Option("--input", help="CSV / JSONL / Parquet rows to explain.")] = ...,  # type: ignore[assignment]
    n: Annotated[int, typer.Option("--n", help="How many rows (from the top of the file).")] = 10,
) -> None:
    """Explain predictions: feature attributions (tabular), saliency (images) or token attributions (text)."""
    from shipyard.evaluation.explain import explain_run  # lazy: pulls torch (and Captum), too slow for --help

    print_json(explain_run(run, input, n))
