/* Workloads page: the filterable list (state, queue, user from the API; text in the page), live. */
"use strict";

(() => {
  const { api, h, poll, badge, ago, fmtTime, keepFocus } = GP;
  const form = document.getElementById("filters");
  const body = document.querySelector("#workloads tbody");
  const count = document.getElementById("count");
  const fields = { state: "f-state", queue: "f-queue", user: "f-user", q: "f-text" };
  let rows = [];
  let lastKey = "";

  const params = new URLSearchParams(location.search);
  for (const [name, id] of Object.entries(fields)) {
    const el = document.getElementById(id);
    if (params.get(name)) {
      if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === params.get(name))) {
        el.append(h("option", { value: params.get(name) }, params.get(name)));
      }
      el.value = params.get(name);
    }
  }

  function filters() {
    const out = {};
    for (const [name, id] of Object.entries(fields)) {
      const v = document.getElementById(id).value.trim();
      if (v) out[name] = v;
    }
    return out;
  }

  function render() {
    const text = (filters().q || "").toLowerCase();
    const shown = text
      ? rows.filter((w) => [w.id, w.name, w.entrypoint, w.reason, w.user, w.queue].some((s) => (s || "").toLowerCase().includes(text)))
      : rows;
    // The time (to 10 s) is part of the key so that "submitted … ago" stays current.
    const key = JSON.stringify([Math.floor(Date.now() / 10000), shown.map((w) => [w.id, w.state, w.reason, w.queue])]);
    count.textContent = `${shown.length} workload${shown.length === 1 ? "" : "s"}` + (shown.length !== rows.length ? ` of ${rows.length}` : "");
    if (key === lastKey) return;
    lastKey = key;
    if (!shown.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No workloads match.")));
      return;
    }
    keepFocus(() => body.replaceChildren(...shown.map((w) => h("tr", { dataset: { id: w.id, state: w.state } },
      h("td", { "data-label": "ID" }, h("a", { href: `/portal/workloads/${encodeURIComponent(w.id)}`, id: "wl-" + w.id }, w.id)),
      h("td", { "data-label": "Name" }, w.name),
      h("td", { "data-label": "State" }, badge(w.state)),
      h("td", { "data-label": "Queue" }, w.queue || "–"),
      h("td", { "data-label": "User" }, w.user),
      h("td", { "data-label": "GPUs", class: "num" }, w.gpus),
      h("td", { "data-label": "Submitted", title: fmtTime(w.submitted_at) }, ago(w.submitted_at)),
      h("td", { "data-label": "Reason", class: "reason" }, w.reason),
    ))));
  }

  async function load() {
    const f = filters();
    const qs = new URLSearchParams({ limit: "500" });
    for (const k of ["state", "queue", "user"]) if (f[k]) qs.set(k, f[k]);
    rows = await api("/workloads?" + qs);
    render();
  }

  function syncUrl() {
    const url = new URL(location.href);
    url.search = new URLSearchParams(filters()).toString();
    history.replaceState(null, "", url);
  }

  form.addEventListener("submit", (ev) => ev.preventDefault());
  form.addEventListener("change", () => { syncUrl(); lastKey = ""; load(); });
  document.getElementById("f-text").addEventListener("input", () => { syncUrl(); render(); });
  let userTimer = null;
  document.getElementById("f-user").addEventListener("input", () => {
    clearTimeout(userTimer);
    userTimer = setTimeout(() => { syncUrl(); load(); }, 300);
  });

  api("/queues").then((queues) => {
    const sel = document.getElementById("f-queue");
    const cur = sel.value;
    sel.replaceChildren(h("option", { value: "" }, "any"),
      ...queues.filter((q) => q.leaf).map((q) => h("option", { value: q.path }, q.path)));
    sel.value = cur;
  }).catch(() => {});

  poll(load);
})();
