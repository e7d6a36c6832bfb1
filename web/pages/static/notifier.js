// The notifier panel on the host home (docs/protocol.md, "Notifier"): the notices the webhook
// did not take after every attempt, each with its kind, error and a Retry button; hidden while
// every notice was delivered and the notifier is on.
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;
  const panel = document.getElementById("notifier-panel");
  const root = document.getElementById("host");
  if (!panel || !root) return;
  const csrf = root.dataset.csrf;
  const list = panel.querySelector(".notifier-dead");
  const state = panel.querySelector(".notifier-state");
  const REFRESH_MS = 3000;

  const KINDS = {
    "application.status": _("Status change"),
    "interview.booked": _("Interview booked"),
    "interview.cancelled": _("Interview cancelled"),
    "interview.reminder": _("Interview reminder"),
  };

  function row(item) {
    const retry = h("button", { type: "button", class: "notifier-retry", dataset: { id: item.id } }, _("Retry"));
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await JC.api("POST", "/api/notifier/dead/" + encodeURIComponent(item.id) + "/retry", {}, { csrf });
        JC.toast(_("Queued again"));
        await load();
      } catch (e) {
        retry.disabled = false;
        JC.toast(JC.errorText(e), "error");
      }
    });
    return h("li", { class: "notifier-item", dataset: { id: item.id } },
      h("span", { class: "notifier-kind" }, KINDS[item.kind] || item.kind),
      h("span", { class: "notifier-when" }, JC.dateTime(item.failed_at)),
      h("span", { class: "notifier-error" }, item.error),
      h("span", { class: "notifier-attempts" }, _("attempts: %(n)s", { n: item.attempts })),
      retry);
  }

  async function load() {
    let data;
    try { data = await JC.api("GET", "/api/notifier/dead"); } catch (e) { return; }
    const items = data.items || [];
    const retrying = (data.counts && data.counts.retrying) || 0;
    list.replaceChildren(...items.map(row));
    const notes = [];
    if (!data.enabled) notes.push(_("The notifier is off (notifier_url is not set); notices wait until it is turned on."));
    if (retrying) notes.push(_("%(n)s waiting for another attempt", { n: retrying }));
    if (!items.length && !retrying) notes.push(_("Every notice was delivered."));
    state.textContent = notes.join(" ");
    // Shown while there is something to see; once shown it stays for this page view, so the
    // host sees a retried notice go through (the list refreshes every few seconds).
    shown = shown || !data.enabled || items.length > 0 || retrying > 0;
    panel.hidden = !shown;
    if (shown && !timer) timer = setInterval(load, REFRESH_MS);
  }
  let shown = false;
  let timer = null;
  load();
})();
