// The member page's screens, one function each, drawn from the member API's answers.
// Each takes a frame to fill; the core (member.js) swaps it in when it is complete.
"use strict";

(() => {
  const { t, h, yuan, points, when, freshness, explain, toast, api, go, route, screens, signOut, signedOut } = window.lpMember;
  const back = (hash, label) => h("a", { class: "back", href: hash }, "‹ ", label);
  // Node.append takes no arrays: lists of cards are flattened here.
  const put = (frame, ...kids) => frame.append(...kids.flat(3).filter((k) => k !== null && k !== undefined && k !== false));
  const card = (...kids) => h("section", { class: "card" }, ...kids);
  const empty = (text, testid) => h("p", { class: "empty", testid }, text);
  const list = (data, key) => (Array.isArray(data) ? data : (data && (data[key] || data.items)) || []);
  const UNITS = {
    litres: (v) => t(`${v} 升`, `${v} L`),
    amount: (v) => yuan(v),
    visits: (v) => t(`${v} 次`, `${v} visits`),
  };
  const litresText = (sale) => (sale.litres ? t(`${sale.litres} 升`, `${sale.litres} L`) : "—");
  window.lpMember.addErrors({
    "member_app.checked_in": ["今天已经签到过了，明天再来", "You have checked in today; come back tomorrow"],
    "member_app.checkin_off": ["签到活动暂未开放", "Check-in is not open now"],
    "member_app.invoice_exists": ["这笔消费已经申请过发票", "An invoice was already requested for this purchase"],
    "member_app.sale_reversed": ["这笔消费已撤销，无法开票", "This purchase was reversed: nothing to invoice"],
    "member_app.buyer_name": ["抬头为 1 到 100 个字", "The buyer's name is 1 to 100 characters"],
    "member_app.tax_id": ["税号不正确，请核对 18 位统一社会信用代码", "That tax id is not a valid 18-character credit code"],
    "member_app.email": ["邮箱格式不正确", "That is not an email address"],
    "member_app.plate_taken": ["这个车牌已绑定在其他会员名下，请到油站核实", "That plate belongs to another member; ask at a station"],
    "member_app.plate_limit": ["车牌数量已达上限", "You have the most plates allowed"],
    "member_app.plate": ["车牌号格式不正确", "That is not a valid plate"],
    "member_app.rating": ["请选择 1 到 5 星", "Choose 1 to 5 stars"],
    "member_app.comment": ["留言最多 500 字", "A comment is at most 500 characters"],
    "member_app.feedback_exists": ["这笔消费已经评价过了", "You rated this purchase already"],
    "member_app.feedback_limit": ["今天的评价次数已用完，明天再来", "You have sent the most feedback for today"],
    "member_app.export_throttled": ["每分钟只能下载一次，请稍后再试", "One download a minute; try again shortly"],
    "member_app.otp_wrong": ["验证码不正确", "The code is wrong"],
    "member_app.otp_expired": ["验证码已失效，请重新获取", "The code is no longer valid; send a new one"],
    "member_app.otp_throttled": ["获取验证码太频繁，请稍后再试", "Too many codes asked; please wait"],
    "member_app.session_throttled": ["验证码错误次数太多，请稍后再试", "Too many wrong codes; please wait"],
    "member_app.gateway_unavailable": ["短信暂时发不出去，请稍后再试", "The code could not be sent; try again shortly"],
  });


  // --- home ----------------------------------------------------------------------------------
  const named = (tier) => (tier && typeof tier === "object" ? tier.name || tier.code : tier) || "";
  function measureText(m, value) {
    if (m.unit === "amount_fen") return yuan(Number(value));
    return (UNITS[m.unit] || ((v) => `${v} ${m.unit}`))(value);
  }
  function measureRow(m, index) {
    const have = Number(m.have), need = Number(m.need);
    const fill = h("div", { class: "bar-fill" });
    fill.style.width = `${need > 0 ? Math.min(100, (100 * have) / need) : 100}%`;
    return h("div", { testid: "tier-measure" },
      h("div", { class: "row small" }, h("span", {}, (index ? t("或 ", "or ") : "") + { litres: t("加油量", "Litres"), amount_fen: t("消费金额", "Spend"), visits: t("到店次数", "Visits") }[m.unit] || m.unit),
        h("span", { class: "num" }, `${measureText(m, m.have)} / ${measureText(m, m.need)}`)),
      h("div", { class: "bar-track", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(need), "aria-valuenow": String(have) }, fill));
  }
  function leavingText(window, unit) {
    const rows = (window && window.leaving) || [];
    if (!rows.length) return null;
    const key = unit === "amount_fen" ? "amount_fen" : unit || "litres";
    const first = rows[0];
    const m = { unit: key };
    return h("p", { class: "small muted", testid: "tier-leaving" }, t(
      `${when(first.date, false)} 起将有 ${measureText(m, first[key])} 移出近 ${window.window_days} 天的统计`,
      `${measureText(m, first[key])} leaves the ${window.window_days}-day window on ${when(first.date, false)}`));
  }
  function progressCard(me) {
    const row = h("div", { class: "tier-row" }, h("span", { class: "badge", testid: "tier" }, named(me.tier) || t("会员", "Member")),
      me.tier && me.tier.via === "trial" && me.tier.trial_until ? h("span", { class: "small muted" }, t(`体验至 ${when(me.tier.trial_until, false)}`, `trial until ${when(me.tier.trial_until, false)}`)) : null);
    const next = me.next, keep = me.keep;
    const parts = [row];
    if (next && next.measures && next.measures.length) {
      const verb = { litres: t("加油", "Fill "), amount_fen: t("消费", "Spend "), visits: t("到店", "Visit ") };
      const gap = next.measures.map((m) => (verb[m.unit] || "") + measureText(m, m.missing)).join(t("或", " or "));
      parts.push(h("p", { class: "small", testid: "tier-progress" },
        t(`近 ${next.window_days} 天内再${gap}即可升级为${named(next)}`, `${gap} more within ${next.window_days} days for ${named(next)}`)),
        next.measures.map(measureRow), leavingText(next, next.measures[0].unit));
    } else if (me.tier) {
      parts.push(h("p", { class: "small", testid: "tier-progress" }, t("已是最高等级", "You are at the top tier")));
    }
    if (keep && keep.holds_until && named(keep) !== named(next)) {
      parts.push(h("p", { class: "small muted", testid: "tier-keep" }, t(`如无新消费，${named(keep)} 保持至 ${when(keep.holds_until, false)}`, `Without new purchases you keep ${named(keep)} until ${when(keep.holds_until, false)}`)));
    }
    return parts;
  }

  function expiringCard(me) {
    const exp = me.expiring || {};
    const within = list(exp, "within");
    const byDate = list(exp, "by_date");
    const bucket = (days) => { const found = within.find((w) => w.days === days); return found ? found.points : 0; };
    return card(
      h("h3", {}, t("即将过期的积分", "Points expiring soon")),
      h("div", { class: "buckets", testid: "expiring" }, [30, 60, 90].map((d) =>
        h("div", { class: "bucket", testid: `expiring-${d}` }, h("b", { class: "num" }, points(bucket(d))), h("span", {}, t(`${d} 天内`, `in ${d} days`))))),
      byDate.length
        ? byDate.slice(0, 12).map((x) => h("div", { class: "row small", testid: "expiring-date" }, h("span", {}, t(`${when(x.date, false)} 到期`, `expire ${when(x.date, false)}`)), h("span", { class: "num minus" }, points(x.points))))
        : h("p", { class: "small muted" }, t("90 天内没有积分过期", "No points expire in the next 90 days")),
    );
  }

  function checkinCard() {
    const streak = h("span", { class: "small", testid: "streak" }, t("每天签到领积分", "Check in daily for points"));
    const button = h("button", { type: "button", class: "btn solid", testid: "checkin" }, t("签到", "Check in"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const answer = await api("POST", "/me/checkin");
        const done = answer.checkin || answer;
        const got = Number(done.points || 0);
        toast(t(`签到成功，+${got} 积分`, `Checked in: +${got} points`));
        await route();
        const shown = document.querySelector("[data-testid=streak]");
        if (shown && done.streak) shown.textContent = t(`已连续签到 ${done.streak} 天`, `${done.streak}-day streak`);
      } catch (problem) {
        streak.textContent = explain(problem);
        if (problem.code === "member_app.checked_in") button.textContent = t("今日已签到", "Checked in");
        else button.disabled = false;
      }
    });
    return card(h("div", { class: "checkin" }, streak, button));
  }

  screens.home = { tab: "home", async render(frame) {
    const me = await api("GET", "/me");
    const balance = me.balance || {};
    const worth = balance.yuan_fen;
    put(frame, 
      h("section", { class: "card hero" },
        h("div", { class: "small muted" }, t("我的积分", "My points")),
        h("div", { class: "balance", testid: "balance" }, points(balance.points), h("small", {}, t("分", "pts"))),
        worth !== undefined && worth !== null ? h("div", { class: "worth", testid: "worth" }, t(`可抵 ${yuan(worth)}`, `Worth ${yuan(worth)}`)) : null,
        progressCard(me)),
      checkinCard(),
      expiringCard(me),
      h("nav", { class: "card menu" },
        h("a", { href: "#/sales" }, t("消费记录与发票", "Purchases and invoices")),
        h("a", { href: "#/coupons" }, t("优惠券", "Coupons"))),
      freshness(me));
  } };

  // --- sales, receipts, invoices -------------------------------------------------------------
  function receipt(sale) {
    const r = sale.receipt;
    // The station's step texts are the pricing code's (English): each step is said here.
    const label = {
      base: () => t(`基础积分（${sale.grade}# ${sale.litres} 升）`, `Base (${sale.grade}# ${sale.litres} L)`),
      tier: () => t(`${r.tier_name || r.tier} 等级倍数`, `${r.tier_name || r.tier} tier`),
      bonus: () => r.bonus_name || t("活动倍数", "Bonus"),
      rounding: () => t("取整", "Rounded"),
    };
    const lines = ((r && r.steps) || []).filter((l) => l.code === "base" || l.code === "rounding" || Number(l.factor) !== 1);
    return h("div", { class: "receipt", testid: "receipt" },
      h("h3", {}, t("积分明细", "Points receipt")),
      lines.map((l) => h("div", { class: "row" }, h("span", {}, (label[l.code] || (() => l.description || l.code))()),
        h("span", { class: "num" }, l.code === "tier" || l.code === "bonus" ? `×${l.factor}` : l.value))),
      r && r.discount_fen ? h("div", { class: "row" }, h("span", {}, t("等级直降", "Tier discount")), h("span", { class: "num" }, yuan(r.discount_fen))) : null,
      h("div", { class: "row" }, h("b", {}, t("获得积分", "Points earned")), h("b", { class: "num plus" }, points(sale.points))),
      sale.expires_at ? h("p", { class: "small muted" }, t(`这些积分于 ${when(sale.expires_at, false)} 到期`, `These points expire on ${when(sale.expires_at, false)}`)) : null,
      r ? null : h("p", { class: "small muted" }, t("油站未提供明细", "The station sent no details")));
  }

  function saleCard(sale) {
    const open = h("div", { hidden: true }, receipt(sale));
    const head = h("button", { type: "button", class: "tap", "aria-expanded": "false", testid: "sale" },
      h("div", { class: "sale-head" }, h("b", {}, (sale.station && (sale.station.name || sale.station.id)) || sale.station_id), h("span", { class: "num plus" }, `+${points(sale.points)}`)),
      h("div", { class: "sale-facts" },
        h("span", {}, when(sale.ended_at)),
        h("span", {}, sale.grade ? `${sale.grade}#` : ""),
        h("span", {}, litresText(sale)),
        h("span", {}, yuan(sale.amount_fen))));
    head.addEventListener("click", () => {
      open.hidden = !open.hidden;
      head.setAttribute("aria-expanded", String(!open.hidden));
    });
    const id = encodeURIComponent(sale.sale_id);
    const station = encodeURIComponent((sale.station && sale.station.id) || "");
    return card(head, open, h("div", { class: "actions" },
      sale.invoice_status
        ? h("span", { class: `badge ${sale.invoice_status}` }, statusText(sale.invoice_status))
        : h("a", { class: "btn", href: `#/invoice/${id}`, testid: "request-invoice" }, t("申请发票", "Request invoice")),
      h("a", { class: "btn", href: `#/feedback?sale=${id}&station=${station}`, testid: "rate-sale" }, t("评价", "Rate"))));
  }

  screens.sales = { tab: "sales", async render(frame, { isCurrent }) {
    const shelf = h("div", { testid: "sales" });
    const more = h("button", { type: "button", class: "btn", testid: "load-more" }, t("加载更多", "Load more"));
    let cursor = null;
    async function page() {
      more.disabled = true;
      const query = new URLSearchParams({ limit: "20" });
      if (cursor) query.set("before", cursor);
      const got = await api("GET", `/me/sales?${query}`);
      const sales = list(got, "sales");
      shelf.append(...sales.map(saleCard));
      cursor = got.next || null;
      more.hidden = !cursor || sales.length === 0;
      more.disabled = false;
      if (!shelf.children.length) shelf.append(empty(t("还没有消费记录。加油时报手机号或车牌即可积分。", "No purchases yet. Give your phone or plate when you fill up."), "sales-empty"));
      return got;
    }
    more.addEventListener("click", () => page().catch((p) => { more.disabled = false; if (isCurrent()) toast(explain(p)); }));
    const first = await page();
    put(frame, h("h2", {}, t("消费记录", "Purchases")), shelf, h("div", { class: "actions" }, more,
      h("a", { class: "btn", href: "#/invoices", testid: "to-invoices" }, t("我的发票", "My invoices"))), freshness(first));
  } };

  // The 18-character unified social credit code (GB 32100-2015): the last character checks the rest.
  const USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
  function usccValid(code) {
    if (!/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(code)) return false;
    let sum = 0;
    for (let i = 0; i < 17; i += 1) sum += USCC_CHARS.indexOf(code[i]) * USCC_WEIGHTS[i];
    return USCC_CHARS[(31 - (sum % 31)) % 31] === code[17];
  }
  window.lpMember.usccValid = usccValid;

  function statusText(status) {
    return { requested: t("已申请", "Requested"), issued: t("已开具", "Issued"), rejected: t("被退回", "Rejected") }[status] || status;
  }

  screens.invoice = { tab: "sales", async render(frame, { args }) {
    const saleId = args[0];
    const field = (label, input, hint) => [h("label", { for: input.id }, label), input, hint ? h("p", { class: "hint" }, hint) : null];
    const kind = (value, label, checked) => h("label", {}, h("input", { type: "radio", name: "kind", value, checked, testid: `kind-${value}` }), label);
    const name = h("input", { id: "buyer", maxlength: "100", required: true, autocomplete: "organization", testid: "buyer-name" });
    const tax = h("input", { id: "tax-id", maxlength: "18", autocapitalize: "characters", spellcheck: "false", testid: "tax-id" });
    const email = h("input", { id: "email", type: "email", maxlength: "254", required: true, autocomplete: "email", testid: "email" });
    const msg = h("p", { class: "msg", role: "alert", testid: "invoice-msg" });
    const submit = h("button", { type: "submit", class: "primary", testid: "invoice-submit" }, t("提交申请", "Request the invoice"));
    const form = h("form", { novalidate: true },
      h("div", { class: "seg" }, kind("company", t("企业", "Company"), true), kind("personal", t("个人", "Personal"), false)),
      field(t("抬头（名称）", "Buyer name"), name),
      field(t("税号", "Tax id"), tax, t("18 位统一社会信用代码；个人可不填", "18-character credit code; optional for a person")),
      field(t("接收邮箱", "Email for the invoice"), email),
      msg, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const personal = form.elements.kind.value === "personal";
      const taxId = tax.value.trim().toUpperCase();
      const buyer = name.value.trim();
      let problem = "";
      if (!buyer) problem = t("请填写抬头", "Enter the buyer's name");
      else if (taxId && !usccValid(taxId)) problem = t("税号应为 18 位统一社会信用代码，请核对", "The tax id should be an 18-character credit code; please check it");
      else if (!taxId && !personal) problem = t("企业抬头须填写税号", "A company needs its tax id");
      else if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email.value.trim())) problem = t("请填写有效的邮箱", "Enter a valid email");
      msg.textContent = problem;
      if (problem) return;
      submit.disabled = true;
      try {
        await api("POST", "/me/invoices", { sale_id: saleId, buyer_name: buyer, tax_id: taxId || null, email: email.value.trim() });
        toast(t("发票申请已提交", "Invoice requested"));
        go("#/invoices");
      } catch (p) {
        msg.textContent = explain(p);
      } finally {
        submit.disabled = false;
      }
    });
    put(frame, back("#/sales", t("消费记录", "Purchases")), h("h2", {}, t("申请电子发票", "Request an e-invoice")), card(form));
  } };

  screens.invoices = { tab: "sales", async render(frame) {
    const got = await api("GET", "/me/invoices?limit=50");
    const rows = list(got, "invoices");
    put(frame, back("#/sales", t("消费记录", "Purchases")), h("h2", {}, t("我的发票", "My invoices")),
      rows.length ? rows.map((inv) => card(
        h("div", { class: "sale-head", testid: "invoice" }, h("b", {}, inv.buyer_name), h("span", { class: `badge ${inv.status}`, testid: "invoice-status" }, statusText(inv.status))),
        h("div", { class: "sale-facts" }, h("span", {}, when(inv.requested_at || inv.at)), h("span", {}, inv.tax_id || t("个人", "Personal")),
          inv.amount_fen !== undefined ? h("span", {}, yuan(inv.amount_fen)) : null, h("span", {}, inv.email || "")),
        inv.reason ? h("p", { class: "small muted" }, inv.reason) : null))
        : empty(t("还没有发票申请。在消费记录里点“申请发票”。", "No invoice requests yet. Use “Request invoice” on a purchase."), "invoices-empty"),
      freshness(got));
  } };

  // --- coupons, plates -------------------------------------------------------------------------
  screens.coupons = { tab: "home", async render(frame) {
    const got = await api("GET", "/me/coupons");
    const rows = ["open", "used", "expired"].flatMap((status) => list(got, status).map((c) => Object.assign({ status }, c)));
    const state = { open: t("可使用", "Open"), used: t("已使用", "Used"), expired: t("已过期", "Expired") };
    put(frame, back("#/home", t("首页", "Home")), h("h2", {}, t("优惠券", "Coupons")),
      rows.length ? rows.map((c) => card(
        h("div", { class: "sale-head" }, h("b", {}, c.name || c.title || c.code), h("span", { class: `badge ${c.status}` }, state[c.status] || c.status)),
        c.conditions ? h("p", { class: "small" }, typeof c.conditions === "string" ? c.conditions : JSON.stringify(c.conditions)) : null,
        c.valid_until || c.expires_at ? h("p", { class: "small muted" }, t("有效期至 ", "Valid until ") + when(c.valid_until || c.expires_at, false)) : null))
        : empty(t("暂无优惠券。优惠券会随活动发放。", "No coupons yet. Coupons arrive with campaigns."), "coupons-empty"),
      freshness(got));
  } };

  screens.plates = { tab: "me", async render(frame) {
    const got = await api("GET", "/me/plates");
    const plates = list(got, "plates").map((p) => (typeof p === "string" ? p : p.plate));
    const input = h("input", { id: "plate", maxlength: "10", autocapitalize: "characters", placeholder: t("如 京A12345", "e.g. 京A12345"), testid: "plate-input" });
    const msg = h("p", { class: "msg", role: "alert", testid: "plate-msg" });
    const form = h("form", { novalidate: true }, h("label", { for: "plate" }, t("添加车牌", "Add a plate")),
      h("div", { class: "code-row" }, input, h("button", { type: "submit", class: "secondary", testid: "plate-add" }, t("添加", "Add"))), msg);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const plate = input.value.replace(/\s/g, "").toUpperCase();
      if (!/^[\u4e00-\u9fa5][A-HJ-NP-Z][A-HJ-NP-Z0-9]{5,6}$/.test(plate)) {
        msg.textContent = t("车牌号格式不正确（如 京A12345）", "That is not a plate (e.g. 京A12345)");
        return;
      }
      try {
        await api("POST", "/me/plates", { plate });
        toast(t("车牌已添加", "Plate added"));
        route();
      } catch (p) { msg.textContent = explain(p); }
    });
    const remove = (plate) => async () => {
      if (!window.confirm(t(`确定解绑车牌 ${plate}？`, `Remove the plate ${plate}?`))) return;
      try {
        await api("DELETE", `/me/plates/${encodeURIComponent(plate)}`);
        toast(t("车牌已解绑", "Plate removed"));
        route();
      } catch (p) { toast(explain(p)); }
    };
    put(frame, back("#/me", t("我的", "Me")), h("h2", {}, t("我的车牌", "My plates")),
      card(plates.length ? plates.map((plate) => h("div", { class: "row", testid: "plate" }, h("b", {}, plate),
        h("button", { type: "button", class: "btn danger", onclick: remove(plate), testid: "plate-remove" }, t("解绑", "Remove"))))
        : h("p", { class: "small muted" }, t("还没有绑定车牌。绑定后加油时报车牌即可积分。", "No plates yet. With a plate, the station finds you by it."))),
      card(form));
  } };

  // --- stations, feedback ----------------------------------------------------------------------
  function distance(m) {
    if (m === undefined || m === null) return "";
    return m < 1000 ? t(`${Math.round(m)} 米`, `${Math.round(m)} m`) : t(`${(m / 1000).toFixed(1)} 公里`, `${(m / 1000).toFixed(1)} km`);
  }
  function position() {
    return new Promise((resolve) => {
      if (!navigator.geolocation) return resolve(null);
      navigator.geolocation.getCurrentPosition((p) => resolve(p.coords), () => resolve(null), { timeout: 8000, maximumAge: 300000 });
    });
  }
  screens.stations = { tab: "stations", async render(frame) {
    const here = await position();
    const query = here ? `?lat=${here.latitude.toFixed(6)}&lng=${here.longitude.toFixed(6)}` : "";
    const got = await api("GET", `/stations${query}`);
    const rows = list(got, "stations");
    put(frame, h("h2", {}, t("附近油站", "Stations near me")),
      h("p", { class: "fresh", testid: "stations-where" }, here ? t("按距离排序", "Nearest first") : t("未获得位置权限，按名称列出", "Without your location: listed by name")),
      rows.length ? rows.map((s) => card(
        h("div", { class: "sale-head", testid: "station" }, h("b", {}, s.name || s.station_id), h("span", { class: "small num" }, distance(s.distance_m))),
        s.address ? h("p", { class: "small muted" }, s.address) : null,
        h("div", { class: "actions" },
          s.lat !== undefined && s.lat !== null ? h("a", { class: "btn", href: `https://uri.amap.com/marker?position=${s.lng},${s.lat}&name=${encodeURIComponent(s.name || "")}`, rel: "noopener noreferrer", target: "_blank" }, t("导航", "Directions")) : null,
          h("a", { class: "btn", href: `#/feedback?station=${encodeURIComponent(s.station_id)}&name=${encodeURIComponent(s.name || "")}`, testid: "rate-station" }, t("评价油站", "Rate")))))
        : empty(t("暂无油站信息", "No stations listed yet"), "stations-empty"));
  } };

  screens.feedback = { tab: "me", async render(frame, { params }) {
    const saleId = params.get("sale") || null;
    const stationId = params.get("station") || null;
    const from = saleId ? "#/sales" : stationId ? "#/stations" : "#/me";
    const stars = h("div", { class: "stars", role: "radiogroup", "aria-label": t("评分", "Rating") }, [1, 2, 3, 4, 5].map((n) =>
      h("label", { title: String(n) }, h("input", { type: "radio", name: "rating", value: String(n), testid: `star-${n}` }), h("span", { "aria-hidden": "true" }, "★"), h("b", { class: "skip" }, t(`${n} 星`, `${n} stars`)))));
    const light = () => { const v = Number((form.elements.rating || {}).value || 0); [...stars.children].forEach((l, i) => l.classList.toggle("on", i < v)); };
    const comment = h("textarea", { id: "comment", maxlength: "500", placeholder: t("服务、油品、环境……", "Service, fuel, cleanliness…"), testid: "comment" });
    const msg = h("p", { class: "msg", role: "alert", testid: "feedback-msg" });
    const form = h("form", { novalidate: true, onchange: light },
      h("p", { class: "small muted" }, saleId ? t("评价这次加油", "About this purchase") : stationId ? t("评价油站：", "About the station: ") + (params.get("name") || stationId) : t("整体评价", "In general")),
      h("label", {}, t("评分", "Rating")), stars,
      h("label", { for: "comment" }, t("留言（选填）", "Comment (optional)")), comment, msg,
      h("button", { type: "submit", class: "primary", testid: "feedback-submit" }, t("提交评价", "Send")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const rating = Number(form.elements.rating.value || 0);
      if (!rating) { msg.textContent = t("请选择 1 到 5 星", "Choose 1 to 5 stars"); return; }
      try {
        await api("POST", "/me/feedback", { sale_id: saleId, station_id: stationId, rating, comment: comment.value.trim() });
        toast(t("感谢您的评价", "Thank you for the feedback"));
        go(from);
      } catch (p) { msg.textContent = explain(p); }
    });
    put(frame, back(from, t("返回", "Back")), h("h2", {}, t("评价", "Feedback")), card(form));
  } };

  // --- me, my data -----------------------------------------------------------------------------
  screens.me = { tab: "me", async render(frame) {
    const out = h("button", { type: "button", class: "btn danger", testid: "sign-out", onclick: signOut }, t("退出登录", "Sign out"));
    const other = document.documentElement.lang === "en" ? "zh-CN" : "en";
    put(frame, h("h2", {}, t("我的", "Me")),
      h("nav", { class: "card menu" },
        h("a", { href: "#/invoices", testid: "to-invoices" }, t("我的发票", "My invoices")),
        h("a", { href: "#/coupons", testid: "to-coupons" }, t("优惠券", "Coupons")),
        h("a", { href: "#/plates", testid: "to-plates" }, t("我的车牌", "My plates")),
        h("a", { href: "#/feedback", testid: "to-feedback" }, t("意见反馈", "Feedback")),
        h("a", { href: "#/data", testid: "to-data" }, t("我的数据与隐私", "My data and privacy")),
        h("a", { href: `?lang=${other}#/me`, lang: other }, other === "en" ? "English" : "中文")),
      h("div", { class: "actions" }, out));
  } };

  async function download() {
    const data = await api("GET", "/me/export");
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `member-data-${when(new Date().toISOString(), false)}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  screens.data = { tab: "me", async render(frame) {
    const me = await api("GET", "/me");
    const marketing = h("input", { type: "checkbox", id: "marketing", checked: !!(me.marketing && me.marketing.consent), testid: "marketing" });
    marketing.addEventListener("change", async () => {
      marketing.disabled = true;
      try {
        await api("POST", "/me/consent", { marketing: marketing.checked });
        toast(marketing.checked ? t("已同意接收活动信息", "You will hear about offers") : t("已撤回营销同意", "Marketing consent withdrawn"));
      } catch (p) { marketing.checked = !marketing.checked; toast(explain(p)); } finally { marketing.disabled = false; }
    });
    const get = h("button", { type: "button", class: "btn", testid: "export" }, t("下载我的数据（JSON）", "Download my data (JSON)"));
    get.addEventListener("click", () => download().catch((p) => toast(explain(p))));
    const word = t("注销", "DELETE");
    const typed = h("input", { id: "confirm-delete", autocomplete: "off", testid: "delete-confirm" });
    const drop = h("button", { type: "submit", class: "btn danger solid", disabled: true, testid: "delete-account" }, t("永久注销账户", "Delete my account"));
    typed.addEventListener("input", () => { drop.disabled = typed.value.trim() !== word; });
    const msg = h("p", { class: "msg", role: "alert", testid: "delete-msg" });
    const form = h("form", { novalidate: true },
      h("p", { class: "small" }, t("注销后您的手机号、车牌和个人信息将被匿名化，积分作废且无法恢复；油站账目中的消费金额保留但不再与您关联。",
        "Deleting anonymises your phone, plates and details; your points are void and cannot be restored. Stations' books keep the sales, no longer linked to you.")),
      h("label", { for: "confirm-delete" }, t(`请输入“${word}”以确认`, `Type “${word}” to confirm`)), typed, msg, drop);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (typed.value.trim() !== word) return;
      drop.disabled = true;
      try {
        await api("DELETE", "/me");
        signedOut(t("账户已注销", "Your account was deleted"));
        document.getElementById("login-msg").classList.add("ok");
      } catch (p) { msg.textContent = explain(p); drop.disabled = false; }
    });
    put(frame, back("#/me", t("我的", "Me")), h("h2", {}, t("我的数据与隐私", "My data and privacy")),
      card(h("h3", {}, t("下载", "Download")), h("p", { class: "small muted" }, t("我们保存的与您有关的全部数据。", "Everything we hold about you.")), get),
      card(h("label", { class: "switch", for: "marketing" }, t("接收优惠活动信息", "Tell me about offers"), marketing),
        h("p", { class: "hint" }, t("可随时撤回；不影响积分和会员服务。", "You can withdraw at any time; points and services stay."))),
      card(h("h3", {}, t("注销账户", "Delete account")), form));
  } };
})();
