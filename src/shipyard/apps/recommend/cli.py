"""``shipyard app recommend train`` / ``serve``: the MovieLens recommender and its shop front in two commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

recommend_cli = typer.Typer(no_args_is_help=True, help="A shop front over a trained recommender (MovieLens).")

JOB = """task: recommendation
name: movielens-{model}
recommend:
  data: {{format: movielens, path: "{data}"}}
  split: {{method: leave_last_out}}
  model: {{type: {model}, dim: 64}}
training: {{optimizer: adam, learning_rate: {lr}, batch_size: {batch}, epochs: {epochs}, log_every_steps: 200}}
output: {{runs_root: "{runs}"}}
"""


@recommend_cli.command()
def train(
    model: Annotated[str, typer.Option(help="bpr, mf or two_tower.")] = "bpr",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    data: Annotated[str, typer.Option(help="A MovieLens-100K folder.")] = "${SHIPYARD_DATA_DIR}/movielens-100k",
    runs_root: Annotated[Path, typer.Option()] = Path("runs"),
) -> None:
    """Train the MovieLens recommender; prints the run folder to serve."""
    from shipyard.config.loader import parse_yaml, validate_dict
    from shipyard.pipeline_recommend import run_recommendation_job  # the pipeline and torch: only when it runs

    lr, batch = (0.002, 256) if model == "two_tower" else (0.005, 1024)
    text = JOB.format(model=model, data=data, lr=lr, batch=batch, epochs=epochs, runs=runs_root.resolve())
    raw, lines = parse_yaml(text, "recommend.yaml")
    result = run_recommendation_job(validate_dict(raw, "recommend.yaml", lines), show_progress=True)
    test = result.metrics.get("test", {})
    typer.echo(f"test: hr@10={test.get('hr@10', 0):.4f} ndcg@10={test.get('ndcg@10', 0):.4f}")
    typer.echo(f"run folder: {result.run_dir}")


@recommend_cli.command()
def serve(
    run: Annotated[Path, typer.Argument(help="The run folder of a trained recommender.")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (a trusted network only).")] = False,
    store: Annotated[Path, typer.Option(help="API key store.")] = Path("runs/shipyard.db"),
) -> None:
    """Serve the shop front at /ui/apps/recommend/ and its API at /v1/apps/recommend (one process)."""
    import uvicorn  # heavy: only when serving

    app = shop_app(run, auth=not no_auth, key_store_path=store)
    typer.echo(f"shop front: http://{host}:{port}/ui/apps/recommend/")
    uvicorn.run(app, host=host, port=port, log_config=None)


def shop_app(run: Path, *, auth: bool = True, key_store_path: Path | None = None):
    """The serve app with the recommend application's API and page mounted (FastAPI; built when serving)."""
    from shipyard.apps._application import AppContext
    from shipyard.apps.recommend.web import api_routers, page_routers
    from shipyard.serve.app import create_app

    context = AppContext(settings={"run": str(run)})
    mounts = [("/v1/apps/recommend", r) for r in api_routers(context)]
    kwargs = {"auth": auth} if not auth else {"auth": True, "key_store_path": key_store_path}
    app = create_app({}, extra_routers=mounts, **kwargs)
    for router in page_routers(context):  # the dashboard mounts pages once it exists; until then, here
        app.include_router(router, prefix="/ui/apps/recommend")
    return app
