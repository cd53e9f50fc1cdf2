"""A tiny application for the plug-in tests: one CLI group, one API router, one page. Not shipped (tests only)."""

from __future__ import annotations

import typer
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from shipyard.apps import AppContext, Application
from shipyard.errors import ShipyardError

greeter_cli = typer.Typer(no_args_is_help=True, help="Greet people.")


@greeter_cli.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello, {name}")


@greeter_cli.command()
def refuse() -> None:
    """Fail the way library code fails: a ShipyardError."""
    raise ShipyardError("no greetings today", where="greeter")


def greeter_routers(context: AppContext) -> list[APIRouter]:
    router = APIRouter()
    greeting = context.settings.get("greeting", "hello")

    @router.get("/greet/{name}")
    def greet(name: str) -> dict[str, str]:
        return {"greeting": f"{greeting}, {name}"}

    return [router]


def greeter_pages(context: AppContext) -> list[APIRouter]:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def home() -> str:
        return "<h1>greeter</h1>"

    return [router]


application = Application(
    name="greeter", summary="Says hello.", cli=greeter_cli, routers=greeter_routers, pages=greeter_pages
)
