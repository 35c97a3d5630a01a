/* Queues page: the queue tree with bars per resource, and the usage chart of one queue (inline SVG). */
"use strict";

(() => {
  const { api, h, svg, poll, fmtQuantity, resourceOrder } = GP;
  const tree = document.getElementById("queue-tree");
  const chart = document.getElementById("chart");
  const qSelect = document.getElementById("chart-queue");
  const rSelect = document.getElementById("chart-resource");
  const wSelect = document.getElementById("chart-window");
  let showAll = false;
  let capacity = {};
  let lastHistory = null;

  function depth(path) {
    return path.split(".").length - 1;
  }

  function resourcesOf(q) {
    const keys = new Set([
      ...Object.keys(q.guaranteed), ...Object.keys(q.max), ...Object.keys(q.allocated), ...Object.keys(q.pending),
    ]);
    return [...keys].filter((r) => showAll || r === "gpu" || r.startsWith("gpu/")).sort(resourceOrder);
  }

  function bar(q, r) {
    const alloc = q.allocated[r] || 0;
    const serving = (q.serving || {})[r] || 0; // the part model deployments' replicas hold
    const pend = q.pending[r] || 0;
    const guar = q.guaranteed[r];
    const max = q.max[r];
    // A bar's end is the queue's max, else what the cluster has of that resource.
    const scale = Math.max(max || capacity[r] || 0, guar || 0, alloc + pend, 1);
    const pct = (v) => `${Math.min(100, (100 * v) / scale).toFixed(1)}%`;
    const label =
      `${r}: ${fmtQuantity(r, alloc)} allocated` + (serving ? ` (${fmtQuantity(r, serving)} serving)` : "") +
      `, ${fmtQuantity(r, pend)} pending, ` +
      `guaranteed ${guar === undefined ? "none" : fmtQuantity(r, guar)}, max ${max === undefined ? "none" : fmtQuantity(r, max)}`;
    return h(
      "div", { class: "res" },
      h("span", { class: "res-name" }, r),
      h(
        "div", { class: "bar" + (max !== undefined && alloc > max ? " over" : ""), role: "img", "aria-label": label },
        h("span", { class: "fill", style: { width: pct(alloc) } }),
        pend ? h("span", { class: "pend", style: { left: pct(alloc), width: pct(Math.min(pend, scale - alloc)) } }) : null,
        guar !== undefined ? h("span", { class: "guar", style: { left: pct(guar) }, title: "guaranteed" }) : null,
      ),
      h(
        "span", { class: "res-nums" },
        h("b", {}, fmtQuantity(r, alloc)), " alloc",
        serving ? [" (", h("b", { class: "serving-num" }, fmtQuantity(r, serving)), " serving)"] : "",
        pend ? [" · ", h("b", { class: "pending-num" }, fmtQuantity(r, pend)), " pending"] : "",
        " · g ", guar === undefined ? "–" : fmtQuantity(r, guar),
        " · max ", max === undefined ? "–" : fmtQuantity(r, max),
      ),
    );
  }

  function renderTree(queues) {
    const rows = queues.map((q) => {
      const res = resourcesOf(q);
      return h(
        "div", { class: "q" + (q.leaf ? " leaf" : ""), style: { "--depth": depth(q.path) }, dataset: { queue: q.path } },
        h(
          "div", { class: "q-head" },
          h("button", {
            type: "button", class: "link q-name", id: "q-" + q.path, "aria-label": `Show the chart of ${q.path}`,
            onclick: () => { qSelect.value = q.path; refreshChart(); chart.scrollIntoView({ block: "nearest" }); },
          }, q.path.split(".").pop()),
          h("span", { class: "muted q-path" }, q.path),
          h("span", { class: "q-apps" }, `${q.running_apps} running`),
          q.submit_acl ? h("span", { class: "muted acl", title: "submit ACL" }, "submit: " + q.submit_acl) : null,
        ),
        res.length ? res.map((r) => bar(q, r)) : h("div", { class: "muted res-none" }, "no quota, nothing allocated"),
      );
    });
    const toggle = h("label", { class: "toggle" },
      h("input", { type: "checkbox", id: "show-all", checked: showAll || null,
        onchange: (ev) => { showAll = ev.target.checked; refreshTree(true); } }),
      " Show CPU and memory too");
    tree.replaceChildren(toggle, ...rows);
    tree.setAttribute("aria-busy", "false");
    const current = qSelect.value || qSelect.dataset.selected || "root";
    if (qSelect.options.length !== queues.length) {
      qSelect.replaceChildren(...queues.map((q) => h("option", { value: q.path }, q.path)));
      qSelect.value = queues.some((q) => q.path === current) ? current : "root";
    }
  }

  let lastTree = "";

  async function refreshTree(force) {
    const [queues, nodes] = await Promise.all([api("/queues"), api("/nodes")]);
    capacity = {};
    for (const n of nodes) {
      for (const [k, v] of Object.entries(n.capacity)) capacity[k] = (capacity[k] || 0) + v;
      if (n.gpu_type && n.capacity.gpu) capacity["gpu/" + n.gpu_type] = (capacity["gpu/" + n.gpu_type] || 0) + n.capacity.gpu;
    }
    const key = JSON.stringify([queues, capacity]);
    if (key === lastTree && !force) return queues;
    lastTree = key;
    const focused = document.activeElement && document.activeElement.id;
    renderTree(queues);
    if (focused) {
      const el = document.getElementById(focused);
      if (el) el.focus();
    }
    return queues;
  }

  /* ---------------------------------------------------------------- the chart */

  function stepPath(points, x, y, value) {
    let d = "";
    let prev = null;
    for (const p of points) {
      const v = value(p);
      if (v === undefined) { prev = null; continue; }
      const px = x(p.at).toFixed(1);
      const py = y(v).toFixed(1);
      if (prev === null) d += `M${px},${py}`;
      else d += `H${px}V${py}`;
      prev = v;
    }
    if (prev !== null) d += `H${x(Date.now() / 1000).toFixed(1)}`;
    return d;
  }

  function ticks(max) {
    if (max <= 4) return [...Array(max + 1).keys()];
    const step = Math.pow(10, Math.floor(Math.log10(max / 4)));
    const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => max / s <= 5);
    const out = [];
    for (let v = 0; v <= max + 1e-9; v += nice) out.push(v);
    return out;
  }

  function drawChart(hist) {
    lastHistory = hist;
    const r = rSelect.value || "gpu";
    const pts = hist.points;
    const width = Math.max(280, chart.clientWidth || 600);
    const height = width < 500 ? 200 : 240;
    const m = { l: 44, r: 12, t: 12, b: 28 };
    const now = Date.now() / 1000;
    // A young server has less history than the window: show the time it has, not an empty hour.
    const x1 = Math.max(now, hist.until);
    const x0 = pts.length ? Math.max(hist.since, Math.min(pts[0].at, x1 - 60)) : hist.since;
    const val = (p, k) => (p[k][r] === undefined ? undefined : p[k][r]);
    let top = 1;
    for (const p of pts) {
      top = Math.max(top, (p.allocated[r] || 0) + (p.pending[r] || 0), p.guaranteed[r] || 0, p.max[r] || 0);
    }
    top = r === "memory" || r === "vcore" ? top * 1.1 : Math.ceil(top * 1.1);
    const x = (t) => m.l + ((t - x0) / (x1 - x0)) * (width - m.l - m.r);
    const y = (v) => height - m.b - (v / top) * (height - m.t - m.b);
    const last = pts[pts.length - 1];
    const summary = last
      ? `${hist.queue}, ${r}, ${pts.length} samples. Latest: allocated ${fmtQuantity(r, last.allocated[r] || 0)}, ` +
        `pending ${fmtQuantity(r, last.pending[r] || 0)}, guaranteed ${fmtQuantity(r, last.guaranteed[r])}, max ${fmtQuantity(r, last.max[r])}.`
      : `${hist.queue}: no samples in this window yet (one is recorded every ${hist.interval} s).`;
    const grid = ticks(r === "gpu" || r.startsWith("gpu/") ? Math.ceil(top) : top).filter((v) => v <= top);
    const timeTicks = [];
    const nT = width < 500 ? 3 : 5;
    for (let i = 0; i <= nT; i++) timeTicks.push(x0 + ((x1 - x0) * i) / nT);
    const span = x1 - x0;
    const fmtT = (t) => {
      const d = new Date(t * 1000);
      if (span > 86400) return `${d.getMonth() + 1}/${d.getDate()} ${d.getHours()}h`;
      const opts = span < 900 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
      return d.toLocaleTimeString([], opts);
    };
    const dots = pts.length <= 600 ? pts.map((p) =>
      svg("circle", { class: "pt", cx: x(p.at).toFixed(1), cy: y(p.allocated[r] || 0).toFixed(1), r: 2.2 },
        svg("title", {}, `${new Date(p.at * 1000).toLocaleTimeString()}: allocated ${fmtQuantity(r, p.allocated[r] || 0)}, pending ${fmtQuantity(r, p.pending[r] || 0)}`))) : [];
    const area = pts.length
      ? stepPath(pts, x, y, (p) => p.allocated[r] || 0) + `V${y(0).toFixed(1)}H${x(pts[0].at).toFixed(1)}Z`
      : "";
    const el = svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "chart-t chart-d",
        class: "usage-chart", "data-points": pts.length },
      svg("title", { id: "chart-t" }, `Usage of ${hist.queue} over time (${r})`),
      svg("desc", { id: "chart-d" }, summary),
      grid.map((v) => svg("g", { class: "grid" },
        svg("line", { x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }),
        svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmtQuantity(r, v)))),
      timeTicks.map((t, i) => svg("text", { class: "tick", x: x(t), y: height - 8,
        "text-anchor": i === 0 ? "start" : i === nT ? "end" : "middle" }, fmtT(t))),
      area ? svg("path", { class: "area-alloc", d: area }) : null,
      svg("path", { class: "line-pending", d: stepPath(pts, x, y, (p) => (p.allocated[r] || 0) + (p.pending[r] || 0)) }),
      svg("path", { class: "line-alloc", d: stepPath(pts, x, y, (p) => p.allocated[r] || 0) }),
      svg("path", { class: "line-guar", d: stepPath(pts, x, y, (p) => val(p, "guaranteed")) }),
      svg("path", { class: "line-max", d: stepPath(pts, x, y, (p) => val(p, "max")) }),
      dots,
      pts.length ? null : svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "No samples yet"),
    );
    chart.replaceChildren(el, h("p", { class: "sr-only" }, summary));
    // Offer every resource the queue has had in this window.
    const keys = new Set(["gpu"]);
    for (const p of pts) for (const k of ["guaranteed", "max", "allocated", "pending"]) Object.keys(p[k]).forEach((kk) => keys.add(kk));
    const sorted = [...keys].sort(resourceOrder);
    if (sorted.join() !== [...rSelect.options].map((o) => o.value).join()) {
      const cur = rSelect.value;
      rSelect.replaceChildren(...sorted.map((k) => h("option", { value: k }, k)));
      rSelect.value = sorted.includes(cur) ? cur : "gpu";
    }
  }

  async function refreshChart() {
    const q = qSelect.value || "root";
    const since = Date.now() / 1000 - Number(wSelect.value);
    const hist = await api(`/queues/${encodeURIComponent(q)}/history?since=${since.toFixed(0)}`);
    drawChart(hist);
    const url = new URL(location.href);
    url.searchParams.set("queue", q);
    history.replaceState(null, "", url);
  }

  for (const sel of [qSelect, wSelect]) sel.addEventListener("change", () => refreshChart());
  rSelect.addEventListener("change", () => lastHistory && drawChart(lastHistory));
  window.addEventListener("resize", () => lastHistory && drawChart(lastHistory));

  poll(async () => {
    await refreshTree();
    await refreshChart();
  });
})();
