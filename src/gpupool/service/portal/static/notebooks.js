/* Notebooks page: the sessions (live), each with Open, Stop or Resume; and the start form
   (POST /notebooks; a refusal's message next to the field it names). */
"use strict";

(() => {
  const { api, h, poll, badge, errorText, keepFocus } = GP;
  const body = document.querySelector("#notebooks tbody");
  const count = document.getElementById("n-count");
  const actionError = document.getElementById("n-action-error");
  let lastKey = "";

  async function act(name, what) {
    actionError.textContent = "";
    try {
      await api(`/notebooks/${encodeURIComponent(name)}/${what}`, { method: "POST" });
    } catch (e) {
      actionError.textContent = `Could not ${what} ${name}: ${errorText(e)}`;
    }
    lastKey = "";
    load();
  }

  function actions(n) {
    if (["stopped", "failed"].includes(n.state)) {
      return h("button", { type: "button", class: "link resume", id: "resume-" + n.name, onclick: () => act(n.name, "resume") }, "Resume");
    }
    return h("button", { type: "button", class: "link stop", id: "stop-" + n.name, onclick: () => act(n.name, "stop") }, "Stop");
  }

  function render(rows) {
    count.textContent = `${rows.length} notebook${rows.length === 1 ? "" : "s"}`;
    const key = JSON.stringify(rows.map((n) => [n.id, n.state, n.url, n.node, n.reason, n.warning, n.ends_at]));
    if (key === lastKey) return;
    lastKey = key;
    if (!rows.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No notebooks yet.")));
      return;
    }
    keepFocus(() => body.replaceChildren(...rows.flatMap((n) => {
      const gpus = n.gpu_ids && n.gpu_ids.length ? ` (GPU ${n.gpu_ids.join(",")})` : "";
      const row = h("tr", { dataset: { name: n.name, id: n.id, state: n.state }, class: n.warning ? "warned" : "" },
        h("td", { "data-label": "Name" }, n.name),
        h("td", { "data-label": "State", title: n.reason }, badge(n.state)),
        h("td", { "data-label": "User" }, n.user),
        h("td", { "data-label": "Queue" }, n.queue || "–"),
        h("td", { "data-label": "GPUs", class: "num" }, String(n.gpus)),
        h("td", { "data-label": "Node" }, n.node ? n.node + gpus : "–"),
        h("td", { "data-label": "Open" }, n.url
          ? h("a", { href: n.url, class: "url open", id: "open-" + n.name, target: "_blank", rel: "noopener" }, "Open")
          : h("span", { class: "muted" }, n.state === "stopped" && n.stopped_by ? `stopped (${n.stopped_by})` : "–")),
        h("td", { "data-label": "Actions" }, actions(n)),
      );
      const ends = n.ends_at ? `. Its max lifetime ends at ${clock(n.ends_at)}.` : ".";
      if (!n.warning) return [row];
      /* The pending reclaim, in the API's plain words, on its own line under the session's row. */
      const what = { idle: "Idle", lifetime: "Max lifetime", preemption: "Preemption" }[n.reclaim_why] || "Reclaim";
      return [row, h("tr", { class: "reclaim-warning", id: "warning-" + n.name, dataset: { name: n.name } },
        h("td", { colspan: 8, role: "status" },
          h("strong", {}, `⚠ ${what}: GPUs reclaimed at ${clock(n.reclaim_at)}. `), n.warning + ends))];
    })));
  }

  function clock(ts) {
    return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  async function load() {
    render(await api("/notebooks"));
  }

  /* ---------------------------------------------------------------- the start form */

  const form = document.getElementById("notebook-form");
  if (form) {
    const button = document.getElementById("notebook-button");
    const error = document.getElementById("notebook-error");
    const custom = document.getElementById("n-custom");
    for (const id of ["n-gpus", "n-gpu-type"]) {
      document.getElementById(id).addEventListener("input", () => { custom.checked = true; });
    }
    const num = (v) => (v === null || String(v).trim() === "" ? NaN : Number(v));

    function clearErrors() {
      error.textContent = "";
      form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      form.querySelectorAll(".error[data-field]").forEach((el) => { el.textContent = ""; });
    }

    function request() {
      const data = new FormData(form);
      const problems = [];
      const req = {
        name: String(data.get("name") || "").trim(),
        queue: data.get("queue") || "",
        preemptible: document.getElementById("n-preemptible").checked,
      };
      if (data.get("size") === "custom") {
        req.gpus = num(data.get("gpus"));
        if (data.get("gpu_type")) req.gpu_type = data.get("gpu_type");
        if (!(req.gpus >= 0)) problems.push(["body.gpus", "A number of GPUs: 1, 2 … or a share of one (0.25)."]);
      } else {
        req.size = data.get("size");
      }
      const idle = num(data.get("idle_timeout"));
      if (!Number.isNaN(idle)) req.idle_timeout = idle * 60;
      const life = num(data.get("max_lifetime"));
      if (!Number.isNaN(life)) req.max_lifetime = life * 3600;
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(req.name)) problems.push(["body.name", "Give a name: letters, digits, . _ - (up to 63)."]);
      return [req, problems];
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors();
      const [req, problems] = request();
      if (problems.length) {
        const first = problems.map(([f, m]) => GP.showFieldError(form, f, m)).find(Boolean);
        error.textContent = "Please fix the fields marked above.";
        if (first) first.focus();
        return;
      }
      button.disabled = true;
      button.textContent = "Starting…";
      try {
        await api("/notebooks", { method: "POST", json: req });
        form.reset();
        lastKey = "";
        await load();
      } catch (e) {
        const fields = (e.body && e.body.fields) || [];
        const first = fields.map((f) => GP.showFieldError(form, f.field, f.message)).find(Boolean);
        error.textContent = "Not started: " + errorText(e);
        if (first) first.focus();
      } finally {
        button.disabled = false;
        button.textContent = "Start";
      }
    });
  }

  poll(load);
})();
