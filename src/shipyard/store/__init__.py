"""shipyard.store."""
