/* The web app's small script: Plotly charts from the JSON the server embedded, sortable tables,
   and clickable stages on the journey map. No network: Plotly comes from the app itself. */
(function () {
  "use strict";
  var standalone = document.body.classList.contains("jm-standalone");

  function drawCharts() {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll("script[data-chart-for]").forEach(function (tag) {
      var target = document.getElementById(tag.getAttribute("data-chart-for"));
      if (!target) { return; }
      var spec = JSON.parse(tag.textContent);
      var layout = Object.assign({ paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { family: "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Arial, sans-serif", size: 12, color: "#1a2332" } },
        spec.layout);
      Plotly.newPlot(target, spec.data, layout, { displaylogo: false, responsive: !standalone, staticPlot: standalone });
      target.setAttribute("data-rendered", "true");
    });
  }

  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    var raw = cell ? (cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim()) : "";
    if (!numeric) { return raw.toLowerCase(); }
    return raw === "" ? null : parseFloat(raw);
  }

  function sortable(table) {
    var heads = Array.prototype.slice.call(table.querySelectorAll("thead th"));
    heads.forEach(function (th, index) {
      if (!th.hasAttribute("data-sort")) { return; }
      th.setAttribute("tabindex", "0");
      function sort() {
        var numeric = th.getAttribute("data-sort") === "num";
        var descending = th.getAttribute("aria-sort") !== "descending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
          if (x === null && y === null) { return 0; }
          if (x === null) { return 1; }   /* missing values last, whichever the direction */
          if (y === null) { return -1; }
          var c = x < y ? -1 : x > y ? 1 : 0;
          return descending ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }

  function stageLinks() {
    if (standalone) { return; }
    document.querySelectorAll(".journey-grid th[data-stage]").forEach(function (th) {
      var id = th.getAttribute("data-stage");
      var name = th.querySelector(".stage-name");
      if (name && !name.querySelector("a")) {
        var a = document.createElement("a");
        a.href = "/app/stages/" + encodeURIComponent(id);
        a.textContent = name.textContent;
        a.style.color = "inherit";
        name.textContent = "";
        name.appendChild(a);
      }
      th.addEventListener("click", function () { location.href = "/app/stages/" + encodeURIComponent(id); });
    });
  }

  function keepEmptyOut(form) {
    /* GET forms: leave empty fields out of the URL so links stay short. */
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && (el.tagName === "INPUT" && el.type === "text") && !el.value.trim()) { el.disabled = true; }
      });
    });
  }

  drawCharts();
  document.querySelectorAll("table.sortable").forEach(sortable);
  stageLinks();
  document.querySelectorAll("form.jm-options").forEach(keepEmptyOut);
  // A choice that applies at once (no inline onchange: the Content-Security-Policy runs no inline handlers).
  document.querySelectorAll("[data-autosubmit]").forEach(function (input) {
    input.addEventListener("change", function () { input.form.submit(); });
  });
})();
