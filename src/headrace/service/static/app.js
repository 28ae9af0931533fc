// The headrace web UI: a small single-page app over /api/v1 (no framework, no CDN).
// Routes (location.hash): #/jobs, #/run/ID, #/stage-job/ID[/datum/DATUM], #/stages,
// #/repos, #/repo/NAME, #/commit/REPO/REF?path=/dir[&file=/a.txt].
"use strict";

const API = "/api/v1";
let refreshTimer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options) {
  const response = await fetch(API + path, Object.assign({ credentials: "same-origin" }, options));
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return response.json();
}

const fmt = {
  n: (x) => (x === null || x === undefined ? "-" : Number(x).toLocaleString("en-US")),
  secs(s) {
    if (s === null || s === undefined) return "-";
    if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  },
  time: (t) => (t ? new Date(t * 1000).toLocaleString() : "-"),
  size(b) {
    if (b === null || b === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return i ? `${b.toFixed(1)} ${units[i]}` : `${b} B`;
  },
  short: (id) => (id && id.length > 12 ? id.slice(0, 12) : id),
};

const state = (s) => h("span", { class: `state state-${s}` }, s);
const main = () => document.getElementById("main");

function fill(el, ...nodes) {
  el.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

function show(...nodes) {
  fill(main(), ...nodes);
}

// The sort order a viewer chose for each table (by id), kept when a live page redraws it.
const sortOrders = new Map();

function table(columns, rows, opts = {}) {
  // columns: [{title, num, key(row) -> sort value}], rows: [[cells...], ...] with row.data
  const head = h("tr", {}, columns.map((c, i) =>
    h("th", { class: [c.num ? "num" : "", c.key ? "sortable" : ""].join(" "),
              onmousedown: c.key ? () => sortBy(i) : null }, c.title)));
  const body = h("tbody");
  let current = rows.slice();
  let order = (opts.id && sortOrders.get(opts.id)) || { col: -1, dir: 1 };
  function render() {
    fill(body, current.map((r) => h("tr", r.attrs || {},
      r.cells.map((cell, i) => h("td", { class: columns[i].num ? "num" : "" }, cell)))));
  }
  function sortBy(i) {
    order = { col: i, dir: order.col === i ? -order.dir : 1 };
    if (opts.id) sortOrders.set(opts.id, order);
    applyOrder();
    render();
  }
  function applyOrder() {
    if (order.col < 0) return;
    const key = columns[order.col].key;
    current.sort((a, b) => {
      const x = key(a.data), y = key(b.data);
      return (x < y ? -1 : x > y ? 1 : 0) * order.dir;
    });
  }
  applyOrder();
  render();
  const t = h("table", { id: opts.id || null }, h("thead", {}, head), body);
  if (!rows.length && opts.empty) return h("p", { class: "muted" }, opts.empty);
  return t;
}

function every(ms, fn) {
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => fn().catch(report), ms);
}

// Live updates: a page follows a server-sent event stream; if the stream cannot be opened or
// drops before it ended, the page polls instead. <body data-live> says which is in use
// ("stream", "polling" or "off").
let liveStream = null;
function setLive(mode) { document.body.dataset.live = mode; }
function stopLive() {
  if (liveStream) { liveStream.close(); liveStream = null; }
  clearInterval(refreshTimer);
  setLive("off");
}
function follow(path, handlers, poll, ms) {
  stopLive();
  const source = new EventSource(API + path);
  liveStream = source;
  let ended = false;
  source.addEventListener("open", () => { if (liveStream === source) setLive("stream"); });
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => {
      if (liveStream !== source) return;
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (name === "end") { ended = true; source.close(); liveStream = null; setLive("off"); }
      Promise.resolve(fn(data)).catch(report);
    });
  }
  source.addEventListener("error", () => {
    if (liveStream !== source || ended) return;
    source.close();
    liveStream = null;
    setLive("polling");
    every(ms, poll);
  });
}

function report(err) {
  document.getElementById("status").textContent = err.message || String(err);
}

// ---- jobs ---------------------------------------------------------------------------------

