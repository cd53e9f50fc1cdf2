"""The `serve` and `keys` commands, wired into a Typer app the way the main CLI adds them."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli.serve import keys_app, parse_model_args, serve_command
from shipyard.errors import ShipyardError


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    return app


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "shipyard.db")
    created = runner.invoke(_app(), ["keys", "create", "--name", "ci-bot", "--scope", "admin", "--store", store])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_")
    listed = runner.invoke(_app(), ["keys", "list", "--store", store])
    assert listed.exit_code == 0 and "ci-bot" in listed.stdout and key not in listed.stdout
    assert runner.invoke(_app(), ["keys", "revoke", "ci-bot", "--store", store]).exit_code == 0
    again = runner.invoke(_app(), ["keys", "revoke", "ci-bot", "--store", store])
    assert again.exit_code == 2 and "already revoked" in again.output
    bad = runner.invoke(_app(), ["keys", "create", "--name", "x", "--scope", "root", "--store", store])
    assert bad.exit_code == 2 and "unknown scope" in bad.output


def test_serve_help_and_bad_path(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(_app(), ["serve", "--help"])
    assert help_text.exit_code == 0 and "--no-auth" in help_text.stdout
    missing = runner.invoke(_app(), ["serve", str(tmp_path / "nope"), "--no-auth"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_model_names_from_arguments(tmp_path: Path) -> None:
    run = tmp_path / "churn-v3"
    (run / "model").mkdir(parents=True)
    assert parse_model_args([str(run)]) == {"churn-v3": run}
    assert parse_model_args([str(run / "model")]) == {"churn-v3": run / "model"}
    assert parse_model_args([f"churn={run}"]) == {"churn": run}
    with pytest.raises(ShipyardError, match="both named"):
        parse_model_args([f"a={run}", f"a={run}"])
