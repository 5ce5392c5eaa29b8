// Small niceties only: every page works without JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before rejecting a case.
  for (const button of document.querySelectorAll("button.danger")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm("Reject this case?")) {
        event.preventDefault();
      }
    });
  }
  // Filters apply as soon as a select changes.
  for (const select of document.querySelectorAll("form.filters select")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
