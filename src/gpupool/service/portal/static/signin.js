/* Sign-in page: check the token with GET /whoami, keep it for this tab, go where the user was going. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("signin-form");
  const input = document.getElementById("token");
  const error = document.getElementById("signin-error");
  input.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const t = input.value.trim();
    if (!t) {
      error.textContent = "Enter your API token.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    try {
      await GP.api("/whoami", { token: t });
      GP.signIn(t);
      const next = form.dataset.next || "/";
      // The server sends only portal and notebook paths; refuse anything else here too (a
      // backslash or a tab would make the browser read `/\\host` or `/<tab>/host` as another site).
      location.href = /^\/((portal|notebooks)\/[^\s\\]*)?(\?[^\s\\]*)?$/.test(next) && !next.startsWith("//") ? next : "/";
    } catch (e) {
      input.setAttribute("aria-invalid", "true");
      error.textContent = e.status === 401 ? "That token is not valid. " + GP.errorText(e) : GP.errorText(e);
      input.focus();
    }
  });
});
