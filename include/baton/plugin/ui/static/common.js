// Baton's pages: fetching Baton's API (same origin: Airflow's session cookie authenticates), polling without
// full reloads, a confirmation before every action, and small HTML helpers. No framework: ECharts draws.
"use strict";
const Baton = (() => {
  // Where Baton's app is, as the page was served: /baton, or /airflow/baton behind [api] base_url .../airflow
  const base = document.body.dataset.base;
  const mayAct = document.body.dataset.mayAct === "true";
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  async function get(path, params) {
    const url = new URL(base + path, location.origin);
    Object.entries(params || {}).forEach(([k, v]) => v !== undefined && v !== null && v !== "" && url.searchParams.set(k, v));
    const answer = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!answer.ok) throw new Error(`${answer.status} ${(await answer.text()).slice(0, 400)}`);
    return answer.json();
  }
  async function post(path, body, action = true) {
    const headers = {"Content-Type": "application/json", Accept: "application/json"};
    if (action) headers["X-Baton-Action"] = "1";
    const answer = await fetch(base + path, {method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body || {})});
    const text = await answer.text();
    let data; try { data = JSON.parse(text); } catch { data = {detail: text}; }
    if (!answer.ok) throw new Error(`${answer.status}: ${typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)}`);
    return data;
  }
  function confirmThen(text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), {once: true});
      dialog.showModal();
    });
  }
  function toast(text, bad = false) {
    const el = document.createElement("div");
    el.className = "toast" + (bad ? " bad" : "");
    el.setAttribute("role", "status");
    el.textContent = text;
    document.body.append(el);
    setTimeout(() => el.remove(), 8000);
  }
  async function act(question, path, body) {
    if (!(await confirmThen(question))) return null;
    try { const done = await post(path, body); toast("Done: " + question); return done; }
    catch (error) { toast(String(error.message || error), true); return null; }
  }
  // Poll fn every ms while the page is visible; errors show in `where` and polling goes on.
  function poll(fn, ms, where) {
    let timer;
    const tick = async () => {
      try { await fn(); if (where) where.textContent = ""; }
      catch (error) { if (where) where.textContent = String(error.message || error); }
      timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    };
    tick();
    return () => clearTimeout(timer);
  }
  function section(id, title, wide = false) {
    const s = document.createElement("section");
    s.id = id; if (wide) s.className = "wide";
    s.innerHTML = `<h2>${esc(title)} <small class="status"></small></h2><div class="body"></div>`;
    document.getElementById("main").append(s);
    return {el: s, body: s.querySelector(".body"), status: s.querySelector(".status")};
  }
  const fmtS = (s) => s == null ? "–" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
  const time = (iso) => iso ? new Date(iso).toLocaleTimeString() : "–";
  const theme = () => matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : null;
  function chart(el) { return echarts.getInstanceByDom(el) || echarts.init(el, theme()); }
  addEventListener("resize", () => document.querySelectorAll(".chart").forEach((el) => echarts.getInstanceByDom(el)?.resize()));
  return {get, post, act, poll, section, esc, fmtS, time, chart, mayAct, toast,
          params: new URLSearchParams(location.search)};
})();