async function jobsPage(params) {
  const kind = params.get("kind") || "", running = params.get("running") || "";
  const offset = Math.max(0, Number(params.get("offset") || 0)), limit = 100;
  const go = (k, r) => {
    const q = new URLSearchParams();
    if (k) q.set("kind", k);
    if (r) q.set("running", r);
    location.hash = "#/jobs" + (q.toString() ? `?${q}` : "");
  };
  const options = (pairs, current) => pairs.map(([v, label]) => h("option", { value: v, selected: v === current }, label));
  const filter = h("select", { id: "kind-filter", onchange: (e) => go(e.target.value, running) },
    options([["", "All jobs"], ["pipeline_run", "Pipeline runs"], ["stage_job", "Stage jobs"]], kind));
  const stateFilter = h("select", { id: "running-filter", onchange: (e) => go(kind, e.target.value) },
    options([["", "Running and ended"], ["true", "Running"], ["false", "Ended"]], running));
  const holder = h("div");
  const query = `limit=${limit}&offset=${offset}${kind ? `&kind=${kind}` : ""}${running ? `&running=${running}` : ""}`;
  function draw(data) {
    const rows = data.jobs.map((j) => ({
      data: j,
      attrs: { "data-job": j.id, class: "job-row" },
      cells: [
        j.kind === "pipeline_run" ? "pipeline run" : "stage job",
        h("a", { href: j.kind === "pipeline_run" ? `#/run/${j.id}` : `#/stage-job/${j.id}`,
                 class: "job-link" }, j.kind === "pipeline_run" ? j.id : `${j.name} · ${fmt.short(j.id)}`),
        state(j.state), fmt.secs(j.seconds), fmt.n(j.elements), fmt.time(j.created_at),
      ],
    }));
    fill(holder, table([
      { title: "Kind" }, { title: "Job" }, { title: "State", key: (j) => j.state },
      { title: "Duration", num: true, key: (j) => j.seconds || 0 },
      { title: "Elements", num: true, key: (j) => j.elements || 0 },
      { title: "Created", key: (j) => j.created_at },
    ], rows, { id: "jobs", empty: "No jobs yet: run a pipeline with headrace run --service URL, or a stage." }),
      pager(offset, limit, data.jobs.length, data.more, (o) => pageLink(o)));
  }
  const pageLink = (o) => {
    const q = new URLSearchParams(params);
    if (o) q.set("offset", o); else q.delete("offset");
    return "#/jobs" + (q.toString() ? `?${q}` : "");
  };
  const load = async () => draw(await api(`/jobs?${query}`));
  await load();
  show(h("h1", {}, "Jobs"), h("p", { class: "muted" }, "Running first, then the most recent."),
       h("div", { class: "toolbar" }, filter, stateFilter), holder);
  follow(`/jobs/stream?${query}`, { jobs: draw }, load, 2000);
}

function pager(offset, limit, shown, more, link) {
  // "← previous · 51–100 · next →" for a list whose total is not counted (more: rows follow)
  return h("div", { class: "pager", id: "pager" },
    offset > 0 ? h("a", { href: link(Math.max(0, offset - limit)), class: "prev" }, "← previous") : null,
    h("span", { class: "muted" }, shown ? `${fmt.n(offset + 1)}–${fmt.n(offset + shown)}` : "none"),
    more ? h("a", { href: link(offset + limit), class: "next" }, "next →") : null);
}

// ---- a pipeline run -----------------------------------------------------------------------

