// The member page's sign-in, inlined in the HTML (by nonce) so that the form works after one
// round trip: texts in both languages, the member API with its tokens, the sign-in form and
// the switch between signed in and out. member.js and member-screens.js (deferred, cached a
// year by hash) add the router and the screens; until they run a signed-in member sees
// "loading", and they route as soon as they arrive.
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
  const lp = {};  // window.lpMember: what member.js and the screens use

  // --- messages ------------------------------------------------------------------------------
  const ERRORS = {
    network: ["网络不通，请检查网络后重试", "No connection; check your network and try again"],
    unauthorized: ["登录已失效，请重新登录", "You were signed out; please sign in again"],
    not_found: ["没有找到这条记录", "Not found"],
    validation: ["填写的内容有误，请检查", "Please check what you entered"],
    rate_limited: ["操作太频繁，请稍后再试", "Too many tries; please wait a moment"],
    "member_app.otp_wrong": ["验证码不正确", "The code is wrong"],
    "member_app.otp_expired": ["验证码已失效，请重新获取", "The code is no longer valid; send a new one"],
    "member_app.otp_throttled": ["获取验证码太频繁，请稍后再试", "Too many codes asked; please wait"],
    "member_app.session_throttled": ["验证码错误次数太多，请稍后再试", "Too many wrong codes; please wait"],
    "member_app.gateway_unavailable": ["短信暂时发不出去，请稍后再试", "The code could not be sent; try again shortly"],
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

  // --- signed in and out ---------------------------------------------------------------------
  // The screens are member.js's: it sets `lp.ready` when they are all in. Until then a note
  // stands in (and says so when they did not come).
  let appMissing = false;
  function showScreen() {
    if (lp.ready) return lp.route();
    const note = document.createElement("p");
    note.className = "empty";
    note.dataset.testid = appMissing ? "app-missing" : "app-loading";
    note.textContent = appMissing
      ? t("页面没有完整载入，请检查网络后刷新。", "The page did not load completely; check your network and reload.")
      : t("正在载入…", "Loading…");
    const again = document.createElement("button");
    again.type = "button";
    again.className = "btn";
    again.textContent = t("刷新", "Reload");
    again.addEventListener("click", () => location.reload());
    $("view").replaceChildren(note, ...(appMissing ? [again] : []));
  }
  window.addEventListener("load", () => {  // every deferred script has run, or failed
    appMissing = !lp.ready;
    if (appMissing && access) showScreen();
  });

  function signedIn() {
    const root = document.documentElement;
    root.classList.remove("returning");
    root.classList.add("signed-in");
    $("login").hidden = true;
    $("view").hidden = false;
    $("tabs").hidden = false;
    if (!location.hash || location.hash === "#" || location.hash === "#/login") {
      history.replaceState(null, "", "#/home");
    }
    showScreen();
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

  // --- now: this script runs where the form ends, before any file has arrived ----------------
  Object.assign(lp, {
    LANG, t, $, explain, toast, dropToast, api, signOut, signedOut, Problem,
    signedInNow: () => !!access,
    addErrors: (more) => { extraErrors = Object.assign({}, extraErrors, more); },
  });
  window.lpMember = lp;
  $("send-code").addEventListener("click", sendCode);
  $("login-form").addEventListener("submit", signIn);
  $("phone").addEventListener("input", () => {
    if (sentTo && cleanPhone($("phone").value) !== sentTo) stopCountdown();
  });
  $("send-code").disabled = false;
  document.documentElement.dataset.signin = "1";  // the form is live (benchmarks/member_h5.py)
  if (stored()) refresh().then((ok) => (ok ? signedIn() : signedOut("", false)));
  else signedOut("", false);
})();
