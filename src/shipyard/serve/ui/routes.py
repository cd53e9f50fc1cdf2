"""The dashboard at ``/ui``: server-rendered pages (Jinja2, inline SVG charts, one small script for labelling).

Pages: login; overview; runs (list, compare, detail with the run's own report); a model's versions with its
decisions, promotions and rollbacks (and the forms to promote and roll back, for admin keys); monitoring (drift and
accuracy over time, alerts, "check now"); the labelling queue (keyboard: 1-9 label, s skip, u undo); "try it".

Everything the pages need from the server comes in a :class:`UIContext`, so the router does not reach into the
server's internals and can be tested with a plain FastAPI app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from shipyard.config.loop import LoopSettings
from shipyard.errors import ShipyardError
from shipyard.loop import queue as label_queue
from shipyard.loop.compare_retrieval import compare_for_promotion
from shipyard.loop.feedback import FeedbackError
from shipyard.loop.monitor import run_check
from shipyard.loop.store import LoopStore
from shipyard.loop.versions import (
    champion_path,
    history,
    record_decision,
    record_promotion,
    record_rollback,
    rollback_target,
)
from shipyard.serve.ui import session
from shipyard.serve.ui.charts import monitor_charts
from shipyard.serve.ui.forms import back_to_model, coerce_number, form_of, plain_value
from shipyard.store.runs import RunStore

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class ModelView:
    name: str
    version: int | None
    path: str
    task: str
    features: list[dict[str, str]]
    labels: list[str] | None


@dataclass
class UIContext:
    store: LoopStore
    models: Callable[[], list[ModelView]]
    verify: Callable[[str], Awaitable[Any]]  # API key -> principal (name, scope, allows()) or None
    anonymous: Any  # the principal when auth is off
    auth: bool = True
    runs_root: Path | None = None
    predict: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None  # the API's own path
    switch: Callable[[str, str], Awaitable[dict[str, Any]]] | None = None  # (model, path) -> new version
    settings: LoopSettings = field(default_factory=LoopSettings)
    sink: Any = None  # AlertSink of the server's /metrics


_env = Environment(loader=PackageLoader("shipyard.serve.ui", "templates"), autoescape=select_autoescape(["j2", "html"]))
_env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t))) if t else ""
_env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))


def render(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**values), status_code=status)


class _Pages:
    """What every route needs: the context, who is asking, the model asked about, and page rendering."""

    def __init__(self, ctx: UIContext) -> None:
        self.ctx = ctx

    async def who(self, request: Request) -> Any:
        return await session.principal_of(request, self.ctx.verify, self.ctx.auth, self.ctx.anonymous)

    def model_view(self, name: str) -> ModelView:
        for view in self.ctx.models():
            if view.name == name:
                return view
        raise HTTPException(404, f"no served model {name!r}")

    def page(self, template: str, request: Request, principal: Any, **values: Any) -> HTMLResponse:
        return render(template, user=principal, models=self.ctx.models(), path=request.url.path, **values)

    def run_store(self) -> Any:
        if self.ctx.runs_root is None:
            raise HTTPException(404, "this server has no run store")
        return RunStore.for_root(self.ctx.runs_root)


def ui_router(ctx: UIContext) -> APIRouter:
    router = APIRouter(prefix="/ui", include_in_schema=False)
    pages = _Pages(ctx)
    for add in (_login_routes, _run_routes, _model_routes, _monitor_routes, _label_routes, _try_routes):
        add(router, pages)
    return router


def _login_routes(router: APIRouter, p: _Pages) -> None:
    """Log in (the key into an HttpOnly cookie), log out, the overview."""

    @router.get("/login")
    async def login_form(error: str = "") -> HTMLResponse:
        return render("login.html.j2", error=error, user=None, models=[])

    @router.post("/login")
    async def login(request: Request) -> Response:
        key = (await form_of(request)).get("key", "")
        principal = await p.ctx.verify(key.strip()) if p.ctx.auth else p.ctx.anonymous
        if principal is None:
            return render("login.html.j2", status=401, error="invalid or revoked API key", user=None, models=[])
        return session.login_response(request, key.strip(), "/ui")

    @router.post("/logout")
    async def logout() -> Response:
        return session.logout_response()

    @router.get("")
    async def home(request: Request) -> HTMLResponse:
        principal = await p.who(request)
        rows = []
        for view in p.ctx.models():
            checks = p.ctx.store.list_events(view.name, ("drift_check",), limit=1)
            queued = await run_in_threadpool(label_queue.queued_items, p.ctx.store, view.name)
            rows.append({"view": view, "check": checks[0] if checks else None, "queued": len(queued)})
        return p.page("home.html.j2", request, principal, rows=rows)


def _run_routes(router: APIRouter, p: _Pages) -> None:
    """Runs: list, compare, detail and the run's own report."""

    @router.get("/runs")
    async def runs(request: Request) -> HTMLResponse:
        principal = await p.who(request)
        records = await run_in_threadpool(lambda: p.run_store().list_runs(limit=200))
        return p.page("runs.html.j2", request, principal, runs=records)

    @router.get("/runs/compare")
    async def compare_runs(request: Request, a: str, b: str) -> HTMLResponse:
        principal = await p.who(request)
        try:
            result = await run_in_threadpool(lambda: p.run_store().compare(a, b))
        except ShipyardError as exc:
            raise HTTPException(404, str(exc)) from None
        return p.page("compare.html.j2", request, principal, result=result, a=a, b=b)

    @router.get("/runs/{run_id}")
    async def run_detail(request: Request, run_id: str) -> HTMLResponse:
        principal = await p.who(request)
        try:
            record = await run_in_threadpool(lambda: p.run_store().get(run_id))
        except ShipyardError as exc:
            raise HTTPException(404, str(exc)) from None
        has_report = (Path(record.run_dir) / "report.html").is_file()
        return p.page("run.html.j2", request, principal, run=record, has_report=has_report)

    @router.get("/runs/{run_id}/report")
    async def run_report(request: Request, run_id: str) -> Response:
        await p.who(request)
        try:
            record = await run_in_threadpool(lambda: p.run_store().get(run_id))
        except ShipyardError as exc:
            raise HTTPException(404, str(exc)) from None
        report = Path(record.run_dir) / "report.html"
        if not report.is_file():
            raise HTTPException(404, "this run has no report")
        # the report is self-contained (plots inline); no script of ours runs inside it
        return FileResponse(report, media_type="text/html", headers={"Content-Security-Policy": "script-src 'none'"})


