// Reports of cards (docs/protocol.md "Viewer reports and verified employers").
// Viewer page: each card's Report button opens a dialog with the reasons; one report per
// viewer and card (the server answers 409 for a second one, shown as already reported).
// Host console: the review queue of reported cards with counts and reasons, kept current by
// `report.received` and `opening.saved`; a host clears a card (published again) or closes it.
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;
  const REASONS = {
    fake_job: _("Fake job"),
    fees_asked: _("Fees asked"),
    pay_differs: _("Pay differs"),
    outside_contact: _("Contact outside the platform"),
    other: _("Other"),
  };

  function viewer(V) {
    const dialog = document.getElementById("report-dialog");
    if (!dialog) return;
    const form = document.getElementById("report-form");
    const err = document.getElementById("report-error");
    const done = document.getElementById("report-done");
    const submit = document.getElementById("report-submit");
    let oid = null;
    for (const b of document.querySelectorAll("[data-report]")) b.hidden = false;  // script is here
    document.addEventListener("click", (e) => {
      const b = e.target.closest("[data-report]");
      if (!b) return;
      oid = b.dataset.report;
      const card = b.closest("[data-opening]");
      const t = card && card.querySelector(".card-title");
      document.getElementById("report-job").textContent = t ? t.textContent : "";
      form.reset();
      err.textContent = "";
      done.hidden = true;
      submit.hidden = false;
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    });
    dialog.querySelector("[data-close-report]").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const picked = form.querySelector('input[name="reason"]:checked');
      if (!picked) { err.textContent = _("Choose a reason"); return; }
      const note = document.getElementById("r-note").value.trim();
      const body = { reason: picked.value };
      if (note) body.note = note;
      submit.disabled = true;
      try {
        await V.api("POST", "/api/openings/" + encodeURIComponent(oid) + "/reports", body);
        ack();
      } catch (ex) {
        if (ex && ex.code === "already_reported") ack();
        else err.textContent = JC.errorText(ex);
      } finally {
        submit.disabled = false;
      }
    });
    function ack() {
      err.textContent = "";
      done.hidden = false;
      submit.hidden = true;
    }
  }

  function host(H) {
    const panel = document.getElementById("rp-panel");
    if (!panel) return;
    const list = document.getElementById("rp-list");
    async function load() {
      let data;
      try { data = await H.api("GET", H.bpath + "/reports"); } catch (e) { return; }
      const items = data.items || [];
      panel.hidden = items.length === 0 && !panel.dataset.shown;
      if (items.length) panel.dataset.shown = "1";
      document.getElementById("rp-empty").hidden = items.length > 0;
      list.replaceChildren(...items.map((it) => {
        const reasons = Object.entries(it.reasons || {}).map(([k, n]) => (REASONS[k] || k) + " × " + n).join(", ");
        const act = (outcome, label) => {
          const b = h("button", { type: "button", dataset: { review: outcome } }, label);
          b.addEventListener("click", async () => {
            b.disabled = true;
            try {
              await H.api("POST", H.bpath + "/reports/" + encodeURIComponent(it.opening_id) + "/review", { outcome });
              load();
            } catch (e) { JC.toast(JC.errorText(e), "error"); b.disabled = false; }
          });
          return b;
        };
        return h("li", { class: "rp-item", dataset: { oid: it.opening_id, status: it.status } },
          h("strong", null, it.title), " · " + it.employer,
          h("p", { class: "hint" }, _("%(n)s reporters", { n: it.count }) + (it.status === "held" ? " · " + _("Held: hidden from viewers") : "")),
          h("p", { class: "hint" }, reasons),
          ...(it.notes || []).slice(0, 3).map((n) => h("p", { class: "hint rp-note" }, n.note)),
          h("div", { class: "row" }, act("clear", _("Clear: show it again")), act("close", _("Close the opening"))));
      }));
    }
    H.live.on("report.received", load);
    H.live.on("synced", load);
  }

  if (JC.viewer && JC.viewer.api && document.getElementById("report-dialog")) viewer(JC.viewer);
  else if (JC.host && JC.host.live) host(JC.host);
})();
