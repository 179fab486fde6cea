// Draws every Plotly figure of the page: each <div data-chart="id"> gets the figure stored in the
// <script type="application/json" id="id"> that json_script wrote. A static file, not an inline
// script, so the page keeps a Content-Security-Policy without 'unsafe-inline'.
(function () {
  "use strict";
  function draw() {
    var nodes = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < nodes.length; i++) {
      var source = document.getElementById(nodes[i].dataset.chart);
      if (!source) continue;
      var figure = JSON.parse(source.textContent);
      var small = nodes[i].classList.contains("sparkline");
      window.Plotly.newPlot(nodes[i], figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
        staticPlot: small,
        displayModeBar: small ? false : "hover",
      });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
