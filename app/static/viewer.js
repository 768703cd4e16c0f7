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

  // Where the grid was: remembered when the viewer is entered from it, so Escape returns
  // there (and the browser restores its scroll position). Steps replace the history
  // entry, so Back also leads to the grid, not through every image seen.
  try {
    var from = document.referrer ? new URL(document.referrer) : null;
    var here = from && from.origin === location.origin;
    if (here && from.pathname === "/gallery") {
      sessionStorage.setItem("gallery-return", from.pathname + from.search);
    } else if (!(here && from.pathname.indexOf("/images/") === 0)) {
      // Not from the grid, nor a step from an image opened from it: Escape opens the grid.
      sessionStorage.removeItem("gallery-return");
    }
  } catch (e) { /* no storage: Escape goes to the first page of the grid */ }

  function go(link) {
    if (link) location.replace(link.href);
  }

  function back() {
    var to = null;
    try { to = sessionStorage.getItem("gallery-return"); } catch (e) { to = null; }
    if (to && history.length > 1) {
      history.back();
    } else {
      location.assign(to || "/gallery");
    }
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

  // Fetch the neighbours' originals ahead (the browser keeps them: they never change).
  function ahead(link) {
    if (!link) return;
    var pre = new Image();
    pre.decoding = "async";
    pre.src = new URL(link.href).pathname + "/original";
  }
  if (img.complete) { ahead(next); ahead(prev); }
  else img.addEventListener("load", function () { ahead(next); ahead(prev); });
})();
