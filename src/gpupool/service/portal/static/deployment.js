/* One deployment: facts, charts over time (from GET /deployments/{name}/series, new points
   fetched every poll), the autoscaling decisions, replicas, history; scale and undeploy. */
"use strict";

(() => {
  const { api, h, svg, poll, badge, fmtTime, fmtResources, mayAdminister, me, errorText } = GP;
  const name = document.getElementById("d-facts").dataset.deployment;
  const base = `/deployments/${encodeURIComponent(name)}`;
  const error = document.getElementById("d-error");
  const undeploy = document.getElementById("undeploy");
  const scaleForm = document.getElementById("scale-form");
  const scaleMin = document.getElementById("sc-min");
  const scaleMax = document.getElementById("sc-max");
  const scaleError = document.getElementById("scale-error");
  const scaleDone = document.getElementById("scale-done");
  const windowSelect = document.getElementById("charts-window");
  const LIVE = ["pending", "admitted", "running", "preempting", "preempted"];
  const KEEP = 3600; // points kept in the page: the hour the server keeps
  let current = null;
  let series = { id: null, gpus: 0, points: [] };
  let filled = "";
  let lastTimeline = "";
  let lastReplicas = "";
  let lastDecisions = "";

  const fmtNum = (v) => (v === null || v === undefined ? "–" : (+v).toLocaleString(undefined, { maximumFractionDigits: 2 }));
  const secs = (v) => (v === null || v === undefined ? "–" : `${fmtNum(v)} s`);

  function fact(label, value) {
    return [h("dt", {}, label), h("dd", {}, value === null || value === undefined || value === "" ? "–" : value)];
  }

  function mayChange(d) {
    return LIVE.includes(d.state) && !!me && (me.user === d.user || mayAdminister(d.queue));
  }

  /* ---------------------------------------------------------------- facts, scaling, tables */

  function renderDeployment(d) {
    current = d;
    document.title = `${d.name} (${d.id}) · gpupool`;
    document.getElementById("d-id").textContent = d.id;
    const state = document.getElementById("d-state");
    state.className = "badge st-" + d.state;
    state.textContent = d.state;
    document.body.dataset.state = d.state;
    const shape = d.size ? `${d.size} (${fmtResources(d.resources)})`
      : `${d.gpus} GPU${d.gpus === 1 ? "" : "s"}${d.gpu_types.length ? " " + d.gpu_types.join("/") : ""} (${fmtResources(d.resources)})`;
    const s = d.stats;
    const env = Object.entries(d.env).map(([k, v]) => `${k}=${v}`).join(" ");
    document.getElementById("d-facts").replaceChildren(h("dl", {},
      fact("Queue", d.queue), fact("User", d.user),
      fact("Import path", h("code", {}, d.import_path)), fact("URL", d.url ? h("a", { href: d.url, id: "d-url" }, d.url) : null),
      fact("Replica", shape), fact("Replicas", `${d.running} running / ${d.desired} desired (${d.ready} ready), ${d.min_replicas}..${d.max_replicas}`),
      fact("GPUs used", fmtNum(d.running * d.gpus)), fact("Target", `${fmtNum(d.target_ongoing_requests)} ongoing requests per replica`),
      fact("Delays", `up ${secs(d.upscale_delay)}, down ${secs(d.downscale_delay)}, look back ${secs(d.look_back)}`),
      fact("Scale to zero after", d.scale_to_zero_after === null ? "never" : secs(d.scale_to_zero_after)),
      fact("Requests", s ? `${s.requests.toLocaleString()} (${fmtNum(s.in_flight)} in flight, ${fmtNum(s.queued)} queued)` : null),
      fact("Errors", s ? s.errors.toLocaleString() : null),
      fact("Latency", s ? `p50 ${fmtNum(s.p50_ms)} ms, p99 ${fmtNum(s.p99_ms)} ms` : null),
      fact("Revision", d.revision),
      fact("Working dir", d.working_dir), fact("Env", env),
      fact("Submitted", fmtTime(d.submitted_at)), fact("Started", fmtTime(d.started_at)),
      fact("Finished", fmtTime(d.finished_at)), fact("Reason", d.reason),
    ));
    const may = mayChange(d);
    undeploy.hidden = !may;
    scaleForm.hidden = !may;
    // Refill the scale form when the deployment's bounds change, unless the user is editing it.
    const bounds = `${d.id}:${d.min_replicas}..${d.max_replicas}`;
    if (bounds !== filled && !scaleForm.contains(document.activeElement)) {
      filled = bounds;
      scaleMin.value = d.min_replicas;
      scaleMax.value = d.max_replicas;
    }
    document.getElementById("scale-reason").textContent = LIVE.includes(d.state)
      ? `Wants ${d.desired} replica${d.desired === 1 ? "" : "s"}: ${d.scale_reason || "–"}`
      : `Not scaling: ${d.state}.`;
    const held = document.getElementById("held");
    held.hidden = !d.held;
    held.textContent = d.held || "";
    renderDecisions(d.decisions);
    renderReplicas(d.replicas);
    renderTimeline(d);
  }

  function renderDecisions(decisions) {
    const key = JSON.stringify(decisions);
    if (key === lastDecisions) return;
    lastDecisions = key;
    const body = document.querySelector("#decisions tbody");
    if (!decisions.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No change of the replica count yet.")));
      return;
    }
    body.replaceChildren(...[...decisions].reverse().map((x) => h("tr", { class: x.new > x.old ? "up" : "down" },
      h("td", { "data-label": "Time" }, h("time", { datetime: new Date(x.at * 1000).toISOString() }, fmtTime(x.at))),
      h("td", { "data-label": "Replicas", class: "num" }, `${x.old} → ${x.new}`),
      h("td", { "data-label": "Reason", class: "reason" }, x.reason))));
  }

  function renderReplicas(replicas) {
    const key = JSON.stringify(replicas);
    if (key === lastReplicas) return;
    lastReplicas = key;
    const body = document.querySelector("#replicas tbody");
    if (!replicas.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No replica.")));
      return;
    }
    body.replaceChildren(...replicas.map((r) => h("tr", { dataset: { member: r.member, state: r.state } },
      h("td", { "data-label": "Replica" }, r.member),
      h("td", { "data-label": "State" }, badge(r.state)),
      h("td", { "data-label": "Node" }, r.node || "–"),
      h("td", { "data-label": "GPU ids" }, r.gpu_ids.length ? r.gpu_ids.join(", ") : "–"),
      h("td", { "data-label": "Extra" }, r.extra ? "extra" : "min"),
      h("td", { "data-label": "Why", class: "reason" }, r.why || ""))));
  }

  function renderTimeline(d) {
    const key = JSON.stringify([d.id, d.history]);
    if (key === lastTimeline) return;
    lastTimeline = key;
    const deployed = h("li", { class: "st-pending" },
      h("time", { datetime: new Date(d.submitted_at * 1000).toISOString() }, fmtTime(d.submitted_at)), " ",
      badge("pending"), h("div", { class: "reason" }, `deployed by ${d.user}`));
    document.getElementById("timeline").replaceChildren(deployed, ...d.history.map((t) => h("li", { class: "st-" + t.new },
      h("time", { datetime: new Date(t.at * 1000).toISOString() }, fmtTime(t.at)), " ",
      t.old ? [badge(t.old), " → "] : "", badge(t.new),
      h("div", { class: "reason" }, t.reason))));
  }

  /* ---------------------------------------------------------------- charts (inline SVG) */

  function ticks(max, integer) {
    if (integer && max <= 5) return [...Array(Math.floor(max) + 1).keys()];
    const step = Math.pow(10, Math.floor(Math.log10(max / 4)));
    const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => max / s <= 5);
    const out = [];
    for (let v = 0; v <= max + 1e-9; v += nice) out.push(+v.toFixed(6));
    return out;
  }

  /* A path through the points of one line; a null value breaks it. ``step``: hold each value
     until the next point (counts), and the last one until ``until`` if given (a live
     deployment: now); else straight segments (rates, latency). */
  function linePath(pts, x, y, value, step, until) {
    let d = "";
    let open = false;
    for (const p of pts) {
      const v = value(p);
      if (v === null || v === undefined || Number.isNaN(v)) { open = false; continue; }
      const px = x(p.at).toFixed(1);
      const py = y(v).toFixed(1);
      d += !open ? `M${px},${py}` : step ? `H${px}V${py}` : `L${px},${py}`;
      open = true;
    }
    if (step && open && until) d += `H${x(until).toFixed(1)}`;
    return d;
  }

  function drawChart(el, { title, pts, lines, step, integer, unit, x0, x1, live }) {
    const width = Math.max(260, el.clientWidth || 420);
    const height = 170;
    const m = { l: 44, r: 10, t: 10, b: 24 };
    let top = 0;
    for (const p of pts) for (const l of lines) top = Math.max(top, l.value(p) || 0);
    top = integer ? Math.max(1, Math.ceil(top * 1.1)) : top > 0 ? top * 1.15 : 1;
    const x = (t) => m.l + ((t - x0) / Math.max(1, x1 - x0)) * (width - m.l - m.r);
    const y = (v) => height - m.b - (v / top) * (height - m.t - m.b);
    const last = pts[pts.length - 1];
    const summary = last
      ? `${title}, ${pts.length} samples. Latest: ` + lines.map((l) => `${l.label} ${fmtNum(l.value(last))}${unit || ""}`).join(", ") + "."
      : `${title}: no samples yet.`;
    const span = x1 - x0;
    const fmtT = (t) => new Date(t * 1000).toLocaleTimeString([], span < 900
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
    const nT = width < 400 ? 2 : 4;
    const timeTicks = [...Array(nT + 1).keys()].map((i) => x0 + (span * i) / nT);
    const first = lines[0];
    const dots = pts.length <= 300 ? pts.filter((p) => first.value(p) !== null && first.value(p) !== undefined).map((p) =>
      svg("circle", { class: "pt " + first.cls, cx: x(p.at).toFixed(1), cy: y(first.value(p)).toFixed(1), r: 1.8 },
        svg("title", {}, `${new Date(p.at * 1000).toLocaleTimeString()}: ` + lines.map((l) => `${l.label} ${fmtNum(l.value(p))}`).join(", ")))) : [];
    const id = el.id;
    const chart = svg("svg",
      { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": `${id}-t ${id}-d`,
        class: "usage-chart dep-svg", "data-points": pts.length },
      svg("title", { id: `${id}-t` }, title),
      svg("desc", { id: `${id}-d` }, summary),
      ticks(top, integer).filter((v) => v <= top).map((v) => svg("g", { class: "grid" },
        svg("line", { x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }),
        svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v)))),
      timeTicks.map((t, i) => svg("text", { class: "tick", x: x(t), y: height - 6,
        "text-anchor": i === 0 ? "start" : i === nT ? "end" : "middle" }, fmtT(t))),
      lines.map((l) => svg("path", { class: "line " + l.cls, d: linePath(pts, x, y, l.value, step, live && x1) })),
      dots,
      pts.length ? null : svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "No samples yet"),
    );
    el.replaceChildren(chart);
  }

  /* Rates from the cumulative counters: (this point's count - the previous one's) / seconds
     between them; a counter that went down (the entry restarted) counts from 0. */
  function rates(points) {
    const out = [];
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      const prev = points[i - 1];
      const dt = prev ? p.at - prev.at : 0;
      const per = (k) => (dt > 0 ? Math.max(0, p[k] >= prev[k] ? p[k] - prev[k] : p[k]) / dt : null);
      out.push({ ...p, rps: per("requests"), eps: per("errors"), gpus_used: p.replicas * series.gpus });
    }
    return out;
  }

  function drawCharts() {
    const now = Date.now() / 1000;
    const win = Number(windowSelect.value);
    const all = rates(series.points);
    const x1 = Math.max(now, all.length ? all[all.length - 1].at : now);
    // A young deployment has less history than the window: show the time it has, at least a minute.
    const x0 = all.length ? Math.max(x1 - win, Math.min(all[0].at, x1 - 60)) : x1 - 60;
    const pts = all.filter((p) => p.at >= x0);
    const common = { pts, x0, x1, live: !!current && LIVE.includes(current.state) };
    drawChart(document.getElementById("chart-replicas"), { ...common, title: "Replicas over time", step: true, integer: true, lines: [
      { cls: "c-placed", label: "placed", value: (p) => p.replicas },
      { cls: "c-ready", label: "ready", value: (p) => p.ready },
      { cls: "c-desired", label: "desired", value: (p) => p.desired },
    ] });
    drawChart(document.getElementById("chart-rps"), { ...common, title: "Requests per second", lines: [
      { cls: "c-rps", label: "requests/s", value: (p) => p.rps },
    ] });
    drawChart(document.getElementById("chart-latency"), { ...common, title: "Latency", unit: " ms", lines: [
      { cls: "c-p50", label: "p50", value: (p) => p.p50_ms },
      { cls: "c-p99", label: "p99", value: (p) => p.p99_ms },
    ] });
    drawChart(document.getElementById("chart-errors"), { ...common, title: "Errors per second", lines: [
      { cls: "c-errors", label: "errors/s", value: (p) => p.eps },
    ] });
    drawChart(document.getElementById("chart-gpus"), { ...common, title: "GPUs used", step: true, lines: [
      { cls: "c-gpus", label: "GPUs", value: (p) => p.gpus_used },
    ] });
  }

  /* New points since the last one the page has (all the server keeps on first load). */
  async function loadSeries() {
    const last = series.points[series.points.length - 1];
    let got = await api(last ? `${base}/series?since=${last.at}` : `${base}/series`);
    if (got.id !== series.id) {
      // Another deployment of that name (undeployed and deployed again): start over.
      if (last) got = await api(`${base}/series`);
      series = { id: got.id, gpus: got.gpus, points: [] };
    }
    series.gpus = got.gpus;
    const newest = series.points.length ? series.points[series.points.length - 1].at : -Infinity;
    series.points.push(...got.points.filter((p) => p.at > newest));
    if (series.points.length > KEEP) series.points.splice(0, series.points.length - KEEP);
  }

  /* ---------------------------------------------------------------- scale and undeploy */

  /* POST /deployments with the deployment as it is and the new bounds: a redeploy of the name. */
  function redeployBody(d, min, max) {
    const req = {
      name: d.name, import_path: d.import_path, queue: d.queue,
      min_replicas: min, max_replicas: max,
      target_ongoing_requests: d.target_ongoing_requests,
      upscale_delay: d.upscale_delay, downscale_delay: d.downscale_delay, look_back: d.look_back,
      scale_to_zero_after: d.scale_to_zero_after, max_ongoing_requests: d.max_ongoing_requests,
      working_dir: d.working_dir, env: d.env,
    };
    if (d.size) {
      req.size = d.size;
    } else {
      req.gpus = d.gpus;
      if (d.gpu_types.length) req.gpu_type = d.gpu_types[0];
      if (d.resources.vcore) req.cpu = d.resources.vcore / 1000;
      if (d.resources.memory) req.memory = String(d.resources.memory);
    }
    return req;
  }

  scaleForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    scaleError.textContent = "";
    scaleDone.textContent = "";
    for (const el of [scaleMin, scaleMax]) el.removeAttribute("aria-invalid");
    const value = (el) => (el.value.trim() === "" ? NaN : Number(el.value));
    const [min, max] = [value(scaleMin), value(scaleMax)];
    const bad = [scaleMin, scaleMax].filter((el) => !(Number.isInteger(value(el)) && value(el) >= 1));
    if (bad.length || min > max) {
      const el = bad.length ? bad[0] : scaleMax;
      el.setAttribute("aria-invalid", "true");
      scaleError.textContent = "Whole numbers of replicas, 1 or more, min no more than max.";
      el.focus();
      return;
    }
    if (!current) return;
    const button = document.getElementById("scale-button");
    button.disabled = true;
    try {
      const d = await api("/deployments", { method: "POST", json: redeployBody(current, min, max) });
      scaleDone.textContent = `Redeployed with ${d.min_replicas}..${d.max_replicas} replicas.`;
      renderDeployment(d);
    } catch (e) {
      const field = ((e.body && e.body.fields) || []).map((f) => f.field);
      if (field.includes("body.min_replicas")) scaleMin.setAttribute("aria-invalid", "true");
      if (field.includes("body.max_replicas")) scaleMax.setAttribute("aria-invalid", "true");
      scaleError.textContent = "Not scaled: " + errorText(e);
    } finally {
      button.disabled = false;
    }
  });

  undeploy.addEventListener("click", async () => {
    if (!current || !confirm(`Undeploy ${current.name}? Its replicas stop and their GPUs go back to ${current.queue}.`)) return;
    undeploy.disabled = true;
    try {
      renderDeployment(await api(base, { method: "DELETE" }));
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      undeploy.disabled = false;
    }
  });

  windowSelect.addEventListener("change", drawCharts);
  window.addEventListener("resize", drawCharts);

  poll(async () => {
    try {
      const [d] = await Promise.all([api(base), loadSeries()]);
      error.textContent = "";
      renderDeployment(d);
      drawCharts();
    } catch (e) {
      if (e.status === 404) error.textContent = errorText(e);
      else throw e;
    }
  });
})();
