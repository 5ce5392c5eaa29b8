// Small niceties only: every page works without JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // "Insert into reply": a knowledge-base article's text goes into the
  // email reply on the case page (buttons with data-insert).
  for (const button of document.querySelectorAll("button[data-insert]")) {
    button.addEventListener("click", () => {
      const body = document.getElementById("email-body");
      if (!body) return;
      document.getElementById("email").open = true;
      body.value = body.value ? `${body.value}\n\n${button.dataset.insert}` : button.dataset.insert;
      body.focus();
    });
  }

  // Ask before irreversible actions (buttons with data-confirm).
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
  // Filters apply as soon as a select changes.
  for (const select of document.querySelectorAll("form.filters:not(.inline-form) select")) {
    select.addEventListener("change", () => select.form.submit());
  }
  // Live stream: new notes appear without a reload (server-sent events).
  const stream = document.querySelector("ol.stream[data-events]");
  if (stream && window.EventSource) {
    const events = new EventSource(stream.dataset.events);
    events.addEventListener("note", (event) => {
      // The server renders (and sanitises) the note's HTML.
      stream.insertAdjacentHTML("afterbegin", event.data);
    });
    events.addEventListener("reload", () => window.location.reload());
  }
});
