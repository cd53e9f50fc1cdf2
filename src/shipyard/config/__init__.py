"""shipyard.config."""
