// The members screen: HQ's adjustment, PIPL export and erasure, and the sheet import.
// Every call goes to the documented JSON API with the session's CSRF header (hq.js).
"use strict";

(function () {
  function onReady(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  function setText(el, text, bad) {
    el.hidden = false;
    el.textContent = text;
    el.classList.toggle("error", Boolean(bad));
  }

  function memberPage() {
    const card = document.getElementById("member");
    if (!card) return;
    const id = card.dataset.member;
    const base = "/api/v1/hq/members/" + encodeURIComponent(id);

    const adjust = document.getElementById("adjust-form");
    if (adjust) {
      let busy = false;
      adjust.addEventListener("submit", async (event) => {
        event.preventDefault();
        const status = document.getElementById("adjust-status");
        const body = {
          points: Number(adjust.elements.points.value),
          reason: adjust.elements.reason.value,
          request_id: adjust.dataset.requestId, // the same id on a second click: booked once
        };
        if (busy) return;
        busy = true;
        try {
          const done = await window.hq.api("POST", base + "/adjustments", body);
          setText(status, status.dataset.tDone + ": " + done.points);
          window.location.reload();
        } catch (error) {
          setText(status, error.message, true);
          busy = false;
        }
      });
    }

    const exporter = document.getElementById("pipl-export");
    if (exporter) {
      exporter.addEventListener("click", async () => {
        const doc = await window.hq.api("POST", base + "/pipl-export");
        const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = "member-" + id + ".json";
        link.click();
        URL.revokeObjectURL(link.href);
      });
    }

    const erase = document.getElementById("erase-form");
    if (erase) {
      erase.addEventListener("submit", async (event) => {
        event.preventDefault();
        const status = document.getElementById("erase-status");
        const typed = document.getElementById("erase-confirm").value.trim();
        if (typed !== card.dataset.masked) {
          setText(status, status.dataset.tMismatch, true);
          return;
        }
        try {
          await window.hq.api("POST", base + "/erase", { confirm: typed });
          window.location.reload();
        } catch (error) {
          setText(status, error.message, true);
        }
      });
    }
  }

  function importPage() {
    const form = document.getElementById("import-form");
    if (!form) return;
    const input = document.getElementById("import-file");
    const applyButton = form.querySelector("[data-action=apply]");
    const summary = document.getElementById("import-summary");
    const list = document.getElementById("import-problems");

    async function send(dryRun) {
      const file = input.files[0];
      list.replaceChildren();
      if (!file) { input.reportValidity(); return; }
      if (file.size > Number(form.dataset.limit)) {
        setText(summary, "413: " + file.name, true);
        return;
      }
      const url = "/api/v1/hq/members/import?filename=" + encodeURIComponent(file.name) +
        "&dry_run=" + (dryRun ? "true" : "false");
      const answer = await fetch(url, {
        method: "POST",
        headers: { "X-CSRF-Token": window.hq.csrf(), "Content-Type": "application/octet-stream" },
        credentials: "same-origin",
        body: file,
      });
      let data = {};
      try { data = await answer.json(); } catch (e) { data = { detail: answer.statusText }; }
      const problems = data.problems || [];
      for (const line of problems) {
        const item = document.createElement("li");
        item.textContent = line;
        list.appendChild(item);
      }
      if (!answer.ok && !problems.length) {
        setText(summary, data.detail || answer.statusText, true);
        applyButton.disabled = true;
        return;
      }
      if (problems.length) {
        setText(summary, data.rows + " " + summary.dataset.tRows + ", " + problems.length + " " + summary.dataset.tBad, true);
        applyButton.disabled = true;
      } else if (dryRun) {
        setText(summary, data.rows + " " + summary.dataset.tRows + ". " + summary.dataset.tOk);
        applyButton.disabled = false;
      } else {
        setText(summary, summary.dataset.tDone + ": " + data.imported);
        applyButton.disabled = true;
      }
    }

    input.addEventListener("change", () => { applyButton.disabled = true; });
    form.querySelector("[data-action=dry-run]").addEventListener("click", () => send(true));
    applyButton.addEventListener("click", () => send(false));
  }

  onReady(() => { memberPage(); importPage(); });
})();
