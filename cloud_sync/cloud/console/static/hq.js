// The HQ console's few behaviours: charts drawn from their tables, CSRF on every change
// the page sends, and keyboard shortcuts. Served by the cloud itself (no CDN).
"use strict";

(function () {
  const main = () => document.getElementById("main");
  const csrf = () => (main() && main().dataset.csrf) || "";

  // fetch() with the session's CSRF token and JSON in and out; throws with the server's reason.
  async function api(method, url, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(url, init);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!answer.ok) {
      const reason = (data && (data.message || data.detail || data.error)) || answer.statusText;
      const error = new Error(typeof reason === "string" ? reason : JSON.stringify(reason));
      error.status = answer.status;
      error.body = data;
      throw error;
    }
    return data;
  }
  window.hq = { api, csrf };

  function tableData(table) {
    const heads = Array.from(table.querySelectorAll("thead th")).map((th) => th.textContent.trim());
    const rows = Array.from(table.querySelectorAll("tbody tr")).filter((tr) => !tr.querySelector(".empty"));
    const cells = rows.map((tr) => Array.from(tr.children).map((td) => {
      const raw = td.dataset.value;
      return raw !== undefined && raw !== "" ? Number(raw) : td.textContent.trim();
    }));
    return { heads, cells };
  }

  function option(kind, data) {
    const { heads, cells } = data;
    const x = cells.map((row) => row[0]);
    const grid = { left: 60, right: 20, top: 36, bottom: 40, containLabel: true };
    const tooltip = { trigger: "axis" };
    if (kind === "heatmap") {
      const xs = [...new Set(cells.map((r) => r[0]))];
      const ys = [...new Set(cells.map((r) => r[1]))];
      const values = cells.map((r) => [xs.indexOf(r[0]), ys.indexOf(r[1]), r[2]]);
      const max = Math.max(1, ...cells.map((r) => Number(r[2]) || 0));
      return {
        tooltip: { position: "top" }, grid: { ...grid, bottom: 72 },  // the scale below the hours
        xAxis: { type: "category", data: xs }, yAxis: { type: "category", data: ys },
        visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
        series: [{ type: "heatmap", data: values }],
      };
    }
    if (kind === "pie") {
      return { tooltip: { trigger: "item" }, legend: { top: 0 },
        series: [{ type: "pie", radius: ["35%", "65%"], data: cells.map((r) => ({ name: r[0], value: r[1] })) }] };
    }
    const series = heads.slice(1).map((name, i) => ({
      name,
      type: kind === "line" ? "line" : "bar",
      stack: kind === "stacked" ? "total" : undefined,
      smooth: false,  // a smoothed line dips below zero between sparse days
      data: cells.map((row) => row[i + 1]),
    }));
    return { tooltip, grid, legend: { top: 0 }, xAxis: { type: "category", data: x },
      yAxis: { type: "value", minInterval: 1 }, series };  // counts never tick at 0.5
  }

  function drawCharts() {
    if (!window.echarts) return;
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const table = document.getElementById(el.dataset.table);
      if (!table) return;
      const chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(option(el.dataset.chart, tableData(table)));
      el.dataset.drawn = "1";
      window.addEventListener("resize", () => chart.resize());
    });
  }

  // Keyboard: "/" goes to the page's search box; Alt+1..7 (accesskey) move between screens.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    const search = document.querySelector("[data-search]");
    if (search) { event.preventDefault(); search.focus(); }
  });

  document.addEventListener("DOMContentLoaded", drawCharts);
})();