def _model_routes(router: APIRouter, p: _Pages) -> None:
    """A model's versions and history; promote and roll back (admin keys)."""

    @router.get("/models/{name}")
    async def model_page(request: Request, name: str, message: str = "") -> HTMLResponse:
        principal = await p.who(request)
        view = p.model_view(name)
        events = history(p.ctx.store, name)
        return p.page(
            "model.html.j2",
            request,
            principal,
            view=view,
            events=events,
            message=message,
            champion=champion_path(p.ctx.store, name) or view.path,
        )

    @router.post("/models/{name}/promote")
    async def promote(request: Request, name: str) -> Response:
        principal = await p.who(request)
        form = await form_of(request)
        challenger, why = form.get("challenger", ""), form.get("why", "")
        session.require(principal, "admin")
        view = p.model_view(name)
        champion = view.path
        try:
            decision = await run_in_threadpool(
                compare_for_promotion, p.ctx.store, name, champion, challenger.strip(), p.ctx.settings.promotion
            )
        except ShipyardError as exc:
            return back_to_model(name, f"not compared: {exc}")
        record_decision(p.ctx.store, name, decision, champion=champion, challenger=challenger, actor=principal.name)
        if not decision.promote:
            return back_to_model(name, "kept the champion: " + "; ".join(decision.reasons))
        if p.ctx.switch is None:
            return back_to_model(name, "the challenger is better, but this server cannot switch versions")
        try:
            answer = await p.ctx.switch(name, challenger.strip())
        except ShipyardError as exc:
            return back_to_model(name, f"the switch failed, the champion keeps serving: {exc}")
        record_promotion(
            p.ctx.store,
            name,
            champion=champion,
            challenger=challenger.strip(),
            decision=decision,
            actor=principal.name,
            why=why,
            answer=answer,
        )
        return back_to_model(name, f"promoted: version {answer.get('version')} serves {challenger.strip()}")

    @router.post("/models/{name}/rollback")
    async def rollback(request: Request, name: str) -> Response:
        principal = await p.who(request)
        why = (await form_of(request)).get("why", "")
        session.require(principal, "admin")
        p.model_view(name)
        try:
            target = rollback_target(p.ctx.store, name)
            answer = await p.ctx.switch(name, target["previous"]) if p.ctx.switch else {}
        except ShipyardError as exc:
            return back_to_model(name, f"not rolled back: {exc}")
        record_rollback(p.ctx.store, name, target, actor=principal.name, why=why, answer=answer)
        return back_to_model(name, f"rolled back to {target['previous']}")


def _monitor_routes(router: APIRouter, p: _Pages) -> None:
    """Drift and accuracy over time, alerts, and a check on demand."""

    @router.get("/monitor/{name}")
    async def monitor(request: Request, name: str) -> HTMLResponse:
        principal = await p.who(request)
        p.model_view(name)
        checks = list(reversed(p.ctx.store.list_events(name, ("drift_check",), limit=200)))
        alerts = p.ctx.store.list_events(name, ("alert",), limit=50)
        charts = monitor_charts(checks, p.ctx.settings)
        last = checks[-1]["details"] if checks else None
        return p.page("monitor.html.j2", request, principal, name=name, charts=charts, alerts=alerts, last=last)

    @router.post("/monitor/{name}/check")
    async def check_now(request: Request, name: str) -> Response:
        principal = await p.who(request)
        p.model_view(name)
        cfg = p.ctx.settings.monitor
        try:
            await run_in_threadpool(
                lambda: run_check(
                    p.ctx.store,
                    name,
                    window_s=cfg.window_s,
                    thresholds=cfg.thresholds,
                    sink=p.ctx.sink,
                    actor=principal.name,
                )
            )
        except ShipyardError as exc:
            logger.warning("drift check of %s from the dashboard failed: %s", name, exc)
        return RedirectResponse(f"/ui/monitor/{name}", status_code=303)


