"""shipyard.data."""
