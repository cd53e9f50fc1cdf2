"""The dashboard: server-rendered HTML with inline SVG (no CDN, no script needed): the entities with sentiment
and volume sparklines, an entity page with its series, alert markers and the documents behind them, and the
live alert feed (it refreshes itself every few seconds). Each document on an entity page has a form to correct its
sentiment (a plain POST form: the dashboard's SameSite=Strict login cookie keeps other sites from sending it)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from shipyard.apps.finmon import corrections
from shipyard.apps.finmon.api import resolve_context
from shipyard.errors import ShipyardError
from shipyard.serve.ui.forms import form_of

STYLE = """<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}.neg{color:#b00}.pos{color:#070}
svg{vertical-align:middle}a{color:#036}</style>"""


def _page(title: str, body: str, refresh: int | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{escape(title)}</title>"
                        f"{STYLE}</head><body><h1>{escape(title)}</h1>{body}</body></html>")  # fmt: skip


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def sparkline(values: list[float | None], *, width: int = 160, height: int = 30, lo: float | None = None,
              hi: float | None = None, markers: list[int] | None = None, label: str = "") -> str:  # fmt: skip
    """An inline SVG polyline; None values are skipped; ``markers`` are indexes drawn as red ticks."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    lo = min((v for _, v in points), default=0.0) if lo is None else lo
    hi = max((v for _, v in points), default=1.0) if hi is None else hi
    span, step = (hi - lo) or 1.0, width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - (v - lo) / span * (height - 2) - 1:.1f}" for i, v in points)
    ticks = "".join(f'<line x1="{i * step:.1f}" x2="{i * step:.1f}" y1="0" y2="{height}" stroke="#d00" '
                    f'class="alert-marker"/>' for i in markers or [])  # fmt: skip
    return (f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{ticks}<polyline fill="none" stroke="#036" stroke-width="1.5" '
            f'points="{coords}"/></svg>')  # fmt: skip


def _alert_row(alert: dict[str, Any], link: bool = True) -> str:
    cls = "neg" if alert["direction"] == "negative" else "pos"
    who = f'<a href="entities/{escape(alert["entity"])}">{escape(alert["entity"])}</a>' if link else alert["entity"]
    values = alert["values"]
    docs = "".join(f"<li>{escape(d['text'])} <small>({d['score']:+.2f})</small></li>" for d in alert["top_documents"])
    return (f'<tr class="alert"><td>{_when(alert["bucket"])}</td><td>{who}</td><td class="{cls}">'
            f'{escape(alert["direction"])}</td><td>{escape(", ".join(alert["rules"]))}</td>'
            f'<td>{values["volume"]} docs (z {values["volume_z"]:.1f}); sentiment z {values["sentiment_z"]:.1f}</td>'
            f"<td><ul>{docs}</ul></td></tr>")  # fmt: skip


def _correction_cell(doc: dict[str, Any], entity: str) -> str:
    """The analyst's correction of a document, or the form to give one (one per document)."""
    if doc.get("corrected"):
        return f'<span class="corrected">corrected: {escape(doc["corrected"])}</span>'
    options = "".join(f'<option value="{label}"{" selected" if label == doc["label"] else ""}>{label}</option>'
                      for label in corrections.LABELS)  # fmt: skip
    return (f'<form class="correct" method="post" action="../corrections"><input type="hidden" name="doc_id" '
            f'value="{escape(doc["id"])}"><input type="hidden" name="entity" value="{escape(entity)}">'
            f'<select name="label" aria-label="right sentiment">{options}</select> '
            f'<button type="submit">correct</button></form>')  # fmt: skip


def pages_router(context: Any) -> APIRouter:
    ctx = resolve_context(context)
    router = APIRouter(tags=["finmon pages"])
    config = ctx.config

    @router.get("/", response_class=HTMLResponse)
    def entities(window: str = "1h", points: int = 48) -> HTMLResponse:
        window = window if window in config.windows else config.windows[-1]
        rows = []
        with ctx.db() as store:
            for ent in config.watchlist:
                series = store.series(ent.id, window, limit=points)
                sent = [p["mean_sentiment"] for p in series]
                vol = [float(p["volume"]) for p in series]
                total = sum(p["volume"] for p in series)
                rows.append(
                    f'<tr class="entity"><td><a href="entities/{escape(ent.id)}">{escape(ent.names[0])}</a></td>'
                    f"<td>{total}</td><td>{sparkline(sent, lo=-1, hi=1, label='sentiment')}</td>"
                    f"<td>{sparkline(vol, lo=0, label='volume')}</td></tr>"
                )
        head = f"<tr><th>entity</th><th>documents</th><th>sentiment ({escape(window)})</th><th>volume</th></tr>"
        nav = '<p><a href="alerts">live alert feed</a></p>'
        return _page("Financial news monitor", f"{nav}<table>{head}{''.join(rows)}</table>")

    @router.get("/entities/{entity}", response_class=HTMLResponse)
    def entity_page(entity: str, window: str | None = None, message: str = "") -> HTMLResponse:
        ent = next((e for e in config.watchlist if e.id == entity), None)
        if ent is None:
            raise HTTPException(404, f"unknown entity {entity!r}")
        window = window if window in config.windows else config.alerts.window
        with ctx.db() as store:
            series = store.series(entity, window, limit=240)
            alerts = store.alerts(entity=entity, limit=50)
            docs = store.documents_for(entity, 0, 1e12, limit=30)
        index = {p["bucket"]: i for i, p in enumerate(series)}
        marks = [index[a["bucket"]] for a in alerts if a["window"] == window and a["bucket"] in index]
        sent = sparkline([p["mean_sentiment"] for p in series], width=720, height=120, lo=-1, hi=1, markers=marks,
                         label="sentiment")  # fmt: skip
        vol = sparkline([float(p["volume"]) for p in series], width=720, height=60, lo=0, markers=marks, label="volume")
        alert_rows = "".join(_alert_row(a, link=False) for a in alerts) or "<tr><td>no alerts</td></tr>"
        doc_rows = "".join(
            f'<tr class="document"><td>{_when(d["ts"])}</td><td>{_signed(d["score"])} {escape(d["label"] or "")}'
            f"</td><td>{escape(d['text'][:400])}</td><td>{_correction_cell(d, entity)}</td></tr>"
            for d in docs
        )
        note = f'<p class="message">{escape(message[:500])}</p>' if message else ""
        body = (f'{note}<p><a href="../">all entities</a> · window {escape(window)}</p><h2>sentiment</h2>{sent}'
                f"<h2>volume</h2>{vol}<h2>alerts</h2><table>{alert_rows}</table>"
                f"<h2>latest documents</h2><table>{doc_rows}</table>")  # fmt: skip
        return _page(f"{ent.names[0]} ({ent.id})", body)

    @router.post("/corrections")
    async def correct(request: Request) -> RedirectResponse:
        """The correction form of the entity page: store and file the correction, then back to the page."""
        form = await form_of(request)
        entity = form.get("entity", "")
        back = f"entities/{quote(entity, safe='')}" if entity in {e.id for e in config.watchlist} else "./"
        try:
            with ctx.db() as store:
                done = corrections.correct(store, config, form.get("doc_id", ""), form.get("label", ""))
            message = f"corrected {done['document']}: {done['label']}"
            message += " (filed for retraining)" if done["loop"] else ""
        except ShipyardError as exc:
            message = f"not corrected: {exc.message}"
        return RedirectResponse(f"{back}?message={quote(message[:500])}", status_code=303)

    @router.get("/alerts", response_class=HTMLResponse)
    def alert_feed(limit: int = 100) -> HTMLResponse:
        with ctx.db() as store:
            alerts = store.alerts(limit=min(limit, 500))
        rows = "".join(_alert_row(a) for a in alerts) or "<tr><td>no alerts yet</td></tr>"
        return _page("Live alert feed", f'<p><a href="./">all entities</a></p><table>{rows}</table>', refresh=5)

    return router
