"""The status page's markup, style and script, kept apart from the Python that serves them.

Everything is inline (no external scripts, fonts or images) so the page works offline and
under a strict Content-Security-Policy that pins the script and style by hash. The script
builds the DOM with ``textContent`` only, never ``innerHTML``, so operation names from the
data cannot inject markup.
"""

from __future__ import annotations

__all__ = ["PAGE_SCRIPT", "PAGE_STYLE", "PAGE_TEMPLATE"]

PAGE_STYLE = """
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1d2330; --muted: #667085;
  --line: #e3e6eb; --ok: #12805c; --warn: #b54708; --bad: #c01048; --info: #1d4ed8; }
@media (prefers-color-scheme: dark) { :root { --bg: #10131a; --card: #181c25; --fg: #e6e9ef;
  --muted: #98a2b3; --line: #2a303c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  background: var(--bg); color: var(--fg); }
header { display: flex; align-items: center; gap: 12px; padding: 14px 22px;
  border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 18px; margin: 0; flex: 1; }
main { padding: 18px 22px; display: grid; gap: 18px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-weight: 600;
  font-size: 12px; color: #fff; background: var(--muted); }
.HEALTHY, .CLOSED { background: var(--ok); } .DEGRADED, .HALF_OPEN { background: var(--warn); }
.UNHEALTHY, .ERROR, .OPEN { background: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card, section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 14px; }
.card .value { font-size: 24px; font-weight: 650; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 12px; }
h2 { font-size: 14px; margin: 0 0 8px; }
svg { width: 100%; height: 170px; display: block; }
svg text { fill: var(--muted); font-size: 10px; }
svg .grid { stroke: var(--line); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
td:first-child, #reload, #components { overflow-wrap: anywhere; }
td:first-child { max-width: 28em; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
#problem, .problem { color: var(--bad); }
.up { background: var(--ok); } .down { background: var(--bad); }
#events-section h3 { font-size: 13px; margin: 12px 0 6px; }
svg .mark { stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .to-OPEN { stroke: var(--bad); } svg .to-HALF_OPEN { stroke: var(--warn); }
svg .to-CLOSED { stroke: var(--ok); }
#transitions { list-style: none; margin: 0; padding: 0; }
#transitions li { padding: 3px 0; overflow-wrap: anywhere; }
"""

