// Selecting images in the grid or the trash for the actions above it (which work without
// this script: tick the boxes, press a button): shift-click ticks the range from the last
// box clicked, "Select all on this page" ticks them all (and clears them again), and the
// buttons say how many are selected and wait until one is.
(function () {
  "use strict";
  // The grid keeps its scroll position: saved when leaving, put back when coming back to
  // the same page through history (Back, or Escape in the viewer).
  try {
    var key = "scroll:" + location.pathname + location.search;
    window.addEventListener("pagehide", function () {
      sessionStorage.setItem(key, String(window.scrollY));
    });
    var nav = performance.getEntriesByType("navigation")[0];
    var saved = sessionStorage.getItem(key);
    if (saved !== null && nav && nav.type === "back_forward") {
      history.scrollRestoration = "manual";
      // After the rest of this script has run: it shows the "select all" button, which
      // may make the bar above the grid a line taller.
      queueMicrotask(function () { window.scrollTo(0, Number(saved)); });
    }
  } catch (e) { /* no storage: the browser's own restoration */ }

  // Opening an image from the grid: the viewer's Escape comes back here (viewer.js).
  if (location.pathname === "/gallery") {
    document.addEventListener("click", function (e) {
      var a = e.target.closest && e.target.closest("ul.grid a");
      if (!a) return;
      try {
        sessionStorage.setItem("gallery-return", JSON.stringify({
          from: location.pathname + location.search,
          to: new URL(a.href).pathname,
        }));
      } catch (err) { /* no storage: Escape opens the grid's first page */ }
    });
  }

  var form = document.getElementById("bulk");
  if (!form) return;
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.pick[form=bulk]"));
  var count = form.querySelector(".selected");
  var all = form.querySelector(".select-all");
  var actions = Array.prototype.slice.call(form.querySelectorAll("button[type=submit]"));
  var last = null;

  function update() {
    var n = boxes.filter(function (b) { return b.checked; }).length;
    count.textContent = n ? n + " selected" : "";
    actions.forEach(function (b) { b.disabled = n === 0; });
    if (all) all.textContent = n === boxes.length && n ? "Clear selection" : "Select all on this page";
  }

  boxes.forEach(function (box, i) {
    box.addEventListener("click", function (e) {
      if (e.shiftKey && last !== null && last !== i) {
        var lo = Math.min(last, i), hi = Math.max(last, i);
        for (var k = lo; k <= hi; k++) boxes[k].checked = box.checked;
      }
      last = i;
      update();
    });
  });
  if (all) {
    all.hidden = false;
    all.addEventListener("click", function () {
      var every = boxes.every(function (b) { return b.checked; });
      boxes.forEach(function (b) { b.checked = !every; });
      update();
    });
  }
  update();
})();
