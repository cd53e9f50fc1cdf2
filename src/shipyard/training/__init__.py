"""shipyard.training."""
