"""`python -m shipyard.cli` (and `torchrun -m shipyard.cli`)."""

from shipyard.cli.root import main

main()
