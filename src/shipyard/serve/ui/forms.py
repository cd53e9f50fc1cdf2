"""Small helpers of the dashboard's routes: url-encoded forms, redirects with a message, plain JSON values."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse

MAX_FORM_BYTES = 256 * 1024


async def form_of(request: Request) -> dict[str, str]:
    """An url-encoded form body (the dashboard's forms are all plain ones; no multipart parser needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    pairs = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in pairs.items()}


def back_to_model(name: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/models/{name}?message={quote(message[:1500])}", status_code=303)


def coerce_number(raw: str) -> Any:
    try:
        return float(raw) if raw.strip() else None
    except ValueError:
        return raw


def plain_value(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
