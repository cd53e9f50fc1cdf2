"""ServeSettings (config/serve.py): the server's one set of defaults and range checks."""

from __future__ import annotations

import pytest

from shipyard.config.errors import ConfigError
from shipyard.config.serve import ServeSettings


def test_defaults_match_the_server_today() -> None:
    s = ServeSettings()
    assert (s.host, s.port, s.workers, s.auth) == ("127.0.0.1", 8000, 1, True)
    assert (s.max_batch_size, s.max_wait_ms, s.max_body_bytes) == (64, 5.0, 1_000_000)
    assert (s.rate_limit_per_s, s.burst, s.key_cache_ttl_s, s.drain_timeout_s) == (100.0, 200, 30.0, 30.0)
    assert s.request_limit == 64  # a request may send as many instances as one batch holds unless told fewer


def test_request_limit_is_split_from_the_batch_size() -> None:
    s = ServeSettings(max_batch_size=128, max_instances_per_request=16)
    assert s.request_limit == 16 and s.max_batch_size == 128
    with pytest.raises(ConfigError, match="must not exceed max_batch_size"):
        ServeSettings.parse({"max_batch_size": 8, "max_instances_per_request": 9})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"max_batch_size": 0}, "serve.max_batch_size"),
        ({"max_wait_ms": -1}, "serve.max_wait_ms"),
        ({"workers": 0}, "serve.workers"),
        ({"port": 70000}, "serve.port"),
        ({"burst": 0}, "serve.burst"),
        ({"max_batch_sise": 8}, "serve.max_batch_sise"),
    ],
)
def test_out_of_range_or_unknown_settings_are_one_config_error(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        ServeSettings.parse(raw)
    assert err.value.problems[0].path == field


def test_settings_travel_to_workers_as_json() -> None:
    s = ServeSettings(port=9000, workers=2, max_wait_ms=2.5, auth=False)
    assert ServeSettings.model_validate_json(s.model_dump_json()) == s
    with pytest.raises(ConfigError, match="did you mean `max_batch_size`"):
        ServeSettings.parse({"max_batch_sise": 1})
