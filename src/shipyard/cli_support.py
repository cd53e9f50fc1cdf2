"""Transitional alias of :mod:`shipyard.cli.errors`, kept only for ``serve/cli.py``, which imports the error
handler from here until it moves into the CLI package as ``cli/serve.py`` (issue #13); delete it then.
"""

from shipyard.cli.errors import STATE, handle_errors, print_error

__all__ = ["STATE", "handle_errors", "print_error"]
