"""The REST service through FastAPI's TestClient: predictions, validation errors, auth, limits, versions."""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import auth, wait_ready

from shipyard.artifact import Artifact
from shipyard.errors import ShipyardError

ROW = {"a": 0.5, "b": 2.0, "color": "red"}
ROW2 = {"a": -1.5, "b": 6.0, "color": "blue"}


def _predict(client: Any, key: str, body: Any, model: str = "clf") -> Any:
    return client.post(f"/v1/models/{model}/predict", json=body, headers=auth(key))


# ------------------------------------------------------------------------------------------- predictions
def test_predict_one_and_list_match_the_artifact(make_client: Any, keys: dict[str, Any], runs: dict) -> None:
    client = make_client()
    expected = Artifact.load(runs["clf"]).predict_records([ROW, ROW2])

    one = _predict(client, keys["predict"], {"instance": ROW})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model"] == "clf" and body["version"] == 1 and body["latency_ms"] >= 0
    assert body["prediction"]["label"] == expected[0]["label"]
    assert set(body["prediction"]["probabilities"]) == {"no", "yes"}
    assert body["prediction"]["probabilities"]["yes"] == pytest.approx(expected[0]["probabilities"]["yes"], abs=1e-6)

    many = _predict(client, keys["predict"], {"instances": [ROW, ROW2]})
    assert many.status_code == 200
    preds = many.json()["predictions"]
    assert [p["label"] for p in preds] == [e["label"] for e in expected]

    reg = _predict(client, keys["predict"], {"instance": ROW}, model="reg")
    assert reg.status_code == 200
    assert isinstance(reg.json()["prediction"]["value"], float)


def test_models_listing_describes_each_model(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client()
    listing = client.get("/v1/models", headers=auth(keys["predict"])).json()["models"]
    by_name = {m["name"]: m for m in listing}
    assert set(by_name) == {"clf", "reg"}
    clf = by_name["clf"]
    assert clf["version"] == 1 and clf["task"] == "classification" and clf["labels"] == ["no", "yes"]
    assert clf["input_schema"]["features"] == [
        {"name": "a", "type": "numeric"},
        {"name": "b", "type": "numeric"},
        {"name": "color", "type": "categorical"},
    ]
    assert "test" in clf["metrics"]
    assert by_name["reg"]["task"] == "regression"


def test_openapi_has_a_schema_per_model(make_client: Any) -> None:
    spec = make_client().get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["Instance_clf"]["properties"]["color"]["type"] == "string"
    assert schemas["Instance_clf"]["additionalProperties"] is False
    assert set(schemas["Instance_clf"]["required"]) == {"a", "b", "color"}
    assert "/v1/models/clf/predict" in spec["paths"] and "/v1/models/reg/predict" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("body", "kind", "field"),
    [
        ({"instance": {**ROW, "colour": "red"}}, "unknown_field", "instance.colour"),
        ({"instance": {"a": 1.0, "b": 2.0}}, "missing_field", "instance.color"),
        ({"instance": {**ROW, "a": "high"}}, "wrong_type", "instance.a"),
        ({"instance": {**ROW, "color": 3}}, "wrong_type", "instance.color"),
        ({"instances": [ROW, {**ROW, "b": None}]}, "wrong_type", "instances.1.b"),
        ({"instances": []}, "invalid_value", "instances"),
        ({"instance": ROW, "instances": [ROW]}, "invalid_value", None),
        ({}, "invalid_value", None),
        ([ROW], "wrong_type", None),
    ],
)
def test_invalid_input_is_422_naming_the_field(
    make_client: Any, keys: dict[str, Any], body: Any, kind: str, field: str | None
) -> None:
    response = _predict(make_client(), keys["predict"], body)
    assert response.status_code == 422, response.text
    err = response.json()["error"]
    assert err["type"] == kind
    assert err["field"] == field
    if field:
        assert field in err["message"]


