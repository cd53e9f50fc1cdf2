"""The `shipyard` command: ``shipyard.cli:main`` (the console script) and ``python -m shipyard.cli``.

One module per command group: train (train, validate, init, demo), predict (predict, evaluate, explain),
optimize, runs, audit, data, serve (serve, keys), apps (`shipyard app ...`); errors holds the one error handler,
output the consoles, root assembles them into ``app``.
"""

from shipyard.cli.root import app, main

__all__ = ["app", "main"]
