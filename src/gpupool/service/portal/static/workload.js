/* One workload: facts, state timeline, why, events and logs, refreshed live; cancel when allowed. */
"use strict";

(() => {
  const { api, h, poll, badge, fmtTime, fmtResources, mayAdminister, me, errorText } = GP;
  const id = document.getElementById("w-facts").dataset.workload;
  const base = `/workloads/${encodeURIComponent(id)}`;
  const cancel = document.getElementById("cancel");
  const error = document.getElementById("w-error");
  const logs = document.getElementById("logs");
  let current = null;
  let lastTimeline = "";
  let lastEvents = "";

  function fact(label, value) {
    return [h("dt", {}, label), h("dd", {}, value === null || value === undefined || value === "" ? "–" : value)];
  }

  function renderWorkload(w) {
    current = w;
    document.getElementById("w-name").textContent = w.name;
    document.title = `${w.name} (${w.id}) · gpupool`;
    const state = document.getElementById("w-state");
    state.className = "badge st-" + w.state;
    state.textContent = w.state;
    document.body.dataset.state = w.state;
    const placement = Object.entries(w.placement).map(([m, n]) => `${m} → ${n}`).join(", ");
    const groups = w.task_groups.map((g) => `${g.members} × ${g.name} (${fmtResources(g.resources)}${g.gpu_types.length ? " on " + g.gpu_types.join("/") : ""})`).join("; ");
    document.getElementById("w-facts").replaceChildren(h("dl", {},
      fact("Queue", w.queue), fact("User", w.user), fact("Size", w.size || "custom"), fact("GPUs", w.gpus),
      fact("Members", groups), fact("Priority", w.priority),
      fact("Disruption", `${w.disruption.policy}${w.disruption.policy === "checkpoint" ? `, ${w.disruption.grace} s grace` : ""}`),
      fact("Placement", placement), fact("Attempt", w.attempt), fact("Preemptions", w.preemptions),
      fact("Submitted", fmtTime(w.submitted_at)), fact("Started", fmtTime(w.started_at)), fact("Finished", fmtTime(w.finished_at)),
      fact("Entrypoint", h("code", {}, w.entrypoint || "")),
    ));
    const terminal = ["succeeded", "failed", "cancelled"].includes(w.state);
    cancel.hidden = terminal || !(me && (me.user === w.user || mayAdminister(w.queue)));
    const key = JSON.stringify(w.history);
    if (key !== lastTimeline) {
      lastTimeline = key;
      const submitted = h("li", { class: "st-pending" },
        h("time", { datetime: new Date(w.submitted_at * 1000).toISOString() }, fmtTime(w.submitted_at)), " ",
        badge("pending"), h("div", { class: "reason" }, `submitted by ${w.user}`));
      document.getElementById("timeline").replaceChildren(submitted, ...w.history.map((t) => h("li", { class: "st-" + t.new },
        h("time", { datetime: new Date(t.at * 1000).toISOString() }, fmtTime(t.at)), " ",
        t.old ? [badge(t.old), " → "] : "", badge(t.new),
        h("div", { class: "reason" }, t.reason))));
    }
  }

  function renderWhy(why) {
    document.getElementById("why").replaceChildren(h("ul", { class: "why" },
      why.lines.map((line) => h("li", { class: line.startsWith("  ") ? "sub" : "" }, line.trim().replace(/^- /, "")))));
  }

  function renderEvents(events) {
    const key = JSON.stringify(events);
    if (key === lastEvents) return;
    lastEvents = key;
    document.querySelector("#events tbody").replaceChildren(...events.map((e) => h("tr", {},
      h("td", { "data-label": "Time" }, fmtTime(e.at)), h("td", { "data-label": "Kind" }, e.kind),
      h("td", { "data-label": "Message" }, e.message))));
  }

  function renderLogs(out) {
    const text = out.text || "(no output yet)";
    if (logs.textContent === text) return;
    const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    logs.textContent = text;
    if (atBottom) logs.scrollTop = logs.scrollHeight;
  }

  cancel.addEventListener("click", async () => {
    if (!current || !confirm(`Cancel ${current.name} (${current.id})?`)) return;
    cancel.disabled = true;
    try {
      renderWorkload(await api(`${base}/cancel`, { method: "POST" }));
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      cancel.disabled = false;
    }
  });

  poll(async () => {
    try {
      const [w, why, events, out] = await Promise.all([
        api(base), api(`${base}/why`), api(`${base}/events`), api(`${base}/logs`),
      ]);
      error.textContent = "";
      renderWorkload(w);
      renderWhy(why);
      renderEvents(events);
      renderLogs(out);
    } catch (e) {
      if (e.status === 404) error.textContent = errorText(e);
      else throw e;
    }
  });
})();
