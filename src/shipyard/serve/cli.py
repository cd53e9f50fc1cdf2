"""Command-line entry points for the REST service: ``shipyard serve`` and ``shipyard keys create|list|revoke``.

Kept free of heavy imports at module level (FastAPI, torch load only when a command runs), so that adding these
commands to the main CLI costs nothing at start-up. The lead CLI wires them in with::

    from shipyard.serve.cli import keys_app, serve_command
    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.cli_support import handle_errors
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)
console = Console()
err_console = Console(stderr=True)

DEFAULT_STORE = Path("runs") / "shipyard.db"
CONFIG_ENV = "SHIPYARD_SERVE_CONFIG"  # how a multi-worker server hands its settings to each worker

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys for `shipyard serve`.")


_errors = handle_errors  # one `error:` line and exit code 2, as in the main CLI


def parse_model_args(paths: list[str]) -> dict[str, Path]:
    """``[name=]path`` arguments -> {name: path}; the name defaults to the folder's name."""
    models: dict[str, Path] = {}
    for arg in paths:
        name, sep, rest = str(arg).partition("=")
        if sep and name and not Path(arg).exists():
            path = Path(rest)
        else:
            name, path = "", Path(arg)
        path = path.expanduser()
        if not name:
            resolved = path.resolve()
            name = resolved.parent.name if resolved.name == "model" else resolved.name
        if name in models:
            raise ShipyardError(f"two models are both named {name!r}", where=str(arg), hint="use name=path")
        models[name] = path
    if not models:
        raise ShipyardError("give at least one run or model folder to serve", where="PATHS")
    return models


def app_from_env() -> Any:
    """App factory for multi-worker uvicorn: each worker builds its app from ``$SHIPYARD_SERVE_CONFIG``."""
    from shipyard.serve.app import create_app

    cfg = json.loads(os.environ[CONFIG_ENV])
    models = cfg.pop("models")
    store = cfg.pop("key_store_path")
    return create_app(models, key_store_path=Path(store) if store else None, **cfg)


def _check_retraining(name: str, path: Path, model_dir: Path, meta: dict[str, Any], strict: bool) -> None:
    """A model flagged ``needs_retraining`` (rows erased from its training data) is served only with a loud
    warning, or refused under ``--strict``: its weights still carry what it learnt from the erased rows."""
    reasons = []
    if (meta.get("erasure") or {}).get("needs_retraining"):
        reasons.append(f"{meta['erasure'].get('rows_removed', '?')} row(s) erased from its data (shipyard.json)")
    run_dir = next((p for p in (path, model_dir.parent) if (p / "config.yaml").is_file()), None)
    if run_dir is not None and (run_dir.parent / "shipyard.db").is_file():
        from shipyard.store.runs import RunStore

        try:
            flag = RunStore.for_root(run_dir.parent).get(run_dir.name).flags.get("needs_retraining")
        except ShipyardError:
            flag = None
        if flag:
            reasons.append("flagged needs_retraining in the run store")
    if not reasons:
        return
    message = f"model {name!r} ({path}) needs retraining: " + "; ".join(reasons)
    if strict:
        raise ShipyardError(message, where=str(path), hint="retrain it, or serve without --strict")
    log.warning("%s; it still carries what it learnt from the erased rows", message)
    err_console.print(f"[bold red]WARNING[/]: {message}; it still carries what it learnt from the erased rows")


