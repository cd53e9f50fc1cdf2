"""shipyard.apps."""
