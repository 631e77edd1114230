/* Persona switcher: every element with data-persona shows only for the chosen persona.
   The choice is kept in the URL hash (#persona=smb) so a link opens the same view. */
(function () {
  "use strict";
  var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-persona-button]"));
  if (!buttons.length) { return; }
  var ids = buttons.map(function (b) { return b.getAttribute("data-persona-button"); });

  function show(id, remember) {
    if (ids.indexOf(id) < 0) { return; }
    document.querySelectorAll("[data-persona]").forEach(function (el) {
      el.hidden = el.getAttribute("data-persona") !== id;
    });
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-persona-button") === id ? "true" : "false");
    });
    document.documentElement.setAttribute("data-active-persona", id);
    if (remember) {
      try { history.replaceState(null, "", "#persona=" + encodeURIComponent(id)); } catch (e) { /* file:// may refuse */ }
    }
  }

  buttons.forEach(function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-persona-button"), true); });
  });
  var match = /persona=([^&]+)/.exec(location.hash);
  show(match ? decodeURIComponent(match[1]) : ids[0], false);
})();
