// The upload form, made better with a script (it works without: one POST of every file).
// - Drag and drop onto the form.
// - Files go one request each, three at a time, so a batch of hundreds never meets the
//   request size limit; each shows its progress (bytes sent, then "processing"), its
//   result (uploaded, skipped as a duplicate, or the reason it failed) and, when it
//   failed, a "Retry" for that file alone. The others carry on.
(function () {
  "use strict";
  var zone = document.getElementById("drop-zone");
  var form = document.getElementById("upload-form");
  if (!zone || !form) return;
  var input = zone.querySelector("input[type=file]");
  var chosen = document.getElementById("chosen");
  var list = document.getElementById("files");
  var summary = document.getElementById("summary");
  var maxBytes = Number(form.dataset.maxBytes || 0);
  var CONCURRENT = 3;

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

  function size(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " bytes";
  }

  var queue = [];
  var running = 0;
  var counts = { stored: 0, skipped: 0, failed: 0, pending: 0 };

  function item(file) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name + " (" + size(file.size) + ")";
    var state = document.createElement("span");
    state.className = "state";
    state.setAttribute("aria-live", "polite");
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    li.appendChild(name);
    li.appendChild(state);
    li.appendChild(bar);
    list.appendChild(li);
    return { file: file, li: li, state: state, bar: bar };
  }

  function finish(job, outcome, text) {
    job.state.textContent = text;
    job.li.className = outcome;
    counts.pending -= 1;
    counts[outcome === "done" ? "stored" : outcome === "skipped" ? "skipped" : "failed"] += 1;
    if (outcome === "failed") {
      var retry = document.createElement("button");
      retry.type = "button";
      retry.className = "quiet";
      retry.textContent = "Retry";
      retry.setAttribute("aria-label", "Retry " + job.file.name);
      retry.addEventListener("click", function () {
        retry.remove();
        counts.failed -= 1;
        enqueue(job);
      });
      job.state.appendChild(document.createTextNode(" "));
      job.state.appendChild(retry);
    }
    report();
  }

  function report() {
    var parts = [counts.stored + " uploaded"];
    if (counts.skipped) parts.push(counts.skipped + " skipped (you have them already)");
    if (counts.failed) parts.push(counts.failed + " failed");
    if (counts.pending) parts.push(counts.pending + " to go");
    summary.textContent = parts.join(", ") + ".";
    if (!counts.pending) {
      var link = document.createElement("a");
      link.href = "/gallery?uploaded=" + counts.stored + (counts.skipped ? "&skipped=" + counts.skipped : "");
      link.textContent = "See them in the gallery";
      summary.appendChild(document.createTextNode(" "));
      summary.appendChild(link);
      if (!counts.failed) window.location.assign(link.href);
    }
  }

  function reason(xhr) {
    if (xhr.responseURL && new URL(xhr.responseURL).pathname === "/login") {
      return "your session has ended: log in again, then retry";
    }
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON: an answer from before the app, or none */ }
    if (xhr.status === 413) return "too large for one upload";
    if (xhr.status === 0) return "the connection failed";
    return "the server answered " + xhr.status;
  }

  function send(job) {
    running += 1;
    job.li.className = "sending";
    job.state.textContent = "sending";
    var data = new FormData();
    data.append("csrf", form.elements.csrf.value);
    data.append("files", job.file, job.file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        job.bar.max = e.total;
        job.bar.value = e.loaded;
      }
    });
    xhr.upload.addEventListener("load", function () {
      job.bar.removeAttribute("value"); // indeterminate: the server is at work
      job.state.textContent = "processing";
    });
    xhr.addEventListener("loadend", function () {
      running -= 1;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      job.bar.max = 1;
      job.bar.value = 1;
      if (xhr.status === 200 && body && body.stored) {
        if (body.stored.length) {
          finish(job, "done", "uploaded");
        } else if (body.duplicates && body.duplicates.length) {
          var d = body.duplicates[0];
          finish(job, "skipped", "skipped: the same as " + d.of + (d.in_trash ? " (brought back from the trash)" : ""));
        } else {
          finish(job, "failed", "failed: nothing was stored");
        }
      } else {
        finish(job, "failed", "failed: " + reason(xhr));
      }
      pump();
    });
    xhr.send(data);
  }

  function enqueue(job) {
    counts.pending += 1;
    job.li.className = "waiting";
    job.state.textContent = "waiting";
    job.bar.value = 0;
    queue.push(job);
    report();
    pump();
  }

  function pump() {
    while (running < CONCURRENT && queue.length) {
      var job = queue.shift();
      // The limit is the whole request's: leave room for the form around the file.
      if (maxBytes && job.file.size > maxBytes - 16384) {
        finish(job, "failed", "failed: larger than the limit of " + size(maxBytes));
        continue;
      }
      send(job);
    }
  }

  form.addEventListener("submit", function (e) {
    if (!input.files || !input.files.length || !window.FormData || !window.XMLHttpRequest) return;
    e.preventDefault();
    var files = Array.prototype.slice.call(input.files);
    files.forEach(function (file) { enqueue(item(file)); });
    input.value = "";
    show();
  });
})();
