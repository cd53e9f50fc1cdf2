"""Whether a model about to be served is flagged ``needs_retraining`` (rows erased from its training data).

Such a model is served only with a loud warning, or refused under ``--strict``: its weights still carry what it
learnt from the erased rows. The flag lives in the model's ``shipyard.json`` (``erasure.needs_retraining``) and,
for a run folder in a runs root, in the run store.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.serve.models import read_spec
from shipyard.store.runs import RunStore

log = logging.getLogger(__name__)


def _reasons(path: Path, model_dir: Path, meta: dict) -> list[str]:
    reasons = []
    if (meta.get("erasure") or {}).get("needs_retraining"):
        reasons.append(f"{meta['erasure'].get('rows_removed', '?')} row(s) erased from its data (shipyard.json)")
    run_dir = next((p for p in (path, model_dir.parent) if (p / "config.yaml").is_file()), None)
    if run_dir is not None and (run_dir.parent / "shipyard.db").is_file():
        try:
            flag = RunStore.for_root(run_dir.parent).get(run_dir.name).flags.get("needs_retraining")
        except ShipyardError:
            flag = None
        if flag:
            reasons.append("flagged needs_retraining in the run store")
    return reasons


def retraining_warning(name: str, path: Path, *, strict: bool) -> str | None:
    """The warning for model ``name`` at ``path`` if it needs retraining (None if not); raises under ``strict``.

    Reading the spec here also makes a wrong path fail before anything starts.
    """
    spec = read_spec(path)
    reasons = _reasons(Path(path), spec.path, spec.meta)
    if not reasons:
        return None
    message = f"model {name!r} ({path}) needs retraining: " + "; ".join(reasons)
    if strict:
        raise ShipyardError(message, where=str(path), hint="retrain it, or serve without --strict")
    warning = f"{message}; it still carries what it learnt from the erased rows"
    log.warning("%s", warning)
    return warning
