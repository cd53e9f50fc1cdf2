"""Issue #12 item 4: a key whose prefix is not in the store is refused without running the KDF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.store import keys as keys_module
from shipyard.store.keys import KeyStore


def test_unknown_prefix_is_refused_without_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "shipyard.db")
    good = store.create("svc", "predict")
    calls: list[str] = []
    real = keys_module._derive

    def counting(plaintext: str, salt: bytes, kdf: str) -> Any:
        calls.append(plaintext[:8])
        return real(plaintext, salt, kdf)

    monkeypatch.setattr(keys_module, "_derive", counting)
    other = "sk_" + ("zzzzz" if not good.startswith("sk_zzzzz") else "yyyyy") + good[8:]
    assert store.verify(other) is None
    assert calls == []  # no scrypt for a prefix nobody holds
    assert store.verify(good[:-1] + ("A" if good[-1] != "A" else "B")) is None  # known prefix: one hash
    assert len(calls) == 1
    assert store.verify(good) is not None
