"""shipyard.optimize."""