function stepGraph(steps) {
  // The fused stages in execution order; an arrow joins a stage to the next when the next reads
  // it, with the elements passed on; a stage reading others names them ("reads #1, #3").
  const parts = [];
  steps.forEach((s, i) => {
    if (i) {
      const joined = s.depends_on.includes(i - 1);
      parts.push(joined ? h("div", { class: "edge", title: "elements passed on" }, fmt.n(steps[i - 1].elements_out))
                        : h("div", { class: "edge gap" }, ""));
    }
    const reads = s.depends_on.filter((d) => d !== i - 1).map((d) => `#${d + 1}`);
    parts.push(h("div", { class: `step ${s.state}`, "data-step": s.name },
      h("div", { class: "name" }, `#${i + 1} ${s.name}`),
      reads.length ? h("div", { class: "counts" }, `reads ${reads.join(", ")}`) : null,
      h("div", { class: "counts" },
        h("span", { class: "count-in" }, `in ${fmt.n(s.elements_in)}`), " · ",
        h("span", { class: "count-out" }, `out ${fmt.n(s.elements_out)}`), " · ",
        fmt.secs(s.seconds)),
      s.watermark_us !== null ? h("div", { class: "counts" }, `watermark ${new Date(s.watermark_us / 1000).toISOString()}`) : null));
  });
  return h("div", { class: "graph", id: "graph" }, parts);
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// What the viewer chose on a run page (kept across live refreshes): the graph view and the
// composites unfolded.
const runViews = new Map();

function transformGraph(run, view, redraw) {
  // The pipeline's transforms, composites folded until clicked. A box shows a transform's
  // elements in and out, its own time (a source's or a shuffle's includes its step's reading
  // and finishing) and the fused step that runs it; an edge shows
  // the elements that flowed along it: the producers' output counts, summed over the true
  // edges a folded composite hides.
  // a streaming run's steps are its transforms: their counts and times are the steps'
  const ofStep = (t) => {
    const step = run.streaming && t.stage !== null && t.stage !== undefined ? run.steps[t.stage] : null;
    return step ? { ...t, elements_in: step.elements_in, elements_out: step.elements_out, seconds: step.seconds } : t;
  };
  const byId = new Map(run.transforms.map((t) => [t.id, ofStep(t)]));
  const visible = (id) => {
    // the outermost folded composite holding the transform, or the transform itself
    let shown = id;
    for (let t = byId.get(id); t && t.parent; ) {
      const parent = byId.get(t.parent);
      if (!parent) break;
      if (!view.unfolded.has(parent.id)) shown = parent.id;
      t = parent;
    }
    return shown;
  };
  const leaves = [...byId.values()].filter((t) => !t.composite);
  const order = [];
  const seen = new Set();
  for (const t of leaves) { const v = visible(t.id); if (!seen.has(v)) { seen.add(v); order.push(v); } }
  const inside = new Map(); // visible id -> leaves it stands for
  for (const t of leaves) { const v = visible(t.id); if (!inside.has(v)) inside.set(v, []); inside.get(v).push(t); }
  const edges = new Map(); // "a>b" -> {from, to, producers: Set}
  for (const t of leaves) {
    const b = visible(t.id);
    for (const r of t.reads) {
      const a = visible(r);
      if (a === b || !byId.has(r)) continue;
      const key = `${a}>${b}`;
      if (!edges.has(key)) edges.set(key, { from: a, to: b, producers: new Set() });
      edges.get(key).producers.add(r);
    }
  }
  // layers: a node sits one below the deepest node it reads from
  const depth = new Map();
  for (const v of order) {
    let d = 0;
    for (const e of edges.values()) if (e.to === v && depth.has(e.from)) d = Math.max(d, depth.get(e.from) + 1);
    depth.set(v, d);
  }
  const layers = [];
  for (const v of order) (layers[depth.get(v)] = layers[depth.get(v)] || []).push(v);
  const W = 230, H = 62, GX = 28, GY = 54, PAD = 16;
  const pos = new Map();
  layers.forEach((layer, d) => {
    if (d) {
      const centre = (v) => {
        const xs = [...edges.values()].filter((e) => e.to === v && pos.has(e.from)).map((e) => pos.get(e.from).x);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
      };
      layer.sort((a, b) => centre(a) - centre(b));
    }
    layer.forEach((v, i) => pos.set(v, { x: i * (W + GX), y: PAD + d * (H + GY) }));
  });
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = widest * (W + GX) - GX + 2 * PAD;
  layers.forEach((layer) => {
    const shift = (width - (layer.length * (W + GX) - GX)) / 2;
    for (const v of layer) pos.get(v).x += shift;
  });
  const height = PAD * 2 + layers.length * (H + GY) - GY;
  const cut = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);
  const svg = s("svg", { id: "transform-graph", class: "tgraph", width, height, viewBox: `0 0 ${width} ${height}` },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const e of edges.values()) {
    const a = pos.get(e.from), b = pos.get(e.to);
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    const count = [...e.producers].reduce((n, p) => n + byId.get(p).elements_out, 0);
    svg.append(s("g", { class: "tedge", "data-from": e.from, "data-to": e.to, "data-count": count },
      s("path", { d: `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2 - 2}`, "marker-end": "url(#arrow)" }),
      s("text", { x: (x1 + x2) / 2 + 6, y: my + 4, class: "edge-count" }, fmt.n(count))));
  }
  for (const v of order) {
    const t = byId.get(v), p = pos.get(v);
    const parts = inside.get(v);
    const folded = t.composite;
    const steps = [...new Set(parts.map((x) => x.stage).filter((x) => x !== null && x !== undefined))].sort((a, b) => a - b);
    const states = steps.map((i) => run.steps[i] && run.steps[i].state);
    const st = states.includes("failed") ? "failed" : states.includes("running") ? "running"
      : states.length && states.every((x) => x === "done") ? "done" : "pending";
    const name = t.parent && byId.has(t.parent) ? t.label.slice(byId.get(t.parent).label.length + 1) || t.label : t.label;
    let line2, line3;
    if (folded) {
      line2 = `▸ ${parts.length} transform${parts.length === 1 ? "" : "s"} · click to unfold`;
      const secs = parts.reduce((n, x) => n + (x.seconds || 0), 0);
      line3 = `${fmt.secs(secs)} · steps ${steps.map((i) => `#${i + 1}`).join(", ") || "-"}`;
    } else {
      line2 = `in ${fmt.n(t.elements_in)} · out ${fmt.n(t.elements_out)}`;
      line3 = `${fmt.secs(t.seconds || 0)}${t.stage !== null && t.stage !== undefined ? ` · step #${t.stage + 1}` : ""}`;
    }
    const box = s("g", { class: `tnode ${st}${folded ? " folded" : ""}`, "data-transform": t.label, "data-id": t.id,
                         transform: `translate(${p.x},${p.y})`,
                         onmousedown: folded ? () => { view.unfolded.add(t.id); redraw(); } : null },
      s("title", {}, `${t.label} [${t.kind}]`),
      s("rect", { width: W, height: H, rx: 6 }),
      s("rect", { width: 4, height: H, class: "bar" }),
      s("text", { x: 12, y: 19, class: "tname" }, cut(name, 30)),
      s("text", { x: 12, y: 37, class: folded ? "tcounts unfold" : "tcounts" }, line2),
      s("text", { x: 12, y: 54, class: "tcounts" }, line3));
    svg.append(box);
  }
  const open = run.transforms.filter((t) => t.composite && view.unfolded.has(t.id));
  const chips = open.length ? h("div", { class: "chips" }, "Unfolded: ", open.map((t) =>
    h("button", { class: "chip", "data-fold": t.label, onmousedown: () => { view.unfolded.delete(t.id); redraw(); } }, `▾ ${t.label}`))) : null;
  return h("div", {}, chips, h("div", { class: "graph tgraph-holder", id: "transforms" }, svg));
}

