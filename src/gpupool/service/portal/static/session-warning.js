/* Injected by the notebook proxy into a session's JupyterLab pages: every few seconds, read the
   session's pending reclaim (GET /notebooks/NAME/-/warning, with the sign-in cookie) and show its
   warning as a bar across the top of JupyterLab, so whoever works in the notebook sees it. */
"use strict";

(() => {
  const script = document.currentScript;
  const url = script.dataset.url;
  const every = Number(script.dataset.every) * 1000;
  let bar = null;

  async function check() {
    let answer = null;
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      answer = r.ok ? await r.json() : null;
    } catch (e) {
      return; // the control plane did not answer: keep what is shown
    }
    if (answer && answer.warning) {
      if (!bar) {
        bar = document.createElement("div");
        bar.id = "gpupool-warning";
        bar.setAttribute("role", "alert");
        bar.style.cssText =
          "position:fixed;top:0;left:0;right:0;z-index:100000;padding:6px 12px;" +
          "background:#b45309;color:#fff;font:13px sans-serif;text-align:center";
        document.body.appendChild(bar);
      }
      bar.textContent = `gpupool: ${answer.warning}`;
    } else if (bar) {
      bar.remove();
      bar = null;
    }
  }

  check();
  setInterval(check, every);
})();
