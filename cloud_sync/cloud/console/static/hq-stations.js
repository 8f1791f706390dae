// The stations screen's admin actions: enrol, rotate, revoke. A new token is written into
// the page once, from the answer that made it; it is never stored or logged here.
"use strict";

(function () {
  const out = document.getElementById("token-out");
  const error = document.getElementById("enrol-error");

  function showToken(token) {
    out.querySelector("code").textContent = token;
    out.hidden = false;
  }

  const form = document.getElementById("enrol-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      const name = String(data.get("name") || "").trim();
      try {
        const answer = await window.hq.api("POST", "/api/v1/hq/stations", {
          station_id: String(data.get("station_id") || "").trim(),
          name: name || null,
        });
        showToken(answer.token);
        form.reset();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
  }

  const buttons = document.getElementById("token-buttons");
  if (buttons) {
    buttons.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || !window.confirm(button.dataset.confirm)) return;
      error.textContent = "";
      const station = encodeURIComponent(buttons.dataset.station);
      try {
        const answer = await window.hq.api("POST", `/api/v1/hq/stations/${station}/${button.dataset.action}`);
        if (answer.token) showToken(answer.token);
        else window.location.reload();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
  }
})();
