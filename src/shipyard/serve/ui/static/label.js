// The labelling queue: one item at a time; keys 1-9 label, s skips, u undoes the last answer.
(function () {
  "use strict";
  const root = document.getElementById("labeller");
  if (!root) return;
  const model = root.dataset.model;
  const labels = JSON.parse(root.dataset.labels || "[]");
  const itemBox = document.getElementById("item");
  const remaining = document.getElementById("remaining");
  const done = document.getElementById("labelled");
  let current = null;
  const history = [];  // prediction ids answered in this session, newest last
  let count = 0;
  let busy = false;

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

  function show(data) {
    current = data.item;
    itemBox.replaceChildren();
    if (!current) { remaining.textContent = "The queue is empty."; return; }
    remaining.textContent = data.remaining + " waiting · item #" + current.rank;
    const table = document.createElement("table");
    for (const [k, v] of Object.entries(current.inputs)) {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = k; tr.appendChild(th);
      tr.appendChild(cell(v === null ? "" : String(v))); table.appendChild(tr);
    }
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = "model says"; tr.appendChild(th);
    tr.appendChild(cell(current.prediction + " (" + Number(current.confidence).toFixed(3) + ")"));
    table.appendChild(tr);
    itemBox.appendChild(table);
    itemBox.dataset.id = current.id;
  }

  async function load() {
    const response = await fetch("/ui/label/" + encodeURIComponent(model) + "/next", { credentials: "same-origin" });
    show(await response.json());
  }

  async function send(action, id, label) {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch("/ui/label/" + encodeURIComponent(model) + "/answer", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ action: action, prediction_id: id, label: label }),
      });
      const body = await response.json();
      if (!response.ok) { remaining.textContent = "Error: " + (body.error || response.status); return; }
      if (action === "undo") { count = Math.max(0, count - 1); } else { history.push(id); if (action === "label") count += 1; }
      await load();
    } finally {
      busy = false;
      done.textContent = count + " labelled in this session";  // shown once the next item is there
    }
  }

  function answer(label) { if (current) send("label", current.id, label); }
  function skip() { if (current) send("skip", current.id); }
  function undo() { const id = history.pop(); if (id) send("undo", id); }

  document.querySelectorAll("button.choice").forEach(function (b) { b.addEventListener("click", function () { answer(b.dataset.label); }); });
  document.getElementById("skip").addEventListener("click", skip);
  document.getElementById("undo").addEventListener("click", undo);
  document.addEventListener("keydown", function (event) {
    if (event.target.tagName === "INPUT" || event.target.tagName === "TEXTAREA") return;
    const n = parseInt(event.key, 10);
    if (n >= 1 && n <= labels.length) { answer(labels[n - 1]); event.preventDefault(); }
    else if (event.key === "s") { skip(); event.preventDefault(); }
    else if (event.key === "u") { undo(); event.preventDefault(); }
  });
  load();
})();