function graphSection(run) {
  const view = runViews.get(run.id) || { mode: run.transforms.length ? "transforms" : "stages", unfolded: new Set() };
  runViews.set(run.id, view);
  const holder = h("div", { id: "graph-section" });
  const draw = () => {
    const tabs = run.transforms.length ? h("div", { class: "tabs" },
      h("button", { id: "view-transforms", class: view.mode === "transforms" ? "tab active" : "tab",
                    onmousedown: () => { view.mode = "transforms"; draw(); } }, "Transforms"),
      h("button", { id: "view-stages", class: view.mode === "stages" ? "tab active" : "tab",
                    onmousedown: () => { view.mode = "stages"; draw(); } }, "Fused stages")) : null;
    fill(holder, tabs, view.mode === "transforms" && run.transforms.length ? transformGraph(run, view, draw) : stepGraph(run.steps));
  };
  draw();
  return holder;
}

async function runPage(id) {
  // Live updates redraw the page often; the buttons sit in a toolbar redrawn only when they
  // change, so a click is never lost to a redraw between the press and the release.
  const top = h("div"), toolbar = h("div", { class: "toolbar" }), body = h("div");
  const holder = h("div", {}, top, toolbar, body);
  let toolbarKey = null;
  let lastSeq = 0, current = null;
  const logRows = [];
  const path = `/runs/${encodeURIComponent(id)}`;
  async function load() {
    const run = await api(path);
    const events = await api(`${path}/events?after=${lastSeq}&limit=1000`);
    for (const e of events) { logRows.push(e); lastSeq = e.seq; }
    draw(run);
    if (!run.running) stopLive();
  }
  function draw(run) {
    current = run;
    const key = `${run.running}|${run.state}|${run.streaming}`;
    if (key !== toolbarKey) { toolbarKey = key; fill(toolbar, buttons(run)); }
    drawBody(run);
  }
  function buttons(run) {
    const cancel = run.running ? h("button", { class: "danger", id: "cancel", onclick: async () => {
      await api(`/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); await load();
    } }, "Cancel") : null;
    const drain = run.streaming && run.running && !["DRAINING", "CANCELLING"].includes(run.state)
      ? h("button", { id: "drain", title: "Stop reading the sources, fire every window, finish", onclick: async () => {
        await api(`/runs/${encodeURIComponent(id)}/drain`, { method: "POST" }); await load();
      } }, "Drain") : null;
    return [drain, cancel];
  }
  function drawBody(run) {
    const counters = (s) => Object.entries(s.counters).map(([k, v]) => `${k}=${fmt.n(v)}`).join(", ") || "-";
    const steps = table([
      { title: "#", num: true, key: (s) => s.position }, { title: "Step", key: (s) => s.name },
      { title: "Reads" },
      { title: "State", key: (s) => s.state },
      { title: "Elements in", num: true, key: (s) => s.elements_in },
      { title: "Elements out", num: true, key: (s) => s.elements_out },
      { title: "Time", num: true, key: (s) => s.seconds },
      { title: "Tasks", num: true, key: (s) => s.tasks_done }, { title: "Counters" },
      { title: "Watermark lag", num: true, key: (s) => s.lag_seconds || 0 },
    ], run.steps.map((s) => ({ data: s, attrs: { "data-step": s.name }, cells: [
      s.position + 1, s.name, s.depends_on.map((d) => `#${d + 1}`).join(", ") || "-",
      state(s.state), fmt.n(s.elements_in), fmt.n(s.elements_out),
      fmt.secs(s.seconds), `${s.tasks_done}/${s.tasks}`, counters(s), fmt.secs(s.lag_seconds),
    ] })), { id: "steps" });
    // a failed run shows first what failed: the transform, the element, the traceback
    const f = run.failure;
    const failure = run.error ? h("div", { id: "failure", class: "failure" },
      h("h2", {}, "Failure"),
      f && f.step ? h("p", {}, "Transform ", h("b", { id: "failed-step" }, f.step), " failed",
        f.element ? [" on element ", h("code", { id: "failed-element" }, f.element)] : null) : null,
      h("pre", { id: "run-error", class: "log-ERROR" }, run.error),
      f && f.traceback ? h("details", { open: true }, h("summary", {}, "Traceback"),
        h("pre", { id: "run-traceback" }, f.traceback)) : null) : null;
    // when the run failed, errors come before the other records (each group in time order)
    const ordered = run.state === "FAILED"
      ? [...logRows.filter((e) => e.level >= 40), ...logRows.filter((e) => e.level < 40)] : logRows;
    const logs = ordered.length ? h("pre", { id: "logs" }, ordered.map((e) =>
      h("div", { class: e.level >= 40 ? "log-ERROR" : e.level >= 30 ? "log-WARNING" : "" },
        `${new Date(e.at * 1000).toLocaleTimeString()}  ${e.step ? `[${e.step}] ` : ""}${e.message}`)))
      : h("p", { class: "muted" }, "No log records.");
    fill(top,
      h("h1", {}, `Pipeline run ${run.id}`),
      h("div", { class: "meta" }, state(run.state), h("span", {}, "duration ", h("b", {}, fmt.secs(run.seconds))),
        h("span", {}, "elements ", h("b", {}, fmt.n(run.elements))),
        h("span", {}, run.streaming ? "streaming" : "batch"), h("span", {}, `from ${run.source || "?"}`),
        h("span", {}, `submitted ${fmt.time(run.created_at)}`)));
    fill(body,
      failure,
      h("h2", {}, "Graph"), graphSection(run),
      h("h2", {}, "Steps"), steps,
      h("h2", {}, "Logs and state changes"), logs);
  }
  const event = (e) => { if (e.seq > lastSeq) { logRows.push(e); lastSeq = e.seq; if (current) draw(current); } };
  show(holder);
  await load();
  if (current.running) {
    follow(`${path}/stream?after=${lastSeq}&snapshots=true`,
           { run: draw, state: event, log: event, end: load }, load, 1000);
  }
}

