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

  function clearErrors() {
    error.textContent = "";
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    form.querySelectorAll(".error[data-field]").forEach((el) => { el.textContent = ""; });
  }

  function showFieldError(field, message) {
    const slot = [...form.querySelectorAll(".error[data-field]")].find((el) => field.startsWith(el.dataset.field));
    if (!slot) return null;
    slot.textContent = message;
    const input = slot.closest(".field, fieldset").querySelector("input, select, textarea");
    if (input) input.setAttribute("aria-invalid", "true");
    return input;
  }

  function request() {
    const data = new FormData(form);
    return {
      name: String(data.get("name") || "").trim(),
      queue: data.get("queue") || null,
      size: data.get("size"),
      entrypoint: String(data.get("entrypoint") || "").trim(),
      priority: Number(data.get("priority") || 0),
      disruption: { policy: data.get("policy"), grace: Number(grace.value || 0) },
      idempotency_key: key,
    };
  }

  function validate(req) {
    const problems = [];
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(req.name)) problems.push(["body.name", "Give a name: letters, digits, . _ - (up to 63)."]);
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
    created.replaceChildren(h("p", {}, link, " ", state), h("p", {}, `Queue ${w.queue || "–"}, ${w.gpus} GPU(s)`), reason);
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
      error.textContent = "Please fix the fields marked below.";
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
      error.textContent = errorText(e);
      const first = ((e.body && e.body.fields) || []).map((f) => showFieldError(f.field, f.message)).find(Boolean);
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
