// Live progress of batch runs: every <progress data-run-id> of a pending or running run is updated
// from GET /api/batch-runs/<id>/ every 2 seconds until the run finishes. A static file, because the
// Content-Security-Policy blocks inline scripts.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var ACTIVE = { pending: true, running: true };
  var LABELS = { pending: "Pending", running: "Running", succeeded: "Succeeded", failed: "Failed" };

  function formatNumber(value) {
    return Number(value).toLocaleString("en-GB");
  }

  function setField(scope, name, text) {
    var nodes = scope.querySelectorAll('[data-field="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = text;
    }
  }

  function setStatus(scope, status) {
    var nodes = scope.querySelectorAll('[data-field="status"]');
    for (var i = 0; i < nodes.length; i++) {
      var badge = document.createElement("span");
      badge.className = "badge status-" + status;
      badge.textContent = LABELS[status] || status;
      nodes[i].replaceChildren(badge);
    }
  }

  function update(bar, run) {
    bar.max = Math.max(run.chunks_total, 1);
    bar.value = run.chunks_done;
    bar.textContent = run.chunks_done + " / " + run.chunks_total;
    bar.dataset.status = run.status;
    var scope = document.querySelector('[data-run-row="' + run.id + '"]') || document;
    setStatus(scope, run.status);
    setField(scope, "chunks_done", String(run.chunks_done));
    setField(scope, "chunks_total", String(run.chunks_total));
    setField(scope, "rows_total", formatNumber(run.rows_total));
    setField(scope, "rows_scored", formatNumber(run.rows_scored));
    setField(scope, "rows_rejected", formatNumber(run.rows_rejected));
    setField(scope, "duration", run.duration_seconds === null ? "" : run.duration_seconds.toFixed(1) + " s");
    setField(scope, "error", run.error || "");
  }

  function poll(bar) {
    var runId = bar.dataset.runId;
    fetch("/api/batch-runs/" + encodeURIComponent(runId) + "/", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (run) {
        update(bar, run);
        if (ACTIVE[run.status]) {
          window.setTimeout(function () { poll(bar); }, INTERVAL_MS);
        }
      })
      .catch(function () {
        // A network blip or a restart: try again later rather than freeze the bar.
        window.setTimeout(function () { poll(bar); }, INTERVAL_MS * 5);
      });
  }

  function start() {
    var bars = document.querySelectorAll("progress[data-run-id]");
    for (var i = 0; i < bars.length; i++) {
      if (ACTIVE[bars[i].dataset.status]) {
        poll(bars[i]);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
