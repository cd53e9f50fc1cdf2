"""Issue #12 (service security): wrong-key floods, malformed images, the body hash, slow clients, media types,
security headers, public endpoints, content-based pickle checks and the admin route's answers about paths."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import auth, serve_subprocess

from shipyard.artifact import refuse_pickles
from shipyard.errors import ShipyardError

ROW = {"a": 0.1, "b": 2.0, "color": "red"}


# ---------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def serve(runs: dict[str, Path], keys: dict[str, Any], log_file: Path, **options: Any) -> Iterator[tuple[str, Any]]:
    with serve_subprocess([f"clf={runs['clf']}"], keys["db"], log_file, **options) as served:
        yield served


FLOOD = r"""
import asyncio, json, secrets, sys, time
import httpx
base, prefix = sys.argv[1], sys.argv[2]
seconds, connections, per_connection_rate = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
cheap = sys.argv[6] == "probe"  # the control: the same traffic to /healthz, which needs no key
counts = {}
async def attack(client, i, end):
    while time.monotonic() < end:
        t0 = time.monotonic()
        # half the keys reuse a real key's (public) prefix, half are random: both used to cost an scrypt
        key = (prefix if i % 2 else "sk_" + secrets.token_urlsafe(4)[:5]) + secrets.token_urlsafe(24)[:27]
        try:
            if cheap:
                r = await client.get(base + "/healthz")
            else:
                r = await client.post(base + "/v1/models/clf/predict", json={"instance": {"a": 1.0, "b": 1.0}},
                                      headers={"Authorization": "Bearer " + key})
            code = r.status_code
        except httpx.HTTPError:
            code = -1
        counts[code] = counts.get(code, 0) + 1
        await asyncio.sleep(max(0.0, 1.0 / per_connection_rate - (time.monotonic() - t0)))
async def main():
    # from another loopback address: a different client to the server
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2", limits=httpx.Limits(max_connections=connections))
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        end = time.monotonic() + seconds
        await asyncio.gather(*(attack(client, i, end) for i in range(connections)))
asyncio.run(main())
print(json.dumps(counts))
"""


def _legit_rate(base: str, key: str, seconds: float) -> float:
    """Sequential predictions with a valid key for ``seconds``: requests per second."""
    n = 0
    with httpx.Client(base_url=base, headers=auth(key), timeout=10) as client:
        end = time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < end:
            response = client.post("/v1/models/clf/predict", json={"instance": ROW})
            assert response.status_code == 200, response.text
            n += 1
        return n / (time.monotonic() - started)


# ---------------------------------------------------------------------------------------------- item 4
def test_wrong_key_flood_leaves_legitimate_throughput_within_20_percent(
    runs: dict[str, Path], keys: dict[str, Any], tmp_path: Path
) -> None:
    with serve(runs, keys, tmp_path / "server.log", rate_limit=0.0) as (base, _proc):
        _legit_rate(base, keys["predict"], 1.0)  # warm the key cache and the connection path
        # up to three measurements: on a busy machine one window can be slowed by other work; a real
        # amplification (an scrypt per wrong key) slows every window it is in, so it fails all three
        for attempt in range(3):
            # the control: the same paced traffic to a probe, so the client processes and the machine's load are
            # alike in both windows and only what the server spends on a wrong key differs
            control, _, _ = _under_flood(base, keys["predict"], "probe")
            under_attack, counts, err = _under_flood(base, keys["predict"], "wrong-key")
            # the flood really ran (up to 50 wrong keys a second; fewer on a loaded machine), was mostly refused early
            assert sum(counts.values()) > 60, (counts, err[-2000:])
            assert set(counts) <= {401, 429}, counts
            assert counts.get(429, 0) > counts.get(401, 0)  # most never reached a key lookup
            logging.getLogger(__name__).warning(
                "attempt %d: legitimate req/s beside probe traffic %.1f, beside a wrong-key flood %.1f",
                attempt,
                control,
                under_attack,
            )
            if under_attack >= 0.8 * control:
                break
    assert under_attack >= 0.8 * control, f"control {control:.1f} req/s, under attack {under_attack:.1f}, {counts}"


def _under_flood(base: str, key: str, mode: str) -> tuple[float, dict[int, int], str]:
    """Legitimate req/s while 20 connections send 2.5 requests a second each (50/s): wrong keys, which at one
    scrypt (~19 ms) each used to take a whole core from the server, or the control's probes."""
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, base, key[:8], "6.5", "20", "2.5", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # the attacker's failure allowance is used up by now
        rate = _legit_rate(base, key, 4.0)
        out, err = flood.communicate(timeout=30)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    return rate, {int(k): v for k, v in json.loads(out or "{}").items()}, err


class CountingStore:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def verify(self, token: str) -> Any:
        self.calls += 1
        return self.store.verify(token)