@_errors
def serve_command(
    paths: Annotated[list[str], typer.Argument(help="Run or model folders to serve, as PATH or NAME=PATH.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads every model).")] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without API keys (anyone may predict and load models).")
    ] = False,
    store: Annotated[Path, typer.Option(help="Key store (SQLite file).")] = DEFAULT_STORE,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most instances per model batch and request.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="Longest wait to fill a batch.")] = 5.0,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body.")] = 1_000_000,
    rate_limit: Annotated[float, typer.Option(help="Requests per second per key (0: no limit).")] = 100.0,
    burst: Annotated[int, typer.Option(min=1, help="Requests a key may make at once above the rate.")] = 200,
    drain_seconds: Annotated[float, typer.Option(help="On shutdown, wait this long for requests in flight.")] = 30.0,
    access_log: Annotated[
        bool, typer.Option(help="Log one line per request (key name, status, latency, body HMAC; never inputs).")
    ] = True,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse to serve a model flagged needs_retraining (after an erasure).")
    ] = False,
    public_endpoints: Annotated[
        str, typer.Option(help="Which of docs,metrics answer without a key ('none': both need one).")
    ] = "docs,metrics",
    client_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client may take to send a request's head, and its body.")
    ] = 10.0,
) -> None:
    """Serve models over HTTP (REST, JSON): /v1/models, /v1/models/NAME/predict, /healthz, /readyz, /metrics."""
    import uvicorn

    models = parse_model_args(paths)
    from shipyard.serve.models import read_spec

    for name, path in models.items():
        spec = read_spec(path)  # a wrong path fails here, before anything starts
        _check_retraining(name, Path(path), spec.path, spec.meta, strict)
    logging.getLogger("shipyard.serve.access").setLevel(logging.INFO if access_log else logging.WARNING)
    if not no_auth:
        from shipyard.store.keys import KeyStore

        if not any(not k.revoked for k in KeyStore(store).list()):
            log.warning("the key store %s holds no live API key: create one with `shipyard keys create`", store)
    settings: dict[str, Any] = {
        "auth": not no_auth,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "max_body_bytes": max_body_bytes,
        "rate_limit_per_s": rate_limit,
        "burst": burst,
        "drain_timeout_s": drain_seconds,
        "body_timeout_s": client_timeout,
        "public_endpoints": public_endpoints,
    }
    store_path = None if no_auth else store
    from shipyard.serve.limits import HEAD_TIMEOUT_ENV, HeadTimeoutH11Protocol

    os.environ[HEAD_TIMEOUT_ENV] = str(client_timeout)  # read by the protocol, in every worker
    uv_log = {
        "log_config": None,
        "access_log": False,  # our access log replaces uvicorn's
        "http": HeadTimeoutH11Protocol,
        "timeout_keep_alive": 5,
    }
    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(
            {
                "models": {k: str(v) for k, v in models.items()},
                "key_store_path": str(store_path) if store_path else None,
                **settings,
            }
        )
        console.print(f"serving {', '.join(models)} on http://{host}:{port} with {workers} workers")
        uvicorn.run(
            "shipyard.serve.cli:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_graceful_shutdown=int(drain_seconds),
            **uv_log,
        )
        return
    from shipyard.serve.app import create_app

    app = create_app(models, key_store_path=store_path, **settings)
    console.print(f"serving {', '.join(models)} on http://{host}:{port} (docs at /docs)")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(drain_seconds),
        **uv_log,  # type: ignore[arg-type]
    )
    run_draining(config, app.state.serve)


def run_draining(config: Any, serve_state: Any) -> None:
    """Run uvicorn, telling the app the moment shutdown begins (SIGTERM/SIGINT) so new requests get 503."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            serve_state.begin_shutdown()
            super().handle_exit(sig, frame)

    DrainingServer(config).run()


# ------------------------------------------------------------------------------------------------ keys
StoreOption = Annotated[Path, typer.Option("--store", help="Key store (SQLite file).")]


@keys_app.command("create")
@_errors
def keys_create(
    name: Annotated[str, typer.Option(help="A name for the key (who or what uses it).")],
    scope: Annotated[str, typer.Option(help="predict, or admin (may also load model versions).")] = "predict",
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Create an API key. The key is printed once and never stored in clear."""
    from shipyard.store.keys import KeyStore

    plaintext = KeyStore(store).create(name, scope)  # type: ignore[arg-type]
    err_console.print(f"created key {name!r} (scope {scope}). Copy it now: it is not shown again.")
    typer.echo(plaintext)


@keys_app.command("list")
@_errors
def keys_list(store: StoreOption = DEFAULT_STORE) -> None:
    """List API keys (names, prefixes, scopes; never the keys)."""
    from shipyard.store.keys import KeyStore

    table = Table(title="API keys")
    for col in ("name", "prefix", "scope", "created", "last used", "revoked"):
        table.add_column(col)
    for rec in KeyStore(store).list():
        fmt = lambda t: t.strftime("%Y-%m-%d %H:%M") if t else "-"  # noqa: E731
        table.add_row(rec.name, rec.prefix, rec.scope, fmt(rec.created_at), fmt(rec.last_used_at), fmt(rec.revoked_at))
    console.print(table)


@keys_app.command("revoke")
@_errors
def keys_revoke(
    name: Annotated[str, typer.Argument(help="Key name or prefix.")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Revoke an API key (running servers stop accepting it within their key-cache time, 30 s)."""
    from shipyard.store.keys import KeyStore

    rec = KeyStore(store).revoke(name)
    console.print(f"revoked key {rec.name!r} ({rec.prefix})")


__all__ = ["app_from_env", "keys_app", "parse_model_args", "serve_command"]