// ---- stage jobs ---------------------------------------------------------------------------

async function stageJobPage(id, datumId, params) {
  const offset = Number(params.get("offset") || 0), limit = 100;
  const data = await api(`/stage-jobs/${encodeURIComponent(id)}/datums?offset=${offset}&limit=${limit}`);
  const job = data.job;
  const stop = job.running ? h("button", { class: "danger", id: "stop", onclick: async () => {
    await api(`/stage-jobs/${job.id}/stop`, { method: "POST" }); route();
  } }, "Stop") : null;
  const rows = data.datums.map((d) => ({ data: d, attrs: { "data-datum": d.datum_id }, cells: [
    h("a", { href: `#/stage-job/${job.id}/datum/${d.datum_id}`, class: "datum-link" }, fmt.short(d.datum_id)),
    state(d.state), d.inputs.map((i) => `${i.name}:${i.path}`).join(", "), d.attempts, fmt.secs(d.seconds),
    d.error ? d.error.trim().split("\n").pop() : "-",
  ] }));
  const pager = h("div", { class: "pager" },
    offset > 0 ? h("a", { href: `#/stage-job/${job.id}?offset=${Math.max(0, offset - limit)}` }, "← previous") : null,
    h("span", { class: "muted" }, `${offset + 1}–${offset + data.datums.length} of ${fmt.n(data.total)} datums`),
    offset + limit < data.total ? h("a", { href: `#/stage-job/${job.id}?offset=${offset + limit}` }, "next →") : null);
  let detail = null;
  if (datumId) {
    const d = await api(`/stage-jobs/${job.id}/datums/${encodeURIComponent(datumId)}`);
    detail = h("div", { id: "datum" }, h("h2", {}, `Datum ${d.datum_id}`),
      h("div", { class: "meta" }, state(d.state), h("span", {}, `${d.attempts} attempt(s)`),
        h("span", {}, fmt.secs(d.seconds)), h("span", {}, d.inputs.map((i) => `${i.name}:${i.path}`).join(", "))),
      d.error ? h("pre", { id: "datum-error", class: "log-ERROR" }, d.error) : null,
      h("pre", { id: "datum-log" }, d.log || "(no output)"));
  }
  show(
    h("h1", {}, `Stage job ${job.id}`),
    h("div", { class: "meta" }, state(job.state), h("span", {}, "stage ", h("a", { href: "#/stages" }, job.stage)),
      h("span", {}, "duration ", h("b", {}, fmt.secs(job.seconds))),
      h("span", {}, `${fmt.n(job.processed)} processed · ${fmt.n(job.skipped)} skipped · ${fmt.n(job.failed)} failed`),
      job.output_commit ? h("a", { href: `#/commit/${job.stage}/${job.output_commit}` }, "output commit") : null),
    job.reason ? h("pre", { class: "log-ERROR" }, job.reason) : null,
    h("div", { class: "toolbar" }, stop),
    h("div", { class: "meta" }, "inputs: ", job.inputs.map((i) =>
      h("a", { href: `#/commit/${i.repo}/${i.commit}` }, `${i.name} (${i.repo}@${fmt.short(i.commit)})`))),
    detail,
    h("h2", {}, "Datums (failed first, then slowest)"), pager,
    table([{ title: "Datum" }, { title: "State", key: (d) => d.state }, { title: "Inputs" },
           { title: "Attempts", num: true, key: (d) => d.attempts },
           { title: "Time", num: true, key: (d) => d.seconds }, { title: "Error" }],
          rows, { id: "datums", empty: "No datums." }));
  if (job.running) every(2000, async () => route());
}