PAGE_SCRIPT = """
"use strict";
const cfg = JSON.parse(document.body.dataset.config);
const url = location.pathname.replace(/\\/+$/, "") + "/" + cfg.json;
const colours = ["#1d4ed8", "#c01048", "#12805c", "#b54708", "#7a5af8", "#0e9384",
  "#dd2590", "#667085"];
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}
function ms(v) {
  if (v === null || v === undefined) return "–";
  return v < 10 ? v.toFixed(2) : v.toFixed(1);
}
function pct(v) { return (100 * v).toFixed(1) + " %"; }
function badge(state) { return el("span", state || "–", "badge " + (state || "")); }

function omitted(shown, total, what, which) {
  return total > shown ? `showing ${shown} of ${total} ${what}: ${which}` : "";
}

function card(label, value, note) {
  const box = el("div", null, "card");
  box.append(el("div", label, "muted"), el("div", value, "value"));
  if (note) box.append(el("div", note, "muted"));
  return box;
}

function lasting(seconds) {
  return seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}
// A time on the page's axis (seconds since the page was made) as the reader's clock time.
function clockAt(data, t) {
  const when = Date.parse(data.timestamp) - (data.uptime_seconds - t) * 1000;
  return new Date(when).toLocaleTimeString();
}

function drawChart(node, legend, data, series, unit) {
  node.replaceChildren();
  legend.replaceChildren();
  const h = data.history, times = h.t, marks = h.transitions || [];
  const W = 600, H = 170, L = 44, B = 18;
  node.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const names = Object.keys(series);
  let max = 0;
  for (const n of names) for (const v of series[n]) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.15 : 1;
  for (let i = 0; i <= 4; i++) {
    const y = (H - B) * i / 4;
    node.append(svg("line", {x1: L, x2: W, y1: y, y2: y, class: "grid"}));
    const label = svg("text", {x: L - 4, y: Math.max(y, 9) + 3, "text-anchor": "end"});
    label.textContent = (max * (4 - i) / 4).toPrecision(3);
    node.append(label);
  }
  // From the start of the oldest interval (history from before the page included) to
  // the newest point or transition.
  const t0 = times.length || marks.length ? Math.min(h.start, ...times) : 0;
  const t1 = Math.max(t0, ...times, ...marks.map((m) => m.t));
  const caption = svg("text", {x: W, y: H - 3, "text-anchor": "end"});
  caption.textContent = times.length ? `${unit} · last ${lasting(t1 - t0)}` : "waiting for data…";
  node.append(caption);
  if (times.length < 1 && marks.length < 1) return;
  const since = svg("text", {x: L, y: H - 3, "text-anchor": "start"});
  since.textContent = clockAt(data, t0);
  node.append(since);
  const span = Math.max(t1 - t0, 1);
  const xOf = (t) => L + (W - L) * (t - t0) / span;
  for (const m of marks) {
    const x = xOf(m.t).toFixed(1);
    const line = svg("line", {x1: x, x2: x, y1: 0, y2: H - B, class: "mark to-" + m.to,
      "data-breaker": m.breaker, "data-to": m.to});
    const title = svg("title", {});
    title.textContent = `${m.breaker}: ${m.from} → ${m.to} at ${clockAt(data, m.t)}`;
    line.append(title);
    node.append(line);
  }
  names.forEach((name, i) => {
    const colour = colours[i % colours.length];
    let d = "", last = null;
    series[name].forEach((v, j) => {
      if (v === null) return;
      const x = xOf(times[j]), y = (H - B) * (1 - v / max);
      d += (d ? " L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      last = [x, y];
    });
    if (d) node.append(svg("path", {d, fill: "none", stroke: colour, "stroke-width": 1.8}));
    if (last) node.append(svg("circle", {cx: last[0], cy: last[1], r: 3, fill: colour}));
    const item = el("span", null);
    const swatch = el("i", null);
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  });
}

function renderTransitions(data) {
  const marks = data.history.transitions || [];
  $("transitions-section").hidden = !marks.length;
  $("transitions").replaceChildren(...marks.slice().reverse().map((m) => {
    const li = el("li", clockAt(data, m.t) + " ");
    li.append(el("strong", m.breaker), document.createTextNode(" "), badge(m.from),
      document.createTextNode(" → "), badge(m.to), el("span", " " + m.reason, "muted"));
    li.dataset.breaker = m.breaker;
    li.dataset.to = m.to;
    return li;
  }));
}

function render(data) {
  document.title = data.title;
  $("status").replaceChildren(badge(data.status));
  const when = new Date(data.timestamp).toLocaleTimeString();
  $("updated").textContent = `updated ${when} · up ${Math.round(data.uptime_seconds)} s`;
  const t = data.totals, v = data.validation;
  $("cards").replaceChildren(
    card("requests", t.requests),
    card("failures", t.failures, t.requests ? pct(t.failures / t.requests) : ""),
    card("retries", t.retries),
    card("rejected by breaker", t.rejected_by_circuit_breaker),
    card("rejected by validation", v ? v.invalid : "–",
      v ? `of ${v.total} checked` : "no validator"));
  const h = data.history;
  drawChart($("throughput"), $("throughput-legend"), data, h.throughput, "requests/s");
  drawChart($("latency"), $("latency-legend"), data, h.latency_ms, "mean ms");
  renderTransitions(data);
  const rows = data.operations.map((op) => {
    const tr = el("tr", null);
    const breaker = el("td", null);
    breaker.append(op.breaker ? badge(op.breaker) : el("span", "–", "muted"));
    tr.append(el("td", op.name), breaker, el("td", op.count), el("td", op.failures),
      el("td", pct(op.error_rate)), el("td", ms(op.p50_ms)), el("td", ms(op.p95_ms)),
      el("td", ms(op.p99_ms)), el("td", ms(op.max_ms)), el("td", op.retries),
      el("td", op.held_by_budget), el("td", op.rejections), el("td", op.shed),
      el("td", op.hedged_attempts), el("td", op.hedge_wins));
    tr.dataset.operation = op.name;
    return tr;
  });
  if (!rows.length) {
    const empty = el("td", "no operations recorded yet", "muted");
    empty.colSpan = 15;
    const tr = el("tr", null);
    tr.append(empty);
    rows.push(tr);
  }
  $("operations").replaceChildren(...rows);
  $("operations-note").textContent = omitted(data.operations.length, data.operations_total,
    "operations", "the busiest");
  const limits = Object.values(data.concurrency || {});
  $("concurrency-section").hidden = !limits.length;
  $("concurrency-note").textContent = omitted(limits.length, data.concurrency_total,
    "limits", "those refusing most");
  $("concurrency").replaceChildren(...limits.map((c) => {
    const tr = el("tr", null);
    const shed = Object.entries(c.shed).filter(([, n]) => n).map(([s, n]) => `${s} ${n}`);
    tr.append(el("td", c.group), el("td", c.algorithm), el("td", c.limit),
      el("td", c.in_flight), el("td", c.waiting),
      el("td", `${c.min_concurrency}–${c.max_concurrency}`),
      el("td", shed.length ? shed.join(" · ") : "–"));
    tr.dataset.group = c.group;
    return tr;
  }));
  $("components").replaceChildren(...Object.entries(data.components).map(([name, status]) => {
    const li = el("li", name + " ");
    li.append(badge(status));
    const problem = data.component_errors[name];
    if (problem) li.append(el("span", " " + problem, "muted"));
    return li;
  }));
  renderEvents(data.events || {stores: [], sources: [], stores_total: 0, sources_total: 0});
  const r = data.config_reload;
  let said = "configuration: not reloaded since start";
  if (r && r.last) {
    const at = new Date(r.last.at * 1000).toLocaleTimeString();
    said = `configuration: last reload ${at} (${r.last.source}) ` +
      (r.last.ok ? "applied" : "refused: " + r.last.error) +
      ` · ${r.reloads} applied, ${r.errors} refused`;
  }
  $("reload").textContent = said;
  $("reload").className = r && r.last && !r.last.ok ? "problem" : "muted";
}

function count(v) { return v === null || v === undefined ? "–" : v; }
function state(up, why) {
  const td = el("td", null);
  td.append(badge(up ? "up" : "down"));
  if (!up && why) td.append(el("span", " " + why, "muted"));
  return td;
}
function renderEvents(ev) {
  $("events-section").hidden = !(ev.stores.length || ev.sources.length);
  $("stores").replaceChildren(...ev.stores.map((s) => {
    const tr = el("tr", null);
    tr.append(el("td", s.component), el("td", s.kind), el("td", s.namespace),
      el("td", count(s.dead_letters)), el("td", count(s.pending)),
      el("td", s.read_errors), state(s.available, s.error));
    tr.dataset.processor = s.component;
    return tr;
  }));
  $("stores-note").textContent = omitted(ev.stores.length, ev.stores_total, "stores",
    "the first");
  $("sources").replaceChildren(...ev.sources.map((s) => {
    const tr = el("tr", null);
    tr.append(el("td", s.source), el("td", s.broker), el("td", s.component),
      el("td", s.processed), el("td", s.dead_lettered), el("td", s.poison),
      el("td", s.redelivered), el("td", s.requeued), el("td", s.broker_errors),
      state(s.available, s.last_error));
    tr.dataset.source = s.source;
    return tr;
  }));
  $("sources-section").hidden = !ev.sources.length;
  $("sources-note").textContent = omitted(ev.sources.length, ev.sources_total, "sources",
    "those in trouble, then the busiest");
}

async function refresh() {
  try {
    const response = await fetch(url, {cache: "no-store"});
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    render(await response.json());
    $("problem").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("problem").textContent = "cannot refresh: " + error.message;
  }
  setTimeout(refresh, cfg.refresh * 1000);
}
refresh();
"""

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body data-config="{config}">
<header><h1>{title}</h1><span id="status"></span><span id="updated" class="muted"></span></header>
<main>
<div id="problem"></div>
<div id="cards" class="cards"></div>
<div class="charts">
<section><h2>Throughput</h2><svg id="throughput" role="img" aria-label="throughput"></svg>
<div id="throughput-legend" class="legend"></div></section>
<section><h2>Latency</h2><svg id="latency" role="img" aria-label="latency"></svg>
<div id="latency-legend" class="legend"></div></section>
</div>
<section id="transitions-section" hidden><h2>Breaker transitions</h2><ul id="transitions">
</ul></section>
<section><h2>Operations</h2><table id="operations-table">
<thead><tr><th>operation</th><th>breaker</th><th>requests</th><th>errors</th><th>error rate</th>
<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>retries</th>
<th>held by budget</th><th>rejected</th><th>shed</th><th>hedged</th><th>hedge wins</th></tr>
</thead><tbody id="operations"></tbody></table><p id="operations-note" class="muted"></p>
</section>
<section id="concurrency-section" hidden><h2>Concurrency limits</h2>
<table id="concurrency-table">
<thead><tr><th>group</th><th>algorithm</th><th>limit</th><th>in flight</th><th>waiting</th>
<th>bounds</th><th>shed</th></tr></thead><tbody id="concurrency"></tbody></table>
<p id="concurrency-note" class="muted"></p></section>
<section id="events-section" hidden><h2>Events</h2>
<h3>Dead-letter stores</h3><table id="stores-table">
<thead><tr><th>processor</th><th>store</th><th>namespace</th><th>dead letters</th>
<th>pending</th><th>read errors</th><th>state</th></tr></thead><tbody id="stores"></tbody>
</table><p id="stores-note" class="muted"></p>
<div id="sources-section"><h3>Broker sources</h3><table id="sources-table">
<thead><tr><th>queue / subject</th><th>broker</th><th>processor</th><th>processed</th>
<th>dead-lettered</th><th>poison</th><th>redelivered</th><th>requeued</th>
<th>broker errors</th><th>broker</th></tr></thead><tbody id="sources"></tbody></table>
<p id="sources-note" class="muted"></p></div></section>
<section><h2>Components</h2><ul id="components"></ul><p id="reload" class="muted"></p></section>
</main>
<script>{script}</script>
</body>
</html>
"""