def test_failed_keys_from_one_address_are_refused_before_any_lookup(make_client: Any, keys: dict[str, Any]) -> None:
    store = CountingStore(keys["store"])
    client = make_client(key_store=store, key_store_path=None, auth_failure_burst=5, auth_failures_per_s=0.01)
    assert client.get("/v1/models", headers=auth(keys["predict"])).status_code == 200  # verified, now cached
    codes = [client.get("/v1/models", headers=auth(f"sk_wrong{i:03d}" + "x" * 24)).status_code for i in range(12)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 7
    assert store.calls == 1 + 5  # the refused ones never reached the store
    blocked = client.get("/v1/models", headers=auth("sk_another" + "y" * 25))
    assert blocked.status_code == 429 and blocked.json()["error"]["type"] == "too_many_failed_keys"
    assert int(blocked.headers["Retry-After"]) >= 1
    # a key already verified still works from the blocked address
    assert client.get("/v1/models", headers=auth(keys["predict"])).status_code == 200


# ---------------------------------------------------------------------------------------------- item 5
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shipyard

    job = shipyard.Job.model_validate(
        {
            "task": "classification",
            "data": {
                "source": {"format": "sklearn_digits"},
                "split": {"validation": 0.1, "test": 0.2},
                "cleaning": {"drop_duplicates": False},
            },
            "model": {"type": "mlp", "hidden": [8]},
            "training": {"epochs": 1, "batch_size": 64, "seed": 0},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(shipyard.run(job, run_dir=tmp_path_factory.mktemp("digits") / "run").run_dir)


def test_malformed_images_get_422_naming_the_problem_and_no_value_is_logged(
    make_client: Any, keys: dict[str, Any], digits_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client({"digits": digits_run})
    h = {**auth(keys["predict"]), "Content-Type": "application/json"}
    good = [[7] * 8 for _ in range(8)]
    ok = client.post("/v1/models/digits/predict", json={"instance": {"image": good}}, headers=auth(keys["predict"]))
    assert ok.status_code == 200, ok.text
    marker = 4242.4242  # a value that must never appear in a log
    ragged = [row[:] for row in good]
    ragged[3] = [7] * 5
    bad = {
        "ragged row": (json.dumps({"instance": {"image": ragged}}), "instance.image.3"),
        "string pixel": (json.dumps({"instance": {"image": [["SECRET-PIXEL"] * 8] * 8}}), "instance.image.0.0"),
        "null": (json.dumps({"instance": {"image": None}}), "instance.image"),
        "null pixel": (json.dumps({"instance": {"image": [[None] * 8] * 8}}), "instance.image.0.0"),
        "NaN": (
            '{"instance": {"image": [[NaN, 1, 1, 1, 1, 1, 1, 1]' + ", [1, 1, 1, 1, 1, 1, 1, 1]" * 7 + "]}}",
            "instance.image.0.0",
        ),
        "negative": (json.dumps({"instance": {"image": [[-3] * 8] * 8}}), "instance.image.0.0"),
        "above 255": (json.dumps({"instance": {"image": [[marker] * 8] * 8}}), "instance.image.0.0"),
        "too few rows": (json.dumps({"instance": {"image": good[:5]}}), "instance.image"),
        "flat list": (json.dumps({"instance": {"image": [1] * 64}}), "instance.image"),
    }
    with caplog.at_level(logging.DEBUG):
        for what, (body, field) in bad.items():
            response = client.post("/v1/models/digits/predict", content=body, headers=h)
            assert response.status_code == 422, (what, response.status_code, response.text)
            error = response.json()["error"]
            assert error["field"] == field, (what, error)
            assert error["message"], what
    logged = caplog.text
    assert "SECRET-PIXEL" not in logged and "4242" not in logged and "Traceback" not in logged
    assert "image" in client.get("/openapi.json").text


def test_an_unexpected_exception_is_a_500_that_logs_no_request_value(
    make_client: Any, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    slot = client.app.state.serve.slots["clf"]

    async def explode(records: list[dict[str, Any]]) -> Any:
        raise RuntimeError(f"cannot handle {records}")

    slot.batcher.submit = explode  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            "/v1/models/clf/predict", json={"instance": {**ROW, "color": "SECRET-COLOR"}}, headers=auth(keys["predict"])
        )
    assert response.status_code == 500 and response.json()["error"]["type"] == "internal"
    assert "RuntimeError" in caplog.text and "SECRET-COLOR" not in caplog.text


# ---------------------------------------------------------------------------------------------- item 7
def test_the_access_log_body_digest_is_keyed(
    make_client: Any, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    body = json.dumps({"instance": ROW}).encode()
    with caplog.at_level(logging.INFO, logger="shipyard.serve.access"):
        for _ in range(2):
            client.post(
                "/v1/models/clf/predict",
                content=body,
                headers={**auth(keys["predict"]), "Content-Type": "application/json"},
            )
    lines = [
        r.getMessage() for r in caplog.records if r.name == "shipyard.serve.access" and "predict" in r.getMessage()
    ]
    assert len(lines) == 2
    digests = [line.split("body_hmac=")[1].split()[0] for line in lines]
    assert digests[0] == digests[1] and len(digests[0]) >= 32  # equal bodies still match within a server
    assert hashlib.sha256(body).hexdigest() not in caplog.text  # an unsalted hash could be brute-forced back
    assert "body_sha256" not in caplog.text


# ---------------------------------------------------------------------------------------------- item 8
def test_a_body_that_is_not_json_gets_415(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = auth(keys["predict"]) | ({"Content-Type": content_type} if content_type else {})
        response = client.post("/v1/models/clf/predict", content=json.dumps({"instance": ROW}), headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json()["error"]["type"] == "unsupported_media_type"
    charset = {**auth(keys["predict"]), "Content-Type": "application/json; charset=utf-8"}
    assert (
        client.post("/v1/models/clf/predict", content=json.dumps({"instance": ROW}), headers=charset).status_code == 200
    )


def test_every_response_has_security_headers(make_client: Any, keys: dict[str, Any]) -> None:
    client = make_client()
    for response in (
        client.get("/healthz"),
        client.get("/v1/models", headers=auth(keys["predict"])),
        client.get("/v1/models"),  # 401
        client.get("/docs"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["Content-Security-Policy"]  # the page still loads


def test_docs_and_metrics_need_a_key_unless_public(make_client: Any, keys: dict[str, Any]) -> None:
    private = make_client(public_endpoints="none")
    for path in ("/docs", "/openapi.json", "/metrics"):
        assert private.get(path).status_code == 401, path
        assert private.get(path, headers=auth(keys["predict"])).status_code == 200, path
    assert private.get("/healthz").status_code == 200 and private.get("/readyz").status_code == 200
    default = make_client()
    assert default.get("/metrics").status_code == 200 and default.get("/openapi.json").status_code == 200
    only_metrics = make_client(public_endpoints="metrics")
    assert only_metrics.get("/metrics").status_code == 200 and only_metrics.get("/docs").status_code == 401
    with pytest.raises(ShipyardError, match="public endpoint"):
        make_client(public_endpoints="docs,admin")


def test_the_versions_route_answers_missing_and_non_model_paths_alike(
    make_client: Any, keys: dict[str, Any], tmp_path: Path
) -> None:
    client = make_client()
    (tmp_path / "exists").mkdir()
    (tmp_path / "file.txt").write_text("x")
    answers = []
    for path in (tmp_path / "missing", tmp_path / "exists", tmp_path / "file.txt", Path("/etc")):
        response = client.post("/v1/models/clf/versions", json={"path": str(path)}, headers=auth(keys["admin"]))
        assert response.status_code == 422
        answers.append(response.json())
    assert all(a == answers[0] for a in answers), answers
    assert str(tmp_path) not in json.dumps(answers)


class Danger:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.data", pickle.dumps({"w": [1, 2, 3]}, protocol=4)),
        ("weights", pickle.dumps(Danger(), protocol=0)),
        ("vocab.txt", pickle.dumps(["a", "b"], protocol=1)),
        ("big-protocol-0", pickle.dumps([str(i) for i in range(30_000)], protocol=0)),
    ],
)
def test_refuse_pickles_judges_content_not_names(
    runs: dict[str, Path], tmp_path: Path, name: str, content: bytes
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(runs["clf"] / "model", folder)
    refuse_pickles(folder)  # a real artifact passes (safetensors, JSON)
    (folder / name).write_bytes(content)
    with pytest.raises(ShipyardError, match="pickle"):
        refuse_pickles(folder)


def test_refuse_pickles_refuses_a_torch_zip_checkpoint_under_any_name(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    import torch

    folder = tmp_path / "model"
    shutil.copytree(runs["clf"] / "model", folder)
    torch.save({"w": torch.zeros(2)}, folder / "extra.model")
    assert zipfile.is_zipfile(folder / "extra.model")
    with pytest.raises(ShipyardError, match="pickle"):
        refuse_pickles(folder)
    (folder / "extra.model").unlink()
    (folder / "notes.txt").write_text("a.\nplain notes, not a pickle\n")
    (folder / "tiny.txt").write_text("a.")
    refuse_pickles(folder)


def _slow_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/models/clf/predict HTTP/1.1\r\nHost: x\r\n")
    return sock


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"X-a: b\r\n") -> bool:
    """Keep trickling header lines until the server closes the connection (True) or ``seconds`` pass."""
    end = time.monotonic() + seconds
    sock.settimeout(0.3)
    while time.monotonic() < end:
        try:
            sock.sendall(trickle)
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_slow_clients_are_cut_off_and_do_not_hold_up_shutdown(
    runs: dict[str, Path], keys: dict[str, Any], tmp_path: Path
) -> None:
    with serve(runs, keys, tmp_path / "server.log", client_timeout=1.0, drain_seconds=3.0) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        # slowloris: headers trickled for ever
        heads = [_slow_socket(port) for _ in range(3)]
        assert all(_closed_within(s, 4.0) for s in heads)
        # a whole head, then a body that never comes: 408
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"POST /v1/models/clf/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + keys["predict"].encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 4.0
        # shutdown with slow clients connected finishes well within the drain time
        slow = [_slow_socket(port) for _ in range(3)]
        started = time.monotonic()
        proc.terminate()
        proc.wait(timeout=15)
        assert time.monotonic() - started < 6.0
        for s in [*heads, sock, *slow]:
            s.close()