async function stagesPage() {
  const stages = await api("/stages");
  show(h("h1", {}, "Stages"), table([
    { title: "Stage", key: (s) => s.name }, { title: "Inputs" }, { title: "Last job" },
    { title: "State" }, { title: "Output" }],
    stages.map((s) => ({ data: s, cells: [
      s.name + (s.stopped ? " (stopped)" : ""),
      s.inputs.map((i) => h("a", { href: `#/repo/${i.repo}` }, `${i.name} ← ${i.repo} `)),
      s.last_job ? h("a", { href: `#/stage-job/${s.last_job.id}` }, fmt.short(s.last_job.id)) : "-",
      s.last_job ? state(s.last_job.state) : "-",
      h("a", { href: `#/repo/${s.output_repo}` }, s.output_repo)] })),
    { id: "stages", empty: "No stages." }));
}

// ---- repos --------------------------------------------------------------------------------

async function reposPage() {
  const repos = await api("/repos");
  show(h("h1", {}, "Repos"), table([
    { title: "Repo", key: (r) => r.name }, { title: "Branches" }, { title: "Created", key: (r) => r.created_at },
    { title: "Description" }],
    repos.map((r) => ({ data: r, cells: [h("a", { href: `#/repo/${r.name}`, class: "repo-link" }, r.name),
      r.branches.join(", "), fmt.time(r.created_at), r.description || ""] })),
    { id: "repos", empty: "No repos." }));
}

async function repoPage(name) {
  const [branches, commits] = await Promise.all([api(`/repos/${name}/branches`), api(`/repos/${name}/commits?limit=200`)]);
  show(h("div", { class: "crumbs" }, h("a", { href: "#/repos" }, "Repos"), " / "), h("h1", {}, name),
    h("h2", {}, "Branches"), table([{ title: "Branch" }, { title: "Head" }],
      branches.map((b) => ({ data: b, cells: [b.name, b.head ? h("a", { href: `#/commit/${name}/${b.head}` }, b.head) : "-"] }))),
    h("h2", {}, "Commits"), table([
      { title: "Commit" }, { title: "Branch" }, { title: "State" }, { title: "Origin" },
      { title: "Files", num: true, key: (c) => c.file_count || 0 }, { title: "Size", num: true, key: (c) => c.size_bytes || 0 },
      { title: "Finished", key: (c) => c.finished_at || 0 }, { title: "Message" }],
      commits.map((c) => ({ data: c, cells: [
        h("a", { href: `#/commit/${name}/${c.id}`, class: "commit-link" }, fmt.short(c.id)), c.branch || "-",
        state(c.state), c.origin, fmt.n(c.file_count), fmt.size(c.size_bytes), fmt.time(c.finished_at), c.message] })),
      { id: "commits", empty: "No commits." }));
}

