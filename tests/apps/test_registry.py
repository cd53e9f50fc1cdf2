"""The applications' plug-in point: the registry, `shipyard app ...`, and routers handed out for mounting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from greeter_app import application as greeter
from typer.testing import CliRunner

from shipyard.apps import AppContext, Application, AppRegistry
from shipyard.cli.root import build_app
from shipyard.errors import ShipyardError

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
NO_PLUGINS = "shipyard.apps.tests-none"  # an entry-point group nothing installs: only what a test registers


def _registry(*apps: Application) -> AppRegistry:
    registry = AppRegistry(group=NO_PLUGINS)
    for app in apps:
        registry.register(app)
    return registry


def test_register_get_and_list() -> None:
    quiet = Application(name="quiet", summary="Adds nothing.")
    registry = _registry(greeter, quiet)
    assert registry.get("greeter") is greeter
    assert [a.name for a in registry.available()] == ["greeter", "quiet"]
    assert greeter.contributes() == ["cli", "routers", "pages"]
    assert quiet.contributes() == []


def test_a_name_is_taken_once_unless_replaced() -> None:
    registry = _registry(greeter)
    with pytest.raises(ShipyardError, match="already registered"):
        registry.register(Application(name="greeter", summary="Another."))
    other = registry.register(Application(name="greeter", summary="Another."), replace=True)
    assert registry.get("greeter") is other


def test_an_unknown_name_says_which_exist() -> None:
    with pytest.raises(ShipyardError, match=r"no application named 'nope'.*known: greeter"):
        _registry(greeter).get("nope")


@pytest.mark.parametrize("name", ["", "Greeter", "has space", "a/b", "list", "x" * 41])
def test_a_name_must_fit_a_url_and_a_command(name: str) -> None:
    with pytest.raises(ShipyardError, match="bad application name"):
        Application(name=name, summary="Bad.")


def test_routers_and_pages_are_returned_for_mounting_under_the_apps_prefixes() -> None:
    mounts = _registry(greeter).mounts(["greeter"], AppContext(settings={"greeting": "ahoy"}))
    assert [prefix for prefix, _ in mounts] == ["/v1/apps/greeter", "/ui/apps/greeter"]
    assert all(isinstance(router, APIRouter) for _, router in mounts)
    server = FastAPI()  # what serve does with extra_routers=[(prefix, router), ...]
    for prefix, router in mounts:
        server.include_router(router, prefix=prefix)
    client = TestClient(server)
    assert client.get("/v1/apps/greeter/greet/ada").json() == {"greeting": "ahoy, ada"}
    assert "greeter" in client.get("/ui/apps/greeter/").text


def test_an_application_without_routers_mounts_nothing() -> None:
    assert _registry(Application(name="quiet", summary="Adds nothing.")).mounts(["quiet"]) == []


def test_a_broken_plugin_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    registry = AppRegistry(
        ["greeter_app:application", "no_such_module:application", "greeter_app:hello"], group=NO_PLUGINS
    )
    with caplog.at_level(logging.WARNING, logger="shipyard.apps"):
        assert [a.name for a in registry.available()] == ["greeter"]
    assert "no_such_module" in caplog.text and "not an Application" in caplog.text


def test_shipyard_app_runs_the_application_command() -> None:
    cli = build_app(_registry(greeter))
    runner = CliRunner()
    done = runner.invoke(cli, ["app", "greeter", "hello", "--name", "ada"])
    assert done.exit_code == 0, done.output
    assert done.output == "hello, ada\n"
    listed = runner.invoke(cli, ["app", "list"])
    assert listed.exit_code == 0 and "greeter\tSays hello. [cli, routers, pages]" in listed.output


def test_an_application_error_is_one_error_line_and_exit_code_2() -> None:
    done = CliRunner().invoke(build_app(_registry(greeter)), ["app", "greeter", "refuse"])
    assert done.exit_code == 2
    assert "error: greeter: no greetings today" in done.output


def test_app_list_without_applications() -> None:
    done = CliRunner().invoke(build_app(_registry()), ["app", "list"])
    assert done.exit_code == 0 and "no applications installed" in done.output


def test_an_installed_package_plugs_in_through_its_entry_point(tmp_path: Path) -> None:
    """The whole chain as a user has it: a package declaring a `shipyard.apps` entry point, `shipyard app ...`."""
    dist = tmp_path / "shipyard_greeter-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shipyard-greeter\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[shipyard.apps]\ngreeter = greeter_app:application\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path), str(HERE)])}

    def shipyard(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "shipyard.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    done = shipyard("app", "greeter", "hello", "--name", "grace")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello, grace\n"
    assert "greeter" in shipyard("app", "list").stdout


def test_shipyard_serve_apps_mounts_the_application_api_behind_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.cli import serve as serve_cli
    from shipyard.config.serve import ServeSettings
    from shipyard.serve.workers import build_app as build_server

    monkeypatch.setattr(serve_cli, "app_mounts", _registry(greeter).mounts)
    settings = ServeSettings.parse({"auth": False, "apps": ["greeter"]})
    client = TestClient(build_server({}, settings, serve_cli.resolve_apps))
    assert client.get("/v1/apps/greeter/greet/ada").json() == {"greeting": "hello, ada"}
