// Sorts each <table data-sortable> by a column when its heading is pressed, ascending first, then
// descending; the heading's aria-sort says which. Headings become buttons (keyboard and screen readers);
// one marked data-unsortable stays as it is. A cell's sort key is its data-sort attribute, else its
// text; a heading with data-sort-type="number" compares keys as numbers, rows without one last.
// A static file, not an inline script, so the page keeps a Content-Security-Policy without 'unsafe-inline'.
(function () {
  "use strict";
  function key(row, index) {
    var cell = row.cells[index];
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
  }
  function compare(numeric, ascending) {
    var direction = ascending ? 1 : -1;
    return function (a, b) {
      if (numeric) {
        var x = parseFloat(a), y = parseFloat(b);
        if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
        return direction * (x - y);
      }
      return direction * a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
    };
  }
  function sort(table, heading) {
    var index = heading.cellIndex;
    var ascending = heading.getAttribute("aria-sort") !== "ascending";
    var order = compare(heading.getAttribute("data-sort-type") === "number", ascending);
    var body = table.tBodies[0];
    // Array.prototype.sort is stable: rows with equal keys keep their order (drifted first, by name).
    var rows = Array.prototype.map.call(body.rows, function (row) {
      return { row: row, key: key(row, index) };
    });
    rows.sort(function (a, b) {
      return order(a.key, b.key);
    });
    rows.forEach(function (item) {
      body.appendChild(item.row);
    });
    Array.prototype.forEach.call(heading.parentNode.cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    heading.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  function prepare(table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (heading) {
      if (heading.hasAttribute("data-unsortable")) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (heading.firstChild) button.appendChild(heading.firstChild);
      heading.appendChild(button);
      button.addEventListener("click", function () {
        sort(table, heading);
      });
    });
  }
  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("table[data-sortable]"), prepare);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
