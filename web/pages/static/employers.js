// The host home's employers panel (docs/pages.md): the organization's employer records, a
// host marks one verified with the note of the check and creates recruiter accounts for it
// (POST /api/employers, /api/employers/{eid}/verify, /api/employers/{eid}/recruiters).
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;
  const panel = document.getElementById("employers-panel");
  const root = document.getElementById("host");
  if (!panel || !root) return;
  const csrf = root.dataset.csrf || "";
  const api = (method, path, body) => JC.api(method, path, body, { csrf });
  const list = document.getElementById("employer-list");
  const error = document.getElementById("employer-error");

  function item(e) {
    const status = e.verified
      ? "✓ " + _("Verified") + " · " + _("Checked on %(d)s", { d: JC.dateTime(e.at) }) + " · " + e.by + ": " + e.note
      : _("Not verified");
    const note = h("input", { type: "text", maxlength: "300", "aria-label": _("What was checked (licence number, by whom)") });
    const verify = h("button", { type: "button" }, e.verified ? _("Update check") : _("Mark verified"));
    verify.addEventListener("click", () => act(() => api("POST", `/api/employers/${e.id}/verify`, { verified: true, note: note.value })));
    const user = h("input", { type: "text", maxlength: "64", autocomplete: "off", "aria-label": _("Recruiter username") });
    const pass = h("input", { type: "password", minlength: "8", autocomplete: "new-password", "aria-label": _("Recruiter password") });
    const add = h("button", { type: "button" }, _("Create recruiter account"));
    add.addEventListener("click", () => act(async () => {
      await api("POST", `/api/employers/${e.id}/recruiters`, { username: user.value, password: pass.value });
      JC.toast(_("Recruiter account created"));
    }));
    return h("li", { class: "employer-item", dataset: { eid: e.id } },
      h("strong", null, e.name), h("p", { class: "hint" }, status),
      h("div", { class: "row" }, note, verify),
      h("div", { class: "row" }, user, pass, add));
  }
  async function act(fn) {
    error.textContent = "";
    try { await fn(); await load(); } catch (e) { error.textContent = JC.errorText(e); }
  }
  async function load() {
    const data = await api("GET", "/api/employers");
    list.replaceChildren(...data.items.map(item));
  }
  document.getElementById("employer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = document.getElementById("e-name");
    act(async () => { await api("POST", "/api/employers", { name: name.value }); name.value = ""; });
  });
  load().catch((e) => { error.textContent = JC.errorText(e); });
})();
