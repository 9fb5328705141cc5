/* mwr web UI: the cameras, timeline and deploys pages over the worker's JSON
 * API (docs/interface.md).  Plain browser JavaScript, no build step. */
"use strict";
var mwr = (function () {
  var S = 1e6; /* µs per second */

  function $(id) { return document.getElementById(id); }
  function showError(e) { $("error").textContent = String(e && e.message ? e.message : e); }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(url + ": " + r.status + " " + (j.error || r.statusText));
        return j;
      });
    });
  }
  function fmt(us) { return new Date(us / 1000).toLocaleString(); }
  function fmtTime(us) { return new Date(us / 1000).toLocaleTimeString(); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function param(name) { return new URLSearchParams(location.search).get(name); }

  /* ---- cameras ---- */
  function camerasPage() {
    function load() {
      getJSON("/api/cameras").then(function (cams) {
        var body = document.querySelector("#cameras tbody"), rec = 0;
        body.textContent = "";
        cams.forEach(function (c) {
          var tr = el("tr", { "data-camera": c.id }), age = c.last_frame_age_s;
          if (c.state === "recording") rec++;
          tr.appendChild(el("td", {}, c.id));
          tr.appendChild(el("td", { "class": c.state }, c.state));
          tr.appendChild(el("td", {}, age === null ? "never" : age.toFixed(1) + " s ago"));
          tr.appendChild(el("td", {}, c.video_codec ? c.video_codec + " " + c.width + "x" + c.height +
                                      (c.audio_codec ? " + " + c.audio_codec : "") : ""));
          tr.appendChild(el("td", { "class": "why" }, c.state === "recording" ? "" :
                            c.state === "standby" ? "held by " + c.held_by : [c.error, c.error_detail].filter(Boolean).join(": ")));
          var td = el("td"), a = el("a", { href: "timeline.html?camera=" + encodeURIComponent(c.id) }, "timeline");
          td.appendChild(a);
          tr.appendChild(td);
          body.appendChild(tr);
        });
        $("summary").textContent = rec + " of " + cams.length + " cameras recording";
        $("error").textContent = "";
      }).catch(showError);
    }
    load();
    setInterval(load, 2000);
  }

  /* ---- deploys ---- */
  function deploysPage() {
    getJSON("/api/deploys?limit=100").then(function (j) {
      var body = document.querySelector("#deploys tbody");
      j.deploys.forEach(function (d) {
        var tr = el("tr", { "data-result": d.result });
        [d.id, fmt(d.started_us), d.from_slot + " → " + d.to_slot, d.binary, d.version].forEach(function (v) {
          tr.appendChild(el("td", {}, String(v)));
        });
        tr.appendChild(el("td", { "class": d.result }, d.result));
        tr.appendChild(el("td", {}, d.finished_us ? ((d.finished_us - d.started_us) / S).toFixed(1) + " s" : ""));
        tr.appendChild(el("td", {}, d.reason));
        body.appendChild(tr);
      });
    }).catch(showError);
  }

  /* ---- timeline ---- */
  var W = 1000, ROW = 22, TOP = 18;

  function timelinePage() {
    var st = { camera: param("camera"), from: 0, to: 0, dayFrom: 0, dayTo: 0, data: null, deploys: [], drag: null };
    var box = $("timeline"), player = $("player"), hls = null;
    mwr.state = st;

    function setDay(d) {
      var t0 = new Date(d + "T00:00:00");
      st.dayFrom = t0.getTime() * 1000;
      st.dayTo = st.dayFrom + 86400 * S;
      st.from = st.dayFrom;
      st.to = st.dayTo;
    }
    function x(us) { return (us - st.from) / (st.to - st.from) * W; }
    function at(clientX) {
      var r = box.getBoundingClientRect();
      return st.from + (clientX - r.left) / r.width * (st.to - st.from);
    }
    function load() {
      var q = "?from=" + st.from / S + "&to=" + st.to / S;
      $("range").textContent = fmt(st.from) + " – " + fmt(st.to);
      return getJSON("/api/cameras/" + encodeURIComponent(st.camera) + "/coverage" + q).then(function (j) {
        st.data = j;
        draw();
        $("error").textContent = "";
      }).catch(showError);
    }
    function rect(cls, s, e, row, h, title) {
      var r = svg("rect", { "class": cls, x: x(s), width: Math.max(x(e) - x(s), 0.5), y: row, height: h });
      if (title) { var t = svg("title", {}); t.textContent = title; r.appendChild(t); }
      box.appendChild(r);
      return r;
    }
    function draw() {
      var j = st.data, rows = j.copies.length + 1, hgt = TOP + rows * ROW + 10;
      box.setAttribute("viewBox", "0 0 " + W + " " + hgt);
      box.textContent = "";
      for (var i = 0; i <= 4; i++) {
        var t = st.from + (st.to - st.from) * i / 4, lab = svg("text", { x: Math.min(x(t) + 2, W - 60), y: 12 });
        lab.textContent = fmtTime(t);
        box.appendChild(lab);
      }
      j.copies.forEach(function (c, k) {
        c.spans.forEach(function (p) {
          rect("copy", p[0], p[1], TOP + k * ROW, ROW - 6, "copy of instance " + c.instance_id + ": " +
               fmtTime(p[0]) + " – " + fmtTime(p[1])).setAttribute("data-instance", c.instance_id);
        });
        var lab = svg("text", { x: 2, y: TOP + k * ROW + 12 });
        lab.textContent = c.instance_id;
        box.appendChild(lab);
      });
      j.coverage.forEach(function (p) { rect("union", p[0], p[1], TOP + j.copies.length * ROW, ROW - 6, "recorded"); });
      j.gaps.forEach(function (g) {
        var r = rect("gap", g.start_us, g.end_us, TOP, rows * ROW, "gap " + g.seconds.toFixed(1) + " s: " + g.reason +
                     (g.detail ? " (" + g.detail + ")" : ""));
        r.setAttribute("data-reason", g.reason);
      });
      st.deploys.forEach(function (d) {
        if (d.started_us < st.from || d.started_us > st.to) return;
        var l = svg("line", { "class": "deploy", x1: x(d.started_us), x2: x(d.started_us), y1: TOP - 4, y2: TOP + rows * ROW });
        var t = svg("title", {});
        t.textContent = "deploy #" + d.id + " " + d.from_slot + " → " + d.to_slot + ": " + d.result;
        l.appendChild(t);
        box.appendChild(l);
      });
      if (st.sel) rect("sel", st.sel[0], st.sel[1], TOP, rows * ROW);
    }
    function play(us) {
      var now = Date.now() * 1000, to = Math.min(us + 2 * 3600 * S, now);
      var url = "/api/cameras/" + encodeURIComponent(st.camera) + "/playlist.m3u8?from=" + us / S + "&to=" + to / S;
      st.playFrom = us;
      if (hls) { hls.destroy(); hls = null; }
      /* hls.js over Media Source where it runs (its behaviour is the same in
       * every browser); the browser's own HLS otherwise (Safari, iOS) */
      if (window.Hls && Hls.isSupported()) {
        hls = new Hls();
        hls.on(Hls.Events.ERROR, function (ev, d) { if (d.fatal) showError("playback: " + d.type + " " + d.details); });
        hls.loadSource(url);
        hls.attachMedia(player);
      } else {
        player.src = url;
      }
      player.play().catch(function () {});
    }
    box.addEventListener("mousedown", function (e) { st.drag = { x: e.clientX, t: at(e.clientX) }; });
    box.addEventListener("mousemove", function (e) {
      var t = at(e.clientX);
      $("hover").textContent = fmt(t);
      if (st.drag && Math.abs(e.clientX - st.drag.x) > 4) {
        st.sel = [Math.min(st.drag.t, t), Math.max(st.drag.t, t)];
        if (st.data) draw();
      }
    });
    box.addEventListener("mouseup", function (e) {
      var d = st.drag;
      st.drag = null;
      if (!d) return;
      if (Math.abs(e.clientX - d.x) <= 4) { st.sel = null; play(at(e.clientX)); return; }
      var p = $("selection"), btn = el("button", { id: "download" }, "download MP4");
      p.textContent = "selected " + fmt(st.sel[0]) + " – " + fmt(st.sel[1]) + " ";
      p.appendChild(btn);
      btn.onclick = function () { download(st.sel[0], st.sel[1]); };
    });
    /* the same export as `mwr export`, made by the worker; progress while it runs */
    function download(from, to) {
      var base = "/api/cameras/" + encodeURIComponent(st.camera) + "/exports", p = $("selection");
      fetch(base + "?from=" + from / S + "&to=" + to / S, { method: "POST", credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.status); return j; }); })
        .then(function poll(job) {
          if (job.state === "running") {
            p.textContent = "exporting: " + (job.frames_total ? Math.floor(100 * job.frames_done / job.frames_total) : 0) + " %";
            return new Promise(function (ok) { setTimeout(ok, 500); })
              .then(function () { return getJSON(base + "/" + job.id); }).then(poll);
          }
          if (job.state !== "done") throw new Error("export failed: " + job.error);
          p.textContent = "export ready: ";
          st.export = job;
          job.parts.forEach(function (pt) {
            var a = el("a", { href: base + "/" + job.id + "/" + pt.part + ".mp4", "class": "export-part", download: "" },
                       "part " + pt.part + " (" + pt.width + "x" + pt.height + " " + pt.codec + ", " + pt.frames +
                       " frames, " + (pt.bytes / 1e6).toFixed(1) + " MB)");
            p.appendChild(a);
            p.appendChild(document.createTextNode(" "));
          });
        }).catch(showError);
    }
    box.addEventListener("wheel", function (e) {
      e.preventDefault();
      var t = at(e.clientX), k = e.deltaY < 0 ? 0.5 : 2, span = Math.min((st.to - st.from) * k, 48 * 3600 * S);
      span = Math.max(span, 10 * S);
      st.from = t - (t - st.from) / (st.to - st.from) * span;
      st.to = st.from + span;
      load();
    }, { passive: false });
    $("zoomout").onclick = function () {
      var mid = (st.from + st.to) / 2, span = Math.min((st.to - st.from) * 2, 48 * 3600 * S);
      st.from = mid - span / 2; st.to = mid + span / 2; load();
    };
    $("today").onclick = function () { st.from = st.dayFrom; st.to = st.dayTo; load(); };
    $("day").onchange = function () { setDay($("day").value); load(); };
    $("camera").onchange = function () { st.camera = $("camera").value; load(); };

    var day = param("day") || new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 10);
    $("day").value = day;
    setDay(day);
    if (param("from") && param("to")) { st.from = Number(param("from")) * S; st.to = Number(param("to")) * S; }
    getJSON("/api/deploys?limit=500").then(function (j) { st.deploys = j.deploys; if (st.data) draw(); })
      .catch(function () {});
    getJSON("/api/cameras").then(function (cams) {
      cams.forEach(function (c) { $("camera").appendChild(el("option", { value: c.id }, c.id)); });
      st.camera = st.camera || (cams[0] && cams[0].id);
      $("camera").value = st.camera;
      return load();
    }).catch(showError);
  }

  return { camerasPage: camerasPage, deploysPage: deploysPage, timelinePage: timelinePage, state: null };
})();
