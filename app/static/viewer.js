// The image page as a viewer (everything here also works without the script, by links):
// left/right arrow keys and a swipe step to the previous/next image, Escape goes back to
// the grid where you left it, "Full screen" and "Actual size" buttons, and the next and
// previous originals are fetched ahead so stepping is instant.
(function () {
  "use strict";
  var figure = document.querySelector("figure.full");
  if (!figure) return;
  var img = figure.querySelector("img");
  var prev = document.querySelector("a[rel=prev]");
  var next = document.querySelector("a[rel=next]");

  // Where the grid was: the grid's script notes it when one of its images is opened
  // ({from: the grid's URL, to: the image's path}); each step moves `to` along, so
  // Escape knows the viewer was entered from that grid and goes back to it by history
  // (the browser and the grid's script then restore its scroll position). Steps replace
  // the history entry, so Back also leads to the grid, not through every image seen.
  var RETURN = "gallery-return";
  function remembered() {
    try {
      var r = JSON.parse(sessionStorage.getItem(RETURN) || "null");
      return r && r.to === location.pathname ? r : null;
    } catch (e) { return null; }
  }

  function go(link) {
    if (!link) return;
    var r = remembered();
    if (r) {
      try {
        r.to = new URL(link.href).pathname;
        sessionStorage.setItem(RETURN, JSON.stringify(r));
      } catch (e) { /* no storage */ }
    }
    location.replace(link.href);
  }

  function back() {
    var r = remembered();
    if (r && history.length > 1) history.back();
    else location.assign(figure.getAttribute("data-grid") || "/gallery");
  }

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.key === "ArrowLeft") { e.preventDefault(); go(prev); }
    else if (e.key === "ArrowRight") { e.preventDefault(); go(next); }
    else if (e.key === "Escape" && !document.fullscreenElement) { e.preventDefault(); back(); }
  });

  var start = null;
  img.addEventListener("touchstart", function (e) {
    if (e.touches.length === 1 && !figure.classList.contains("actual")) {
      start = { x: e.touches[0].clientX, y: e.touches[0].clientY };
    }
  }, { passive: true });
  img.addEventListener("touchend", function (e) {
    if (!start || !e.changedTouches.length) return;
    var dx = e.changedTouches[0].clientX - start.x;
    var dy = e.changedTouches[0].clientY - start.y;
    start = null;
    if (Math.abs(dx) > 50 && Math.abs(dx) > 2 * Math.abs(dy)) go(dx > 0 ? prev : next);
  });

  var tools = document.getElementById("viewer-tools");
  if (tools) {
    tools.hidden = false;
    var full = document.getElementById("fullscreen");
    if (full && figure.requestFullscreen) {
      full.addEventListener("click", function () {
        if (document.fullscreenElement) document.exitFullscreen();
        else figure.requestFullscreen();
      });
    } else if (full) {
      full.hidden = true;
    }
    var actual = document.getElementById("actual-size");
    if (actual) {
      actual.addEventListener("click", function () {
        var on = figure.classList.toggle("actual");
        actual.setAttribute("aria-pressed", on ? "true" : "false");
        actual.textContent = on ? "Fit to screen" : "Actual size";
      });
    }
  }

  // Fetch the neighbours' originals ahead (the browser keeps them: they never change);
  // a shared page names its own rendition and grid (data-ahead, data-grid).
  function ahead(link) {
    if (!link) return;
    var pre = new Image();
    pre.decoding = "async";
    pre.src = new URL(link.href).pathname + "/" + (figure.getAttribute("data-ahead") || "original");
  }
  if (img.complete) { ahead(next); ahead(prev); }
  else img.addEventListener("load", function () { ahead(next); ahead(prev); });
})();
