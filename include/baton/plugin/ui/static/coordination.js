// The Coordination page: the runs (filtered by workflow and state, Baton's own hidden unless asked for,
// paged, polled), a run's timeline (Gantt of its steps, fan-out items and tries; what people did and why)
// and its dependency map with live states, the agents (load, circuits), starting a run, incidents; and the
// actions, each confirmed, each offered only where the server would accept it: trigger, stop with
// compensation (a running run), reassign a next try (a routed step of a running run that has not
// succeeded, to one of its candidates), open/close a circuit (an agent of the roster), acknowledge.
// On a DAG run's "Baton" tab (only=run) it shows that run alone.
"use strict";
(() => {
  const {get, act, poll, section, esc, fmtS, time, dateTime, chart, params, links, link, remember} = Baton;
  let selected = params.get("run_id") || null;
  let selectedDag = params.get("dag_id") || null;
  const onlyRun = params.get("only") === "run" && selected;
  const runs = onlyRun ? null : section("runs", "Runs", true);
  const queue = onlyRun ? null : section("queue", "Queue", true);  // wide: nine columns, a run id among them
  const run = section("run", "Run", true);
  const agents = onlyRun ? null : section("agents", "Agents");
  const start = onlyRun ? null : section("start", "Start a run");
  const incidents = onlyRun ? null : section("incidents", "Incidents");
  const list = (data, key) => Array.isArray(data) ? data : (data[key] || []);
  const library = get("/api/templates");  // the templates (a DAG of Baton's own has none: no graph to ask for)
  library.catch(() => {});

  // --- the runs ---------------------------------------------------------------------------------------
  const PAGE = 25;
  let cursors = [null];  // the `before` of each page seen: [0] the newest
  if (runs) {
    runs.body.innerHTML = `<div class="row">
      <label>Workflow <input id="run-workflow" list="run-workflows" size="24" maxlength="250" placeholder="every workflow"
        title="a workflow's name (Enter): its runs only"></label><datalist id="run-workflows"></datalist>
      <label>State <select id="run-state"><option value="all">all</option><option value="running">running</option>
        <option value="finished">finished</option></select></label>
      <label title="the monitor's minute, compensation runs, incident pages"><input type="checkbox" id="run-system"> Baton's own runs</label>
      <span class="muted" id="run-page"></span>
      <button id="run-newer" disabled>‹ Newer</button> <button id="run-older" disabled>Older ›</button></div>
      <table id="runs-table"><thead><tr><th>Workflow</th><th>Run</th><th>State</th><th>Progress</th><th>Now</th>
      <th>ETA</th><th>Waiting on people</th><th>Started</th></tr></thead><tbody></tbody></table>`;
    const filters = {workflow: params.get("workflow") || "", state: params.get("state") || "all"};
    document.getElementById("run-state").value = ["all", "running", "finished"].includes(filters.state) ? filters.state : "all";
    const changed = () => {
      cursors = [null];
      remember({workflow: document.getElementById("run-workflow").value.trim(), state: document.getElementById("run-state").value});
      runsPoll.now();
    };
    ["run-workflow", "run-state", "run-system"].forEach((id) => document.getElementById(id).addEventListener("change", changed));
    document.getElementById("run-older").addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); runsPoll.now(); } });
    document.getElementById("run-newer").addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); runsPoll.now(); } });
    runs.body.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-run]"); if (!tr || e.target.closest("a")) return;
      choose(tr.dataset.dag, tr.dataset.run);
    });
    document.getElementById("run-workflow").value = filters.workflow;
    library.then((lib) => {  // suggestions: the templates, then Baton's own
      const names = [...lib.templates.map((t) => t.workflow), "baton_monitor", "baton_compensate", "baton_incident_escalation"];
      document.getElementById("run-workflows").innerHTML = names.map((n) => `<option value="${esc(n)}"></option>`).join("");
    }).catch((error) => { runs.status.textContent = String(error.message || error); });
  }
  let nextCursor = null;
  function progress(r) {
    const p = r.progress || {};
    // a run that did not succeed counts what succeeded (its stopped or failed tasks are done, not succeeded)
    const unfinished = r.state !== "running" && r.state !== "queued" && r.state !== "success";
    const pct = p.total ? Math.round(100 * ((unfinished ? p.succeeded : p.done) || 0) / p.total) : 0;
    const words = unfinished ? `${p.succeeded ?? 0} of ${p.total ?? "?"} succeeded` : `${p.done ?? 0}/${p.total ?? "?"}`;
    return `<div class="bar" title="${esc(words)}"><span style="width:${pct}%"></span></div>${esc(words)}`;
  }
  async function refreshRuns() {
    if (!runs) return;
    const before = cursors[cursors.length - 1];
    const data = await get("/api/dashboard/runs", {state: document.getElementById("run-state").value,
      workflow: document.getElementById("run-workflow").value.trim(), system: document.getElementById("run-system").checked ? "true" : "",
      limit: PAGE, before});
    nextCursor = data.next;
    document.getElementById("run-older").disabled = !data.next;
    document.getElementById("run-newer").disabled = cursors.length < 2;
    document.getElementById("run-page").textContent = `page ${cursors.length}`;
    const rows = list(data, "runs").map((r) => {
      const label = (x) => `${x.step}${x.map_index >= 0 ? `[${x.map_index}]` : ""}${x.agent ? ` (${x.agent})` : ""}`;
      const now = (r.running || []).slice(0, 4).map((x) => link(links.task(r.workflow, r.run_id, x.step, x.map_index), label(x),
        "the task in Airflow: its tries and logs")).join(", ") + (r.running_count > 4 ? ` +${r.running_count - 4}` : "");
      const people = (r.people_pending || []).map((x) => link(links.answer(r.workflow, r.run_id, x.step, x.map_index),
        `${x.step} (${x.kind})`, "answer it on Airflow's Required Actions"));
      const shown = r.state_shown || r.state;
      const why = r.stopped ? `stopped by ${r.stopped.by}: ${r.stopped.reason}` : "";
      const eta = r.state === "running" ? (r.eta_s != null ? fmtS(r.eta_s) : `<span class="muted">${esc(r.eta_note || "–")}</span>`) : "–";
      return `<tr data-run="${esc(r.run_id)}" data-dag="${esc(r.workflow)}" class="${r.run_id === selected ? "selected" : ""}">
        <td>${link(links.dag(r.workflow), r.workflow, "the DAG in Airflow")}</td><td>${esc(r.run_id)}</td>
        <td class="state-${esc(shown)}" title="${esc(why)}">${esc(shown)}</td><td>${progress(r)}</td><td>${now}</td>
        <td>${eta}</td><td>${people.join(", ")}</td><td>${dateTime(r.started_at)}</td></tr>`;
    });
    runs.body.querySelector("tbody").innerHTML = rows.join("") || `<tr><td colspan="8" class="muted">No run ${
      document.getElementById("run-workflow").value ? "of this workflow" : "yet"} in this view.</td></tr>`;
  }
  function choose(dag, runId) {
    selected = runId; selectedDag = dag;
    remember({dag_id: dag, run_id: runId});
    runs?.body.querySelectorAll("tr[data-run]").forEach((x) => x.classList.toggle("selected", x.dataset.run === runId));
    runPoll.now();
  }

  // --- one run: its timeline, map, story and actions ------------------------------------------------------
  run.body.innerHTML = `<p id="run-hint" class="muted">Choose a run above.</p>
    <div class="row act" id="run-actions" hidden>
      <input id="stop-reason" size="28" maxlength="1000" placeholder="why stop it (kept with its undo)">
      <button class="danger" id="stop">Stop and compensate…</button>
      <span id="reassign-controls"><label>Reassign the next try of <select id="re-step"></select> to <select id="re-agent"></select></label>
      <label><input type="checkbox" id="re-now" checked> start it now</label> <button id="reassign">Reassign…</button></span></div>
    <p class="muted" id="run-ended" hidden></p>
    <div id="run-shown" hidden><div class="chart" id="gantt"></div><div class="chart small" id="graph"></div><ul id="markers"></ul></div>`;

  // A bar's lane: a step's tries share one; a fan-out item has its own; an undo (compensation) has its own.
  const lane = (b) => b.kind === "compensation" ? `undo ${b.step}` :
    b.kind === "item" ? `${b.step}[${b.map_index >= 0 ? b.map_index + "." : ""}${b.subtask ?? ""}]` :
    b.step + (b.map_index >= 0 ? `[${b.map_index}]` : "");
  const short = (text, n = 26) => text.length > n ? text.slice(0, n - 1) + "…" : text;
  function gantt(data) {
    const bars = (data.bars || []).filter((b) => b.start);
    const lanes = [...new Set(bars.map(lane))];
    const color = {success: "#2da44e", failed: "#cf222e", running: "#0969da", skipped: "#8c959f", up_for_retry: "#d4a72c"};
    const points = bars.map((b) => ({
      value: [lanes.indexOf(lane(b)), Date.parse(b.start), b.end ? Date.parse(b.end) : Date.now(), b.agent || "",
              b.try_number || b.attempt || 1, b.state, b.kind, b.offline ? "offline model" : ""],
      itemStyle: {color: color[b.state] || "#0969da", borderColor: b.kind === "compensation" ? "#8250df" : undefined,
                  borderWidth: b.kind === "compensation" ? 2 : 0}}));
    const width = Math.min(26, Math.max(6, ...lanes.map((l) => l.length)));  // the lane names' column fits them
    chart(document.getElementById("gantt")).setOption({
      tooltip: {formatter: (p) => `${esc(lanes[p.value[0]])} · ${p.value[6]} ${p.value[4]} · ${esc(p.value[3] || "skill")} · ${p.value[5]}${p.value[7] ? " · " + p.value[7] : ""}<br>${time(p.value[1])} – ${time(p.value[2])} (${fmtS((p.value[2] - p.value[1]) / 1000)})`},
      grid: {left: 16 + width * 7, right: 20, top: 10, bottom: 30}, xAxis: {type: "time", axisLabel: {formatter: (v) => time(v)}},
      yAxis: {type: "category", data: lanes, inverse: true, axisLabel: {formatter: (v) => short(v), width: width * 7, overflow: "truncate"}},
      dataZoom: lanes.length > 14 ? [{type: "slider", yAxisIndex: 0, start: 0, end: Math.min(100, 1400 / lanes.length)}] : [],
      series: [{type: "custom", encode: {x: [1, 2], y: 0}, data: points, renderItem: (p, api) => {
        const a = api.coord([api.value(1), api.value(0)]), b = api.coord([api.value(2), api.value(0)]);
        const h = api.size([0, 1])[1] * 0.6;
        return {type: "rect", shape: {x: a[0], y: a[1] - h / 2, width: Math.max(2, b[0] - a[0]), height: h},
                style: api.style({text: [api.value(3), points[p.dataIndex].value[7]].filter(Boolean).join(" · "), textFill: "#fff", fontSize: 10})};
      }}],
    }, true);
    const items = (data.markers || []).map((m) => `<li data-kind="${esc(m.kind)}">${time(m.at)} ${story(m, data)}</li>`);
    items.push(...bars.filter((b) => b.kind === "compensation").map((b) =>
      `<li data-kind="compensation">${time(b.start)} <b>Undo</b> of ${esc(b.step)}: ${esc(b.state)}</li>`));
    if (data.offline_calls) items.push(`<li class="warn">${Number(data.offline_calls)} model answer(s) of this run came from Baton's offline model (made-up data): the bars marked "offline model".</li>`);
    if (data.truncated) items.push(`<li class="warn">Only the first bars of this run are shown (it has ${data.events_read} events).</li>`);
    document.getElementById("markers").innerHTML = items.join("");
  }
  // What happened, in words: who did what and why
  function story(m, data) {
    const where = esc(m.step || "") + (m.map_index >= 0 ? `[${m.map_index}]` : "");
    const by = (who) => who ? ` by <b>${esc(who)}</b>` : "";
    switch (m.kind) {
      case "stopped": return `<b>Stopped</b>${by(m.by)}${m.reason ? `: “${esc(m.reason)}”` : ""}${(m.questions_closed || []).length
        ? `; closed the question(s) still open: ${esc(m.questions_closed.join(", "))}` : ""}`;
      case "question": {
        const asked = `<b>Question</b> (${esc(m.question)}) at ${where}`;
        if (m.open) return `${asked}: open — ${link(links.answer(data.workflow, data.run_id, m.step, m.map_index), "answer it in Airflow")}`;
        if (m.timed_out) return `${asked}: no answer in time (${time(m.answered_at)})`;
        if (String(m.by || "").startsWith("run stopped by")) return `${asked}: closed, ${esc(m.by)}`;
        return `${asked}: answered${by(m.by)} at ${time(m.answered_at)}${(m.chosen || []).length ? `: <b>${esc(m.chosen.join(", "))}</b>` : ""}`;
      }
      case "reassignment": return m.by ? `<b>Reassigned</b> the next try of ${where} to ${esc(m.to_agent)}${by(m.by)}`
        : `<b>Reassigned</b> ${where}${m.subtask != null ? ` item ${esc(m.subtask)}` : ""}: ${esc(m.from_agent)} → ${esc(m.to_agent || "another agent")} (routing)`;
      case "circuit_opened": return `<b>Circuit opened</b> for ${esc(m.agent)} (its work goes to other capable agents)`;
      case "conflict": return `<b>Context conflict</b> on ${esc(m.key)} at ${where} (${esc(m.strategy)}): ${m.resolution
        ? `${esc(m.resolution.outcome)}${m.resolution.version != null ? ` → v${m.resolution.version}` : ""}` : "unresolved"}`;
      case "saga_started": return `<b>Compensation started</b> (undoing the completed steps, newest first)`;
      case "saga_completed": return `<b>Compensation ended</b>: ${esc(m.outcome || "")}`;
      default: return `<b>${esc(m.kind)}</b> ${where}`;
    }
  }

  const graphs = {};  // a workflow's graph is its template's: fetched once a page, its states every poll
  async function dependencyMap(dag, states) {
    const healthy = (await library).templates.some((t) => t.ok && t.workflow === dag);
    const g = graphs[dag] ||= healthy ? await get(`/api/templates/${encodeURIComponent(dag)}/graph`) : {nodes: [], edges: []};
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

  // A select redrawn only when its options change, keeping the person's choice (a refresh between choosing
  // and confirming must never put another value into the confirmation)
  function options(select, values) {
    const key = JSON.stringify(values);
    if (select.dataset.values === key) return;
    const chosen = select.value;
    select.innerHTML = values.map((v) => `<option>${esc(v)}</option>`).join("");
    select.dataset.values = key;
    if (values.includes(chosen)) select.value = chosen;
  }
  async function refreshRun() {
    const hint = document.getElementById("run-hint"), actions = document.getElementById("run-actions");
    if (!selected) { actions.hidden = true; return; }
    const data = await get(`/api/dashboard/runs/${encodeURIComponent(selected)}/gantt`);
    selectedDag = selectedDag || data.workflow;
    const shown = document.getElementById("run-shown");
    if (shown.hidden) { shown.hidden = false; document.querySelectorAll("#run-shown .chart").forEach((el) => echarts.getInstanceByDom(el)?.resize()); }
    const state = data.stopped ? "stopped" : data.state;
    hint.innerHTML = `${esc(selectedDag)} · ${esc(selected)} · <span class="state-${esc(state)}">${esc(state)}</span> · ` +
      `${link(links.run(selectedDag, selected), "open in Airflow")} (its tasks and logs)` +
      standing((await get(`/api/dashboard/runs/${encodeURIComponent(selected)}/priority`)).priority);
    gantt(data);
    const states = {};
    (data.bars || []).forEach((b) => { if (b.kind === "try" && !(b.map_index >= 0)) states[b.step] = b.state; });
    const g = await dependencyMap(selectedDag, states);
    const running = data.state === "running";
    actions.hidden = !running;
    const ended = document.getElementById("run-ended");
    ended.hidden = running;
    ended.textContent = running ? "" : `This run has ended (${state}): nothing to stop, and no try is to come to reassign.`;
    // the routed steps whose next try can still come (not succeeded), each offering only its candidates
    const open = g.nodes.filter((n) => (n.candidates || []).length && states[n.id] !== "success" && states[n.id] !== "skipped");
    document.getElementById("reassign-controls").hidden = !open.length;
    const stepSelect = document.getElementById("re-step");
    options(stepSelect, open.map((n) => n.id));
    const step = open.find((n) => n.id === stepSelect.value);
    options(document.getElementById("re-agent"), step ? step.candidates : []);
  }
  document.getElementById("re-step").addEventListener("change", () => runPoll.now());
  document.getElementById("stop").addEventListener("click", async () => {
    if (!selected || !selectedDag) return Baton.toast("Choose a run first", true);
    const reason = document.getElementById("stop-reason").value.trim() || "emergency stop";
    const done = await act(`Stop run ${selected} of ${selectedDag} and compensate its completed steps? Why: “${reason}”`,
      `/api/actions/dags/${encodeURIComponent(selectedDag)}/runs/${encodeURIComponent(selected)}/stop`, {reason});
    if (done) { runPoll.now(); runsPoll?.now(); }
  });
  document.getElementById("reassign").addEventListener("click", async () => {
    const step = document.getElementById("re-step").value, agent = document.getElementById("re-agent").value;
    if (!selected || !step || !agent) return Baton.toast("Choose a run, a routed step and one of its agents", true);
    const now = document.getElementById("re-now").checked;
    await act(`Give the next try of ${step} (run ${selected}) to ${agent}${now ? ", starting now" : ""}?`,
      `/api/actions/dags/${encodeURIComponent(selectedDag)}/runs/${encodeURIComponent(selected)}/steps/${encodeURIComponent(step)}/reassign`,
      {agent, retry_now: now});
    runPoll.now();
  });

  // Where the run stood in Airflow's queue as it started, and why (priority.assigned)
  function standing(p) {
    if (!p) return "";
    const risk = p.miss_risk == null ? "" : ` · deadline miss risk ${(100 * p.miss_risk).toFixed(0)} %`;
    const finish = p.predicted_finish ? ` · predicted finish ${dateTime(p.predicted_finish)} (p90 ${fmtS(p.predicted_p90_s)})` : "";
    return `<br><span id="run-priority">Priority ${esc(p.level)} (the ${esc(p.level_from)}'s) · start by ${dateTime(p.start_by)}` +
      `${finish}${risk} · ${esc(p.reason)}</span>`;
  }

  // --- the queue: Baton's tasks not started, in the order Airflow's scheduler takes them -----------------
  async function refreshQueue() {
    if (!queue) return;
    const data = await get("/api/dashboard/queue", {limit: 50});
    queue.body.innerHTML = data.queue.length ? `<table id="queue-table"><thead><tr><th>#</th><th>Workflow</th><th>Run</th>
      <th>Task</th><th>State</th><th>Level</th><th>Start by</th><th>Waiting</th><th>Why</th></tr></thead><tbody>${data.queue.map((q) =>
      `<tr data-queue-dag="${esc(q.dag_id)}" data-queue-run="${esc(q.run_id)}"><td>${q.position}</td><td>${esc(q.dag_id)}</td><td>${esc(q.run_id)}</td>
       <td>${esc(q.task_id)}${q.map_index >= 0 ? `[${q.map_index}]` : ""}</td><td>${esc(q.state)}</td><td>${esc(q.level ?? "")}</td>
       <td>${q.start_by ? dateTime(q.start_by) : ""}</td><td>${fmtS(q.waiting_s)}</td><td>${esc(q.reason || "")}</td></tr>`).join("")}</tbody></table>` +
      (data.truncated ? `<p class="muted">The first ${data.limit} shown.</p>` : "")
      : `<p class="muted">No task of Baton's is waiting: every one that can run is running.</p>`;
  }
  queue?.body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-queue-run]"); if (tr) choose(tr.dataset.queueDag, tr.dataset.queueRun);
  });

  // --- agents --------------------------------------------------------------------------------------------
  let roster = null;  // every agent of the roster, called yet or not (its stats come from the store)
  async function refreshAgents() {
    if (!agents) return;
    roster = roster || (await get("/api/templates/roster")).agents;
    const stats = Object.fromEntries(list(await get("/api/dashboard/agents"), "agents").map((a) => [a.agent, a]));
    const known = new Set(roster.map((a) => a.agent));
    const rows = [...roster.map((a) => ({...a, ...(stats[a.agent] || {})})),
                  ...Object.values(stats).filter((a) => !known.has(a.agent))];  // no longer in the roster: its history
    agents.body.innerHTML = `<table><thead><tr><th>Agent</th><th>Calls (1 h)</th><th>Failures</th><th>p95</th>
      <th>Slots in use</th><th>Waiting</th><th>Circuit</th><th>Spend (24 h)</th><th class="act"></th></tr></thead><tbody>${rows.map((a) => {
      const c = a.circuit || {}; const open = c.state && c.state !== "closed";
      // a circuit is opened only for an agent of the roster (the server refuses others); closing is always offered
      const button = open ? `<button data-circuit="close">Close circuit…</button>`
        : known.has(a.agent) ? `<button data-circuit="open">Open circuit…</button>` : `<span class="muted" title="not in agents.yaml">retired</span>`;
      return `<tr data-agent="${esc(a.agent)}"><td>${esc(a.agent)}</td><td>${a.calls_1h ?? 0}</td>
        <td class="${a.failures_1h ? "bad" : ""}">${a.failures_1h ?? 0}</td>
        <td>${fmtS(a.p95_latency_s)}</td><td>${a.slots_in_use ?? 0}</td>
        <td${a.next_waiting ? ` title="next: ${esc(a.next_waiting.task)}, start by ${esc(a.next_waiting.start_by)}"` : ""}>${a.waiting ?? 0}</td>
        <td class="${open ? "bad" : "ok"}">${esc(c.state || "closed")}</td><td>${a.spend_24h ? "$" + Number(a.spend_24h).toFixed(4) : "–"}${a.budget_headroom ? ` <span class="muted">(${(100 * (a.budget_headroom.left ?? a.budget_headroom.share_left ?? 0)).toFixed(0)} % left)</span>` : ""}</td>
        <td class="act">${button}</td></tr>`;
    }).join("")}</tbody></table>`;
  }
  agents?.body.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-circuit]"); if (!b) return;
    const agent = b.closest("tr").dataset.agent, open = b.dataset.circuit === "open";
    await act(`${open ? "Open" : "Close"} the circuit of ${agent}?${open ? " Routing sends its work to other capable agents." : ""}`,
      `/api/actions/agents/${encodeURIComponent(agent)}/circuit`, {open});
    agentsPoll.now();
  });

  // --- start a run: the template's inputs, described as Airflow's trigger form describes them -----------
  const HINT = {string: "text", integer: "a whole number", number: "a number", boolean: "true or false", array: "a JSON list", object: "a JSON object"};
  async function startForm() {
    const lib = await library;
    const healthy = lib.templates.filter((t) => t.ok);
    start.body.innerHTML = `<div class="row"><select id="start-workflow">${healthy.map((t) => `<option>${esc(t.workflow)}</option>`).join("")}</select>
      <span class="muted" id="start-about"></span></div><form id="start-inputs"></form><div class="row act"><button id="trigger">Start…</button></div>`;
    const sel = document.getElementById("start-workflow");
    const form = document.getElementById("start-inputs");
    const fill = () => {
      const t = healthy.find((x) => x.workflow === sel.value) || {inputs: {}};
      document.getElementById("start-about").textContent = t.description || "";
      form.innerHTML = Object.entries(t.inputs || {}).map(([name, s]) => {
        const value = s.default ?? "";
        const field = s.enum ? `<select name="${esc(name)}">${s.enum.map((v) => `<option ${v === value ? "selected" : ""}>${esc(v)}</option>`).join("")}</select>`
          : `<input name="${esc(name)}" data-type="${esc(s.type)}" value="${esc(typeof value === "object" ? JSON.stringify(value) : value)}" ${s.required ? "required" : ""}>`;
        const about = s.description || HINT[s.type] || "";
        return `<div class="row"><label title="${esc(name)}">${esc(s.title || name)}${s.required ? " *" : ""} ${field}</label> <span class="muted">${esc(about)}</span></div>`;
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
      if (done) { choose(done.dag_id, done.run_id); runsPoll.now(); }
    });
  }

  // --- incidents -----------------------------------------------------------------------------------------
  async function refreshIncidents() {
    if (!incidents) return;
    const rows = await get("/api/incidents", {limit: 20});
    incidents.body.innerHTML = rows.length ? `<table><thead><tr><th>Incident</th><th>Status</th><th>What</th><th>Since</th><th class="act"></th></tr></thead><tbody>${rows.map((i) =>
      `<tr data-incident="${esc(i.id)}"><td>${esc(i.id)}</td><td class="${i.status === "resolved" ? "ok" : "bad"}">${esc(i.status)}</td>
       <td>${esc(i.kind)} on ${esc(i.where)} (${esc(i.severity || "")}, ${i.count ?? ""})</td><td>${dateTime(i.opened_at)}</td>
       <td class="act">${["opened", "updated"].includes(i.status) ? `<button data-ack>Acknowledge…</button>` : ""}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No incident: the monitor opens one when a detector fires (see Monitoring in the docs).</p>`;
  }
  incidents?.body.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-ack]"); if (!b) return;
    const id = b.closest("tr").dataset.incident;
    await act(`Acknowledge ${id}? Its notifications and escalations stop.`, `/api/incidents/${encodeURIComponent(id)}/ack`, {});
    incidentsPoll.now();
  });

  const idle = {now: () => {}};
  const runsPoll = runs ? poll(refreshRuns, 2000, runs.status) : idle;
  const runPoll = poll(refreshRun, 2000, run.status);
  const agentsPoll = agents ? poll(refreshAgents, 5000, agents.status) : idle;
  if (queue) poll(refreshQueue, 5000, queue.status);
  const incidentsPoll = incidents ? poll(refreshIncidents, 10000, incidents.status) : idle;
  if (start) startForm().catch((e) => { start.status.textContent = String(e.message || e); });
  // Airflow's timezone or theme changed: the times and colours drawn are redrawn at once
  document.addEventListener("baton:frame", () => { runsPoll.now(); runPoll.now(); incidentsPoll.now(); });
})();
