"""The chat page and the agents' ticket page: server-rendered HTML with one small script each, served from the
same origin (no CDN). They call the JSON API (``/v1/apps/support``) with the API key the user types in, kept in
the tab's sessionStorage only.

`shipyard app support serve` mounts them under ``/ui/apps/support`` with its own content security policy (scripts
from this origin only, no inline script); under ``shipyard serve --apps`` they are mounted by the web dashboard.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from shipyard.apps import AppContext

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
API = "/v1/apps/support"

STYLE = """
body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}
#log{border:1px solid #ccc;border-radius:6px;padding:.5em;min-height:12em;margin:.5em 0}
.turn{margin:.4em 0;padding:.4em .6em;border-radius:6px;white-space:pre-wrap}
.customer{background:#e8f0fe;text-align:right}.assistant{background:#f1f3f4}.agent{background:#e6f4ea}
.escalated{border-left:4px solid #d93025}.meta{font-size:.8em;color:#666}
input[type=text],input[type=password],textarea{width:100%;box-sizing:border-box;padding:.4em}
button{margin:.3em .3em .3em 0;padding:.4em .8em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left}
"""

COMMON_JS = """
const API = "%API%";
function key() { return sessionStorage.getItem("shipyard-key") || ""; }
function saveKey() { sessionStorage.setItem("shipyard-key", document.getElementById("key").value.trim()); }
async function call(method, path, body) {
  const res = await fetch(API + path, {method, headers: {"Authorization": "Bearer " + key(),
    "Content-Type": "application/json"}, body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { throw new Error((data.error && data.error.message) || data.detail || res.statusText); }
  return data;
}
function add(log, role, text, extra) {
  const div = document.createElement("div");
  div.className = "turn " + role + (extra && extra.escalated ? " escalated" : "");
  div.textContent = text;
  if (extra && extra.meta) { const m = document.createElement("div"); m.className = "meta";
    m.textContent = extra.meta; div.appendChild(m); }
  log.appendChild(div); return div;
}
""".replace("%API%", API)

CHAT_JS = """
let conversation = null;
async function send(ev) {
  ev.preventDefault(); saveKey();
  const box = document.getElementById("text"); const log = document.getElementById("log");
  const text = box.value; box.value = "";
  try {
    if (!conversation) { conversation = (await call("POST", "/conversations", {})).conversation_id; }
    add(log, "customer", text);
    const r = await call("POST", "/conversations/" + conversation + "/messages", {text});
    const source = r.tool ? "the " + r.tool.name + " tool" : (r.passage_id !== null ? "answer #" + r.passage_id : "");
    const meta = r.escalated ? "handed to a person (" + r.reason + ")"
      : "intent " + r.intent + (source ? " - source: " + source : "");
    const div = add(log, "assistant", r.answer, {escalated: r.escalated, meta});
    if (!r.escalated && r.turn_id) {
      for (const [label, helpful] of [["helpful", true], ["not helpful", false]]) {
        const b = document.createElement("button"); b.textContent = label; b.className = "fb";
        b.onclick = async () => { const f = await call("POST", "/feedback", {turn_id: r.turn_id, helpful});
          div.querySelectorAll("button.fb").forEach(x => x.remove());
          if (f.escalated) { add(log, "assistant", f.answer, {escalated: true, meta: "handed to a person"}); } };
        div.appendChild(b);
      }
    }
  } catch (e) { add(log, "assistant", "error: " + e.message, {escalated: true}); }
}
async function refresh() {
  if (!conversation) return;
  try { const c = await call("GET", "/conversations/" + conversation);
    const log = document.getElementById("log");
    const shown = log.querySelectorAll(".agent").length;
    c.turns.filter(t => t.role === "agent").slice(shown).forEach(t => add(log, "agent", t.text, {meta: "agent"}));
  } catch (e) {}
}
document.getElementById("key").value = key();
document.getElementById("form").addEventListener("submit", send);
setInterval(refresh, 2000);
"""

AGENT_JS = """
let current = null;
async function load() {
  saveKey();
  const body = document.getElementById("tickets"); body.textContent = "";
  const data = await call("GET", "/tickets?status=open");
  for (const t of data.tickets) {
    const tr = document.createElement("tr"); tr.className = "ticket";
    for (const v of [t.id, t.reason, new Date(t.created * 1000).toLocaleString()]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tr.onclick = () => open(t.id); body.appendChild(tr);
  }
}
async function open(id) {
  current = id; const t = await call("GET", "/tickets/" + id);
  const log = document.getElementById("log"); log.textContent = "";
  document.getElementById("title").textContent = "Ticket " + id + ": " + t.reason;
  for (const turn of t.conversation.turns) { add(log, turn.role, turn.text, {meta: turn.role +
    (turn.intent ? " - " + turn.intent : "")}); }
}
async function answer(ev) {
  ev.preventDefault(); if (current === null) return;
  const text = document.getElementById("reply").value;
  const close = document.getElementById("close").checked;
  await call("POST", "/tickets/" + current + "/answer", {text, close});
  document.getElementById("reply").value = ""; await open(current); await load();
}
document.getElementById("key").value = key();
document.getElementById("load").addEventListener("click", load);
document.getElementById("form").addEventListener("submit", answer);
"""

KEY_FIELD = '<label>API key <input id="key" type="password" autocomplete="off"></label>'


def _page(title: str, body: str, script: str) -> HTMLResponse:
    doc = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<link rel="stylesheet" href="static/style.css"></head><body><h1>{html.escape(title)}</h1>{body}'
        f'<script src="static/common.js"></script><script src="static/{script}"></script></body></html>'
    )
    return HTMLResponse(doc, headers={"Content-Security-Policy": CSP})


def support_pages(context: AppContext) -> list[APIRouter]:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def chat() -> HTMLResponse:
        body = (
            f'{KEY_FIELD}<div id="log"></div><form id="form"><input id="text" type="text" '
            'placeholder="Ask about an order, a refund, your account..." autocomplete="off">'
            '<button id="send" type="submit">Send</button></form>'
        )
        return _page("Customer service", body, "chat.js")

    @router.get("/agent", response_class=HTMLResponse)
    def agent() -> HTMLResponse:
        body = (
            f'{KEY_FIELD}<button id="load" type="button">Open tickets</button><table><thead><tr><th>#</th>'
            '<th>reason</th><th>opened</th></tr></thead><tbody id="tickets"></tbody></table><h2 id="title"></h2>'
            '<div id="log"></div><form id="form"><textarea id="reply" rows="3"></textarea>'
            '<label><input id="close" type="checkbox" checked> close the ticket</label>'
            '<button id="answer" type="submit">Answer</button></form>'
        )
        return _page("Support tickets", body, "agent.js")

    assets = {
        "style.css": ("text/css", STYLE),
        "common.js": ("text/javascript", COMMON_JS),
        "chat.js": ("text/javascript", CHAT_JS),
        "agent.js": ("text/javascript", AGENT_JS),
    }

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in assets:
            return Response(status_code=404)
        kind, text = assets[name]
        return Response(text, media_type=kind, headers={"Content-Security-Policy": CSP})

    return [router]
