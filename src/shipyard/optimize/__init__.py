"""shipyard optimize: smaller and faster versions of a finished run's model, with the trade-offs measured.

``optimize_run(run_dir, cfg)`` reads the run's model (``run_dir/model``) and its stored splits, applies each
requested method and writes every result as an ordinary artifact folder, ``run_dir/optimized/<method>/``, that
``Artifact.load(...).predict_frame(...)`` serves like the original:

- ``onnx``: the fp32 model exported to ONNX (ONNX Runtime backend), checked for parity with torch;
- ``int8``: ONNX Runtime quantisation, dynamic for dense / transformer models, static QDQ for CNNs;
- ``prune``: global magnitude pruning (``structured: false``) or removal of whole neurons / channels / heads
  (``structured: true``), each followed by a short fine-tune;
- ``distill``: a smaller student trained on the teacher's soft labels.

Every method and the original are then measured the same way (`shipyard.optimize.measure`) and the trade-off
table is written to ``run_dir/optimized/optimize.json`` and rendered as an HTML report section
(``optimize_section.html``). A method that fails (an export failing its parity check, a quantiser error) becomes a
clearly marked failed row and leaves no folder behind: each artifact is written to a temporary folder and renamed
into place only once it has passed its checks.

Modules: ``context`` (the run, loaded once), ``runner`` (orchestration), ``methods`` (the four methods and their
registry), ``folders`` (artifact folders and scratch space), ``table`` (the trade-off table and report section),
and the method internals ``onnx_export``, ``quantize``, ``prune``, ``distill``, ``measure``.
"""

from shipyard.config.optimize import METHODS, OptimizeConfig
from shipyard.optimize.folders import remove_stale_work
from shipyard.optimize.runner import OPTIMIZED, optimize_run, parse_config
from shipyard.optimize.table import SECTION_FILE, TABLE_FILE, format_table, report_section, table_rows

__all__ = [
    "METHODS",
    "OPTIMIZED",
    "SECTION_FILE",
    "TABLE_FILE",
    "OptimizeConfig",
    "format_table",
    "optimize_run",
    "parse_config",
    "remove_stale_work",
    "report_section",
    "table_rows",
]
