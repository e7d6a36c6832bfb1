// My applications (我的投递), docs/protocol.md "My applications": on the viewer page (its own
// tab) and on /me. The list comes from GET /api/me/applications (by the viewer cookie) and is
// kept current by the private `application.mine` events of the viewer page's socket; it is
// fetched again when the socket (re)syncs, since private events are not replayed. On /me a
// phone number confirmed by a code shows that number's applications on this device too.
// After each render `jc:mine` is dispatched on the list (detail: the applications), for
// anything that adds to an item (its `data-aid` and `data-bid`).
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h, $ } = JC;
  const box = document.getElementById("mine");
  if (!box) return;
  const list = document.getElementById("mine-list");
  const empty = document.getElementById("mine-empty");
  const csrf = box.dataset.csrf || (JC.viewer && JC.viewer.root.dataset.csrf) || "";
  const api = (method, path, body) => JC.api(method, path, body, { csrf });

  const WORDS = {
    submitted: _("Submitted"),
    viewed: _("Viewed"),
    contacted: _("Contacted"),
    interview: _("Invited to interview"),
    hired: _("Hired"),
    not_selected: _("Not selected"),
  };
  const apps = new Map();  // id -> application (viewer-facing form)

  function interview(iv) {
    if (!iv) return null;
    const rows = [];
    if (iv.starts_at) rows.push(h("li", null, _("Time") + ": " + new Date(Number(iv.starts_at)).toLocaleString(JC.lang, { year: "numeric", month: "short", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" })));
    if (iv.place) rows.push(h("li", null, _("Place") + ": " + iv.place));
    if (iv.link && /^https?:\/\//.test(iv.link)) rows.push(h("li", null, _("Link") + ": ", h("a", { href: iv.link, target: "_blank", rel: "noopener noreferrer" }, iv.link)));
    if (iv.note) rows.push(h("li", null, iv.note));
    return rows.length ? h("ul", { class: "mine-interview" }, rows) : null;
  }
  function item(a) {
    return h("li", { class: "mine-item", dataset: { aid: a.id, bid: a.broadcast_id, status: a.status } },
      h("div", { class: "mine-top" },
        h("span", { class: "mine-title" }, a.opening_title),
        h("span", { class: "badge badge-" + a.status }, WORDS[a.status] || a.status)),
      h("p", { class: "hint" }, a.employer, " · ", _("Applied %(t)s", { t: JC.dateTime(a.applied_at) })),
      a.status !== "submitted" && a.status_at ? h("p", { class: "hint" }, _("Updated %(t)s", { t: JC.dateTime(a.status_at) })) : null,
      a.status === "interview" ? interview(a.interview) : null);
  }
  function render() {
    const all = [...apps.values()].sort((x, y) => y.applied_at - x.applied_at);
    list.replaceChildren(...all.map(item));
    if (empty) empty.hidden = all.length > 0;
    const count = document.getElementById("mine-count");
    if (count) count.textContent = all.length ? String(all.length) : "";
    list.dispatchEvent(new CustomEvent("jc:mine", { bubbles: true, detail: all }));
  }
  function replace(items) {
    apps.clear();
    for (const a of items || []) apps.set(a.id, a);
    render();
  }
  function phones(list) {
    const p = document.getElementById("mine-phones");
    if (p) { p.textContent = list && list.length ? _("Confirmed numbers: %(n)s", { n: list.join(", ") }) : ""; p.hidden = !(list && list.length); }
  }
  let loading = null;
  const REFRESH_MS = 30000;
  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try { const r = await api("GET", "/api/me/applications"); replace(r.applications); phones(r.phones); }
      catch (e) { /* offline: keep what is shown */ }
      finally { loading = null; }
    })();
    return loading;
  }
  JC.mine = { load, apps };

  // What the server rendered (the /me page) comes first.
  try { const first = JSON.parse(box.dataset.mine || "null"); if (first) { replace(first.applications); phones(first.phones); } } catch (e) { /* none */ }

  const V = JC.viewer;
  if (V && V.live) {
    V.live.on("application.mine", (a) => { if (a && a.id) { apps.set(a.id, a); render(); } });
    V.live.on("synced", load);  // private events are not replayed: read the list again
  } else {
    load();
    // /me has no socket: read again when the page comes back into view, and every
    // REFRESH_MS while it is in view (a status changes while the applicant looks)
    document.addEventListener("visibilitychange", () => { if (!document.hidden) load(); });
    setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  }

  // -- confirming a number from another device (the /me page) ------------------------------
  const form = document.getElementById("phone-form");
  if (!form) return;
  const phone = document.getElementById("mp-phone");
  const code = document.getElementById("mp-code");
  const codeRow = document.getElementById("mp-code-row");
  const msg = document.getElementById("mp-msg");
  function say(text, bad) { msg.textContent = text; msg.className = bad ? "form-error" : "hint"; }
  document.getElementById("mp-send").addEventListener("click", async () => {
    if (!phone.value.trim()) { say(_("Enter a valid mobile number"), true); phone.focus(); return; }
    try {
      await api("POST", "/api/me/phone", { phone: phone.value.trim() });
      codeRow.hidden = false;
      say(_("If this number applied, a 6-digit code was sent to it."));
      code.focus();
    } catch (e) { say(e.fields && e.fields.phone ? _("Enter a valid mobile number") : e.text(), true); }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/me/phone/verify", { phone: phone.value.trim(), code: code.value.trim() });
      replace(r.applications);
      phones(r.phones);
      code.value = "";
      codeRow.hidden = true;
      say(_("Number confirmed: its applications show on this device."));
    } catch (ex) {
      if (ex.code === "code_spent") say(_("Too many wrong codes: ask for a new one"), true);
      else if (ex.code === "code_invalid" || (ex.fields && ex.fields.code)) say(_("Wrong or expired code"), true);
      else say(ex.text(), true);
    }
  });
  if ($("#mp-phone") && !phone.value) {
    try { const saved = JSON.parse(localStorage.getItem("jc_apply_form") || "{}"); if (saved.phone) phone.value = saved.phone; } catch (e) { /* none */ }
  }
})();
