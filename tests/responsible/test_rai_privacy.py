"""DP-SGD: validation, accounting, BatchNorm handling, what a DP run records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rai_support import job_dict

import shipyard
from shipyard.config.schema import Job
from shipyard.errors import ShipyardError
from shipyard.training.privacy import check_model, compute_epsilon, fix_model, parse_privacy


def test_bad_privacy_config_is_a_clear_error() -> None:
    with pytest.raises(ShipyardError) as err:
        parse_privacy({"differential_privacy": {"target_epsilon": -1, "accountant": "gdp"}})
    text = str(err.value)
    assert "privacy.differential_privacy.target_epsilon" in text and "accountant" in text
    with pytest.raises(ShipyardError, match="target_delta"):
        parse_privacy({"differential_privacy": {"target_epsilon": 1, "target_detla": 1e-5}})
    with pytest.raises(ShipyardError) as one:
        parse_privacy({"differential_privacy": {}})
    assert str(one.value).count("privacy.differential_privacy.target_epsilon") == 1  # named once, not twice


def test_dp_run_records_epsilon_within_target(dp_run: Any) -> None:
    info = dp_run.metrics["privacy"]
    assert 0 < info["epsilon"] <= 3.0
    assert info["delta"] == 1e-5 and info["accountant"] == "prv" and info["noise_multiplier"] > 0.3
    assert dp_run.metrics["test"]["accuracy"] > 0.7  # the signal is strong: DP must still learn it
    on_disk = json.loads((dp_run.run_dir / "metrics.json").read_text())
    assert on_disk["privacy"]["epsilon"] == info["epsilon"]
    assert "Privacy" in (dp_run.run_dir / "report.html").read_text()


def test_accountant_epsilon_matches(dp_run: Any) -> None:
    from opacus.accountants import RDPAccountant

    info = dp_run.metrics["privacy"]
    again = compute_epsilon(info["noise_multiplier"], info["sample_rate"], info["steps"], info["delta"], "prv")
    assert again == pytest.approx(info["epsilon"], abs=1e-3)
    # an independent accountant (RDP, stepped one step at a time) gives an upper bound close to PRV's
    rdp = RDPAccountant()
    for _ in range(info["steps"]):
        rdp.step(noise_multiplier=info["noise_multiplier"], sample_rate=info["sample_rate"])
    eps_rdp = rdp.get_epsilon(delta=info["delta"])
    assert info["epsilon"] <= eps_rdp <= 1.6 * info["epsilon"]


def test_batch_norm_is_refused_with_the_fix_named(synth_csv: Path, tmp_path: Path) -> None:
    raw = job_dict(
        synth_csv,
        model={"type": "mlp", "hidden": [16], "batch_norm": True},
        privacy={"differential_privacy": {"target_epsilon": 2.0}},
    )
    with pytest.raises(ShipyardError) as err:
        shipyard.run(Job.model_validate(raw), run_dir=tmp_path / "bn")
    assert "batch_norm: false" in str(err.value)
    assert not (tmp_path / "bn").exists()  # refused before the run folder exists

    from shipyard.models.cnn import CNN, CNNParams

    cnn = CNN((1, 8, 8), 10, CNNParams(channels=[4], batch_norm=True))
    with pytest.raises(ShipyardError):
        check_model(cnn, "cnn")
    check_model(fix_model(cnn), "cnn")  # GroupNorm instead: accepted


def test_dp_rejects_incompatible_training_options(synth_csv: Path, tmp_path: Path) -> None:
    raw = job_dict(synth_csv, privacy={"differential_privacy": {"target_epsilon": 2.0}})
    raw["training"]["clip_grad_norm"] = 1.0
    with pytest.raises(ShipyardError, match="clip_grad_norm"):
        shipyard.run(Job.model_validate(raw), run_dir=tmp_path / "clip")
