// Baton's pages: fetching Baton's API (same origin: Airflow's session cookie authenticates), polling without
// full reloads, a confirmation before every action, and small HTML helpers. No framework: ECharts draws.
//
// At home in Airflow's frame: the page is Airflow's external view, an iframe of the same origin, so it reads
// what Airflow's own UI reads and follows it as it changes. Its colours and font: the Chakra tokens of
// Airflow's document (--chakra-colors-bg, -fg, -border, ...), in light or dark as Airflow's <html> class
// says (next-themes: "light" or "dark"; the choice is "theme" in localStorage). Its times: in the timezone
// Airflow's clock menu chose ("timezone" in localStorage, JSON; the browser's zone until one is chosen), in
// Airflow's format (YYYY-MM-DD HH:mm:ss, 24-hour). Its address: Airflow 3.3 mirrors a frame's path and query
// into its own address (/plugin/<route>/<frame path>?<query>) and, on a reload, opens the frame at them;
// `remember` writes the page's state (the run shown) there, so a link to it can be shared and survives a
// reload.
"use strict";
const Baton = (() => {
  // Where Baton's app is, as the page was served: /baton, or /airflow/baton behind [api] base_url .../airflow
  const base = document.body.dataset.base;
  const airflow = base.replace(/\/baton$/, "");  // Airflow's UI root, for links to its own pages
  const mayAct = document.body.dataset.mayAct === "true";
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  async function get(path, params) {
    const url = new URL(base + path, location.origin);
    Object.entries(params || {}).forEach(([k, v]) => v !== undefined && v !== null && v !== "" && url.searchParams.set(k, v));
    const answer = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!answer.ok) throw new Error(`${answer.status} ${reason(await answer.text())}`);
    return answer.json();
  }
  // What a refusal says, as a sentence: FastAPI's {"detail": "..."}, or its validation errors' messages
  function reason(text) {
    let data; try { data = JSON.parse(text); } catch { return text.slice(0, 400); }
    const detail = data && data.detail;
    if (typeof detail === "string") return detail.slice(0, 1000);
    if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ").slice(0, 1000);
    return JSON.stringify(data).slice(0, 400);
  }
  async function post(path, body, action = true) {
    const headers = {"Content-Type": "application/json", Accept: "application/json"};
    if (action) headers["X-Baton-Action"] = "1";
    const answer = await fetch(base + path, {method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body || {})});
    const text = await answer.text();
    if (!answer.ok) throw new Error(`${answer.status}: ${reason(text)}`);
    try { return JSON.parse(text); } catch { return {detail: text}; }
  }
  function confirmThen(text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), {once: true});
      dialog.showModal();
    });
  }
  // One stack of messages at the bottom right: the newest last, at most three, each gone after 8 s
  function toast(text, bad = false) {
    let shelf = document.getElementById("toasts");
    if (!shelf) { shelf = document.createElement("div"); shelf.id = "toasts"; document.body.append(shelf); }
    const el = document.createElement("div");
    el.className = "toast" + (bad ? " bad" : "");
    el.setAttribute("role", bad ? "alert" : "status");
    el.textContent = text;
    shelf.append(el);
    while (shelf.children.length > 3) shelf.firstElementChild.remove();
    setTimeout(() => el.remove(), 8000);
  }
  async function act(question, path, body) {
    if (!(await confirmThen(question))) return null;
    try { const done = await post(path, body); toast("Done: " + question); return done; }
    catch (error) { toast("Refused: " + String(error.message || error), true); return null; }
  }
  // Poll fn every ms while the page is visible; errors show in `where` and polling goes on. now(): at once.
  function poll(fn, ms, where) {
    let timer;
    const tick = async () => {
      try { await fn(); if (where) where.textContent = ""; }
      catch (error) { if (where) where.textContent = String(error.message || error); }
      clearTimeout(timer);  // one timer whatever ran meanwhile (a tick asked for at once, now())
      timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    };
    tick();
    return {stop: () => clearTimeout(timer), now: tick};
  }
  function section(id, title, wide = false) {
    const s = document.createElement("section");
    s.id = id; if (wide) s.className = "wide";
    s.innerHTML = `<h2>${esc(title)} <small class="status"></small></h2><div class="body"></div>`;
    document.getElementById("main").append(s);
    return {el: s, body: s.querySelector(".body"), status: s.querySelector(".status")};
  }
  const fmtS = (s) => s == null ? "–" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;

  // --- Airflow's frame: its document (same origin), theme, timezone --------------------------------------
  function airflowDocument() {
    try { return window.parent !== window && window.parent.document.documentElement ? window.parent.document : null; }
    catch { return null; }  // another origin: the page alone
  }
  function stored(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch { return localStorage.getItem(key); }
  }
  function zone() {
    const chosen = stored("timezone");
    try { if (chosen) { new Intl.DateTimeFormat("en", {timeZone: chosen}); return chosen; } } catch { /* not a zone */ }
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  }
  let formats = {};
  function format(kind) {
    const tz = zone();
    if (formats.tz !== tz) formats = {tz};
    return formats[kind] ||= new Intl.DateTimeFormat("en-GB", {timeZone: tz, hourCycle: "h23", hour: "2-digit", minute: "2-digit",
      second: "2-digit", ...(kind === "date" ? {year: "numeric", month: "2-digit", day: "2-digit"} : {})});
  }
  function parts(value, kind) {
    const when = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(when.getTime())) return null;
    return Object.fromEntries(format(kind).formatToParts(when).map((p) => [p.type, p.value]));
  }
  // "HH:mm:ss" and "YYYY-MM-DD HH:mm:ss" in Airflow's chosen timezone, as Airflow writes times
  const time = (iso) => { const p = iso != null && iso !== "" && parts(iso, "time"); return p ? `${p.hour}:${p.minute}:${p.second}` : "–"; };
  const dateTime = (iso) => { const p = iso != null && iso !== "" && parts(iso, "date"); return p ? `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}` : "–"; };
  function dark() {
    const doc = airflowDocument();
    if (doc) return doc.documentElement.classList.contains("dark");
    const chosen = stored("theme");
    return chosen === "dark" || (chosen !== "light" && matchMedia("(prefers-color-scheme: dark)").matches);
  }
  // Baton's colour names <- Airflow's Chakra tokens (read off its document: they are its current mode's)
  const TOKENS = {"--bg": "--chakra-colors-bg", "--fg": "--chakra-colors-fg", "--line": "--chakra-colors-border",
    "--panel": "--chakra-colors-bg-subtle", "--muted": "--chakra-colors-fg-muted", "--bad": "--chakra-colors-fg-error",
    "--ok": "--chakra-colors-fg-success", "--warn": "--chakra-colors-fg-warning", "--run": "--chakra-colors-fg-info",
    "--font": "--chakra-fonts-body"};
  function applyTheme() {
    const mode = dark() ? "dark" : "light";
    const root = document.documentElement;
    root.dataset.theme = mode; root.style.colorScheme = mode;
    const doc = airflowDocument();
    const style = doc ? getComputedStyle(doc.documentElement) : null;
    for (const [ours, theirs] of Object.entries(TOKENS)) {
      const value = style && style.getPropertyValue(theirs).trim();
      if (value) root.style.setProperty(ours, value); else root.style.removeProperty(ours);
    }
    document.querySelectorAll(".chart").forEach(redraw);
    document.dispatchEvent(new CustomEvent("baton:frame"));  // times and colours drawn by the pages' scripts
  }
  // A chart draws in the frame's mode: ECharts' dark theme or its default, on Baton's transparent panel
  const drawn = new WeakMap();  // a chart's element -> the option it was last given
  function chart(el) {
    return {setOption(option, notMerge) {
      drawn.set(el, option);
      let shown = echarts.getInstanceByDom(el);
      if (!shown) { shown = echarts.init(el, dark() ? "dark" : null); shown.__batonMode = dark(); }
      shown.setOption({...option, backgroundColor: "transparent"}, notMerge);
      return shown;
    }};
  }
  function redraw(el) {
    const shown = echarts.getInstanceByDom(el);
    if (!shown || shown.__batonMode === dark()) return;
    shown.dispose();
    const option = drawn.get(el);
    const again = echarts.init(el, dark() ? "dark" : null);
    again.__batonMode = dark();
    if (option) again.setOption({...option, backgroundColor: "transparent"}, true);
  }
  const doc = airflowDocument();
  if (doc) new MutationObserver(applyTheme).observe(doc.documentElement, {attributes: true, attributeFilter: ["class", "style"]});
  addEventListener("storage", (e) => { if (["timezone", "theme", null].includes(e.key)) applyTheme(); });
  addEventListener("resize", () => document.querySelectorAll(".chart").forEach((el) => echarts.getInstanceByDom(el)?.resize()));
  applyTheme();

  // --- addresses: Airflow's own pages, and this page's state in Airflow's address ------------------------
  const enc = encodeURIComponent;
  const links = {
    run: (dag, run) => `${airflow}/dags/${enc(dag)}/runs/${enc(run)}`,
    task: (dag, run, task, mapIndex) => `${airflow}/dags/${enc(dag)}/runs/${enc(run)}/tasks/${enc(task)}${mapIndex >= 0 ? `/mapped/${mapIndex}` : ""}`,
    answer: (dag, run, task, mapIndex) => `${links.task(dag, run, task, mapIndex)}/required_actions`,
    dag: (dag) => `${airflow}/dags/${enc(dag)}`,
  };
  // <a> to one of Airflow's pages, opened in Airflow's window (not inside this frame)
  const link = (href, text, title = "") => `<a href="${esc(href)}" target="_top"${title ? ` title="${esc(title)}"` : ""}>${esc(text)}</a>`;
  const params = new URLSearchParams(location.search);
  function remember(values) {
    Object.entries(values).forEach(([k, v]) => (v == null || v === "" ? params.delete(k) : params.set(k, v)));
    const query = params.toString() ? `?${params}` : "";
    history.replaceState(history.state, "", location.pathname + query);
    try {  // Airflow's address: its view's route, then this frame's path and query, as Airflow itself writes it
      const top = window.parent.location;
      const route = top.pathname.match(/^(.*?\/plugin\/[^/]+)/);
      if (window.parent !== window && route) window.parent.history.replaceState(window.parent.history.state, "", route[1] + location.pathname + query);
    } catch { /* another origin: the frame's own address only */ }
  }
  return {get, post, act, poll, section, esc, fmtS, time, dateTime, zone, chart, mayAct, toast, links, link, params, remember, dark};
})();
