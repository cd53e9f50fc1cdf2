"""shipyard.serve."""
