// Docket's embeddable case form: sends the form to Docket and shows the
// answer in place. Without this script the form still posts (the answer
// is then Docket's JSON).
(function () {
  "use strict";
  function show(form, text, ok) {
    var out = form.querySelector(".docket-form-result");
    if (!out) { return; }
    out.textContent = text;
    out.setAttribute("data-ok", ok ? "true" : "false");
  }
  document.querySelectorAll("form.docket-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      fetch(form.action, { method: "POST", body: new FormData(form) })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (answer) {
          if (answer.ok) {
            var number = answer.body.number ? " (case #" + answer.body.number + ")" : "";
            show(form, answer.body.message + number, true);
            form.reset();
          } else {
            var error = answer.body.error || {};
            var fields = error.fields ? Object.keys(error.fields).map(function (k) { return k + ": " + error.fields[k]; }) : [];
            show(form, [error.message].concat(fields).filter(Boolean).join("; "), false);
          }
        })
        .catch(function () { show(form, "The form could not be sent. Try again later.", false); })
        .then(function () { if (button) { button.disabled = false; } });
    });
  });
})();
