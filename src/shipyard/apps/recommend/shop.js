const API = "/v1/apps/recommend";
let recent = [];  // an anonymous session's clicks, oldest first

function key() {
  return sessionStorage.getItem("shipyardKey") || "";
}

async function call(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (key()) headers["Authorization"] = "Bearer " + key();
  let resp = await fetch(API + path, { ...options, headers });
  if (resp.status === 401) {
    const entered = prompt("API key (predict scope)");
    if (!entered) throw new Error("an API key is needed");
    sessionStorage.setItem("shipyardKey", entered);
    return call(path, options);
  }
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error ? body.error.message : resp.statusText);
  return body;
}

function user() { return document.getElementById("user").value; }

async function load() {
  const status = document.getElementById("status");
  status.textContent = "";
  const request = { k: 10 };
  const category = document.getElementById("category").value.trim();
  if (category) request.category = category;
  if (document.getElementById("diverse").checked) request.mmr = 0.7;
  if (user()) request.user_id = user(); else request.recent = recent;
  try {
    const body = await call("/recommend", { method: "POST", body: JSON.stringify(request) });
    render(body);
  } catch (err) {
    status.textContent = err.message;
  }
}

function render(body) {
  document.getElementById("fallback").textContent =
    body.fallback ? "Popular picks (" + body.reason_fallback + "): click something to personalise." : "";
  const list = document.getElementById("items");
  list.replaceChildren();
  for (const item of body.items) {
    const li = document.createElement("li");
    li.dataset.item = item.item_id;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title || item.item_id;
    title.addEventListener("click", () => event(item.item_id, 1));
    const genres = document.createElement("div");
    genres.className = "genres";
    genres.textContent = (item.genres || []).join(", ");
    const reason = document.createElement("div");
    reason.className = "reason";
    reason.textContent = item.reason || "";
    const stars = document.createElement("span");
    for (let n = 1; n <= 5; n++) {
      const b = document.createElement("button");
      b.className = "star";
      b.title = "rate " + n;
      b.dataset.rating = n;
      b.textContent = "\u2605";
      b.addEventListener("click", () => event(item.item_id, n));
      stars.appendChild(b);
    }
    li.append(title, " ", stars, genres, reason);
    list.appendChild(li);
  }
}

async function event(itemId, rating) {
  if (user()) {
    await call("/events", { method: "POST", body: JSON.stringify({ user_id: user(), item_id: itemId, rating }) });
  } else {
    recent.push(itemId);
  }
  await load();
}

async function start() {
  try {
    const body = await call("/users?limit=50");
    const select = document.getElementById("user");
    for (const id of body.users) {
      const opt = document.createElement("option");
      opt.value = id;
      opt.textContent = "user " + id;
      select.appendChild(opt);
    }
  } catch (err) {
    document.getElementById("status").textContent = err.message;
  }
  document.getElementById("user").addEventListener("change", () => { recent = []; load(); });
  document.getElementById("refresh").addEventListener("click", load);
  await load();
}
start();
