// Drag-and-drop onto the upload form: a progressive enhancement over the plain file
// picker, which works without this script.
(function () {
  "use strict";
  var zone = document.getElementById("drop-zone");
  var form = document.getElementById("upload-form");
  if (!zone || !form) return;
  var input = zone.querySelector("input[type=file]");
  var chosen = document.getElementById("chosen");

  function show() {
    var n = input.files ? input.files.length : 0;
    chosen.textContent = n ? n + " file" + (n === 1 ? "" : "s") + " chosen" : "";
  }
  input.addEventListener("change", show);

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (e) {
      e.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () {
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
})();
