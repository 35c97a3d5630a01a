/* Deployments page: the list (live), and the deploy form (POST /deployments; a refusal's
   message next to the field it names, success goes to the deployment's page). */
"use strict";

(() => {
  const { api, h, poll, badge, errorText, keepFocus } = GP;
  const body = document.querySelector("#deployments tbody");
  const count = document.getElementById("d-count");
  const all = document.getElementById("d-all");
  let lastKey = "";

  function ms(v) {
    return v === null || v === undefined ? "–" : `${v.toLocaleString(undefined, { maximumFractionDigits: v < 10 ? 1 : 0 })} ms`;
  }

  function render(rows) {
    count.textContent = `${rows.length} deployment${rows.length === 1 ? "" : "s"}`;
    const key = JSON.stringify(rows.map((d) => [d.id, d.state, d.running, d.desired, d.ready, d.stats, d.url, d.min_replicas, d.max_replicas]));
    if (key === lastKey) return;
    lastKey = key;
    if (!rows.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "muted" }, all.checked ? "No deployments." : "No live deployments.")));
      return;
    }
    keepFocus(() => body.replaceChildren(...rows.map((d) => {
      const s = d.stats || {};
      const gpus = +(d.running * d.gpus).toFixed(3);
      return h("tr", { dataset: { name: d.name, id: d.id, state: d.state } },
        h("td", { "data-label": "Name" }, h("a", { href: `/portal/deployments/${encodeURIComponent(d.name)}`, id: "dep-" + d.id }, d.name)),
        h("td", { "data-label": "State" }, badge(d.state)),
        h("td", { "data-label": "Queue" }, d.queue || "–"),
        h("td", { "data-label": "Replicas", class: "num replicas", title: "running / desired (ready)" },
          `${d.running} / ${d.desired}`, h("span", { class: "muted" }, ` (${d.ready} ready)`)),
        h("td", { "data-label": "GPUs", class: "num gpus", title: `${d.running} × ${d.gpus} GPU per replica` }, gpus),
        h("td", { "data-label": "Requests", class: "num" }, d.stats ? s.requests.toLocaleString() : "–"),
        h("td", { "data-label": "Errors", class: "num" + (s.errors ? " error" : "") }, d.stats ? s.errors.toLocaleString() : "–"),
        h("td", { "data-label": "p50 / p99", class: "num" }, `${ms(s.p50_ms)} / ${ms(s.p99_ms)}`),
        h("td", { "data-label": "URL" }, d.url ? h("a", { href: d.url, class: "url" }, d.url) : "–"),
        h("td", { "data-label": "Min..max", class: "num" }, `${d.min_replicas}..${d.max_replicas}`),
      );
    })));
  }

  async function load() {
    render(await api("/deployments" + (all.checked ? "?all=true" : "")));
  }

  all.addEventListener("change", () => { lastKey = ""; load(); });

  /* ---------------------------------------------------------------- the deploy form */

  const form = document.getElementById("deploy-form");
  if (form) {
    const button = document.getElementById("deploy-button");
    const error = document.getElementById("deploy-error");
    const custom = document.getElementById("d-custom");
    for (const id of ["d-gpus", "d-gpu-type"]) {
      document.getElementById(id).addEventListener("input", () => { custom.checked = true; });
    }

    function clearErrors() {
      error.textContent = "";
      form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      form.querySelectorAll(".error[data-field]").forEach((el) => { el.textContent = ""; });
    }

    const showFieldError = (field, message) => GP.showFieldError(form, field, message);

    const num = (v) => (v === null || String(v).trim() === "" ? NaN : Number(v));

    /* The request of the form, and the problems found before sending it. */
    function request() {
      const data = new FormData(form);
      const problems = [];
      const req = {
        name: String(data.get("name") || "").trim(),
        import_path: String(data.get("import_path") || "").trim(),
        queue: data.get("queue") || "",
        min_replicas: num(data.get("min_replicas")),
        max_replicas: num(data.get("max_replicas")),
        target_ongoing_requests: num(data.get("target_ongoing_requests")),
        upscale_delay: num(data.get("upscale_delay")),
        downscale_delay: num(data.get("downscale_delay")),
        look_back: num(data.get("look_back")),
        env: {},
      };
      if (data.get("size") === "custom") {
        req.gpus = num(data.get("gpus"));
        if (data.get("gpu_type")) req.gpu_type = data.get("gpu_type");
        if (!(req.gpus >= 0)) problems.push(["body.gpus", "A number of GPUs: 1, 2 … or a share of one (0.25)."]);
      } else {
        req.size = data.get("size");
      }
      const wd = String(data.get("working_dir") || "").trim();
      if (wd) req.working_dir = wd;
      for (const [i, raw] of String(data.get("env") || "").split("\n").entries()) {
        const line = raw.trim();
        if (!line) continue;
        const eq = line.indexOf("=");
        if (eq <= 0) problems.push(["body.env", `Line ${i + 1}: NAME=value.`]);
        else req.env[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(req.name)) problems.push(["body.name", "Give a name: letters, digits, . _ - (up to 63)."]);
      if (!req.import_path) problems.push(["body.import_path", "Give the app's module:attribute."]);
      for (const f of ["min_replicas", "max_replicas"]) {
        if (!Number.isInteger(req[f])) problems.push([`body.${f}`, "A whole number of replicas."]);
      }
      for (const f of ["target_ongoing_requests", "upscale_delay", "downscale_delay", "look_back"]) {
        if (!(req[f] >= 0)) problems.push([`body.${f}`, "A number, 0 or more."]);
      }
      return [req, problems];
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors();
      const [req, problems] = request();
      if (problems.length) {
        const first = problems.map(([f, m]) => showFieldError(f, m)).find(Boolean);
        error.textContent = "Please fix the fields marked above.";
        if (first) first.focus();
        return;
      }
      button.disabled = true;
      button.textContent = "Deploying…";  // the control plane imports the app first: seconds
      try {
        const d = await api("/deployments", { method: "POST", json: req });
        location.href = `/portal/deployments/${encodeURIComponent(d.name)}`;
      } catch (e) {
        const fields = (e.body && e.body.fields) || [];
        const first = fields.map((f) => showFieldError(f.field, f.message)).find(Boolean);
        error.textContent = "Not deployed: " + errorText(e);  // the API's own line, naming the field
        if (first) first.focus();
        button.disabled = false;
        button.textContent = "Deploy";
      }
    });
  }

  poll(load);
})();
