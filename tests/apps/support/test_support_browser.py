"""The support pages in a real browser: Debian's chromium, headless, driven by Playwright, against the assistant's
server (`build_app`, keys on) on loopback.

A customer logs in with their key and asks three questions: a FAQ answer shows its source, an order question is
answered by the order-status tool, and a request for a person escalates. An agent logs in on the agents' page,
finds the ticket in the queue with the conversation, answers and closes it; the customer's page shows the reply.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from support_helpers import ORDERS, support_config

from shipyard.apps.support.config import load_support_config
from shipyard.apps.support.server import PAGES, build_app
from shipyard.store.keys import KeyStore


def chromium() -> str:
    """Debian's chromium (as tests/serve/test_ui_browser.py): CI installs it, so there a missing one fails."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI installs it")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import uvicorn

    browser = chromium()
    root = tmp_path_factory.mktemp("support_browser")
    path = support_config(root / "cfg")
    cfg, base = load_support_config(path)
    keys = KeyStore(root / "keys.db")
    customer, agent = keys.create("web", "predict"), keys.create("ann", "admin")
    app = build_app(cfg, base, path, key_store_path=root / "keys.db", rate_limit_per_s=0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # the service answers 503 until the retrieval model is loaded
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the support server did not get ready in 120 s")
    try:
        yield {"url": url, "customer": customer, "agent": agent, "browser": browser}
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def _ask(page: Any, text: str, n: int) -> Any:
    from playwright.sync_api import expect

    page.fill("#text", text)
    page.click("#send")
    answer = page.locator("#log .assistant").nth(n)
    expect(answer).to_be_visible()
    return answer


def test_customer_asks_escalates_and_an_agent_answers(server: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    order = ORDERS[4]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=server["browser"], headless=True, args=["--no-sandbox"])
        chat = browser.new_page()
        chat.set_default_timeout(10_000)
        errors: list[str] = []
        chat.on("pageerror", lambda exc: errors.append(str(exc)))
        chat.goto(f"{server['url']}{PAGES}/")
        expect(chat.locator("h1")).to_have_text("Customer service")
        chat.fill("#key", server["customer"])  # "log in": the key stays in this tab's sessionStorage
        faq = _ask(chat, "I forgot my password, how can I recover it?", 0)
        expect(faq.locator(".meta")).to_contain_text("source: answer #")
        expect(faq).not_to_have_class("turn assistant escalated")
        expect(faq.locator("button.fb")).to_have_count(2)  # helpful / not helpful
        tool = _ask(chat, f"where is my order {order['order_id']}?", 1)
        expect(tool).to_contain_text(f"Order {order['order_id']} is {order['status']}")
        expect(tool.locator(".meta")).to_contain_text("source: the order_status tool")
        person = _ask(chat, "I want to talk to a human agent please", 2)
        expect(person).to_have_class("turn assistant escalated")
        expect(person.locator(".meta")).to_contain_text("handed to a person")
        # the agent: log in on the agents' page, find the ticket with the conversation, answer and close it
        desk = browser.new_page()
        desk.set_default_timeout(10_000)
        desk.goto(f"{server['url']}{PAGES}/agent")
        desk.fill("#key", server["agent"])
        desk.click("#load")
        ticket = desk.locator("#tickets tr.ticket").filter(has_text="asked for a person")
        expect(ticket).to_have_count(1)
        ticket.click()
        expect(desk.locator("#log")).to_contain_text("I forgot my password")
        expect(desk.locator("#log")).to_contain_text(order["order_id"])
        desk.fill("#reply", "Hi, Ann here: I have reset your password link and checked your order.")
        desk.click("#answer")
        expect(desk.locator("#tickets tr.ticket")).to_have_count(0)  # closed: gone from the open queue
        # the customer's page picks up the agent's reply (it polls every 2 s)
        expect(chat.locator("#log .agent")).to_contain_text("Hi, Ann here")
        browser.close()
    assert not errors, errors
    headers = {"Authorization": f"Bearer {server['agent']}"}
    closed = httpx.get(f"{server['url']}/v1/apps/support/tickets?status=closed", headers=headers, timeout=10).json()
    assert len(closed["tickets"]) == 1
