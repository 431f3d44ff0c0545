// The four traffic charts (uPlot, shipped under vendor/), fed by the dashboard's stats.json:
// the same selector as the API's `stats` action. Refreshes every data-refresh milliseconds.
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") { return; }
  var url = root.dataset.statsUrl;
  var plots = {};
  var range = null;  // [start, end] of the last answer: the x axis spans the whole range asked for
  var series = {
    rps: [{label: "requests/s", stroke: "#1f5fbf", fill: "rgba(31,95,191,.12)"}],
    hit_ratio: [{label: "hit %", stroke: "#17803d"}],
    mbps: [{label: "Mbit/s", stroke: "#7a3fb8", fill: "rgba(122,63,184,.10)"}],
    errors: [{label: "4xx %", stroke: "#9a6200"}, {label: "5xx %", stroke: "#b42318"}]
  };

  function columns(metric, data) {
    if (metric === "errors") { return [data.t, data.rate_4xx, data.rate_5xx]; }
    return [data.t, data[metric]];
  }

  function bytes(n) {
    var units = ["bytes", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function totals(t) {  // the overview's last-hour figures, refreshed with the charts
    var shown = {
      requests: String(t.requests), status_4xx: String(t.status_4xx), status_5xx: String(t.status_5xx),
      hit_ratio: t.hit_ratio === null ? "\u2014" : Math.round(t.hit_ratio * 100) + " %",
      bytes_out: bytes(t.bytes_out)
    };
    document.querySelectorAll("[data-total]").forEach(function (el) {
      if (shown[el.dataset.total] !== undefined) { el.textContent = shown[el.dataset.total]; }
    });
  }

  function draw(data) {
    var points = data.t.length;
    if (root.dataset.totals === "overview") { totals(data.totals); }
    root.dataset.points = String(points);
    root.querySelector(".chart-empty").hidden = points > 0;
    root.querySelectorAll(".chart").forEach(function (figure) {
      var metric = figure.dataset.metric;
      var target = figure.querySelector(".plot");
      var cols = columns(metric, data);
      range = [data.start, data.end];
      if (plots[metric]) {
        plots[metric].setData(cols);
      } else {
        var opts = {width: Math.max(260, target.clientWidth), height: 200, legend: {show: true},
                    scales: {x: {time: true, range: function () { return range; }},
                             y: {range: function (u, min, max) { return metric === "hit_ratio" ? [0, 100] : [0, Math.max((max || 0) * 1.2, metric === "mbps" ? 0.001 : 1)]; }}},
                    series: [{}].concat(series[metric].map(function (s) { return Object.assign({width: 2, spanGaps: true}, s); })),
                    axes: [{}, {size: 50}]};
        plots[metric] = new uPlot(opts, cols, target);
      }
      figure.dataset.points = String(points);
    });
  }

  function refresh() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(draw)
      .catch(function () { /* the next refresh tries again */ });
  }

  window.addEventListener("resize", function () {
    Object.keys(plots).forEach(function (metric) {
      var target = root.querySelector('.chart[data-metric="' + metric + '"] .plot');
      plots[metric].setSize({width: Math.max(260, target.clientWidth), height: 200});
    });
  });
  refresh();
  setInterval(refresh, parseInt(root.dataset.refresh || "10000", 10));
})();
