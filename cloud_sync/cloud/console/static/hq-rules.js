// The rule-set editor: a form and the JSON view kept in sync both ways, live validation
// (each fault shown beside its field by JSON path), saving, the backtest's progress, and
// approve/publish. Every value goes into the page with textContent/value, never as HTML.
"use strict";

(function () {
  const root = document.getElementById("rules-editor");
  if (!root) return;
  const zh = document.body.dataset.lang !== "en";
  const t = (a, b) => (zh ? a : b);
  const api = (...args) => window.hq.api(...args);
  const text = document.getElementById("rule-json");
  const form = document.getElementById("rule-form");
  const faultList = document.getElementById("faults");
  const validity = document.getElementById("validity");
  const draftId = root.dataset.draftId;
  const editable = root.dataset.editable === "1";
  let doc = null;

  // ------------------------------------------------------------ the form's fields
  const TOP = [
    ["name", t("名称", "Name"), "text"],
    ["version", t("版本号", "Version"), "int"],
    ["effective_from", t("生效时间（ISO 8601，含时区）", "Effective from (ISO 8601 with offset)"), "text"],
    ["timezone", t("时区", "Time zone"), "text"],
    ["rounding", t("取整（floor 或 half_up）", "Rounding (floor or half_up)"), "text"],
    ["redeem.points_per_yuan", t("每元积分（兑换）", "Points per yuan (redemption)"), "int"],
    ["redeem.min_points", t("最低兑换积分", "Minimum points to redeem"), "int"],
    ["expiry.months", t("积分有效月数", "Points expire after (months)"), "int"],
    ["new_member_tier.code", t("新会员体验等级", "New member trial tier"), "text"],
    ["new_member_tier.days", t("体验天数", "Trial days"), "int"],
  ];
  const LISTS = [
    ["earn", t("积分规则（每升积分）", "Earn rates (points per litre)"), [
      ["grade", t("油品", "Grade"), "text"],
      ["points_per_litre", t("每升积分", "Points per litre"), "dec"],
    ], { grade: "", points_per_litre: "1" }],
    ["tiers", t("会员等级", "Tiers"), [
      ["code", t("代码", "Code"), "text"],
      ["name", t("名称", "Name"), "text"],
      ["multiplier", t("积分倍数", "Multiplier"), "dec"],
      ["discount_per_litre", t("每升优惠（元）", "Discount per litre (yuan)"), "dec"],
      ["qualify.litres", t("升数门槛", "Litres threshold"), "dec"],
      ["qualify.window_days", t("统计天数", "Window days"), "int"],
    ], { code: "", name: "", multiplier: "1", discount_per_litre: "0" }],
    ["bonuses", t("加倍活动", "Bonuses"), [
      ["name", t("名称", "Name"), "text"],
      ["multiplier", t("倍数", "Multiplier"), "dec"],
      ["weekdays", t("星期（1-7，逗号分隔）", "Weekdays (1-7, comma separated)"), "ints"],
      ["dates", t("日期（逗号分隔）", "Dates (comma separated)"), "strs"],
    ], { name: "", multiplier: "2" }],
  ];

  function getAt(obj, dotted) {
    return dotted.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
  }
  function setAt(obj, dotted, value) {
    const keys = dotted.split(".");
    let o = obj;
    const parents = [];
    keys.slice(0, -1).forEach((k) => {
      if (typeof o[k] !== "object" || o[k] === null) o[k] = {};
      parents.push([o, k]);
      o = o[k];
    });
    const last = keys[keys.length - 1];
    if (value === undefined) delete o[last]; else o[last] = value;
    for (let i = parents.length - 1; i >= 0; i--) {  // drop objects left empty
      const [p, k] = parents[i];
      if (p[k] && typeof p[k] === "object" && Object.keys(p[k]).length === 0) delete p[k];
    }
  }
  function shown(value, kind) {
    if (value === undefined || value === null) return "";
    if (kind === "ints" || kind === "strs") return Array.isArray(value) ? value.join(",") : String(value);
    return String(value);
  }
  function parsed(raw, kind) {
    const v = raw.trim();
    if (v === "") return undefined;
    if (kind === "int") return /^-?\d+$/.test(v) ? Number(v) : v;  // a bad value goes to the validator
    if (kind === "ints") return v.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    if (kind === "strs") return v.split(",").map((s) => s.trim()).filter(Boolean);
    return v;
  }

  function field(path, label, kind, value, onInput) {
    const wrap = document.createElement("label");
    wrap.className = "field";
    wrap.dataset.path = path;
    const span = document.createElement("span");
    span.textContent = label;
    const input = document.createElement("input");
    input.type = "text";
    input.value = shown(value, kind);
    input.dataset.path = path;
    input.dataset.testid = "field-" + path;
    input.setAttribute("data-testid", "field-" + path);
    input.readOnly = !editable;
    input.addEventListener("input", () => onInput(parsed(input.value, kind)));
    const fault = document.createElement("small");
    fault.className = "error fault";
    wrap.append(span, input, fault);
    return wrap;
  }

  function grades(box) {
    const h = document.createElement("h3");
    h.textContent = t("油品", "Grades");
    box.append(h);
    const entries = Object.entries(doc.grades || {});
    entries.forEach(([code, grade], i) => {
      const row = document.createElement("div");
      row.className = "row";
      row.append(
        field(`$.grades.${code}`, t("代码", "Code"), "text", code, (v) => {
          const next = {};
          Object.entries(doc.grades).forEach(([c, g], j) => { next[j === i ? (v || "") : c] = g; });
          doc.grades = next; changed(false);
        }),
        field(`$.grades.${code}.name`, t("名称", "Name"), "text", grade && grade.name, (v) => {
          doc.grades[code] = { ...(doc.grades[code] || {}), name: v }; changed(false);
        }),
      );
      box.append(row);
    });
  }

  function list(box, [key, title, cols, blank]) {
    const h = document.createElement("h3");
    h.textContent = title;
    box.append(h);
    (Array.isArray(doc[key]) ? doc[key] : []).forEach((item, i) => {
      const row = document.createElement("div");
      row.className = "row";
      cols.forEach(([sub, label, kind]) => {
        row.append(field(`$.${key}[${i}].${sub}`, label, kind, getAt(item, sub), (v) => {
          setAt(doc[key][i], sub, v); changed(false);
        }));
      });
      if (editable) {
        const drop = document.createElement("button");
        drop.type = "button"; drop.className = "btn secondary"; drop.textContent = t("删除", "Remove");
        drop.addEventListener("click", () => { doc[key].splice(i, 1); changed(true); });
        row.append(drop);
      }
      box.append(row);
    });
    if (editable) {
      const add = document.createElement("button");
      add.type = "button"; add.className = "btn secondary"; add.textContent = t("添加", "Add");
      add.setAttribute("data-testid", "add-" + key);
      add.addEventListener("click", () => { doc[key] = [...(doc[key] || []), { ...blank }]; changed(true); });
      box.append(add);
    }
  }

  function renderForm() {
    form.replaceChildren();
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
      const p = document.createElement("p");
      p.className = "notice";
      p.textContent = t("JSON 无法解析：请在右侧修正后表单会恢复。", "The JSON does not parse: fix it on the right and the form comes back.");
      form.append(p);
      return;
    }
    const top = document.createElement("div");
    top.className = "row";
    TOP.forEach(([path, label, kind]) => top.append(field("$." + path, label, kind, getAt(doc, path), (v) => {
      setAt(doc, path, v); changed(false);
    })));
    form.append(top);
    grades(form);
    LISTS.forEach((spec) => list(form, spec));
    showFaults(lastFaults);
  }

  // ------------------------------------------------------------ sync and validation
  function changed(rebuild) {
    text.value = JSON.stringify(doc, null, 2);
    if (rebuild) renderForm();
    validateSoon();
  }
  text.addEventListener("input", () => {
    try { doc = JSON.parse(text.value); } catch (e) { doc = null; }
    renderForm();
    validateSoon();
  });

  let timer = null;
  let lastFaults = [];
  let asked = 0;
  function validateSoon() {
    clearTimeout(timer);
    timer = setTimeout(validate, 300);
  }
  async function validate() {
    const mine = ++asked;
    try {
      const answer = await api("POST", "/api/v1/hq/rules/validate", { document: text.value });
      if (mine !== asked) return;
      lastFaults = answer.faults;
    } catch (e) {
      if (mine !== asked) return;
      lastFaults = [{ path: "$", message: e.message }];
    }
    showFaults(lastFaults);
  }
  function showFaults(faults) {
    faultList.replaceChildren(...faults.map((f) => {
      const li = document.createElement("li");
      li.textContent = `${f.path}: ${f.message}`;
      return li;
    }));
    validity.textContent = faults.length ? t(`${faults.length} 处错误`, `${faults.length} fault(s)`) : t("有效", "valid");
    validity.className = faults.length ? "badge bad" : "badge ok";
    form.querySelectorAll(".fault").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll("input[data-path]").forEach((el) => el.removeAttribute("aria-invalid"));
    faults.forEach((f) => {
      // the field of this path, else of its nearest parent path
      let path = f.path;
      while (path) {
        const input = form.querySelector(`input[data-path="${CSS.escape(path)}"]`);
        if (input) {
          input.setAttribute("aria-invalid", "true");
          input.parentElement.querySelector(".fault").textContent = f.message;
          return;
        }
        const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
        path = cut > 1 ? path.slice(0, cut) : "";
      }
    });
  }

  // ------------------------------------------------------------ actions
  const say = (id, message, bad) => {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = message;
    el.className = bad ? "error" : "";
  };
  const save = document.getElementById("save");
  if (save) save.addEventListener("click", async () => {
    try {
      const body = { document: text.value };
      const answer = draftId
        ? await api("PUT", `/api/v1/hq/rules/drafts/${encodeURIComponent(draftId)}`, body)
        : await api("POST", "/api/v1/hq/rules/drafts", body);
      window.location.assign(`/hq/rules/drafts/${encodeURIComponent(answer.draft_id)}`);
    } catch (e) { say("save-result", e.message, true); }
  });

  const bar = document.querySelector("#bt-progress .progress > div");
  async function poll(id) {
    document.getElementById("bt-progress").hidden = false;
    try {
      const test = await api("GET", `/api/v1/hq/rules/backtests/${encodeURIComponent(id)}`);
      const pct = test.total_sales ? Math.min(100, Math.floor((100 * test.done_sales) / test.total_sales)) : 0;
      bar.style.width = (test.status === "done" ? 100 : pct) + "%";
      bar.parentElement.setAttribute("aria-valuenow", String(test.status === "done" ? 100 : pct));
      document.getElementById("bt-count").textContent = `${test.done_sales} / ${test.total_sales}`;
      if (test.status === "running") { setTimeout(() => poll(id), 500); return; }
      if (test.status === "failed") { say("bt-message", t("回测失败：", "Backtest failed: ") + test.error, true); return; }
      say("bt-message", t("回测完成", "Backtest done"), false);
      setTimeout(() => window.location.reload(), 300);
    } catch (e) { say("bt-message", e.message, true); }
  }
  const start = document.getElementById("bt-start");
  if (start) start.addEventListener("click", async () => {
    const from = document.getElementById("bt-from").value;
    const to = document.getElementById("bt-to").value;
    const station = document.getElementById("bt-station").value.trim();
    const body = from || to ? { from, to } : { days: Number(document.getElementById("bt-days").value) || 30 };
    if (station) body.station_id = station;
    try {
      const answer = await api("POST", `/api/v1/hq/rules/drafts/${encodeURIComponent(draftId)}/backtests`, body);
      say("bt-message", t("回测进行中…", "Backtest running…"), false);
      poll(answer.backtest_id);
    } catch (e) { say("bt-message", e.message, true); }
  });
  if (root.dataset.backtestStatus === "running") poll(root.dataset.backtestId);

  const approve = document.getElementById("approve");
  if (approve) approve.addEventListener("click", async () => {
    try {
      await api("POST", `/api/v1/hq/rules/drafts/${encodeURIComponent(draftId)}/approve`, { document_hash: root.dataset.hash });
      window.location.reload();
    } catch (e) { say("approval-result", e.message, true); }
  });
  const publish = document.getElementById("publish");
  if (publish) publish.addEventListener("click", async () => {
    if (!window.confirm(t("签名并发布给所有油站？", "Sign and publish to every station?"))) return;
    try {
      await api("POST", `/api/v1/hq/rules/drafts/${encodeURIComponent(draftId)}/publish`);
      window.location.reload();
    } catch (e) { say("approval-result", e.message, true); }
  });

  try { doc = JSON.parse(text.value); } catch (e) { doc = null; }
  renderForm();
  if (editable) validate();
})();