function csvTable(text, sep) {
  // A preview: the first 200 rows, fields split on the separator outside double quotes.
  const rows = text.split(/\r?\n/).filter((l) => l.length).slice(0, 200).map((line) => {
    const out = []; let field = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === sep) { out.push(field); field = ""; }
      else field += c;
    }
    out.push(field);
    return out;
  });
  if (!rows.length) return h("p", { class: "muted" }, "(empty)");
  const [head, ...body] = rows;
  return h("table", { id: "file-preview", class: "csv" }, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, body.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

function looksText(bytes) {
  for (let i = 0; i < Math.min(bytes.length, 4096); i++) if (bytes[i] === 0) return false;
  return true;
}

async function commitPage(repo, ref, params) {
  const path = params.get("path") || "/", file = params.get("file");
  const base = `/repos/${repo}/commits/${encodeURIComponent(ref)}`;
  const against = params.get("against");
  const [commit, listing, prov, history] = await Promise.all([
    api(base), api(`${base}/files?path=${encodeURIComponent(path)}&limit=1000`), api(`${base}/provenance`),
    api(`/repos/${repo}/commits?limit=200`)]);
  const older = against || commit.parent;
  const changes = older ? await api(`${base}/diff?old=${encodeURIComponent(older)}`) : null;
  const link = (p, f) => `#/commit/${repo}/${ref}?path=${encodeURIComponent(p)}${f ? `&file=${encodeURIComponent(f)}` : ""}${against ? `&against=${encodeURIComponent(against)}` : ""}`;
  // any other commit of the repo to compare with (the parent by default)
  const compare = h("select", { id: "diff-against", onchange: (e) => {
    const q = new URLSearchParams(params);
    if (e.target.value) q.set("against", e.target.value); else q.delete("against");
    location.hash = `#/commit/${repo}/${ref}?${q}`;
  } }, h("option", { value: "" }, commit.parent ? `the parent (${fmt.short(commit.parent)})` : "(no parent)"),
    history.filter((c) => c.id !== commit.id).map((c) => h("option", { value: c.id, selected: c.id === against },
      `${fmt.short(c.id)} ${c.branch || ""} ${fmt.time(c.finished_at)} ${c.message ? "· " + c.message.slice(0, 40) : ""}`)));
  const parts = path.split("/").filter(Boolean);
  const crumbs = h("div", { class: "crumbs mono" }, h("a", { href: link("/") }, `${repo}@${fmt.short(commit.id)}:/`),
    parts.map((p, i) => [h("a", { href: link("/" + parts.slice(0, i + 1).join("/")) }, p), "/"]));
  const files = table([{ title: "Name", key: (f) => f.path }, { title: "Type" },
    { title: "Size", num: true, key: (f) => f.size_bytes }],
    listing.files.map((f) => ({ data: f, cells: [
      h("a", { href: f.type === "dir" ? link(f.path) : link(path, f.path), class: "file-link" },
        f.path.split("/").pop() + (f.type === "dir" ? "/" : "")), f.type, fmt.size(f.size_bytes)] })),
    { id: "files", empty: "This folder is empty." });
  let preview = null;
  if (file) {
    const response = await fetch(`${API}${base}/file?path=${encodeURIComponent(file)}&max_bytes=65536`, { credentials: "same-origin" });
    const bytes = new Uint8Array(await response.arrayBuffer());
    const size = Number(response.headers.get("X-Headrace-Size"));
    const text = response.ok ? (looksText(bytes) ? new TextDecoder().decode(bytes) : "(binary file)") : `error ${response.status}`;
    const more = size > bytes.length && !/\.parquet$/i.test(file) ? `… (the first ${fmt.size(bytes.length)} of ${fmt.size(size)})` : null;
    let body;
    if (response.ok && /\.(png|jpe?g|gif|webp)$/i.test(file) && size <= bytes.length) {
      const mime = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" }[file.split(".").pop().toLowerCase()];
      body = h("img", { id: "file-preview", alt: file, src: URL.createObjectURL(new Blob([bytes], { type: mime })) });
    } else if (response.ok && /\.parquet$/i.test(file)) {
      const t = await api(`${base}/table?path=${encodeURIComponent(file)}&limit=100`);
      body = h("div", {}, h("div", { class: "scroll" }, h("table", { id: "file-preview", class: "csv" },
        h("thead", {}, h("tr", {}, t.columns.map((c) => h("th", { title: c.type }, c.name)))),
        h("tbody", {}, t.rows.map((r) => h("tr", {}, r.map((v) => h("td", {},
          v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v)))))))),
        h("p", { class: "muted", id: "table-rows" }, `${fmt.n(t.rows.length)} of ${fmt.n(t.total_rows)} rows`));
    } else if (response.ok && /\.(csv|tsv)$/i.test(file) && looksText(bytes)) {
      body = h("div", { class: "scroll" }, csvTable(text, file.toLowerCase().endsWith(".tsv") ? "\t" : ","));
    } else {
      body = h("pre", { id: "file-preview" }, text);
    }
    preview = h("div", {}, h("h2", {}, file, " ",
      h("a", { href: `${API}${base}/file?path=${encodeURIComponent(file)}` }, "download")), body,
      more ? h("p", { class: "muted" }, more) : null);
  }
  const commitList = (cs) => cs.length ? h("ul", {}, cs.map((c) => h("li", {},
    h("a", { href: `#/commit/${c.repo}/${c.id}` }, `${c.repo}@${fmt.short(c.id)}`), ` ${c.branch || ""} ${c.message || ""}`))) : h("p", { class: "muted" }, "none");
  show(h("div", { class: "crumbs" }, h("a", { href: "#/repos" }, "Repos"), " / ", h("a", { href: `#/repo/${repo}` }, repo), " /"),
    h("h1", {}, `Commit ${commit.id}`),
    h("div", { class: "meta" }, state(commit.state), h("span", {}, `branch ${commit.branch || "-"}`),
      h("span", {}, `origin ${commit.origin}`), h("span", {}, `${fmt.n(commit.file_count)} files, ${fmt.size(commit.size_bytes)}`),
      h("span", {}, fmt.time(commit.finished_at)), commit.message ? h("span", {}, `“${commit.message}”`) : null),
    h("h2", {}, "Files"), crumbs, files, preview,
    h("h2", {}, "Changes", changes ? ` (${changes.length})` : ""),
    h("div", { class: "toolbar" }, "from ", compare),
    changes ? table([{ title: "Path", key: (d) => d.path }, { title: "Change", key: (d) => d.kind },
      { title: "Old size", num: true }, { title: "New size", num: true }],
      changes.map((d) => ({ data: d, cells: [d.path, d.kind, fmt.size(d.old && d.old.size_bytes),
        fmt.size(d.new && d.new.size_bytes)] })), { id: "diff", empty: "No changes." }) : null,
    h("h2", {}, "Provenance"), provenanceDrawing(prov, repo),
    h("div", { class: "grid2", id: "provenance" },
      h("div", {}, h("h2", {}, "Made from (provenance)"), commitList(prov.provenance)),
      h("div", {}, h("h2", {}, "Used by (subvenance)"), commitList(prov.subvenance))),
    h("h2", {}, "Stage jobs of this trace"), prov.jobs.length ? h("ul", {}, prov.jobs.map((j) => h("li", {},
      h("a", { href: `#/stage-job/${j.id}` }, `${j.stage} · ${fmt.short(j.id)}`), " ", state(j.state)))) : h("p", { class: "muted" }, "none"));
}

