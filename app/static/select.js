// Selecting images in the grid or the trash for the actions above it (which work without
// this script: tick the boxes, press a button): shift-click ticks the range from the last
// box clicked, "Select all on this page" ticks them all (and clears them again), and the
// buttons say how many are selected and wait until one is.
(function () {
  "use strict";
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
