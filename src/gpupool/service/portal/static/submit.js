/* Submit page: POST /workloads from the form, show field errors in place, follow the created workload. */
"use strict";

(() => {
  const { api, h, badge, errorText, poll } = GP;
  const form = document.getElementById("submit-form");
  const button = document.getElementById("submit-button");
  const error = document.getElementById("submit-error");
  const card = document.getElementById("created-card");
  const created = document.getElementById("created");
  const policy = document.getElementById("s-policy");
  const grace = document.getElementById("s-grace");
  let key = newKey();
  let following = null;

  function newKey() {
    const rnd = window.crypto && crypto.getRandomValues ? [...crypto.getRandomValues(new Uint32Array(4))].map((n) => n.toString(16)).join("") : String(Math.random()).slice(2);
    return "portal-" + rnd;
  }

  policy.addEventListener("change", () => { grace.disabled = policy.value === "never"; });
  // Choosing GPUs, members or a GPU type is choosing the custom shape.
  for (const id of ["s-gpus", "s-members", "s-gpu-type"]) {
    document.getElementById(id).addEventListener("input", () => { document.getElementById("s-custom").checked = true; });
  }

  function clearErrors() {
    error.textContent = "";
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    form.querySelectorAll(".error[data-field]").forEach((el) => { el.textContent = ""; });
  }

  const showFieldError = (field, message) => GP.showFieldError(form, field, message);

  function request() {
    const data = new FormData(form);
    const req = {
      name: String(data.get("name") || "").trim(),
      queue: data.get("queue") || null,
      entrypoint: String(data.get("entrypoint") || "").trim(),
      priority: Number(data.get("priority") || 0),
      disruption: { policy: data.get("policy"), grace: Number(grace.value || 0) },
      idempotency_key: key,
    };
    if (data.get("size") === "custom") {
      const type = data.get("gpu_type");
      req.task_groups = [{
        name: "worker",
        gpus: Number(data.get("gpus") === "" ? NaN : data.get("gpus")),
        members: Number(data.get("members") === "" ? NaN : data.get("members")),
        gpu_types: type ? [type] : [],
      }];
    } else {
      req.size = data.get("size");
    }
    return req;
  }

  function validate(req) {
    const problems = [];
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(req.name)) problems.push(["body.name", "Give a name: letters, digits, . _ - (up to 63)."]);
    if (req.task_groups) {
      const g = req.task_groups[0];
      // Whole GPUs, or a share of one GPU in thousandths (0.25); the server checks the same.
      const share = g.gpus > 0 && g.gpus < 1 && Math.abs(g.gpus * 1000 - Math.round(g.gpus * 1000)) < 1e-9;
      if (!((Number.isInteger(g.gpus) && g.gpus >= 0 && g.gpus <= 64) || share)) {
        problems.push(["body.task_groups.0.gpus", "A whole number of GPUs, 0 to 64, or a share of one GPU (0.25; steps of 0.001)."]);
      }
      if (!(Number.isInteger(g.members) && g.members >= 1 && g.members <= 4096)) problems.push(["body.task_groups.0.members", "A whole number of members, 1 to 4096."]);
    }
    if (!req.entrypoint) problems.push(["body.entrypoint", "Give the command to run."]);
    if (!Number.isInteger(req.priority)) problems.push(["body.priority", "A whole number."]);
    if (!(req.disruption.grace >= 0)) problems.push(["body.disruption.grace", "Seconds, 0 or more."]);
    return problems;
  }

  function follow(w) {
    const link = h("a", { href: `/portal/workloads/${encodeURIComponent(w.id)}`, id: "created-link" }, `${w.name} (${w.id})`);
    const state = badge(w.state);
    state.id = "created-state";
    const reason = h("p", { class: "muted", id: "created-reason" }, w.reason);
    created.replaceChildren(h("p", {}, link, " ", state), h("p", {}, `Queue ${w.queue || "–"}, ${w.gpus} GPU(s)`),
      w.notice ? h("p", { id: "created-notice" }, w.notice) : null, reason);
    card.hidden = false;
    following = w.id;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const req = request();
    const problems = validate(req);
    if (problems.length) {
      const first = problems.map(([f, m]) => showFieldError(f, m)).find(Boolean);
      error.textContent = "Please fix the fields marked above.";
      if (first) first.focus();
      return;
    }
    button.disabled = true;
    try {
      const w = await api("/workloads", { method: "POST", json: req });
      key = newKey();
      follow(w);
      document.getElementById("created-link").focus();
    } catch (e) {
      const fields = (e.body && e.body.fields) || [];
      const marked = fields.map((f) => showFieldError(f.field, f.message));
      const first = marked.find(Boolean);
      // The details sit next to the fields they name; here only what is not shown there.
      const placed = marked.some(Boolean);
      error.textContent = placed ? "Not submitted: see the fields marked above." + (e.body && e.body.hint ? " Hint: " + e.body.hint : "") : errorText(e);
      if (first) first.focus();
    } finally {
      button.disabled = false;
    }
  });

  poll(async () => {
    if (!following) return;
    const w = await api(`/workloads/${encodeURIComponent(following)}`);
    const state = document.getElementById("created-state");
    if (state && state.textContent !== w.state) {
      state.className = "badge st-" + w.state;
      state.textContent = w.state;
      document.getElementById("created-reason").textContent = w.reason;
    }
  });
})();
