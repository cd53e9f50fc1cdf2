"""Applications built on shipyard, and the plug-in point they use (see docs/apps.md).

An application contributes CLI commands (``shipyard app <name> ...``), API routers (``/v1/apps/<name>``) and
web pages (``/ui/apps/<name>``) through one :class:`Application`. The CLI and ``shipyard serve`` find it by name;
serve itself never imports an application: it is handed ``(prefix, router)`` pairs from :func:`app_mounts`.
"""

from shipyard.apps._application import API_PREFIX, PAGES_PREFIX, AppContext, Application
from shipyard.apps._registry import ENTRY_POINT_GROUP, AppRegistry

BUILTIN_APPS: tuple[str, ...] = (
    "shipyard.apps.finmon:APP",
)  # "module:attribute" of each application shipped with shipyard

registry = AppRegistry(BUILTIN_APPS)
register_app = registry.register
get_app = registry.get
available_apps = registry.available
app_mounts = registry.mounts

__all__ = [
    "API_PREFIX",
    "BUILTIN_APPS",
    "ENTRY_POINT_GROUP",
    "PAGES_PREFIX",
    "AppContext",
    "AppRegistry",
    "Application",
    "app_mounts",
    "available_apps",
    "get_app",
    "register_app",
    "registry",
]