def test_malformed_json_is_400(make_client: Any, keys: dict[str, Any]) -> None:
    response = make_client().post(
        "/v1/models/clf/predict",
        content=b'{"instance": {"a": 1',
        headers={**auth(keys["predict"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "malformed_json"


def test_non_finite_numbers_are_refused(make_client: Any, keys: dict[str, Any]) -> None:
    response = make_client().post(
        "/v1/models/clf/predict",
        content=b'{"instance": {"a": NaN, "b": 1.0, "color": "red"}}',
        headers={**auth(keys["predict"]), "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert response.json()["error"]["type"] in ("malformed_json", "invalid_value")


def test_batch_over_the_limit(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client(max_batch_size=4)
    response = _predict(client, keys["predict"], {"instances": [ROW] * 5})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "too_many_instances"
    assert _predict(client, keys["predict"], {"instances": [ROW] * 4}).status_code == 200


def test_oversized_body_is_413(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client(max_body_bytes=2_000)
    big = {"instances": [{**ROW, "color": "x" * 100}] * 30}
    response = _predict(client, keys["predict"], big)  # Content-Length says it is too big
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: the streamed bytes are counted
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    streamed = client.post(
        "/v1/models/clf/predict",
        content=chunks(),
        headers={**auth(keys["predict"]), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


def test_unknown_model_is_404(make_client: Any, keys: dict[str, Any]) -> None:
    response = _predict(make_client(), keys["predict"], {"instance": ROW}, model="nope")
    assert response.status_code == 404
    err = response.json()["error"]
    assert err["type"] == "not_found" and "nope" in err["message"] and "clf" in err["message"]


# ------------------------------------------------------------------------------------------- security
def test_missing_or_wrong_key_is_401(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client()
    assert client.post("/v1/models/clf/predict", json={"instance": ROW}).status_code == 401
    assert client.get("/v1/models").status_code == 401
    wrong = client.post("/v1/models/clf/predict", json={"instance": ROW}, headers=auth("sk_" + "A" * 32))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    basic = client.get("/v1/models", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and basic.json()["error"]["field"] == "Authorization"
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_revoked_key_is_refused(make_client: Any, keys: dict[str, Any]) -> None:
    key = keys["store"].create("short-lived", "predict")
    client = make_client(key_cache_ttl_s=0)
    assert client.get("/v1/models", headers=auth(key)).status_code == 200
    keys["store"].revoke("short-lived")
    assert client.get("/v1/models", headers=auth(key)).status_code == 401


def test_predict_key_cannot_load_versions_403(make_client: Any, keys: dict[str, Any], runs: dict) -> None:
    client = make_client()
    response = client.post("/v1/models/clf/versions", json={"path": str(runs["clf2"])}, headers=auth(keys["predict"]))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"


def test_rate_limit_429_with_retry_after(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client(rate_limit_per_s=0.5, burst=3)
    codes = [_predict(client, keys["predict"], {"instance": ROW}).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    limited = _predict(client, keys["predict"], {"instance": ROW})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limited"
    # another key has its own bucket
    assert client.get("/v1/models", headers=auth(keys["admin"])).status_code == 200


def test_no_auth_warns_and_serves(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard.serve.app"):
        client = make_client(auth=False, key_store_path=None)
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)
    assert client.post("/v1/models/clf/predict", json={"instance": ROW}).status_code == 200


def test_access_log_hashes_the_body_and_never_logs_inputs(
    make_client: Any, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    secret = {"instance": {**ROW, "color": "SECRET-VALUE-123"}}
    with caplog.at_level(logging.DEBUG):
        assert _predict(client, keys["predict"], secret).status_code == 200
        _predict(client, keys["predict"], {"instance": {**ROW, "color": "SECRET-VALUE-123", "x": 1}})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "SECRET-VALUE-123" not in text
    assert keys["predict"] not in text
    line = next(r.getMessage() for r in caplog.records if r.name == "shipyard.serve.access")
    assert re.search(r"POST /v1/models/clf/predict 200 [\d.]+ms key=tester body_hmac=[0-9a-f]{32}", line)


# ------------------------------------------------------------------------------------------- readiness, metrics
def test_readyz_before_and_after_load(make_client: Any, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.serve.state as app_module

    gate = threading.Event()
    real = app_module.load_version

    def slow_load(path: Any, version: int) -> Any:
        gate.wait(10)
        return real(path, version)

    monkeypatch.setattr(app_module, "load_version", slow_load)
    client = make_client(ready=False)
    assert client.get("/healthz").status_code == 200
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["models"]["clf"]["ready"] is False
    early = _predict(client, keys["predict"], {"instance": ROW})
    assert early.status_code == 503 and early.headers["Retry-After"]
    gate.set()
    wait_ready(client)
    assert client.get("/readyz").json()["status"] == "ready"


def test_metrics_exposes_counters(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client()
    _predict(client, keys["predict"], {"instance": ROW})
    _predict(client, keys["predict"], {"instance": {"a": 1.0}})
    text = client.get("/metrics").text
    assert 'shipyard_requests_total{code="200",endpoint="predict",model="clf"} 1.0' in text
    assert 'shipyard_errors_total{kind="missing_field",model="clf"} 1.0' in text
    assert 'shipyard_request_latency_seconds_count{endpoint="predict",model="clf"}' in text
    assert 'shipyard_batch_size_count{model="clf"}' in text
    assert 'shipyard_model_version{model="clf"} 1.0' in text


# ------------------------------------------------------------------------------------------- versions
def test_version_switch_and_failed_load_keeps_old(
    make_client: Any, keys: dict[str, Any], runs: dict, tmp_path: Path
) -> None:
    client = make_client()
    admin = auth(keys["admin"])
    before = _predict(client, keys["predict"], {"instance": ROW}).json()
    assert before["version"] == 1

    bad = client.post("/v1/models/clf/versions", json={"path": str(tmp_path / "missing")}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "load_failed"
    other_task = client.post("/v1/models/clf/versions", json={"path": str(runs["reg"])}, headers=admin)
    assert other_task.status_code == 422 and "different inputs" in other_task.json()["error"]["message"]
    pickled = tmp_path / "pickled"
    shutil.copytree(runs["clf2"] / "model", pickled)
    (pickled / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    refused = client.post("/v1/models/clf/versions", json={"path": str(pickled)}, headers=admin)
    assert refused.status_code == 422 and "pickle" in refused.json()["error"]["message"]
    still = _predict(client, keys["predict"], {"instance": ROW}).json()
    assert still["version"] == 1 and still["prediction"] == before["prediction"]

    switched = client.post("/v1/models/clf/versions", json={"path": str(runs["clf2"])}, headers=admin)
    assert switched.status_code == 200, switched.text
    assert switched.json()["version"] == 2 and switched.json()["previous_version"] == 1
    after = _predict(client, keys["predict"], {"instance": ROW}).json()
    assert after["version"] == 2
    expected = Artifact.load(runs["clf2"]).predict_records([ROW])[0]
    assert after["prediction"]["probabilities"]["yes"] == pytest.approx(expected["probabilities"]["yes"], abs=1e-6)
    assert client.get("/v1/models/clf", headers=admin).json()["version"] == 2

    from shipyard.store.audit import AuditLog

    entries = AuditLog(keys["db"]).entries("model:clf", action="model.version")
    assert entries and entries[-1].actor == "operator" and entries[-1].details["version"] == 2


def test_folder_with_a_pickle_is_refused_at_start(runs: dict, tmp_path: Path, keys: dict[str, Any]) -> None:
    from shipyard.serve.app import create_app

    folder = tmp_path / "model"
    shutil.copytree(runs["clf"] / "model", folder)
    (folder / "weights.pt").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(ShipyardError, match="pickle"):
        create_app({"m": folder}, key_store_path=keys["db"])
    (folder / "weights.pt").unlink()
    (folder / "extra.dat").write_bytes(b"\x80\x04\x95\x00")  # pickle by content, not by name
    with pytest.raises(ShipyardError, match="pickle"):
        create_app({"m": folder}, key_store_path=keys["db"])


def test_onnx_artifact_is_preferred(runs: dict, tmp_path: Path) -> None:
    from shipyard.serve.models import resolve_model_dir

    run = tmp_path / "run"
    shutil.copytree(runs["clf"], run)
    assert resolve_model_dir(run) == run / "model"
    onnx = run / "optimized" / "onnx"
    onnx.mkdir(parents=True)
    meta = json.loads((run / "model" / "shipyard.json").read_text())
    (onnx / "shipyard.json").write_text(json.dumps({**meta, "backend": "torch"}))
    assert resolve_model_dir(run) == run / "model"  # not an ONNX artifact: ignored
    (onnx / "shipyard.json").write_text(json.dumps({**meta, "backend": "onnx"}))
    assert resolve_model_dir(run) == onnx
    int8 = run / "optimized" / "int8"
    int8.mkdir()
    (int8 / "shipyard.json").write_text(json.dumps({**meta, "backend": "onnx"}))
    assert resolve_model_dir(run) == int8


def test_concurrent_checks_of_one_key_share_one_hash() -> None:
    import asyncio
    import time as _time

    from shipyard.serve.security import KeyAuthenticator

    class Store:
        calls = 0

        def verify(self, token: str) -> Any:
            Store.calls += 1
            _time.sleep(0.05)
            return type("Rec", (), {"name": "n", "scope": "predict"})() if token == "good" else None

    authenticator = KeyAuthenticator(Store(), ttl_s=30, negative_ttl_s=2)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(*(authenticator.verify("good") for _ in range(20)), authenticator.verify("bad"))
        )

    results = asyncio.run(main())
    assert all(r is not None and r.name == "n" for r in results[:20]) and results[20] is None
    assert Store.calls == 2
    asyncio.run(authenticator.verify("bad"))
    assert Store.calls == 2  # the failure is remembered briefly
