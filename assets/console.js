// medic's console: show every <time data-local> in the viewer's time zone (UTC stays on
// hover), again after htmx swaps in a refreshed list.
(function () {
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      if (el.hasAttribute("data-local")) {
        el.textContent = at.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
        });
      } else {
        el.title = at.toLocaleString() + " (" + el.title + ")";
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localize(e.target); });
})();
