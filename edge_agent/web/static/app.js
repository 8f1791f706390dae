/* Keeps the pumps board and the sales list live: server-sent events trigger htmx refreshes. */
(function () {
  "use strict";
  var pending = {};
  /* One refresh per target at a time, after a short pause so bursts of pump states
     coalesce; each target is its own htmx source, so one never cancels the other. */
  function refresh(url, target) {
    if (pending[target]) {
      return;
    }
    pending[target] = window.setTimeout(function () {
      pending[target] = 0;
      var element = document.querySelector(target);
      if (element && window.htmx) {
        window.htmx.ajax("GET", url, { source: element, target: element, swap: "outerHTML" });
      }
    }, 150);
  }
  function connect() {
    if (!document.getElementById("pumps-board") || !window.EventSource) {
      return;
    }
    var source = new EventSource("/api/v1/events");
    source.addEventListener("pumps", function () {
      refresh("/ui/pumps", "#pumps-board");
    });
    source.addEventListener("sale", function () {
      refresh("/ui/pumps", "#pumps-board");
      refresh("/ui/sales", "#sales-list");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        /* The session ended (or the agent restarted): reloading shows the login page. */
        window.setTimeout(function () { window.location.reload(); }, 5000);
      }
    });
  }
  /* A new search starts a new customer: clear the old card and receipt at once, so
     nothing typed into the old card is lost to a late answer. */
  function clearOnSearch(event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.classList && elt.classList.contains("search")) {
      ["member-panel", "attach-result"].forEach(function (id) {
        var box = document.getElementById(id);
        if (box) {
          box.textContent = "";
        }
      });
    }
  }
  function start() {
    document.body.addEventListener("htmx:beforeRequest", clearOnSearch);
    connect();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
