// The DBOS dashboard's only script: local times, live updates, queue charts.
// Pages work without it (they are rendered on the server); this adds liveness.
(function () {
  "use strict";

  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localized) return;
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.title = el.textContent + " (UTC)";
      el.textContent = when.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
      el.dataset.localized = "1";
    });
  }

  function fromHTML(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function setState(text) {
    var el = document.getElementById("live-state");
    if (el) el.textContent = text;
  }

  function replaceRows(pairs) {
    var rows = {};
    document.querySelectorAll("tr[data-wf]").forEach(function (tr) { rows[tr.dataset.wf] = tr; });
    pairs.forEach(function (pair) {
      var old = rows[pair[0]];
      if (!old) return;
      var fresh = fromHTML("<table><tbody>" + pair[1] + "</tbody></table>").querySelector("tr");
      localizeTimes(fresh);
      var before = old.querySelector("[data-status]");
      var after = fresh.querySelector("[data-status]");
      if (before && after && before.dataset.status === after.dataset.status &&
          old.textContent === fresh.textContent) return;
      fresh.classList.add("flash");
      old.replaceWith(fresh);
    });
  }

  function replaceSections(sections) {
    Object.keys(sections).forEach(function (id) {
      var old = document.getElementById(id);
      if (!old) return;
      var fresh = fromHTML(sections[id]);
      localizeTimes(fresh);
      if (old.outerHTML === fresh.outerHTML) return;
      var focused = document.activeElement;
      var focusedId = focused && old.contains(focused) ? focused.id : null;
      // Keep what the reader has open or chosen in the section being replaced.
      var openDetails = [];
      old.querySelectorAll("details").forEach(function (d, i) { if (d.open) openDetails.push(i); });
      var chosen = {};
      old.querySelectorAll("select[id]").forEach(function (s) { chosen[s.id] = s.value; });
      old.replaceWith(fresh);
      fresh.querySelectorAll("details").forEach(function (d, i) {
        if (openDetails.indexOf(i) >= 0) d.open = true;
      });
      Object.keys(chosen).forEach(function (selectId) {
        var s = document.getElementById(selectId);
        if (s && Array.prototype.some.call(s.options, function (o) { return o.value === chosen[selectId]; })) {
          s.value = chosen[selectId];
        }
      });
      if (focusedId) {
        var again = document.getElementById(focusedId);
        if (again) again.focus();
      }
    });
  }

  function showNewer(count) {
    var box = document.getElementById("newer");
    if (!box) return;
    box.hidden = !(count > 0);
    var link = box.querySelector("a");
    if (link && count > 0) {
      link.textContent = (count >= 100 ? "100 or more" : count) +
        " newer workflow" + (count === 1 ? "" : "s") + " — show";
    }
  }

  function startLive() {
    var url = document.body.dataset.live;
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("open", function () { setState("Live"); });
    source.addEventListener("error", function () { setState("Reconnecting…"); });
    source.addEventListener("rows", function (e) { replaceRows(JSON.parse(e.data)); });
    source.addEventListener("newer", function (e) { showNewer(JSON.parse(e.data).count); });
    source.addEventListener("sections", function (e) { replaceSections(JSON.parse(e.data)); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawCharts() {
    var holder = document.getElementById("queue-series");
    if (!holder || !window.uPlot) return;
    var series = JSON.parse(holder.textContent);
    var text = cssVar("--text"), grid = cssVar("--line");
    var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    var plots = [];
    document.querySelectorAll("figure.chart").forEach(function (figure) {
      var data = series[figure.dataset.series];
      var target = figure.querySelector(".plot");
      if (!data || !target) return;
      var latency = figure.dataset.kind === "latency";
      var options = {
        width: Math.max(figure.clientWidth, 200),
        height: 150,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        axes: [Object.assign({}, axis), Object.assign({ size: 50 }, axis)],
        series: latency
          ? [{}, { label: "mean ms", stroke: cssVar("--plot-1"), width: 2, spanGaps: false },
             { label: "max ms", stroke: cssVar("--plot-2"), width: 1, dash: [4, 3] }]
          : [{}, { label: "dispatched", stroke: cssVar("--plot-1"), width: 2,
                   fill: cssVar("--plot-1") + "33" }],
      };
      var values = latency ? [data.x, data.mean, data.max] : [data.x, data.dispatched];
      plots.push({ plot: new window.uPlot(options, values, target), figure: figure });
    });
    window.addEventListener("resize", function () {
      plots.forEach(function (p) {
        p.plot.setSize({ width: Math.max(p.figure.clientWidth, 200), height: 150 });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    startLive();
    drawCharts();
  });
})();
