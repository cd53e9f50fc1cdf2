"""Job configuration: the schema and the YAML loader."""

from shipyard.config.loader import ConfigError, Problem, load_job, validate_dict, validate_file
from shipyard.config.schema import Job

__all__ = ["ConfigError", "Job", "Problem", "load_job", "validate_dict", "validate_file"]
