// dylive dashboard. Plain JS, no libraries, nothing fetched but this server's own endpoints.
// Every name and text here comes from strangers on Douyin, so data only ever reaches the page as
// textContent (or a canvas): never innerHTML. The server's CSP forbids inline script as well.
"use strict";

const POLL_MS = 2000;        // /api/rooms and /api/workers refresh
const FLUSH_MS = 150;        // SSE events are drawn in batches, so a backlog replay stays smooth
const MAX_ROWS = 200;        // chat and gift lines kept on screen
const MAX_POINTS = 600;      // points of the viewer curve

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmtInt(n) {
  return typeof n === "number" && isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

function fmtTime(ms) {
  if (typeof ms !== "number") return "";
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8);
}

function fmtAge(ms) {
  if (typeof ms !== "number") return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? s + "s" : s < 7200 ? Math.round(s / 60) + "m" : Math.round(s / 3600) + "h";
}

// Fits a canvas's drawing buffer to its on-screen size (sharp lines on any display).
function sizeCanvas(c, cssW, cssH) {
  const r = window.devicePixelRatio || 1;
  c.width = Math.round(cssW * r);
  c.height = Math.round(cssH * r);
  c.style.width = cssW + "px";
  c.style.height = cssH + "px";
  const g = c.getContext("2d");
  g.setTransform(r, 0, 0, r, 0, 0);
  return g;
}

function drawLine(canvas, cssW, cssH, values, color, fill) {
  const g = sizeCanvas(canvas, cssW, cssH);
  g.clearRect(0, 0, cssW, cssH);
  if (!values.length) return;
  let max = 0, min = Infinity;
  for (const v of values) { max = Math.max(max, v); min = Math.min(min, v); }
  if (fill) min = 0;
  const span = max - min || 1, pad = 2;
  const x = (i) => values.length === 1 ? cssW - pad : pad + (i * (cssW - 2 * pad)) / (values.length - 1);
  const y = (v) => cssH - pad - ((v - min) * (cssH - 2 * pad)) / span;
  g.beginPath();
  values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.strokeStyle = color;
  g.lineWidth = 1.5;
  g.stroke();
  if (fill) {
    g.lineTo(x(values.length - 1), cssH);
    g.lineTo(x(0), cssH);
    g.closePath();
    g.fillStyle = fill;
    g.fill();
  }
}

// ---- rooms and workers (polled) ----
let selected = null;

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function badge(state) {
  const b = el("span", "badge", state || "?");
  if (/^[a-z]+$/.test(state || "")) b.classList.add(state);
  return b;
}

function renderRooms(rooms) {
  const body = $("rooms").tBodies[0];
  body.replaceChildren();
  $("rooms-empty").hidden = rooms.length > 0;
  let live = 0, eps = 0;
  for (const r of rooms) {
    if (r.state === "live") live++;
    eps += r.events_per_s || 0;
    const tr = el("tr");
    tr.dataset.liveId = r.live_id;
    if (r.live_id === selected) tr.classList.add("selected");
    tr.append(el("td", "id", r.live_id));
    const t = el("td", "title", r.title || "");
    t.title = (r.title || "") + (r.anchor ? " — " + r.anchor : "");
    if (r.anchor) t.append(el("span", "anchor", r.anchor));
    tr.append(t);
    const st = el("td");
    st.append(badge(r.state));
    if (r.error) {
      const e = el("span", "err", r.error);
      e.title = r.error;
      st.append(e);
    }
    tr.append(st);
    tr.append(el("td", "worker", r.worker || "–"));
    tr.append(el("td", "num", fmtInt(r.viewers)));
    tr.append(el("td", "num", fmtInt(r.events)));
    tr.append(el("td", "num", (r.events_per_s || 0).toFixed(1)));
    const sp = el("td");
    const c = el("canvas", "spark");
    sp.append(c);
    tr.append(sp);
    tr.addEventListener("click", () => select(r.live_id));
    body.append(tr);
    drawLine(c, 120, 24, r.eps_history || [], "#4cc2ff", "rgba(76,194,255,0.15)");
    if (r.live_id === selected) {
      $("d-state").replaceWith(Object.assign(badge(r.state), { id: "d-state" }));
      $("d-title").textContent = [r.title, r.anchor].filter(Boolean).join(" — ");
    }
  }
  $("summary").textContent = rooms.length + " rooms, " + live + " live, " + eps.toFixed(1) + " events/s";
}

