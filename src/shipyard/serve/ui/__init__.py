"""The web dashboard served by ``shipyard serve`` at ``/ui`` (see :mod:`shipyard.serve.ui.routes`)."""

from shipyard.serve.ui.routes import ModelView, UIContext, exception_handlers, mount_static, ui_router

__all__ = ["ModelView", "UIContext", "exception_handlers", "mount_static", "ui_router"]
