// Small progressive enhancements. Everything works without this file.
(function () {
  "use strict";

  // After an in-place action, put keyboard focus back where the person was (or on the
  // first field with an error), instead of letting it fall to <body>.
  var lastFocus = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var el = document.activeElement;
    if (!el || el === document.body) { lastFocus = null; return; }
    var form = el.form || el.closest("form");
    lastFocus = {
      id: el.id || null,
      action: form ? form.getAttribute("action") : null,
      hidden: form ? Array.from(form.querySelectorAll("input[type=hidden]:not([name=csrfmiddlewaretoken])"))
        .filter(function (i) { return i.name !== "from_status" && i.name !== "from_severity"; })
        .map(function (i) { return i.name + "=" + i.value; }).join("&") : "",
    };
  });
  document.addEventListener("htmx:afterSettle", function () {
    var invalid = document.querySelector("#incident-sidebar [aria-invalid=true], #composer [aria-invalid=true]");
    if (invalid && lastFocus) { invalid.focus(); lastFocus = null; return; }
    if (!lastFocus || (document.activeElement && document.activeElement !== document.body)) return;
    var target = lastFocus.id ? document.getElementById(lastFocus.id) : null;
    if (!target && lastFocus.action) {
      var forms = document.querySelectorAll('form[action="' + lastFocus.action + '"]');
      for (var i = 0; i < forms.length && !target; i++) {
        var hidden = Array.from(forms[i].querySelectorAll("input[type=hidden]:not([name=csrfmiddlewaretoken])"))
          .filter(function (h) { return h.name !== "from_status" && h.name !== "from_severity"; })
          .map(function (h) { return h.name + "=" + h.value; }).join("&");
        if (hidden === lastFocus.hidden) target = forms[i].querySelector("button, input:not([type=hidden]), select, textarea");
      }
      // The control may be gone (e.g. the status moved on): stay in the same panel.
      if (!target && forms.length) target = forms[0].querySelector("button");
    }
    if (target) target.focus();
    lastFocus = null;
  });

  // "Next update due in N min" counts down between server refreshes.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var minutes = Math.floor(Math.abs(due - now) / 60000);
      var overdue = due < now;
      var text = el.querySelector("[data-due-text]");
      if (!text) return;
      if (el.hasAttribute("data-due-short")) {
        text.textContent = overdue ? "Overdue by " + minutes + " min" : "Next due in " + minutes + " min";
      } else {
        text.textContent = overdue ? "Stakeholder update overdue by " + minutes + " min"
                                   : "Next stakeholder update due in " + minutes + " min";
      }
      el.classList.toggle("overdue", overdue);
    });
  }
  setInterval(tick, 30000);
})();
