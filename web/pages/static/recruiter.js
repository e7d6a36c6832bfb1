// The recruiter's page (/recruiter, docs/pages.md): its employer's openings across the
// organization's broadcasts and the applications to them (GET /api/recruiter), with a status
// change per application through the hosts' route (PATCH .../applications/{aid}), which the
// server lets a recruiter use for its own employer's applicants only.
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;
  const box = document.getElementById("recruiter");
  if (!box) return;
  const csrf = box.dataset.csrf || "";
  const list = document.getElementById("rec-list");
  const WORDS = {
    submitted: _("Submitted"),
    viewed: _("Viewed"),
    contacted: _("Contacted"),
    interview: _("Invited to interview"),
    hired: _("Hired"),
    not_selected: _("Not selected"),
  };

  function row(o, a) {
    const sel = h("select", { "aria-label": _("Status"), dataset: { aid: a.id } },
      Object.keys(WORDS).map((k) => h("option", { value: k, selected: a.status === k ? "" : null }, WORDS[k])));
    sel.value = a.status;
    sel.addEventListener("change", async () => {
      try {
        await JC.api("PATCH", `/api/broadcasts/${o.broadcast_id}/applications/${a.id}`, { status: sel.value }, { csrf });
        JC.toast(_("Saved"));
      } catch (e) {
        JC.toast(JC.errorText(e), "error");
        sel.value = a.status;
      }
    });
    return h("li", { class: "rec-app", dataset: { aid: a.id } },
      h("span", { class: "grow" }, `${a.name} · ${a.phone} · ${JC.dateTime(a.created_at)}`), sel);
  }

  async function load() {
    const view = await JC.api("GET", "/api/recruiter");
    const emp = view.employer;
    document.getElementById("rec-employer").textContent = emp.name + (emp.verified ? " · " + _("Verified") : "");
    list.replaceChildren(...view.openings.map(({ opening, applications }) =>
      h("article", { class: "rec-opening", dataset: { oid: opening.id } },
        h("h2", null, opening.title),
        h("p", { class: "hint" }, JC.applications(applications.length)),
        h("ul", { class: "rec-apps" }, applications.map((a) => row(opening, a))))));
    document.getElementById("rec-empty").hidden = view.openings.length > 0;
  }
  document.getElementById("rec-logout-btn").addEventListener("click", async () => {
    await JC.api("POST", "/api/logout", null, { csrf });
    location.href = "/host";
  });
  load().catch((e) => JC.toast(JC.errorText(e), "error"));
})();
