// The overview's live part is fetched again every second and swapped in:
// the server renders it (escaped as every page is), so this is all the
// script the dashboard has. Without JavaScript the page is as of its load.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var url = live.getAttribute("data-live");
  var status = document.getElementById("live-status");
  function say(state, text) {
    status.setAttribute("data-state", state);
    status.textContent = text;
  }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "X-Partial": "1" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        say("live", "Live: refreshed every second.");
      })
      .catch(function (e) {
        say("stale", "Not refreshing (" + e.message + "); retrying.");
      })
      .then(function () {
        setTimeout(tick, 1000);
      });
  }
  say("live", "Live: refreshed every second.");
  setTimeout(tick, 1000);
})();