function provenanceDrawing(prov, repo) {
  // The origins (commits nothing made) at the top, what was made from them below, down to this
  // commit at the bottom; an edge made by a stage job is labelled with the stage.
  const nodes = new Map([[prov.commit.id, prov.commit], ...prov.provenance.map((c) => [c.id, c])]);
  const level = new Map([[prov.commit.id, 0]]);
  for (let changed = true, guard = 0; changed && guard < 100; guard++) {
    changed = false;
    for (const e of prov.edges) {
      if (level.has(e.to) && nodes.has(e.from) && (level.get(e.from) ?? -1) < level.get(e.to) + 1) {
        level.set(e.from, level.get(e.to) + 1); changed = true;
      }
    }
  }
  const depth = Math.max(0, ...level.values());
  const columns = [];
  for (const [id, l] of level) (columns[depth - l] = columns[depth - l] || []).push(id);
  const W = 250, H = 50, GX = 28, GY = 46, PAD = 14;
  const pos = new Map();
  const widest = Math.max(...columns.map((c) => c.length));
  const width = PAD * 2 + widest * (W + GX) - GX;
  columns.forEach((row, i) => {
    const shift = (width - (row.length * (W + GX) - GX)) / 2;
    row.forEach((id, j) => pos.set(id, { x: shift + j * (W + GX), y: PAD + i * (H + GY) }));
  });
  const height = PAD * 2 + columns.length * (H + GY) - GY;
  const svg = s("svg", { id: "provenance-graph", class: "tgraph", width, height, viewBox: `0 0 ${width} ${height}` },
    s("defs", {}, s("marker", { id: "parrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const e of prov.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y, my = (y1 + y2) / 2;
    const job = prov.made_by[e.to];
    svg.append(s("g", { class: "tedge", "data-from": e.from, "data-to": e.to },
      s("path", { d: `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2 - 2}`, "marker-end": "url(#parrow)" }),
      job ? s("text", { x: (x1 + x2) / 2 + 6, y: my + 4, class: "edge-count" }, job.stage) : null));
  }
  for (const [id, p] of pos) {
    const c = nodes.get(id);
    const job = prov.made_by[id];
    const origin = !prov.edges.some((e) => e.to === id);
    svg.append(s("a", { href: `#/commit/${c.repo}/${c.id}` },
      s("g", { class: `tnode ${id === prov.commit.id ? "current" : origin ? "origin" : "done"}`, "data-commit": id, "data-repo": c.repo,
               transform: `translate(${p.x},${p.y})` },
        s("title", {}, `${c.repo}@${c.id}${c.message ? " · " + c.message : ""}`),
        s("rect", { width: W, height: H, rx: 6 }), s("rect", { width: 4, height: H, class: "bar" }),
        s("text", { x: 12, y: 20, class: "tname" }, `${c.repo}@${fmt.short(c.id)}`),
        s("text", { x: 12, y: 38, class: "tcounts" },
          job ? `made by ${job.stage} (${job.state})` : origin ? `origin · ${c.origin}` : c.origin))));
  }
  return h("div", { class: "graph tgraph-holder" }, svg);
}

// ---- routing ------------------------------------------------------------------------------

// Routes render one after another: a page still loading when the hash changes finishes first,
// then the new page renders over it (otherwise the older page could land last).
let routing = Promise.resolve();
function route() {
  routing = routing.then(renderRoute, renderRoute);
  return routing;
}

async function renderRoute() {
  stopLive();
  document.getElementById("status").textContent = "";
  const [rawPath, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = rawPath.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === parts[0] ||
    (a.dataset.nav === "jobs" && ["run", "stage-job"].includes(parts[0])) ||
    (a.dataset.nav === "repos" && ["repo", "commit"].includes(parts[0])));
  try {
    switch (parts[0]) {
      case "run": return await runPage(parts[1]);
      case "stage-job": return await stageJobPage(parts[1], parts[2] === "datum" ? parts[3] : null, params);
      case "stages": return await stagesPage();
      case "repos": return await reposPage();
      case "repo": return await repoPage(parts[1]);
      case "commit": return await commitPage(parts[1], parts[2], params);
      default: return await jobsPage(params);
    }
  } catch (err) {
    show(h("h1", {}, "Error"), h("pre", { class: "log-ERROR", id: "error" }, err.message));
  }
}

window.addEventListener("hashchange", route);
route();
