// The member page's app: elements from data, numbers and dates as a member reads them, and
// the hash router. The sign-in (the API, the tokens, the form) is inlined in the HTML
// (sign-in.js); member-screens.js adds the screens. Deferred: it runs once the HTML is parsed,
// and it is kept a year under its hash, so a revisit does not fetch it.
"use strict";

(() => {
  const lp = window.lpMember;
  const { LANG, t, $, explain, dropToast } = lp;

  // --- DOM: elements from data, never from HTML strings -------------------------------------
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "testid") el.dataset.testid = value;
      else if (key === "class") el.className = value;
      else if (key in el && typeof value !== "string") el[key] = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const kid of kids.flat(3)) {
      if (kid !== undefined && kid !== null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  // --- numbers: fen and points are integers on the wire ------------------------------------
  const group = (n) => String(Math.trunc(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const points = (n) => (n === undefined || n === null ? "—" : (n < 0 ? "-" : "") + group(n));
  function yuan(fen) {
    if (fen === undefined || fen === null) return "—";
    const abs = Math.abs(fen);
    return (fen < 0 ? "-" : "") + "¥" + group(Math.floor(abs / 100)) + "." + String(abs % 100).padStart(2, "0");
  }
  function when(iso, withTime = true) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const p = (n) => String(n).padStart(2, "0");
    const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
    return withTime ? `${day} ${p(d.getHours())}:${p(d.getMinutes())}` : day;
  }
  function freshness(data) {
    // An object {note, note_en, stations_synced_at}; a plain two-language line is shown as ours.
    const note = (data && typeof data.freshness === "object" && data.freshness) || {};
    const parts = [(LANG === "en" ? note.note_en : note.note) || t("各油站通常几分钟内同步，离线油站的交易稍后到达。", "Stations sync within minutes; an offline station's sales arrive later.")];
    if (note.stations_synced_at) parts.push(t("油站最近同步 ", "Stations last synced ") + when(note.stations_synced_at));
    if (data && data.as_of) parts.push(t("更新于 ", "As of ") + when(data.as_of));
    return h("p", { class: "fresh", testid: "freshness" }, parts.join(" · "));
  }

  // --- the router ----------------------------------------------------------------------------
  const screens = {};
  let shown = 0; // each render's number: an older render that finishes late draws nothing
  function parseHash() {
    const [path, query] = (location.hash.replace(/^#\/?/, "") || "home").split("?");
    const [name, ...args] = path.split("/").map(decodeURIComponent);
    return { name, args, params: new URLSearchParams(query || "") };
  }
  async function route() {
    if (!lp.signedInNow()) return;
    dropToast(1000);
    const { name, args, params } = parseHash();
    const screen = screens[name] || screens.home;
    const view = $("view");
    const mine = ++shown;
    for (const tab of document.querySelectorAll("#tabs a")) {
      if (tab.dataset.tab === (screen.tab || name)) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    const frame = h("div", { class: "screen", testid: `screen-${name in screens ? name : "home"}` });
    view.replaceChildren(h("p", { class: "empty" }, t("正在载入…", "Loading…")));
    try {
      await screen.render(frame, { args, params, isCurrent: () => mine === shown });
      if (mine !== shown) return;
      view.replaceChildren(frame);
    } catch (problem) {
      if (mine !== shown || problem.status === 401) return;
      view.replaceChildren(h("div", { class: "card empty", testid: "screen-error" }, explain(problem),
        h("div", { class: "actions" }, h("button", { class: "btn", type: "button", onclick: route }, t("重试", "Try again")))));
    }
    window.scrollTo(0, 0);
    if (document.activeElement === document.body || !view.contains(document.activeElement)) view.focus({ preventScroll: true });
  }
  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  // --- what the screens use; at DOMContentLoaded every deferred script has run, in order ----
  Object.assign(lp, { h, yuan, points, when, freshness, go, route, screens });
  document.addEventListener("DOMContentLoaded", () => {
    window.addEventListener("hashchange", route);
    lp.ready = true;
    document.documentElement.dataset.ready = "1";  // the screens are here (benchmarks/member_h5.py)
    if (lp.signedInNow()) route();
  });
})();