def _label_routes(router: APIRouter, p: _Pages) -> None:
    """The labelling queue: build it, the next item, answers (label, skip, undo)."""

    @router.get("/label/{name}")
    async def label_page(request: Request, name: str) -> HTMLResponse:
        principal = await p.who(request)
        view = p.model_view(name)
        return p.page("label.html.j2", request, principal, view=view)

    @router.post("/label/{name}/build")
    async def build(request: Request, name: str) -> Response:
        await p.who(request)
        p.model_view(name)
        try:
            n = int((await form_of(request)).get("n", "50"))
        except ValueError:
            n = 50
        try:
            await run_in_threadpool(lambda: label_queue.build_queue(p.ctx.store, name, max(1, min(n, 5000))))
        except ShipyardError as exc:
            logger.warning("queue for %s not built: %s", name, exc)
        return RedirectResponse(f"/ui/label/{name}", status_code=303)

    @router.get("/label/{name}/next")
    async def next_item(request: Request, name: str) -> JSONResponse:
        await p.who(request)
        p.model_view(name)
        items = await run_in_threadpool(label_queue.queued_items, p.ctx.store, name, limit=1)
        remaining = await run_in_threadpool(label_queue.queued_items, p.ctx.store, name)
        if items.empty:
            return JSONResponse({"item": None, "remaining": 0})
        row = items.iloc[0]
        inputs = {c: plain_value(row[c]) for c in items.columns if not str(c).startswith("_")}
        return JSONResponse(
            {
                "item": {
                    "id": row["_id"],
                    "inputs": inputs,
                    "prediction": row["_label"],
                    "confidence": plain_value(row["_confidence"]),
                    "rank": int(row["_rank"]),
                },
                "remaining": len(remaining),
            }
        )

    @router.post("/label/{name}/answer")
    async def answer(request: Request, name: str) -> JSONResponse:
        principal = await p.who(request)
        p.model_view(name)
        body = await request.json()
        action, pid = str(body.get("action", "")), str(body.get("prediction_id", ""))
        try:
            if action == "label":
                await run_in_threadpool(
                    label_queue.label_item, p.ctx.store, name, pid, str(body.get("label")), actor=principal.name
                )
            elif action == "skip":
                await run_in_threadpool(label_queue.skip_item, p.ctx.store, name, pid)
            elif action == "undo":
                await run_in_threadpool(label_queue.undo_item, p.ctx.store, name, pid)
            else:
                return JSONResponse({"error": f"unknown action {action!r}"}, status_code=422)
        except FeedbackError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return JSONResponse({"ok": True})


def _try_routes(router: APIRouter, p: _Pages) -> None:
    """A form per model that predicts through the server's own path."""

    @router.get("/try/{name}")
    async def try_form(request: Request, name: str) -> HTMLResponse:
        principal = await p.who(request)
        return p.page("try.html.j2", request, principal, view=p.model_view(name), values={}, result=None, error="")

    @router.post("/try/{name}")
    async def try_submit(request: Request, name: str) -> HTMLResponse:
        principal = await p.who(request)
        view = p.model_view(name)
        form = await form_of(request)
        values = {f["name"]: form.get(f["name"], "") for f in view.features}
        record: dict[str, Any] = {}
        for feature in view.features:
            raw = values[feature["name"]]
            record[feature["name"]] = coerce_number(raw) if feature.get("type") == "numeric" else raw
        result, error = None, ""
        if p.ctx.predict is None:
            error = "this server cannot predict from the dashboard"
        else:
            try:
                result = await p.ctx.predict(name, record)
            except ShipyardError as exc:
                error = str(exc)
        return p.page("try.html.j2", request, principal, view=view, values=values, result=result, error=error)


def mount_static(app: Any) -> None:
    """Serve the dashboard's script and style sheet from the package (no CDN)."""
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")


def exception_handlers() -> dict[Any, Callable[..., Any]]:
    """Login redirects and scope errors for the dashboard's pages (install on the app)."""

    async def login(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        needed = getattr(exc, "needed", "admin")
        return render(
            "login.html.j2", status=403, error=f"this needs a key with scope {needed!r}", user=None, models=[]
        )

    return {session.LoginRequired: login, session.Forbidden: forbidden}
