"""shipyard."""
