// The Management page: the template library (with the exact errors of a broken template), a definition
// editor validated live against the template language (errors before anything is saved; the plan it
// compiles to as a graph; what it changes), rollouts, spend against budgets, incidents with their
// post-incident reports, the failures grouped into error patterns (what is new or rising in the last hour),
// and the workflow analytics of a chosen window with their trends: each figure as the API words it (what it
// counts over which runs in its title), so that a slowdown is not read as a speed-up nor one run as a p95.
// Every time is shown in Airflow's timezone and format (Baton.time, Baton.dateTime).
"use strict";
(() => {
  const {get, post, poll, section, esc, fmtS, chart} = Baton;
  // where an empty panel's "No ..." sends a reader: a page of Baton's documentation (docs/ of the repository)
  const docs = (title, page) => `see <i>${esc(title)}</i> in Baton's docs (<code>docs/${esc(page)}</code>)`;
  const analytics = section("analytics", "Analytics", true);
  const rollouts = section("rollouts", "Rollouts");
  const evaluations = section("evaluations", "Evaluations");
  const experiments = section("experiments", "Experiments (variants)");
  const spend = section("spend", "Spend and budgets");
  const library = section("library", "Templates", true);
  const editor = section("edit", "Editor", true);
  const incidents = section("incident-reports", "Incidents", true);
  const errors = section("errors", "Error patterns", true);

  let templates = [];
  async function refreshLibrary() {
    templates = (await get("/api/templates")).templates;
    library.body.innerHTML = `<table><thead><tr><th>Workflow</th><th>File</th><th>Version</th><th>Owner</th><th>Schedule</th>
      <th>Validation</th><th>Rollout</th></tr></thead><tbody>${templates.map((t) => `<tr data-workflow="${esc(t.workflow)}">
      <td><a href="#edit" data-open="${esc(t.workflow)}">${esc(t.workflow)}</a></td><td>${esc(t.file)}</td><td>${t.ok ? "v" + t.version : "–"}</td>
      <td>${esc(t.owner || "")}</td><td>${esc(t.schedule || "–")}</td>
      <td class="${t.ok && !t.errors?.length ? "ok" : "bad"}">${t.ok ? "valid" : ""}${t.errors?.length ? `<pre>${esc(t.errors.join("\n"))}</pre>` : ""}</td>
      <td>${t.rollout ? `to ${esc(t.rollout.to)}` : ""}</td></tr>`).join("")}</tbody></table>`;
  }
  library.body.addEventListener("click", (e) => {
    const a = e.target.closest("a[data-open]"); if (!a) return;
    e.preventDefault(); openTemplate(a.dataset.open);
  });

  editor.body.innerHTML = `<p class="muted">Checked as you type against the template language and the roster, as
    <code>baton validate</code> does. Nothing is saved here: templates are deployed with the DAG bundle, so
    <b>Download</b> the file and open a pull request (review, history and your deployment's checks apply).</p>
    <div class="row"><label>File <input id="file" value="my_workflow.yaml" size="32"></label>
    <button id="download">Download</button> <span id="verdict" role="status"></span></div>
    <textarea id="editor" spellcheck="false" rows="16" placeholder="Open a template above (its name), or write a new one here."></textarea>
    <ul class="issues" id="issues"></ul>
    <div id="plan-facts" class="muted"></div><div class="chart" id="plan" hidden></div><pre id="diff"></pre>`;
  const text = document.getElementById("editor"), file = document.getElementById("file");
  let pending;
  async function openTemplate(workflow) {
    const src = await get(`/api/templates/${encodeURIComponent(workflow)}/source`);
    file.value = src.file; text.value = src.text; check();
    editor.el.scrollIntoView();
  }
  async function check() {
    const verdict = document.getElementById("verdict");
    verdict.textContent = "checking…";
    let answer;
    try { answer = await post("/api/templates/validate", {file: file.value, text: text.value}, false); }
    catch (error) { verdict.textContent = String(error.message || error); verdict.className = "bad"; return; }
    document.getElementById("issues").innerHTML = answer.issues.map((i) => `<li>${esc(i.text)}</li>`).join("");
    verdict.textContent = answer.ok ? "valid" : `${answer.issues.length} error(s)`;
    verdict.className = answer.ok ? "ok" : "bad";
    document.getElementById("plan").hidden = !answer.ok;
    if (!answer.ok) {  // what the last valid text compiled to is not this text's
      document.getElementById("plan-facts").textContent = document.getElementById("diff").textContent = "";
      return;
    }
    document.getElementById("plan-facts").textContent = `${answer.workflow} v${answer.version} · ${answer.steps} step(s) · owner ${answer.owner}`;
    chart(document.getElementById("plan")).setOption({
      tooltip: {formatter: (p) => p.dataType === "node" ? `${esc(p.data.name)}<br>${esc(p.data.who)}` : ""},
      series: [{type: "graph", layout: "none", roam: true, edgeSymbol: ["none", "arrow"], label: {show: true, position: "bottom"},
        data: answer.graph.nodes.map((n) => ({name: n.id, x: n.x * 160, y: n.y * 70, who: n.who, symbolSize: 22})),
        links: answer.graph.edges}],
    }, true);
    const d = answer.diff;
    document.getElementById("diff").textContent = d ? `Against the deployed v${d.version[0]}: ${d.breaking} breaking change(s)\n` +
      d.changes.map((c) => `${c.breaking ? "BREAKING " : ""}${c.where}: ${c.what}`).join("\n") : "A new template.";
  }
  text.addEventListener("input", () => { clearTimeout(pending); pending = setTimeout(check, 300); });
  file.addEventListener("change", check);
  document.getElementById("download").addEventListener("click", () => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text.value], {type: "application/yaml"}));
    a.download = file.value; a.click();
  });

  // the windows a panel looks back over, in hours (24 h chosen at first): the analytics' and the error patterns'
  const WINDOWS = [[24, "24 h"], [168, "7 days"], [720, "30 days"]];
  const windowSelect = (id, windows) => `<label>Window <select id="${id}">${windows.map(([hours, name]) =>
    `<option value="${hours}"${hours === 24 ? " selected" : ""}>${name}</option>`).join("")}</select></label>`;
  analytics.body.innerHTML = `<div class="row">${windowSelect("hours", [[1, "1 h"], ...WINDOWS])}</div>
    <ul id="figures"></ul><div class="chart" id="trend"></div><ul id="suggestions"></ul>`;
  async function refreshAnalytics() {
    const a = await get("/api/dashboard/analytics", {hours: document.getElementById("hours").value});
    // each figure as the API reads it: the value, what it is and the counts behind it, over which runs (title)
    document.getElementById("figures").innerHTML = (a.readings || []).map((r) =>
      `<li data-figure="${esc(r.figure)}" title="${esc(r.over)}"><b>${esc(r.value)}</b> <span class="muted">${esc(r.label)}</span></li>`).join("");
    const buckets = a.trend?.buckets || [];
    const enough = a.trend?.min_percentile_runs ?? 20;  // a bucket's p95 is drawn from this many finished runs on
    const long = Number(a.hours) > 24;
    const axisTime = (ms) => { const iso = new Date(ms).toISOString(); return long ? Baton.dateTime(iso).slice(5, 16) : Baton.time(iso).slice(0, 5); };
    const tip = (points) => {
      const b = buckets[points[0]?.dataIndex]; if (!b) return "";
      return [`${esc(Baton.dateTime(b.start))} (${a.trend.bucket_hours} h)`, `${b.runs} run(s) started, ${b.failures} failed`,
        b.timed_runs ? `longest ${fmtS(b.max_duration_s)} of ${b.timed_runs} finished` : "none finished",
        b.timed_runs >= enough ? `p95 duration ${fmtS(b.p95_duration_s)}` : `(a p95 needs ${enough} finished runs)`].join("<br>");
    };
    chart(document.getElementById("trend")).setOption({
      tooltip: {trigger: "axis", formatter: tip}, legend: {top: 0}, grid: {left: 50, right: 50, top: 40, bottom: 30},
      xAxis: {type: "time", axisLabel: {formatter: axisTime}}, yAxis: [{type: "value", name: "runs"}, {type: "value", name: "s"}],
      series: [{name: "runs", type: "bar", data: buckets.map((t) => [t.start, t.runs])},
               {name: "failures", type: "bar", data: buckets.map((t) => [t.start, t.failures])},
               {name: "longest run", type: "line", yAxisIndex: 1, connectNulls: true,
                data: buckets.map((t) => [t.start, t.max_duration_s])},
               {name: `p95 duration (${enough}+ runs)`, type: "line", yAxisIndex: 1, connectNulls: true,
                data: buckets.map((t) => [t.start, t.timed_runs >= enough ? t.p95_duration_s : null])}],
    }, true);
    const target = (t) => Object.entries(t || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    document.getElementById("suggestions").innerHTML = (a.suggestions || []).map((s) =>
      `<li data-kind="${esc(s.kind)}"><b>${esc(s.try)}</b>${s.target && Object.keys(s.target).length ? ` (${esc(target(s.target))})` : ""}: ${esc(s.why)}</li>`).join("")
      || `<li class="muted">No suggestion for this window: one appears when its figures show something worth acting on (a step failing
        again and again, a step slow enough to matter to its runs, an agent's circuit opening, runs waiting between their steps,
        many questions to people, conflicts left to people); ${docs("The pages", "pages.md")}.</li>`;
  }
  document.getElementById("hours").addEventListener("change", refreshAnalytics);

  async function refreshRollouts() {
    const rows = (await get("/api/rollouts")).rollouts;
    rollouts.body.innerHTML = rows.length ? rows.map((r) => `<p><b>${esc(r.workflow)}</b> v${r.from_version} → v${r.to_version}:
      <span class="${r.status === "rolled back" || r.gated ? "bad" : "ok"}">${esc(r.gated ? "gated" : r.status)}</span>, ${r.share} % of new runs (stage ${r.stage})</p>
      ${r.gated ? `<p class="bad">${esc(r.gated)}</p>` : ""}
      <table><tr><th></th><th>ended</th><th>failure rate</th><th>in flight</th></tr>${["stable", "canary"].map((arm) =>
      `<tr><td>v${arm === "stable" ? r.from_version : r.to_version}</td><td>${r.runs[arm].runs}</td>
       <td>${r.runs[arm].failure_rate == null ? "–" : (100 * r.runs[arm].failure_rate).toFixed(1) + " %"}</td><td>${r.in_flight[arm]}</td></tr>`).join("")}</table>
      <p class="muted">${esc(r.guardrails)}</p><ul>${r.decisions.map((d) => `<li>${esc(Baton.dateTime(d.at))} ${esc(d.type)} → ${d.share} %</li>`).join("")}</ul>`).join("")
      : `<p class="muted">No rollout: a template with a <code>rollout:</code> block and its new version in
        <code>dags/versions/</code> fills this with each stage and its guardrails; ${docs("Versions and rollouts", "improving.md")}.</p>`;
  }

  // each workflow's recorded evaluations (baton eval --record), newest first: a version's share of the checks
  // held against the stable version's on the same cases, and the cases that regressed
  async function refreshEvaluations() {
    const rows = (await get("/api/evaluations")).evaluations;
    const pct = (v) => v == null ? "–" : `${(100 * v).toFixed(1)} %`;
    const shown = rows.filter((w) => w.evaluations.length);
    evaluations.body.innerHTML = shown.length ? shown.map((w) => `<p><b>${esc(w.workflow)}</b></p>
      <table><thead><tr><th>When</th><th>Version</th><th>Checks held</th><th>Stable</th><th>Mean difference (95 % CI)</th>
      <th>Verdict</th><th>Cases that regressed</th></tr></thead><tbody>${w.evaluations.map((e) => `<tr>
      <td>${esc(e.at ? Baton.dateTime(e.at) : "")}</td><td>v${e.version}${e.variant ? " " + esc(e.variant) : ""} <span class="muted">${esc(e.digest)}</span></td>
      <td>${pct(e.share)}</td><td>${pct(e.share_stable)}</td>
      <td>${e.mean_difference == null ? "–" : `${e.mean_difference.toFixed(3)} (${e.interval.map((x) => x.toFixed(3)).join(" to ")})`}</td>
      <td class="${e.passed ? "ok" : "bad"}">${e.passed ? "passed" : "failed"}</td>
      <td>${Object.entries(e.regressed).map(([c, checks]) => `${esc(c)}: ${esc(checks.join(", "))}`).join("<br>")}</td></tr>`).join("")}</tbody></table>`).join("")
      : `<p class="muted">No evaluation recorded: <code>baton eval WORKFLOW --version N --record</code> runs a workflow's dataset
        (<code>dags/evals/</code>) and records it here; a rollout of a workflow with a dataset waits for its new version to pass;
        ${docs("Evaluation datasets", "improving.md")}.</p>`;
  }

  async function refreshExperiments() {
    const rows = (await get("/api/experiments")).experiments;
    const pct = (v) => v == null ? "–" : `${(100 * v).toFixed(1)} %`;
    experiments.body.innerHTML = rows.length ? rows.map((x) => `<p><b>${esc(x.experiment)}</b>:
      <span class="${x.status === "running" ? "" : "ok"}">${esc(x.status)}${x.winner ? ` → ${esc(x.winner)}` : ""}</span></p>
      <table><tr><th>arm</th><th>weight</th><th>changes</th><th>runs</th><th>success</th><th>failures</th><th>mean latency</th></tr>
      ${Object.entries(x.arms).map(([arm, a]) => { const c = x.counts[arm] || {};
        return `<tr><td>${esc(arm)}${arm === x.control ? " (control)" : ""}</td><td>${a.weight}</td><td>${esc(a.changes.join(", ") || "–")}</td>
          <td>${c.runs ?? 0}</td><td>${pct(c.success_rate)}</td><td>${pct(c.failure_rate)}</td><td>${fmtS(c.mean_latency_s)}</td></tr>`; }).join("")}
      </table><p class="muted">${esc(x.reason)}${x.decided_by ? ` (approved by ${esc(x.decided_by)})` : ""}</p>
      ${x.proposal ? `<p class="row act" data-experiment="${esc(x.workflow)}/${esc(x.step)}">Proposed: <b>${esc(x.proposal.status)} ${esc(x.proposal.variant)}</b>
        <button data-settle="true">Approve…</button> <button data-settle="false">Keep ${esc(x.control)}…</button></p>` : ""}`).join("")
      : `<p class="muted">No experiment: a step that declares <code>variants:</code> fills this with each arm's runs and the
        decision; ${docs("Variants", "improving.md")}.</p>`;
  }

  experiments.body.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-settle]"); if (!b) return;
    const [workflow, step] = b.closest("[data-experiment]").dataset.experiment.split("/");
    const accept = b.dataset.settle === "true";
    await Baton.act(accept ? `Apply the decision proposed for ${workflow}.${step}?` : `Keep the control of ${workflow}.${step} for every run?`,
      `/api/actions/dags/${encodeURIComponent(workflow)}/experiments/${encodeURIComponent(step)}/settle`, {accept});
    refreshExperiments();
  });

  async function refreshSpend() {
    const c = await get("/api/cost", {days: 7, by: "workflow"});
    spend.body.innerHTML = `${c.budgets_error ? `<pre class="bad">${esc(c.budgets_error)}</pre>` : ""}
      <table><thead><tr><th>Budget</th><th>Window</th><th>Spent</th><th>Limit</th><th>Used</th><th>Forecast</th></tr></thead><tbody>
      ${c.budgets.map((b) => `<tr><td>${esc(b.budget)}</td><td>${esc(b.window)}</td><td>$${Number(b.cost).toFixed(4)}</td>
        <td>${b.limit_cost ? "$" + b.limit_cost : (b.limit_tokens ? b.limit_tokens + " tokens" : "–")}</td>
        <td class="${b.used >= 1 ? "bad" : b.used >= 0.8 ? "warn" : ""}">${(100 * b.used).toFixed(0)} %</td>
        <td>${b.forecast == null ? "–" : (100 * b.forecast).toFixed(0) + " %"}</td></tr>`).join("") || `<tr><td colspan="6" class="muted">No budget: declare one in <code>dags/budgets.yaml</code>
        beside your templates to see its spend, limit and forecast here; ${docs("Budgets", "budgets.md")}.</td></tr>`}
      </tbody></table>${c.spend.length ? "" : `<p class="muted">No model spend in the last 7 days: model calls with a cost fill
        the chart (per workflow); ${docs("Budgets", "budgets.md")}.</p>`}<div class="chart small" id="spend-chart"></div>`;
    chart(document.getElementById("spend-chart")).setOption({
      tooltip: {}, grid: {left: 140, right: 20, top: 10, bottom: 30}, xAxis: {type: "value", name: "$ (7 days)"},
      yAxis: {type: "category", data: c.spend.map((l) => l.key), inverse: true},
      series: [{type: "bar", data: c.spend.map((l) => l.cost)}],
    }, true);
  }

  async function refreshIncidents() {
    const rows = await get("/api/incidents", {limit: 20});
    incidents.body.innerHTML = rows.length ? `<table><thead><tr><th>Incident</th><th>Status</th><th>What</th><th>Opened</th></tr></thead><tbody>${rows.map((i) =>
      `<tr><td><a href="#" data-report="${esc(i.id)}">${esc(i.id)}</a></td><td>${esc(i.status)}</td><td>${esc(i.kind)} on ${esc(i.where)}</td><td>${esc(Baton.dateTime(i.opened_at))}</td></tr>`).join("")}</tbody></table><pre id="report"></pre>`
      : `<p class="muted">No incident: the monitor opens one when a detector of <code>dags/monitoring.yaml</code> fires (failures,
        latency, a missed schedule, ...) and closes it when the signal recovers; ${docs("The monitor and incidents", "monitor.md")}.</p>`;
  }
  incidents.body.addEventListener("click", async (e) => {
    const a = e.target.closest("a[data-report]"); if (!a) return;
    e.preventDefault();
    const r = (await get(`/api/incidents/${encodeURIComponent(a.dataset.report)}`)).report;
    document.getElementById("report").textContent = `Post-incident report ${a.dataset.report}: detected in ${fmtS(r.mttd_s)}, recovered in ${fmtS(r.mttr_s)}\n` +
      JSON.stringify(r, null, 2);
  });

  const SHOWN = 20;  // patterns drawn; the API sends at most this many and says how many there are
  errors.body.innerHTML = `<div class="row">${windowSelect("error-hours", WINDOWS)}
    <span class="muted">grouped by message (numbers, ids, times, values and addresses masked), step and agent; new or rising: in the last hour</span></div>
    <div id="error-patterns"></div>`;
  async function refreshErrors() {
    const hours = document.getElementById("error-hours").value;
    const e = await get("/api/errors", {hours, recent: 1, limit: SHOWN});
    const change = {new: "bad", rising: "bad", quiet: "ok"};
    const run = (p, r) => `<a href="coordination?dag_id=${encodeURIComponent(p.workflow)}&run_id=${encodeURIComponent(r)}">${esc(r)}</a>`;
    document.getElementById("error-patterns").innerHTML = e.patterns.length ? `<table><thead><tr><th>Failures</th><th>Last hour</th>
      <th>Change</th><th>Where</th><th>Error</th><th>Last seen</th><th>Runs</th></tr></thead><tbody>${e.patterns.map((p) =>
      `<tr data-where="${esc(p.workflow)}.${esc(p.step)}"><td>${p.count}</td><td>${p.recent}</td><td class="${change[p.change] || ""}">${esc(p.change)}</td>
       <td>${esc(p.workflow)}.${esc(p.step)}${p.agent ? ` (${esc(p.agent)})` : ""}</td><td><code>${esc(p.error_class)}</code> ${esc(p.message)}</td>
       <td>${esc(Baton.dateTime(p.last_seen))}</td><td>${p.runs.map((r) => run(p, r)).join(" ")}</td></tr>`).join("")}</tbody></table>
      ${e.total > e.patterns.length ? `<p class="muted">The ${e.patterns.length} most frequent of ${e.total} patterns: <code>baton errors --hours ${esc(hours)}</code> lists them all.</p>` : ""}`
      : `<p class="muted">No failure in this window: each step that fails shows here, grouped by its message, step and agent
        (a longer window may hold some); ${docs("Error patterns", "improving.md")}.</p>`;
  }
  document.getElementById("error-hours").addEventListener("change", refreshErrors);

  poll(refreshLibrary, 30000, library.status);
  poll(refreshExperiments, 15000, experiments.status);
  poll(refreshSpend, 30000, spend.status);
  // the panels that show times: drawn again at once when Airflow's timezone changes
  const timed = [poll(refreshAnalytics, 15000, analytics.status), poll(refreshRollouts, 10000, rollouts.status),
    poll(refreshIncidents, 15000, incidents.status), poll(refreshErrors, 30000, errors.status),
    poll(refreshEvaluations, 30000, evaluations.status)];
  let shownZone = Baton.zone?.();
  document.addEventListener("baton:frame", () => {
    const zone = Baton.zone?.();
    if (zone !== shownZone) { shownZone = zone; timed.forEach((p) => p?.now?.()); }
  });
  const wanted = Baton.params.get("workflow");
  if (wanted) openTemplate(wanted).catch(() => {});
})();