function renderWorkers(workers) {
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  $("workers-empty").hidden = workers.length > 0;
  for (const w of workers) {
    const tr = el("tr");
    const name = el("td", null, w.id);
    name.title = (w.host || "") + (w.pid ? " pid " + w.pid : "") + (w.version ? " v" + w.version : "");
    name.append(" ", badge(w.state));
    tr.append(name);
    const load = el("td");
    const box = el("div", "load");
    const bar = el("div", "bar");
    const fillEl = el("div");
    const cap = w.capacity || 0, n = w.rooms || 0;
    fillEl.style.width = (cap ? Math.min(100, (100 * n) / cap) : 0) + "%";
    bar.append(fillEl);
    box.append(bar, el("span", null, n + "/" + (cap || "?")));
    load.append(box);
    tr.append(load);
    tr.append(el("td", "num", fmtAge(w.heartbeat_ms)));
    body.append(tr);
  }
}

async function poll() {
  try {
    const [rooms, workers] = await Promise.all([getJSON("/api/rooms"), getJSON("/api/workers")]);
    renderRooms(rooms);
    renderWorkers(workers);
    $("conn").textContent = "updated " + fmtTime(Date.now());
    $("conn").classList.remove("bad");
  } catch (e) {
    $("conn").textContent = "dashboard unreachable: " + e.message;
    $("conn").classList.add("bad");
  }
  setTimeout(poll, POLL_MS);
}

// ---- one room, live over SSE ----
let source = null;
let room = null;   // totals of the selected room
let pending = [];  // events not drawn yet
let flushTimer = null;

function newRoomState(id) {
  return { id, events: 0, diamonds: 0, units: 0, chats: 0, viewers: [], viewersNow: null };
}

function select(id) {
  if (!/^[0-9]{1,32}$/.test(id)) return;
  if (source) source.close();
  selected = id;
  room = newRoomState(id);
  pending = [];
  history.replaceState(null, "", "#room=" + id);
  for (const tr of $("rooms").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.liveId === id);
  $("detail").hidden = false;
  $("d-id").textContent = id;
  $("chats").replaceChildren();
  $("gifts").replaceChildren();
  drawTotals();
  drawCurve();
  // from=0: the room's whole backlog still in Redis, then every new event as it is written
  source = new EventSource("/api/rooms/" + id + "/events?from=0");
  const stateEl = $("d-stream");
  stateEl.textContent = "connecting…";
  stateEl.className = "stream-state";
  source.onopen = () => { stateEl.textContent = "following"; stateEl.className = "stream-state ok"; };
  source.onerror = () => { stateEl.textContent = "reconnecting…"; stateEl.className = "stream-state bad"; };
  source.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    if (!ev || typeof ev !== "object") return;
    pending.push(ev);
    if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
  };
}

function nick(ev) {
  const u = ev.user;
  return u && typeof u === "object" ? String(u.nickname || u.display_id || u.id || "?") : "?";
}

function addRow(list, row) {
  list.prepend(row);  // newest on top
  while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
}

function num(v) {
  return typeof v === "number" && isFinite(v) ? v : 0;
}

function apply(ev) {
  room.events++;
  switch (ev.type) {
    case "chat":
    case "emoji_chat":
    case "screen_chat": {
      room.chats++;
      const li = el("li");
      li.append(el("span", "t", fmtTime(ev.ts_ms)), el("span", "nick", nick(ev)), el("span", "text", ev.content || ""));
      addRow($("chats"), li);
      break;
    }
    case "gift": {
      const g = ev.gift && typeof ev.gift === "object" ? ev.gift : {};
      const delta = num(g.delta), value = delta * num(g.diamonds);
      room.units += delta;
      room.diamonds += value;
      if (delta > 0) {  // a combo streak repeats itself; only what it adds is news
        const li = el("li");
        li.append(el("span", "t", fmtTime(ev.ts_ms)), el("span", "nick", nick(ev)),
          el("span", "gift", (g.name || "gift #" + (g.id || "?")) + " ×" + delta),
          el("span", "dia", "◆ " + fmtInt(value)));
        addRow($("gifts"), li);
      }
      break;
    }
    case "viewers":
      if (typeof ev.online === "number") {
        room.viewersNow = ev.online;
        room.viewers.push(ev.online);
        if (room.viewers.length > MAX_POINTS) room.viewers.shift();
      }
      break;
  }
}

function drawTotals() {
  $("diamond-total").textContent = fmtInt(room.diamonds);
  $("gift-units").textContent = fmtInt(room.units);
  $("chat-count").textContent = fmtInt(room.chats);
  $("viewers-now").textContent = fmtInt(room.viewersNow);
  $("event-count").textContent = fmtInt(room.events);
}

function drawCurve() {
  const c = $("viewer-curve");
  drawLine(c, c.parentElement.clientWidth || 900, 140, room.viewers, "#3fb950", "rgba(63,185,80,0.15)");
}

function flush() {
  flushTimer = null;
  const batch = pending;
  pending = [];
  for (const ev of batch) apply(ev);
  drawTotals();
  drawCurve();
}

window.addEventListener("DOMContentLoaded", () => {
  const m = /^#room=([0-9]{1,32})$/.exec(location.hash);
  if (m) select(m[1]);
  poll();
});
