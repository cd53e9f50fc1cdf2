"""The registry of applications: those shipped with shipyard (a static list), those installed as packages (the
``shipyard.apps`` entry-point group) and those registered in code (``register_app``)."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from shipyard.apps._application import AppContext, Application
from shipyard.errors import ShipyardError

if TYPE_CHECKING:  # FastAPI is only needed once a deployment mounts an application
    from fastapi import APIRouter

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "shipyard.apps"


def _load_object(spec: str) -> object:
    """``"package.module:attribute"`` -> the attribute."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class AppRegistry:
    """Applications by name. Discovery (importing the built-in and installed applications) happens once, on the
    first look-up, so that a command that never asks for an application never imports one."""

    def __init__(self, builtin: Iterable[str] = (), *, group: str = ENTRY_POINT_GROUP) -> None:
        self._builtin = tuple(builtin)  # "module:attribute" of each application shipped with shipyard
        self._group = group
        self._apps: dict[str, Application] = {}
        self._discovered = False

    def register(self, application: Application, *, replace: bool = False) -> Application:
        """Add an application; a second one with the same name is an error unless ``replace``."""
        if not isinstance(application, Application):
            raise ShipyardError(f"not an Application: {application!r}", where="register_app")
        if application.name in self._apps and not replace:
            raise ShipyardError(f"an application named {application.name!r} is already registered")
        self._apps[application.name] = application
        return application

    def unregister(self, name: str) -> None:
        self._apps.pop(name, None)

    def get(self, name: str) -> Application:
        self._discover()
        if name not in self._apps:
            known = ", ".join(sorted(self._apps)) or "none installed"
            raise ShipyardError(f"no application named {name!r}", where="--apps", hint=f"known: {known}")
        return self._apps[name]

    def available(self) -> list[Application]:
        """Every application, by name."""
        self._discover()
        return [self._apps[name] for name in sorted(self._apps)]

    def mounts(self, names: Sequence[str], context: AppContext | None = None) -> list[tuple[str, APIRouter]]:
        """The (prefix, router) pairs of the named applications, in order: what a server mounts for ``--apps``."""
        context = context or AppContext()
        return [mount for name in names for mount in self.get(name).mounts(context)]

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        loaders: list[tuple[str, Callable[[], object]]] = [
            (spec, functools.partial(_load_object, spec)) for spec in self._builtin
        ]
        loaders += [(f"entry point {e.name} = {e.value}", e.load) for e in entry_points(group=self._group)]
        for origin, load in loaders:
            self._add_found(origin, load)

    def _add_found(self, origin: str, load: Callable[[], object]) -> None:
        """Load one discovered application; a broken plug-in is logged and skipped, never fatal to shipyard."""
        try:
            application = load()
            if isinstance(application, Application) and application.name in self._apps:
                return  # registered in code first: that one wins
            self.register(application)  # type: ignore[arg-type]
        except Exception as exc:  # an installed package's bug must not break every shipyard command
            log.warning("application %s not loaded: %s: %s", origin, type(exc).__name__, exc)
