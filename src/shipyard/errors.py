"""The one exception type that library code raises for bad input.

A ShipyardError says what was wrong, where (file, line, row, field) and what was expected. Only the CLI turns it
into an exit code (2) and a single ``error:`` line; anything else that escapes is a bug.
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Bad input or a failed precondition, with a message fit to show a user as one line."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __str__(self) -> str:
        return self.render()
