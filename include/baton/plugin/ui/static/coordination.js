// The Coordination page: live runs (polled), a run's timeline (Gantt of its steps, fan-out items and tries)
// and its dependency map with live states, the agents (load, circuits), starting a run, incidents; and the
// actions, each confirmed: trigger, stop with compensation, reassign a next try, open/close a circuit, ack.
"use strict";
(() => {
  const {get, act, poll, section, esc, fmtS, time, chart, params} = Baton;
  let selected = params.get("run_id") || null;
  let selectedDag = params.get("dag_id") || null;
  const runs = section("runs", "Runs", true);
  const run = section("run", "Run", true);
  const agents = section("agents", "Agents");
  const start = section("start", "Start a run");
  const incidents = section("incidents", "Incidents");
  runs.body.innerHTML = `<div class="row"><label>Show <select id="run-state"><option value="all">all</option>
    <option value="running">running</option><option value="finished">finished</option></select></label></div>
    <table id="runs-table"><thead><tr><th>Workflow</th><th>Run</th><th>State</th><th>Progress</th><th>Now</th>
    <th>ETA</th><th>Waiting on people</th><th>Started</th></tr></thead><tbody></tbody></table>`;
  run.body.innerHTML = `<p class="muted" id="run-hint">Choose a run above.</p>
    <div class="row act" id="run-actions" hidden><input id="stop-reason" size="28" placeholder="why stop it (kept with its undo)">
      <button class="danger" id="stop">Stop and compensate…</button>
      <label>Reassign the next try of <select id="re-step"></select> to <select id="re-agent"></select></label>
      <label><input type="checkbox" id="re-now" checked> start it now</label> <button id="reassign">Reassign…</button></div>
    <div class="chart" id="gantt"></div><div class="chart small" id="graph"></div><ul id="markers"></ul>`;

  const list = (data, key) => Array.isArray(data) ? data : (data[key] || []);
  async function refreshRuns() {
    const data = await get("/api/dashboard/runs", {state: document.getElementById("run-state").value, limit: 30});
    const rows = list(data, "runs").map((r) => {
      const p = r.progress || {}; const pct = p.total ? Math.round(100 * (p.done || 0) / p.total) : 0;
      const label = (x) => typeof x === "string" ? x : `${x.step}${x.map_index >= 0 ? `[${x.map_index}]` : ""}${x.agent ? ` (${x.agent})` : ""}`;
      const running = r.running || [];
      const now = running.slice(0, 4).map(label).join(", ") + (r.running_count > 4 ? ` +${r.running_count - 4}` : "");
      const people = (r.people_pending || []).map((x) => typeof x === "string" ? x : `${x.step} (${x.kind})`);
      return `<tr data-run="${esc(r.run_id)}" data-dag="${esc(r.workflow)}" class="${r.run_id === selected ? "selected" : ""}">
        <td>${esc(r.workflow)}</td><td>${esc(r.run_id)}</td><td class="state-${esc(r.state)}">${esc(r.state)}</td>
        <td><div class="bar" title="${p.done ?? 0} of ${p.total ?? "?"}"><span style="width:${pct}%"></span></div>
        ${p.done ?? 0}/${p.total ?? "?"}</td><td>${esc(now)}</td><td>${r.state === "running" ? fmtS(r.eta_s) : "–"}</td>
        <td>${esc(people.join(", "))}</td><td>${time(r.started_at)}</td></tr>`;
    });
    runs.body.querySelector("tbody").innerHTML = rows.join("") || `<tr><td colspan="8" class="muted">No run yet.</td></tr>`;
  }
  runs.body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-run]"); if (!tr) return;
    selected = tr.dataset.run; selectedDag = tr.dataset.dag;
    runs.body.querySelectorAll("tr").forEach((x) => x.classList.toggle("selected", x === tr));
    refreshRun();
  });

  // A bar's lane: a step's tries share one; a fan-out item has its own; an undo (compensation) has its own.
  const lane = (b) => b.kind === "compensation" ? `undo ${b.step}` :
    b.kind === "item" ? `${b.step}[${b.map_index >= 0 ? b.map_index + "." : ""}${b.subtask ?? ""}]` :
    b.step + (b.map_index >= 0 ? `[${b.map_index}]` : "");
  function gantt(data) {
    const bars = (data.bars || []).filter((b) => b.start);
    const lanes = [...new Set(bars.map(lane))];
    const color = {success: "#2da44e", failed: "#cf222e", running: "#0969da", skipped: "#8c959f", up_for_retry: "#d4a72c"};
    const points = bars.map((b) => ({
      value: [lanes.indexOf(lane(b)), Date.parse(b.start), b.end ? Date.parse(b.end) : Date.now(), b.agent || "",
              b.try_number || b.attempt || 1, b.state, b.kind, b.offline ? "offline model" : ""],
      itemStyle: {color: color[b.state] || "#0969da", borderColor: b.kind === "compensation" ? "#8250df" : undefined,
                  borderWidth: b.kind === "compensation" ? 2 : 0}}));
    chart(document.getElementById("gantt")).setOption({
      tooltip: {formatter: (p) => `${esc(lanes[p.value[0]])} · ${p.value[6]} ${p.value[4]} · ${esc(p.value[3] || "skill")} · ${p.value[5]}${p.value[7] ? " · " + p.value[7] : ""}<br>${fmtS((p.value[2] - p.value[1]) / 1000)}`},
      grid: {left: 170, right: 20, top: 10, bottom: 30}, xAxis: {type: "time"},
      yAxis: {type: "category", data: lanes, inverse: true},
      dataZoom: lanes.length > 14 ? [{type: "slider", yAxisIndex: 0, start: 0, end: Math.min(100, 1400 / lanes.length)}] : [],
      series: [{type: "custom", encode: {x: [1, 2], y: 0}, data: points, renderItem: (params, api) => {
        const a = api.coord([api.value(1), api.value(0)]), b = api.coord([api.value(2), api.value(0)]);
        const h = api.size([0, 1])[1] * 0.6;
        return {type: "rect", shape: {x: a[0], y: a[1] - h / 2, width: Math.max(2, b[0] - a[0]), height: h},
                style: api.style({text: [api.value(3), points[params.dataIndex].value[7]].filter(Boolean).join(" · "), textFill: "#fff", fontSize: 10})};
      }}],
    }, true);
    const words = (m) => Object.entries(m).filter(([k, v]) => !["kind", "at", "ts", "step", "map_index"].includes(k) && v != null && v !== "")
      .map(([k, v]) => k === "resolution" ? `${v.outcome}${v.version != null ? ` → v${v.version}` : ""}${v.by ? ` by ${v.by}` : ""}`
        : `${k.replace(/_/g, " ")} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    document.getElementById("markers").innerHTML = (data.markers || []).map((m) =>
      `<li>${time(m.at || m.ts)} <b>${esc(m.kind)}</b> ${esc(m.step || "")}: ${esc(words(m))}</li>`).join("") +
      bars.filter((b) => b.kind === "compensation").map((b) =>
      `<li>${time(b.start)} <b>compensation</b> of ${esc(b.step)}: ${esc(b.state)}</li>`).join("") +
      (data.offline_calls ? `<li class="warn">${Number(data.offline_calls)} model answer(s) of this run came from Baton's offline model (made-up data): the bars marked "offline model".</li>` : "") +
      (data.truncated ? `<li class="warn">Only the first bars of this run are shown (it has ${data.events_read} events).</li>` : "");
  }

  const graphs = {};  // a workflow's graph is its template's: fetched once a page, its states every poll
  async function dependencyMap(dag, states) {
    const g = graphs[dag] ||= await get(`/api/templates/${encodeURIComponent(dag)}/graph`);
    const color = {success: "#2da44e", failed: "#cf222e", running: "#0969da", skipped: "#8c959f"};
    chart(document.getElementById("graph")).setOption({
      tooltip: {formatter: (p) => p.dataType === "node" ? `${esc(p.data.name)}<br>${esc(p.data.who)}<br>${esc(p.data.state || "not started")}` : ""},
      series: [{type: "graph", layout: "none", roam: true, edgeSymbol: ["none", "arrow"], label: {show: true, position: "bottom"},
        data: g.nodes.map((n) => ({name: n.id, x: n.x * 160, y: n.y * 70, who: n.who, state: states[n.id], symbolSize: 22,
          itemStyle: {color: color[states[n.id]] || "#8c959f"}})),
        links: g.edges.map((e) => ({source: e.source, target: e.target}))}],
    }, true);
    return g;
  }

  async function refreshRun() {
    if (!selected) return;
    document.getElementById("run-hint").textContent = `${selectedDag || ""} · ${selected}`;
    const data = await get(`/api/dashboard/runs/${encodeURIComponent(selected)}/gantt`);
    selectedDag = selectedDag || data.workflow;
    gantt(data);
    const states = {};
    (data.bars || []).forEach((b) => { if (b.kind === "try" && !(b.map_index >= 0)) states[b.step] = b.state; });
    const g = await dependencyMap(selectedDag, states);
    const actions = document.getElementById("run-actions"); actions.hidden = false;
    const stepSelect = document.getElementById("re-step");
    if (stepSelect.dataset.dag !== selectedDag) {
      stepSelect.dataset.dag = selectedDag;
      stepSelect.innerHTML = g.nodes.filter((n) => n.who.startsWith("route by") && !n.who.includes("for each")).map((n) => `<option>${esc(n.id)}</option>`).join("");
    }
  }
  document.getElementById("stop").addEventListener("click", async () => {
    const reason = document.getElementById("stop-reason").value.trim() || "emergency stop";
    await act(`Stop run ${selected} of ${selectedDag} and compensate its completed steps?`,
      `/api/actions/dags/${encodeURIComponent(selectedDag)}/runs/${encodeURIComponent(selected)}/stop`, {reason});
  });
  document.getElementById("reassign").addEventListener("click", async () => {
    const step = document.getElementById("re-step").value, agent = document.getElementById("re-agent").value;
    if (!step || !agent) return Baton.toast("Choose a routed step and an agent", true);
    const now = document.getElementById("re-now").checked;
    await act(`Give the next try of ${step} (run ${selected}) to ${agent}${now ? ", starting now" : ""}?`,
      `/api/actions/dags/${encodeURIComponent(selectedDag)}/runs/${encodeURIComponent(selected)}/steps/${encodeURIComponent(step)}/reassign`,
      {agent, retry_now: now});
  });

  let roster = null;  // every agent of the roster, called yet or not (its stats come from the store)
  async function refreshAgents() {
    roster = roster || (await get("/api/templates/roster")).agents;
    const stats = Object.fromEntries(list(await get("/api/dashboard/agents"), "agents").map((a) => [a.agent, a]));
    const rows = [...roster.map((a) => ({...a, ...(stats[a.agent] || {})})),
                  ...Object.values(stats).filter((a) => !roster.some((r) => r.agent === a.agent))];
    // Redrawn only when the agents change, keeping the person's choice: a refresh between choosing and
    // confirming must not put another agent into the confirmation.
    const agentSelect = document.getElementById("re-agent"), names = JSON.stringify(rows.map((a) => a.agent));
    if (agentSelect.dataset.names !== names) {
      const chosen = agentSelect.value;
      agentSelect.innerHTML = rows.map((a) => `<option>${esc(a.agent)}</option>`).join("");
      agentSelect.dataset.names = names;
      if (rows.some((a) => a.agent === chosen)) agentSelect.value = chosen;
    }
    agents.body.innerHTML = `<table><thead><tr><th>Agent</th><th>Calls (1 h)</th><th>Failures</th><th>p95</th>
      <th>Slots in use</th><th>Circuit</th><th>Spend (24 h)</th><th class="act"></th></tr></thead><tbody>${rows.map((a) => {
      const c = a.circuit || {}; const open = c.state && c.state !== "closed";
      return `<tr data-agent="${esc(a.agent)}"><td>${esc(a.agent)}</td><td>${a.calls_1h ?? 0}</td>
        <td class="${a.failures_1h ? "bad" : ""}">${a.failures_1h ?? 0}</td>
        <td>${fmtS(a.p95_latency_s)}</td><td>${a.slots_in_use ?? 0}</td>
        <td class="${open ? "bad" : "ok"}">${esc(c.state || "closed")}</td><td>${a.spend_24h ? "$" + Number(a.spend_24h).toFixed(4) : "–"}${a.budget_headroom ? ` <span class="muted">(${(100 * (a.budget_headroom.left ?? a.budget_headroom.share_left ?? 0)).toFixed(0)} % left)</span>` : ""}</td>
        <td class="act"><button data-circuit="${open ? "close" : "open"}">${open ? "Close circuit" : "Open circuit"}…</button></td></tr>`;
    }).join("")}</tbody></table>`;
  }
  agents.body.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-circuit]"); if (!b) return;
    const agent = b.closest("tr").dataset.agent, open = b.dataset.circuit === "open";
    await act(`${open ? "Open" : "Close"} the circuit of ${agent}?${open ? " Routing sends its work to other capable agents." : ""}`,
      `/api/actions/agents/${encodeURIComponent(agent)}/circuit`, {open});
    refreshAgents();
  });

  async function startForm() {
    const lib = await get("/api/templates");
    const healthy = lib.templates.filter((t) => t.ok);
    start.body.innerHTML = `<div class="row"><select id="start-workflow">${healthy.map((t) => `<option>${esc(t.workflow)}</option>`).join("")}</select></div>
      <form id="start-inputs"></form><div class="row act"><button id="trigger">Start…</button></div>`;
    const sel = document.getElementById("start-workflow");
    const form = document.getElementById("start-inputs");
    const fill = () => {
      const t = healthy.find((x) => x.workflow === sel.value) || {inputs: {}};
      form.innerHTML = Object.entries(t.inputs || {}).map(([name, s]) => {
        const value = s.default ?? "";
        const field = s.enum ? `<select name="${esc(name)}">${s.enum.map((v) => `<option ${v === value ? "selected" : ""}>${esc(v)}</option>`).join("")}</select>`
          : `<input name="${esc(name)}" data-type="${esc(s.type)}" value="${esc(typeof value === "object" ? JSON.stringify(value) : value)}" ${s.required ? "required" : ""}>`;
        return `<div class="row"><label>${esc(name)} ${field}</label> <span class="muted">${esc(s.description || s.type || "")}</span></div>`;
      }).join("") || `<p class="muted">No inputs.</p>`;
    };
    sel.addEventListener("change", fill); fill();
    document.getElementById("trigger").addEventListener("click", async () => {
      const conf = {};
      form.querySelectorAll("[name]").forEach((el) => {
        const type = el.dataset.type; let v = el.value;
        if (v === "") return;
        if (type === "integer" || type === "number") v = Number(v);
        else if (type === "boolean") v = v === "true";
        else if (type === "object" || type === "array") { try { v = JSON.parse(v); } catch { /* Airflow names the field */ } }
        conf[el.name] = v;
      });
      const done = await act(`Start ${sel.value} with ${JSON.stringify(conf)}?`, `/api/actions/dags/${encodeURIComponent(sel.value)}/trigger`, {conf});
      if (done) { selected = done.run_id; selectedDag = done.dag_id; refreshRuns(); }
    });
  }

  async function refreshIncidents() {
    const rows = await get("/api/incidents", {limit: 20});
    incidents.body.innerHTML = rows.length ? `<table><thead><tr><th>Incident</th><th>Status</th><th>What</th><th>Since</th><th class="act"></th></tr></thead><tbody>${rows.map((i) =>
      `<tr data-incident="${esc(i.id)}"><td>${esc(i.id)}</td><td class="${i.status === "resolved" ? "ok" : "bad"}">${esc(i.status)}</td>
       <td>${esc(i.kind)} on ${esc(i.where)} (${esc(i.severity || "")}, ${i.count ?? ""})</td><td>${time(i.opened_at)}</td>
       <td class="act">${["opened", "updated"].includes(i.status) ? `<button data-ack>Acknowledge…</button>` : ""}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No incident.</p>`;
  }
  incidents.body.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-ack]"); if (!b) return;
    const id = b.closest("tr").dataset.incident;
    await act(`Acknowledge ${id}? Its notifications and escalations stop.`, `/api/incidents/${encodeURIComponent(id)}/ack`, {});
    refreshIncidents();
  });

  document.getElementById("run-state").addEventListener("change", refreshRuns);
  poll(refreshRuns, 2000, runs.status);
  poll(refreshRun, 2000, run.status);
  poll(refreshAgents, 5000, agents.status);
  poll(refreshIncidents, 10000, incidents.status);
  startForm().catch((e) => { start.status.textContent = String(e.message || e); });
})();
