"""shipyard.evaluation."""
