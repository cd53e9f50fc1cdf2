"""shipyard: from raw data to a live, measured model service.

>>> import shipyard
>>> job = shipyard.Job.from_yaml("examples/digits_cnn.yaml")  # doctest: +SKIP
>>> result = job.run()                                         # doctest: +SKIP
>>> result.metrics["test"]["accuracy"]                         # doctest: +SKIP
"""

from shipyard.config.schema import Job
from shipyard.errors import ShipyardError

__version__ = "0.1.0"
__all__ = ["Job", "ShipyardError", "__version__"]
