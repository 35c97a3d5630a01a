/* gpupool portal: shared helpers (token, API calls, DOM building, polling, formatting).
   Plain ES2017, no build step, no dependencies. */
"use strict";

const GP = (() => {
  const KEY = "gpupool.token";
  const COOKIE = "gpupool_token";

  function readCookie() {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === COOKIE) return decodeURIComponent(v.join("="));
    }
    return null;
  }

  /* The tab's token: session storage, else the session cookie (a new tab of a signed-in browser). */
  function token() {
    let t = sessionStorage.getItem(KEY);
    if (!t) {
      t = readCookie();
      if (t) sessionStorage.setItem(KEY, t);
    }
    return t;
  }

  function signIn(t) {
    sessionStorage.setItem(KEY, t);
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${COOKIE}=${encodeURIComponent(t)}; Path=/; SameSite=Strict${secure}`;
  }

  function signOut(next) {
    sessionStorage.removeItem(KEY);
    document.cookie = `${COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`;
    location.href = "/portal/signin" + (next ? "?next=" + encodeURIComponent(next) : "");
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /* Call the JSON API with the tab's token; a 401 sends the user to the sign-in page. */
  async function api(path, opts = {}) {
    const headers = { Accept: "application/json" };
    const t = opts.token || token();
    if (t) headers.Authorization = "Bearer " + t;
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    const r = await fetch(path, { method: opts.method || "GET", headers, body, credentials: "same-origin" });
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    if (r.status === 401 && !opts.token) {
      signOut(location.pathname + location.search);
      throw new ApiError(r.status, data);
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  /* h("a", {href: x, class: "y"}, "text", child): build an element; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /* Run fn now and every `ms` (the page's data-poll by default) while the tab is visible. */
  function poll(fn, ms) {
    const every = ms || Number(document.body.dataset.poll) || 2000;
    const status = document.getElementById("live-status");
    let timer = null;
    let running = false;
    async function tick() {
      clearTimeout(timer);
      if (!running) {
        running = true;
        try {
          await fn();
          if (status) status.textContent = "Live · updated " + new Date().toLocaleTimeString();
          if (status) status.classList.remove("error");
        } catch (e) {
          if (status) status.textContent = "Live · update failed (" + e.message + "), retrying";
          if (status) status.classList.add("error");
        } finally {
          running = false;
        }
      }
      if (!document.hidden) timer = setTimeout(tick, every);
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick();
    });
    tick();
    return tick;
  }

  const me = (() => {
    const el = document.getElementById("gp-me");
    return el ? JSON.parse(el.textContent) : null;
  })();

  function mayAdminister(queue) {
    return !!me && (me.admin || (queue && me.admin_queues.includes(queue)));
  }

  const GI = 1024 ** 3;

  function fmtQuantity(name, v) {
    if (v === undefined || v === null) return "–";
    if (name === "vcore") return (v / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 });
    if (name === "memory") return (v / GI).toLocaleString(undefined, { maximumFractionDigits: 1 }) + "Gi";
    return v.toLocaleString();
  }

  function fmtResources(res) {
    return Object.entries(res || {})
      .map(([k, v]) => `${k}: ${fmtQuantity(k, v)}`)
      .join(", ");
  }

  function resourceOrder(a, b) {
    const rank = (r) => (r === "gpu" ? 0 : r.startsWith("gpu/") ? 1 : r === "vcore" ? 2 : r === "memory" ? 3 : 4);
    return rank(a) - rank(b) || a.localeCompare(b);
  }

  function fmtTime(epoch) {
    if (!epoch) return "–";
    const d = new Date(epoch * 1000);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function ago(epoch) {
    if (!epoch) return "–";
    const s = Math.max(0, Date.now() / 1000 - epoch);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} d ago`;
  }

  /* Colours for the keys shown together (queue paths or workload ids), told apart at a glance:
     in sorted order, ten well-separated colours (Tableau 10), then golden-angle hues by
     position, alternating lightness. A hash of the key gave nearby keys nearly the same hue
     (root.training, root.inference and root.default: three olives). */
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#b07aa1", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"];
  function palette(keys) {
    const sorted = [...new Set(keys.map(String))].sort((a, b) => a.localeCompare(b));
    return new Map(sorted.map((k, i) => [k, i < PALETTE.length ? PALETTE[i] :
      `hsl(${((i * 137.508) % 360).toFixed(0)} 65% ${i % 2 ? 38 : 55}%)`]));
  }

  /* A stable colour for one key on its own (hatching of reserved cells). */
  function colour(key, light) {
    let hash = 0;
    for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    const hue = (hash * 137.508) % 360;
    return `hsl(${hue.toFixed(0)} ${light ? 55 : 60}% ${light ? 80 : 45}%)`;
  }

  /* Re-render without losing the keyboard focus: the focused element is found again by its id. */
  function keepFocus(render) {
    const id = document.activeElement && document.activeElement.id;
    render();
    if (id && document.activeElement && document.activeElement.id !== id) {
      const el = document.getElementById(id);
      if (el) el.focus();
    }
  }

  function badge(state) {
    return h("span", { class: "badge st-" + state }, state);
  }

  function errorText(e) {
    const b = (e && e.body) || {};
    return [b.message || e.message, b.hint ? "Hint: " + b.hint : ""].filter(Boolean).join(" ");
  }

  /* A form's error for ``field`` goes to the slot of the most specific field it names
     (body.task_groups.0.gpus before body.task_groups), next to that field; its input (the
     slot's data-input, else the field's first control) is marked invalid and returned. */
  function showFieldError(form, field, message) {
    const slots = [...form.querySelectorAll(".error[data-field]")]
      .filter((el) => field === el.dataset.field || field.startsWith(el.dataset.field + "."))
      .sort((a, b) => b.dataset.field.length - a.dataset.field.length);
    const slot = slots[0];
    if (!slot) return null;
    slot.textContent = slot.textContent ? slot.textContent + " " + message : message;
    const input = slot.dataset.input ? document.getElementById(slot.dataset.input)
      : slot.closest(".field, fieldset").querySelector("input, select, textarea");
    if (input) input.setAttribute("aria-invalid", "true");
    return input;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const out = document.getElementById("signout");
    if (out) out.addEventListener("click", () => signOut());
    if (me && !token()) signOut(location.pathname + location.search);
  });

  return {
    api, ApiError, h, svg, poll, me, mayAdminister, token, signIn, signOut,
    fmtQuantity, fmtResources, resourceOrder, fmtTime, ago, colour, palette, badge, errorText, keepFocus,
    showFieldError,
  };
})();
