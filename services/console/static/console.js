// Live parts of a page: an element with data-live="URL" is fetched again and replaced every
// 2 seconds while its data-active is "1" (every 10 seconds while it is "idle"). Without
// JavaScript the pages still work; they just do not update by themselves.
(function () {
  "use strict";
  var ticks = 0;
  function refresh(element) {
    fetch(element.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.firstElementChild;
        if (fresh && fresh.id === element.id) { element.replaceWith(fresh); }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(function () {
    ticks += 1;
    document.querySelectorAll("[data-live]").forEach(function (element) {
      var mode = element.getAttribute("data-active");
      if (mode === "1" || (mode === "idle" && ticks % 5 === 0)) { refresh(element); }
    });
  }, 2000);
})();
