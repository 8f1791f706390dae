/* The till's behaviour, in small plain parts:
   - live pumps board and sales list (server-sent events), patched in place row by row, so
     focus and the element under the pointer survive every refresh;
   - the sales list holds still while the pointer is over it or focus is in it: new sales
     wait behind an "N new" bar instead of pushing rows down;
   - keys: F2 search, digits choose a pump, arrows walk the sales, Enter acts, Esc cancels,
     F8 redeem, F9 print; the plate keypad; answers land in the one answer area;
   - printing a receipt slip (80 mm, print stylesheet). */
(function () {
  "use strict";
  var state = { pump: 0, hover: false, frozenSeen: null, returnKey: null, timers: {} };
  var hintHTML = "";

  function byId(id) { return document.getElementById(id); }
  function htmx() { return window.htmx; }
  function isTyping(el) {
    if (!el || !el.tagName) { return false; }
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && !/^(checkbox|radio|button|submit|hidden)$/i.test(el.type);
  }
  function keyOf(el) { return el && el.getAttribute ? el.getAttribute("data-key") : null; }
  function byKey(key) {
    var all = document.querySelectorAll("[data-key]");
    for (var i = 0; i < all.length; i += 1) {
      if (all[i].getAttribute("data-key") === key) { return all[i]; }
    }
    return null;
  }
  function focusKey(key) {
    var el = key && byKey(key);
    if (el && document.activeElement !== el) { el.focus({ preventScroll: true }); }
    return el;
  }
  function focusSearch() {
    var box = byId("search-q");
    if (box) { box.focus(); box.select(); }
  }
  function firstRow() { return document.querySelector("#sales-rows [data-row]"); }

  /* ---- fragments, fetched and patched in place ---- */
  function fetchFragment(url) {
    return window.fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = response.headers.get("HX-Redirect") || "/login?expired=1";
          throw new Error("session ended");
        }
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html;
        return holder.content;
      });
  }
  /* Make `old` look like `fresh` without replacing it (so focus and clicks survive). */
  function patch(old, fresh) {
    var chosen = old.classList.contains("chosen");
    if (chosen) { old.classList.remove("chosen"); }
    if (old.outerHTML === fresh.outerHTML) {
      if (chosen) { old.classList.add("chosen"); }
      return false;
    }
    var focusedKey = old.contains(document.activeElement) ? keyOf(document.activeElement) : null;
    Array.prototype.slice.call(old.attributes).forEach(function (a) {
      if (!fresh.hasAttribute(a.name)) { old.removeAttribute(a.name); }
    });
    Array.prototype.slice.call(fresh.attributes).forEach(function (a) {
      if (old.getAttribute(a.name) !== a.value) { old.setAttribute(a.name, a.value); }
    });
    if (old.innerHTML !== fresh.innerHTML) {
      old.innerHTML = fresh.innerHTML;
      if (htmx()) { htmx().process(old); }
      focusKey(focusedKey);
    }
    if (chosen) { old.classList.add("chosen"); }
    return true;
  }
  /* Children keyed by id: update those both have; `structure` also adds, drops, reorders. */
  function syncChildren(oldParent, freshParent, structure) {
    var oldById = {};
    var unseen = 0;
    Array.prototype.forEach.call(oldParent.children, function (child) {
      if (child.id) { oldById[child.id] = child; }
    });
    var freshKids = Array.prototype.slice.call(freshParent.children);
    freshKids.forEach(function (fresh) {
      var old = fresh.id ? oldById[fresh.id] : null;
      if (old) { patch(old, fresh); } else { unseen += 1; }
    });
    if (!structure) { return unseen; }
    var focusedKey = oldParent.contains(document.activeElement) ? keyOf(document.activeElement) : null;
    var wanted = freshKids.map(function (fresh) {
      var old = fresh.id ? oldById[fresh.id] : null;
      return old || fresh;
    });
    Array.prototype.slice.call(oldParent.children).forEach(function (child) {
      if (wanted.indexOf(child) < 0) { child.remove(); }
    });
    wanted.forEach(function (node, index) {
      if (oldParent.children[index] !== node) {
        oldParent.insertBefore(node, oldParent.children[index] || null);
        if (htmx()) { htmx().process(node); }
      }
    });
    focusKey(focusedKey);
    return 0;
  }

  function pumpQuery() { return state.pump ? "?pump=" + state.pump : ""; }
  function once(name, run) {
    /* One refresh per target at a time, after a short pause so bursts coalesce. */
    if (state.timers[name]) { return; }
    state.timers[name] = window.setTimeout(function () {
      state.timers[name] = 0;
      run();
    }, 150);
  }
  function refreshBoard() {
    once("board", function () {
      fetchFragment("/ui/pumps" + pumpQuery()).then(function (frag) {
        var fresh = frag.querySelector("#pumps-board");
        var old = byId("pumps-board");
        if (!fresh || !old) { return; }
        old.className = fresh.className;
        syncChildren(old, fresh, true);
      }).catch(function () { return null; });
    });
  }
  function frozen() {
    var list = byId("sales-rows");
    return state.hover || Boolean(list && list.contains(document.activeElement));
  }
  function showFrozen(unseen) {
    var bar = byId("sales-new");
    var note = byId("sales-frozen");
    if (bar) {
      bar.hidden = !unseen;
      var count = byId("sales-new-count");
      if (count) { count.textContent = String(unseen); }
    }
    if (note) { note.hidden = !frozen() || Boolean(unseen); }
  }
  /* `force`: the cashier asked (a pump, the "new" bar): apply even while frozen. */
  function refreshSales(force, then) {
    var run = function () {
      fetchFragment("/ui/sales" + pumpQuery()).then(function (frag) {
        var fresh = frag.querySelector("#sales-list");
        var old = byId("sales-list");
        if (!fresh || !old) { return; }
        var freshRows = fresh.querySelector("#sales-rows");
        var oldRows = byId("sales-rows");
        if (force || old.getAttribute("data-pump") !== fresh.getAttribute("data-pump")) {
          var head = old.querySelector(".sales-head h2");
          var freshHead = fresh.querySelector(".sales-head h2");
          if (head && freshHead) { head.textContent = freshHead.textContent; }
          var allButton = old.querySelector("[data-pump-select='0']");
          var freshAll = fresh.querySelector("[data-pump-select='0']");
          if (allButton && !freshAll) { allButton.remove(); }
          if (!allButton && freshAll) { old.querySelector(".sales-head").appendChild(freshAll); }
          old.setAttribute("data-pump", fresh.getAttribute("data-pump"));
        }
        if (force || !frozen()) {
          syncChildren(oldRows, freshRows, true);
          showFrozen(0);
        } else {
          showFrozen(syncChildren(oldRows, freshRows, false));
        }
        if (then) { then(); }
      }).catch(function () { return null; });
    };
    if (force) { run(); } else { once("sales", run); }
  }
  function selectPump(number, focusList) {
    state.pump = number;
    refreshBoard();
    refreshSales(true, function () {
      if (focusList) {
        var row = firstRow();
        if (row) { row.focus(); } else { focusKey("pump-" + number); }
      }
    });
  }
  function watchSales() {
    var list = byId("sales-list");
    if (!list) { return; }
    list.addEventListener("mouseenter", function () { state.hover = true; showFrozen(0); });
    list.addEventListener("mouseleave", function () {
      state.hover = false;
      window.setTimeout(function () { if (!frozen()) { refreshSales(false); } }, 0);
    });
    list.addEventListener("focusout", function () {
      window.setTimeout(function () { if (!frozen()) { refreshSales(false); } }, 0);
    });
  }

  function connect() {
    if (!byId("pumps-board") || !window.EventSource) { return; }
    var source = new window.EventSource("/api/v1/events");
    source.addEventListener("pumps", refreshBoard);
    source.addEventListener("sale", function () {
      refreshBoard();
      refreshSales(false);
    });
    source.addEventListener("error", function () {
      if (source.readyState === window.EventSource.CLOSED) {
        /* The session ended (or the agent restarted): the login page says which. */
        window.setTimeout(function () { window.location.reload(); }, 3000);
      }
    });
  }

  /* ---- the answer area ---- */
  function answer() { return byId("answer"); }
  function resetAnswer() {
    var box = answer();
    if (box) { box.innerHTML = hintHTML; }
  }
  function cancelAnswer() {
    resetAnswer();
    document.querySelectorAll(".sale.chosen").forEach(function (row) { row.classList.remove("chosen"); });
    if (!focusKey(state.returnKey)) { focusSearch(); }
    state.returnKey = null;
  }
  function sayInAnswer(message) {
    var box = answer();
    if (!box) { return; }
    var wrap = document.createElement("div");
    wrap.className = "ans ans-error";
    wrap.setAttribute("role", "alert");
    wrap.setAttribute("data-testid", "ui-error");
    var text = document.createElement("p");
    text.className = "error";
    text.textContent = message;
    wrap.appendChild(text);
    box.replaceChildren(wrap);
  }
  function afterSwap(event) {
    var target = event.detail && event.detail.target;
    if (!target) { return; }
    if (target.id === "answer") {
      target.scrollTop = 0;
      if (target.querySelector("[data-testid='found'], [data-testid='signup-done']")) {
        var row = firstRow();
        if (row) { row.focus({ preventScroll: true }); }
      } else if (target.querySelector("[data-focus-search], [data-testid='receipt'], [data-testid='redeem-result'], [data-testid='detach-result']")) {
        state.returnKey = null;
        focusSearch();
      } else if (target.querySelector("[data-testid='attach-error']")) {
        if (!focusKey(state.returnKey)) { focusSearch(); }
      } else if (target.querySelector("[data-testid='redeem-error']")) {
        var points = byId("redeem-points");
        if (points) { points.focus(); points.select(); }
      }
    }
  }
  function beforeRequest(event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.classList) { return; }
    if (elt.classList.contains("search")) {
      /* One or two digits are a pump number, not a member: choose that pump instead. */
      var box = byId("search-q");
      var typed = box ? box.value.trim() : "";
      if (/^[0-9]{1,2}$/.test(typed)) {
        event.preventDefault();
        box.value = "";
        selectPump(parseInt(typed, 10), true);
        return;
      }
      /* A new search is a new customer: clear the old one at once. */
      var panel = byId("customer");
      if (panel) { panel.innerHTML = ""; }
      state.returnKey = null;
    }
    if (elt.hasAttribute("data-row")) {
      state.returnKey = keyOf(elt);
      document.querySelectorAll(".sale.chosen").forEach(function (row) { row.classList.remove("chosen"); });
      var li = elt.closest(".sale");
      if (li) { li.classList.add("chosen"); }
    }
  }
  function requestFailed(event) {
    var box = answer();
    if (!box) { return; }
    var offline = event.type === "htmx:sendError";
    sayInAnswer(box.getAttribute(offline ? "data-msg-offline" : "data-msg-failed") || "");
  }

  /* ---- printing ---- */
  function printSlip(button) {
    var holder = button.closest(".ans") || document;
    var slip = holder.querySelector(".slip");
    var area = byId("print-area");
    if (!slip || !area) { return; }
    area.replaceChildren(slip.cloneNode(true));
    window.print();
  }

  /* ---- the plate keypad ---- */
  function keypad(open) {
    var pad = byId("plate-keypad");
    var toggle = byId("keypad-toggle");
    if (!pad || !toggle) { return; }
    pad.hidden = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = pad.querySelector("[data-insert]");
      if (first) { first.focus(); }
    }
  }
  function insertProvince(text) {
    var box = byId("search-q");
    if (!box) { return; }
    var start = box.selectionStart === null ? box.value.length : box.selectionStart;
    var end = box.selectionEnd === null ? start : box.selectionEnd;
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    keypad(false);
    box.focus();
    box.setSelectionRange(start + text.length, start + text.length);
  }

  /* ---- clicks and keys ---- */
  function onClick(event) {
    var el = event.target.closest ? event.target : event.target.parentElement;
    if (!el) { return; }
    var pump = el.closest("[data-pump-select]");
    if (pump) {
      var number = parseInt(pump.getAttribute("data-pump-select"), 10) || 0;
      selectPump(number === state.pump ? 0 : number, false);
      return;
    }
    if (el.closest("#sales-new")) { refreshSales(true); return; }
    if (el.closest("[data-cancel]")) { cancelAnswer(); return; }
    if (el.closest("[data-print]")) { printSlip(el.closest("[data-print]")); return; }
    if (el.closest("#keypad-toggle")) { keypad(byId("plate-keypad").hidden); return; }
    if (el.closest("[data-keypad-close]")) { keypad(false); focusSearch(); return; }
    var insert = el.closest("[data-insert]");
    if (insert) { insertProvince(insert.getAttribute("data-insert")); return; }
    if (el.closest("[data-close-customer]")) {
      var panel = byId("customer");
      if (panel) {
        var empty = document.createElement("p");
        empty.className = "empty";
        empty.textContent = panel.getAttribute("data-empty") || "";
        panel.replaceChildren(empty);
      }
      resetAnswer();
      focusSearch();
    }
  }
  function moveInRows(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#sales-rows [data-row]"));
    var at = rows.indexOf(document.activeElement);
    if (at < 0) { if (rows.length) { rows[0].focus(); } return; }
    var next = at + step;
    if (next < 0) { focusSearch(); return; }
    if (next < rows.length) { rows[next].focus(); }
  }
  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var active = document.activeElement;
    var key = event.key;
    if (key === "F2") { event.preventDefault(); keypad(false); focusSearch(); return; }
    if (key === "F4") { event.preventDefault(); moveInRows(0); return; }
    if (key === "F8") {
      event.preventDefault();
      var points = byId("redeem-points");
      if (points) { points.focus(); points.select(); }
      return;
    }
    if (key === "F9") {
      /* The station's receipt printer when there is one, else the browser's print. */
      var station = document.querySelector(".has-printer #answer [data-print-station]");
      var print = answer() && answer().querySelector("[data-print]");
      if (station) { event.preventDefault(); station.click(); } else if (print) { event.preventDefault(); printSlip(print); }
      return;
    }
    if (key === "Escape") {
      var pad = byId("plate-keypad");
      if (pad && !pad.hidden) { keypad(false); focusSearch(); return; }
      if (answer() && answer().querySelector("[data-cancel]")) { cancelAnswer(); return; }
      focusSearch();
      return;
    }
    if (active && active.id === "search-q" && key === "ArrowDown") {
      event.preventDefault();
      moveInRows(0);
      return;
    }
    if (active && active.hasAttribute && active.hasAttribute("data-row")) {
      if (key === "ArrowDown" || key === "ArrowUp") {
        event.preventDefault();
        moveInRows(key === "ArrowDown" ? 1 : -1);
        return;
      }
    }
    if (!isTyping(active) && /^[0-9]$/.test(key)) {
      event.preventDefault();
      /* A pick list asks "which one?": its numbers pick; otherwise a number is a pump. */
      var pick = answer() && answer().querySelector("[data-pick='" + key + "']");
      if (pick) { pick.click(); } else { selectPump(parseInt(key, 10), true); }
    }
  }

  function tickClock() {
    var clock = byId("station-clock");
    if (!clock) { return; }
    /* Station time (the sales list's times), whatever zone the browser's PC is set to. */
    var offset = parseInt(clock.getAttribute("data-utc-offset") || "", 10);
    var now = new Date();
    if (!isNaN(offset)) { now = new Date(now.getTime() + offset * 60000); }
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var get = isNaN(offset)
      ? [now.getHours(), now.getMinutes(), now.getSeconds()]
      : [now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds()];
    clock.textContent = get.map(pad).join(":");
  }

  function start() {
    var box = answer();
    hintHTML = box ? box.innerHTML : "";
    document.body.addEventListener("htmx:beforeRequest", beforeRequest);
    document.body.addEventListener("htmx:afterSwap", afterSwap);
    document.body.addEventListener("htmx:responseError", requestFailed);
    document.body.addEventListener("htmx:sendError", requestFailed);
    document.addEventListener("click", onClick);
    document.addEventListener("keydown", onKey);
    tickClock();
    window.setInterval(tickClock, 1000);
    watchSales();
    connect();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
