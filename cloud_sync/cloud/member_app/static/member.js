// The member page's core: texts in both languages, the member API with its tokens, the hash
// router and the sign-in form (already in the HTML). member-screens.js adds the screens.
//
// Tokens: the access token lives in memory only (gone with the tab); the refresh token is kept
// in localStorage so a member stays signed in across visits. Script on this page can read it,
// which a cookie marked HttpOnly would prevent, but the API takes bearer tokens (the same API
// a mini-program calls) and the page runs no third-party script under its CSP, so we keep it
// simple: the refresh token rotates on each use and signing out or deleting revokes it.
"use strict";

(() => {
  const LANG = document.documentElement.lang === "en" ? "en" : "zh-CN";
  const t = (zh, en) => (LANG === "en" ? en : zh);
  const API = "/m/api/v1";
  const REFRESH_KEY = "lp.member.refresh";
  const $ = (id) => document.getElementById(id);

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

  // --- messages ------------------------------------------------------------------------------
  const ERRORS = {
    network: ["网络不通，请检查网络后重试", "No connection; check your network and try again"],
    unauthorized: ["登录已失效，请重新登录", "You were signed out; please sign in again"],
    not_found: ["没有找到这条记录", "Not found"],
    validation: ["填写的内容有误，请检查", "Please check what you entered"],
    rate_limited: ["操作太频繁，请稍后再试", "Too many tries; please wait a moment"],
  };
  let extraErrors = {};
  class Problem extends Error {
    constructor(code, detail, status, body, retryAfter) {
      super(detail || code);
      Object.assign(this, { code, detail, status, body, retryAfter: retryAfter || 0 });
    }
  }
  function explain(problem) {
    const code = (problem && problem.code) || "";
    const known = extraErrors[code] || ERRORS[code] || ERRORS[code.split(".").pop()];
    if (known) return known[LANG === "en" ? 1 : 0];
    if (problem && problem.status === 429) return ERRORS.rate_limited[LANG === "en" ? 1 : 0];
    if (problem && problem.status === 422) return ERRORS.validation[LANG === "en" ? 1 : 0];
    const detail = problem && problem.detail;
    return t("操作没有成功", "That did not work") + (detail ? `: ${detail}` : "");
  }
  let toastTimer = 0;
  let toastAt = 0;
  // A note outlives no screen it was not meant for: a new screen drops one older than 1 s.
  function dropToast(olderThanMs = 0) {
    if (Date.now() - toastAt < olderThanMs) return;
    clearTimeout(toastTimer);
    $("toast").classList.remove("on");
    $("toast").textContent = "";
  }
  function toast(text) {
    const el = $("toast");
    toastAt = Date.now();
    el.textContent = text;
    el.classList.add("on");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      el.classList.remove("on");
      toastTimer = setTimeout(() => { el.textContent = ""; }, 300);
    }, 3500);
  }

  // --- the API and its tokens ----------------------------------------------------------------
  let access = null;
  let refreshing = null;
  const stored = () => { try { return localStorage.getItem(REFRESH_KEY); } catch (e) { return null; } };
  function keep(tokens) {
    access = tokens.access_token;
    try { localStorage.setItem(REFRESH_KEY, tokens.refresh_token); } catch (e) { /* private mode */ }
  }
  function forget() {
    access = null;
    try { localStorage.removeItem(REFRESH_KEY); } catch (e) { /* nothing kept */ }
  }

  async function send(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let answer;
    try { answer = await fetch(API + path, init); } catch (e) { throw new Problem("network", "", 0); }
    const text = answer.status === 204 ? "" : await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!answer.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg || "").join("; ");
      const retryAfter = Number(answer.headers.get("Retry-After")) || 0;
      throw new Problem((data && data.error) || `http_${answer.status}`, detail, answer.status, data, retryAfter);
    }
    return data;
  }

  // One refresh at a time; false when there is none or the cloud refused it.
  function refresh() {
    if (!refreshing) {
      const token = stored();
      refreshing = (token ? send("POST", "/session/refresh", { refresh_token: token }) : Promise.reject(new Problem("unauthorized")))
        .then((tokens) => { keep(tokens); return true; })
        .catch((problem) => { if (problem.code !== "network") forget(); return false; })
        .finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // A member call: on 401 refresh once and retry, then back to the sign-in form.
  async function api(method, path, body) {
    try {
      return await send(method, path, body, access);
    } catch (problem) {
      if (problem.status !== 401) throw problem;
      if (await refresh()) {
        try { return await send(method, path, body, access); } catch (again) { if (again.status !== 401) throw again; }
      }
      signedOut(t("登录已失效，请重新登录", "You were signed out; please sign in again"));
      throw problem;
    }
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
    if (!access) return;
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

  // --- signed in and out ---------------------------------------------------------------------
  function signedIn() {
    const root = document.documentElement;
    root.classList.remove("returning");
    root.classList.add("signed-in");
    $("login").hidden = true;
    $("view").hidden = false;
    $("tabs").hidden = false;
    if (!location.hash || location.hash === "#" || location.hash === "#/login") location.hash = "#/home";
    else route();
  }
  function signedOut(message, focus = true) {
    forget();
    dropToast();
    const root = document.documentElement;
    root.classList.remove("returning", "signed-in");
    $("view").hidden = true;
    $("view").replaceChildren();
    $("tabs").hidden = true;
    $("login").hidden = false;
    $("code").value = "";
    $("consent-box").hidden = true;
    $("consent").checked = false;
    stopCountdown();
    setLoginMessage(message || "");
    history.replaceState(null, "", location.pathname + location.search);
    if (focus) $("phone").focus();
  }
  async function signOut() {
    try { if (access) await send("DELETE", "/session", undefined, access); } catch (e) { /* gone anyway */ }
    signedOut();
    setLoginMessage(t("已退出登录", "Signed out"), true);
  }

  // --- the sign-in form --------------------------------------------------------------------
  const PHONE = /^(?:\+?86)?1[3-9]\d{9}$/;
  const cleanPhone = (value) => value.replace(/[\s-]/g, "");
  function setLoginMessage(text, ok) {
    const el = $("login-msg");
    el.textContent = text || "";
    el.classList.toggle("ok", !!ok);
  }
  let countdown = 0;
  let sentTo = "";  // the countdown is this number's; another number may ask at once
  function stopCountdown() {
    clearInterval(countdown);
    sentTo = "";
    $("send-code").disabled = false;
    $("send-code").textContent = t("获取验证码", "Send code");
  }
  function startCountdown(seconds) {
    const button = $("send-code");
    let left = seconds;
    clearInterval(countdown);
    const tick = () => {
      if (left <= 0) {
        clearInterval(countdown);
        button.disabled = false;
        button.textContent = t("重新发送", "Send again");
        return;
      }
      button.disabled = true;
      button.textContent = t(`${left} 秒后重发`, `Again in ${left}s`);
      left -= 1;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
  async function sendCode() {
    const phone = cleanPhone($("phone").value);
    if (!PHONE.test(phone)) {
      setLoginMessage(t("请输入 11 位手机号", "Enter your 11-digit mobile number"));
      $("phone").focus();
      return;
    }
    $("send-code").disabled = true;
    try {
      const answer = await send("POST", "/otp", { phone });
      sentTo = phone;
      const wait = Number((answer && (answer.resend_after_s || answer.retry_after_s)) || 60);
      startCountdown(Math.min(Math.max(wait, 1), 600));
      setLoginMessage(t("验证码已发送，5 分钟内有效", "Code sent; it is valid for 5 minutes"), true);
      $("code").focus();
    } catch (problem) {
      $("send-code").disabled = false;
      if (problem.retryAfter > 0) startCountdown(Math.min(problem.retryAfter, 3600));
      setLoginMessage(explain(problem));
    }
  }
  async function signIn(event) {
    event.preventDefault();
    const phone = cleanPhone($("phone").value);
    const code = $("code").value.trim();
    if (!PHONE.test(phone)) return setLoginMessage(t("请输入 11 位手机号", "Enter your 11-digit mobile number"));
    if (!/^\d{6}$/.test(code)) return setLoginMessage(t("请输入 6 位验证码", "Enter the 6-digit code"));
    const box = $("consent-box");
    const body = { phone, code };
    if (!box.hidden) {
      if (!$("consent").checked) return setLoginMessage(t("注册前请阅读并勾选同意", "Please read and tick the consent to sign up"));
      body.consent = true;
    }
    const button = event.submitter || document.querySelector("#login-form .primary");
    button.disabled = true;
    try {
      keep(await send("POST", "/session", body));
      setLoginMessage("");
      $("code").value = "";
      box.hidden = true;
      signedIn();
    } catch (problem) {
      if (problem.code === "member_app.consent_required") {
        box.hidden = false;
        setLoginMessage(t("这个号码还不是会员：请阅读下面的说明，勾选同意后再点登录 / 注册", "This number is not a member yet: read the note below, tick it, then sign up"));
        $("consent").focus();
      } else if (problem.code === "member_app.otp_wrong" && problem.body && problem.body.tries_left !== undefined) {
        const left = Number(problem.body.tries_left);
        setLoginMessage(left > 0 ? t(`验证码不正确，还可再试 ${left} 次`, `Wrong code: ${left} tries left`) : t("验证码错误次数过多，请重新获取", "Too many wrong tries; send a new code"));
      } else {
        setLoginMessage(explain(problem));
      }
    } finally {
      button.disabled = false;
    }
  }

  // --- boot ----------------------------------------------------------------------------------
  async function boot() {
    $("send-code").disabled = false;
    $("send-code").addEventListener("click", sendCode);
    $("login-form").addEventListener("submit", signIn);
    $("phone").addEventListener("input", () => {
      if (sentTo && cleanPhone($("phone").value) !== sentTo) stopCountdown();
    });
    window.addEventListener("hashchange", route);
    document.documentElement.dataset.ready = "1";
    if (stored() && (await refresh())) return signedIn();
    signedOut("", false);
  }

  window.lpMember = {
    LANG, t, h, $, yuan, points, when, freshness, explain, toast, api, go, route, screens, signOut, signedOut, Problem,
    addErrors: (more) => { extraErrors = Object.assign({}, extraErrors, more); },
  };
  document.addEventListener("DOMContentLoaded", boot);
})();
