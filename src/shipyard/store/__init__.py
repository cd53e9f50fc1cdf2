"""shipyard.store: the SQLite index of runs, the REST service's API keys and the audit log.

All three live in ``<runs_root>/shipyard.db`` (separate tables); see :mod:`shipyard.store.db` for the shared
connection and migration helpers.
"""

from shipyard.store.audit import AuditEntry, AuditLog
from shipyard.store.db import DB_FILENAME, Database
from shipyard.store.keys import KeyRecord, KeyStore
from shipyard.store.run_tables import compare_table, run_detail, runs_table
from shipyard.store.runs import RunRecord, RunStore

__all__ = [
    "DB_FILENAME",
    "AuditEntry",
    "AuditLog",
    "Database",
    "KeyRecord",
    "KeyStore",
    "RunRecord",
    "RunStore",
    "compare_table",
    "run_detail",
    "runs_table",
]
