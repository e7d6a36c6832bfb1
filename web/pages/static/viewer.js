// The viewer page: live status and video, the pinned card, the openings with filters, the
// apply form, chat and Q&A. State comes from the socket's snapshot and events (live.js).
"use strict";
(function () {
  const JC = window.JC;
  const { _, h, $, $$ } = JC;
  const root = document.getElementById("viewer");
  if (!root) return;
  const bid = root.dataset.bid;
  const csrf = root.dataset.csrf;
  const api = (method, path, body, opts) => JC.api(method, path, body, Object.assign({ csrf }, opts || {}));

  const EDU = JC.EDU;
  const EDU_RANK = { any: 0, junior_high: 1, high_school: 2, vocational: 2, associate: 3, bachelor: 4, master: 5, doctorate: 6 };
  const eduLabel = JC.eduLabel;

  const state = {
    broadcast: null,
    pinned: null,          // {opening, pinned_at}
    openings: new Map(),   // id -> opening
    order: [],             // visible ids in lineup order
    applied: new Set(),    // opening ids this viewer applied to
    features: new Set(),
  };
  JC.viewer = { root, bid, state, api };

  // -- live connection -----------------------------------------------------------------------
  const conn = document.getElementById("conn");
  const live = new JC.Live({
    path: "/ws/b/" + encodeURIComponent(bid),
    onStatus: (s) => { conn.hidden = s === "live" || s === "connecting"; },
  });
  JC.viewer.live = live;

  // Applied state is kept in the page for the session too, so a reload within it remembers.
  const APPLIED_KEY = "jc_applied_" + bid;
  try { for (const id of JSON.parse(sessionStorage.getItem(APPLIED_KEY) || "[]")) state.applied.add(id); } catch (e) { /* none */ }
  for (const el of $$("[data-applied]")) if (!el.hidden) state.applied.add(el.dataset.applied);
  function markApplied(oid) {
    state.applied.add(oid);
    try { sessionStorage.setItem(APPLIED_KEY, JSON.stringify([...state.applied])); } catch (e) { /* private mode */ }
    for (const el of $$('[data-apply="' + CSS.escape(oid) + '"]')) el.hidden = true;
    for (const el of $$('[data-applied="' + CSS.escape(oid) + '"]')) el.hidden = false;
  }

  // -- broadcast status and the stage ----------------------------------------------------------
  const overlay = document.getElementById("overlay");
  const overlayTitle = document.getElementById("overlay-title");
  const overlaySub = document.getElementById("overlay-sub");
  const controls = document.getElementById("controls");

  function applyBroadcast(b) {
    state.broadcast = b;
    root.dataset.status = b.status;
    document.getElementById("title").textContent = b.title;
    document.title = b.title + " · Jobcast";
    for (const el of $$("[data-status]", root)) {
      if (el.classList.contains("status")) { el.replaceWith(statusBadge(b.status)); }
    }
    const d = document.getElementById("description");
    if (d) d.textContent = b.description || "";
    overlaySub.textContent = b.status === "scheduled" && b.scheduled_at ? _("Starts at %(t)s", { t: JC.dateTime(b.scheduled_at) }) : "";
    JC.viewer.player && JC.viewer.player.setBroadcastStatus(b.status);
    if (b.status === "ended") renderPinned();
    if (JC.viewer.onStatus) JC.viewer.onStatus(b.status);
    document.dispatchEvent(new CustomEvent("jc:status", { detail: b.status }));
    if (!JC.viewer.player) showOverlay(b.status === "live" ? _("Live now") : b.status === "ended" ? _("This broadcast has ended") : _("Not live yet"));
  }
  function statusBadge(st) {
    const words = { live: _("Live"), ended: _("Ended"), scheduled: _("Not live yet") };
    return h("span", { class: "status status-" + st, dataset: { status: st } }, words[st] || st);
  }
  function showOverlay(text, sub) {
    overlay.hidden = !text;
    if (text) overlayTitle.textContent = text;
    if (sub !== undefined) overlaySub.textContent = sub;
  }
  JC.viewer.showOverlay = showOverlay;
  JC.viewer.controls = controls;

  // -- cards ---------------------------------------------------------------------------------
  function salary(o) {
    const lo = o.salary_min || 0, hi = o.salary_max || 0;
    if (!lo && !hi) return "";
    return (lo === hi ? String(lo) : lo + "–" + hi) + " " + _("yuan/month");
  }
  function cardElement(o, pinned) {
    const idp = "card-" + (pinned ? "p" : "l") + "-" + o.id;
    const applied = state.applied.has(o.id);
    const facts = [o.city, eduLabel(o.education), _("Hiring %(n)s", { n: o.headcount })];
    if (o.experience) facts.push(o.experience);
    if (o.deadline) facts.push(_("Apply by %(d)s", { d: o.deadline }));
    const emp = o.employer || {};
    return h("article", { class: "card" + (pinned ? " pinned" : ""), dataset: { opening: o.id }, "aria-labelledby": idp },
      pinned ? h("p", { class: "pin-label" }, _("Now presenting")) : null,
      h("div", { class: "card-top" },
        h("h3", { class: "card-title", id: idp }, o.title),
        salary(o) ? h("span", { class: "salary" }, salary(o)) : null),
      h("p", { class: "employer" }, emp.name || "", emp.verified && !emp.verified_on ? [" ", h("span", { class: "verified" }, "✓ " + _("Verified employer"))] : null),
      emp.verified && emp.verified_on ? h("details", { class: "verified-check" }, h("summary", { class: "verified" }, "✓ " + _("Verified")),
        h("span", null, _("Checked on %(d)s", { d: emp.verified_on }) + (emp.verified_note ? ": " + emp.verified_note : ""))) : null,
      h("ul", { class: "facts" }, facts.map((f) => h("li", null, f))),
      o.majors && o.majors.length ? h("p", { class: "hint" }, _("Majors") + ": " + o.majors.join(", ")) : null,
      o.benefits && o.benefits.length ? h("p", { class: "hint" }, _("Benefits") + ": " + o.benefits.join(", ")) : null,
      pinned && o.description ? h("p", { class: "card-desc" }, o.description) : null,
      h("p", { class: "hint card-more" }, h("a", { href: "/b/" + encodeURIComponent(JC.viewer.bid) + "/o/" + encodeURIComponent(o.id) }, _("Details and answered questions"))),
      h("div", { class: "card-actions" },
        JC.isClosed(o) && !applied
          ? h("span", { class: "closed" }, _("Applications closed"))
          : h("button", { type: "button", class: "primary", dataset: { apply: o.id }, hidden: applied }, _("Apply")),
        h("span", { class: "applied", dataset: { applied: o.id }, hidden: !applied }, "✓ " + _("Applied")),
        h("button", { type: "button", class: "report-card", dataset: { report: o.id } }, _("Report"))));
  }
  JC.viewer.cardElement = cardElement;

  // Nothing is "being presented" once the broadcast has ended (the replay's chapters are).
  function renderPinned() {
    const slot = document.getElementById("pinned-slot");
    const ended = state.broadcast && state.broadcast.status === "ended";
    if (ended && JC.viewer.replayOwnsCard) return;  // replay.js shows the chapter's card
    const p = ended ? null : state.pinned;
    if (!p || !p.opening) { slot.replaceChildren(); return; }
    slot.replaceChildren(cardElement(p.opening, true));
  }

  // -- openings and filters --------------------------------------------------------------------
  const fCity = document.getElementById("f-city");
  const fEdu = document.getElementById("f-education");
  const fMajor = document.getElementById("f-major");
  function fillSelect(sel, values) {
    const cur = sel.value;
    const first = sel.options[0];
    sel.replaceChildren(first, ...values.map(([v, label]) => h("option", { value: v }, label)));
    sel.value = values.some(([v]) => v === cur) ? cur : "";
  }
  function visibleOpenings() {
    return state.order.map((id) => state.openings.get(id)).filter((o) => o && o.status === "published");
  }
  function renderOpenings() {
    const all = visibleOpenings();
    const cities = [...new Set(all.map((o) => o.city).filter(Boolean))].sort((a, b) => a.localeCompare(b, JC.lang));
    const majors = [...new Set(all.flatMap((o) => o.majors || []))].sort((a, b) => a.localeCompare(b, JC.lang));
    fillSelect(fCity, cities.map((c) => [c, c]));
    fillSelect(fEdu, EDU.filter(([c]) => c !== "any").map(([c, l]) => [c, l]));
    fillSelect(fMajor, majors.map((m) => [m, m]));
    document.getElementById("filters").hidden = all.length < 2;
    const city = fCity.value, edu = fEdu.value, major = fMajor.value;
    const shown = all.filter((o) =>
      (!city || o.city === city) &&
      (!edu || (EDU_RANK[o.education] || 0) <= EDU_RANK[edu]) &&
      (!major || !(o.majors && o.majors.length) || o.majors.includes(major)));
    const list = document.getElementById("openings");
    document.getElementById("openings-count").textContent = all.length;
    if (!shown.length) {
      list.replaceChildren(h("li", { class: "empty" }, all.length ? _("No openings match these filters") : _("No openings yet")));
    } else {
      list.replaceChildren(...shown.map((o) => h("li", null, cardElement(o, false))));
    }
    document.dispatchEvent(new CustomEvent("jc:openings"));
  }
  for (const sel of [fCity, fEdu, fMajor]) sel.addEventListener("change", renderOpenings);
  JC.viewer.visibleOpenings = visibleOpenings;

  live.on("snapshot", (d) => {
    applyBroadcast(d.broadcast);
    document.getElementById("viewers").textContent = d.viewers || 0;
    if ("openings" in d) {
      state.features.add("openings");
      state.openings = new Map((d.openings || []).map((o) => [o.id, o]));
      state.order = d.lineup || (d.openings || []).map((o) => o.id);
      state.pinned = d.pinned || null;
      if (d.applied) for (const id of Object.keys(d.applied)) state.applied.add(id);
      renderPinned();
      renderOpenings();
    }
  });
  live.on("broadcast.updated", applyBroadcast);
  let appliedLoaded = false;
  live.on("synced", async () => {
    if (appliedLoaded || !state.features.has("openings")) return;
    appliedLoaded = true;
    try {
      const r = await api("GET", "/api/broadcasts/" + encodeURIComponent(bid) + "/applied");
      for (const id of r.opening_ids || []) markApplied(id);
    } catch (e) { appliedLoaded = false; }
  });
  live.on("presence", (d) => { document.getElementById("viewers").textContent = d.viewers; });
  // A new card being presented pops up over the video for a moment ("讲解中"), as in the
  // live rooms viewers know; tapping it leads to the card and its Apply button.
  const pop = document.getElementById("pin-pop");
  let popTimer = null;
  function popPinned(o) {
    if (!pop || !o || (state.broadcast && state.broadcast.status === "ended")) return;
    pop.querySelector(".pop-title").textContent = o.title;
    pop.hidden = false;
    clearTimeout(popTimer);
    popTimer = setTimeout(() => { pop.hidden = true; }, 6000);
  }
  if (pop) pop.addEventListener("click", () => {
    pop.hidden = true;
    const slot = document.getElementById("pinned-slot");
    slot.scrollIntoView({ block: "nearest" });
    const apply = slot.querySelector("[data-apply]");
    if (apply && !apply.hidden) apply.focus();
  });
  live.on("card.pinned", (d) => {
    const before = state.pinned && state.pinned.opening ? state.pinned.opening.id : null;
    state.pinned = d;
    if (d.opening) state.openings.set(d.opening.id, d.opening);
    renderPinned();
    if (d.opening && d.opening.id !== before) popPinned(d.opening);
  });
  live.on("card.unpinned", () => { state.pinned = null; renderPinned(); if (pop) pop.hidden = true; });
  live.on("opening.updated", (d) => {
    const o = d.opening;
    state.openings.set(o.id, o);
    if (!state.order.includes(o.id)) state.order.push(o.id);
    if (state.pinned && state.pinned.opening && state.pinned.opening.id === o.id) { state.pinned.opening = o; renderPinned(); }
    renderOpenings();
  });
  live.on("openings.added", (d) => {
    for (const o of d.openings || []) {
      state.openings.set(o.id, o);
      if (!state.order.includes(o.id)) state.order.push(o.id);
    }
    renderOpenings();
  });
  live.on("opening.removed", (d) => {
    state.openings.delete(d.opening_id);
    state.order = state.order.filter((id) => id !== d.opening_id);
    if (state.pinned && state.pinned.opening && state.pinned.opening.id === d.opening_id) { state.pinned = null; renderPinned(); }
    renderOpenings();
  });
  live.on("lineup.updated", (d) => { state.order = d.order || []; renderOpenings(); });
  live.on("applied", (d) => { if (d.opening_id) markApplied(d.opening_id); });

  // -- apply ---------------------------------------------------------------------------------
  const dialog = document.getElementById("apply-dialog");
  const form = document.getElementById("apply-form");
  const degree = document.getElementById("a-degree");
  degree.replaceChildren(h("option", { value: "" }, _("Choose…")), ...EDU.filter(([c]) => c !== "any").map(([c, l]) => h("option", { value: c }, l)));
  let applying = null;  // {oid, key, body}
  const FORM_KEY = "jc_apply_form";

  // Before the socket's snapshot arrives, the server-rendered card is all the page knows.
  function fromCard(oid) {
    const card = $('[data-opening="' + CSS.escape(oid) + '"]');
    if (!card) return null;
    const t = $(".card-title", card), e = $(".employer", card);
    return { id: oid, title: t ? t.textContent : "", employer: { name: e ? e.firstChild.textContent.trim() : "" } };
  }
  function openApply(oid) {
    const o = state.openings.get(oid) || (state.pinned && state.pinned.opening && state.pinned.opening.id === oid ? state.pinned.opening : null) ||
      (state.features.has("openings") ? null : fromCard(oid));
    if (!o) { JC.toast(_("This opening is no longer available"), "error"); return; }
    applying = { oid, key: null, body: null };
    document.getElementById("apply-job").textContent = o.title;
    document.getElementById("apply-employer").textContent = (o.employer && o.employer.name) || "";
    clearFormErrors();
    // Remember what this person typed last time (only in this browser).
    try {
      const saved = JSON.parse(localStorage.getItem(FORM_KEY) || "{}");
      for (const k of ["name", "phone", "degree", "major"]) if (saved[k] && !form.elements[k].value) form.elements[k].value = saved[k];
    } catch (e) { /* none */ }
    form.elements.consent.checked = false;
    document.getElementById("apply-submit").disabled = false;
    if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    form.elements.name.focus();
  }
  function clearFormErrors() {
    for (const p of $$(".field-error", form)) p.textContent = "";
    for (const i of $$("[aria-invalid]", form)) i.removeAttribute("aria-invalid");
    document.getElementById("apply-error").textContent = "";
  }
  function showFieldErrors(fields) {
    let first = null;
    for (const [name, msg] of Object.entries(fields)) {
      const p = $('.field-error[data-field="' + CSS.escape(name) + '"]', form);
      const input = form.elements[name];
      if (p) p.textContent = JC.fieldText(msg);
      if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
    }
    if (first) first.focus();
    return first !== null;
  }
  function collect() {
    const body = {
      name: form.elements.name.value.trim(),
      phone: form.elements.phone.value.trim(),
      consent: form.elements.consent.checked,
      consent_version: root.dataset.consentVersion || "",
    };
    if (form.elements.degree.value) body.degree = form.elements.degree.value;
    if (form.elements.major.value.trim()) body.major = form.elements.major.value.trim();
    return body;
  }
  function localCheck(body) {
    const f = {};
    if (!body.name) f.name = "required";
    if (!body.phone) f.phone = "required";
    else if (!/^\+?[\d\s\-()]{8,20}$/.test(body.phone)) f.phone = "phone";
    if (!body.consent) f.consent = "consent";
    return f;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!applying) return;
    clearFormErrors();
    const body = collect();
    const local = localCheck(body);
    if (Object.keys(local).length) { showFieldErrors(local); return; }
    // One key per application attempt: a double tap or a retry of the same body reuses it,
    // so the server stores it once; a changed body gets a fresh key.
    const sig = JSON.stringify(body);
    if (!applying.key || applying.body !== sig) { applying.key = JC.uuid(); applying.body = sig; }
    const submit = document.getElementById("apply-submit");
    submit.disabled = true;
    try {
      try { localStorage.setItem(FORM_KEY, JSON.stringify({ name: body.name, phone: body.phone, degree: body.degree || "", major: body.major || "" })); } catch (ex) { /* private mode */ }
      await submitApplication(applying.oid, body, applying.key);
      markApplied(applying.oid);
      dialog.close();
      JC.toast(_("Application sent"));
      applying = null;
    } catch (ex) {
      if (ex.status === 0) {
        // No connection: kept on this phone and sent by itself when the network is back,
        // with the same key (the server stores it once however often it is sent).
        outbox.put(applying.oid, body, applying.key);
        setOffline(true);
        dialog.close();
        JC.toast(_("No connection: your application will be sent as soon as you are back online."));
        applying = null;
        return;
      }
      if (ex.fields && showFieldErrors(ex.fields)) document.getElementById("apply-error").textContent = ex.text();
      else if (ex.code === "idempotency_key_reused") { applying.key = null; document.getElementById("apply-error").textContent = ex.text(); }
      else document.getElementById("apply-error").textContent = ex.text();
    } finally {
      submit.disabled = false;
    }
  });
  // Network failures are retried with the same key (at most 3 tries).
  async function submitApplication(oid, body, key) {
    let last;
    for (let i = 0; i < 3; i++) {
      try {
        return await api("POST", JC.viewer.applyPath(oid), body, { headers: { "Idempotency-Key": key } });
      } catch (ex) {
        last = ex;
        if (ex.status !== 0 && ex.status < 500) throw ex;
        await new Promise((r) => setTimeout(r, 600 * (i + 1)));
      }
    }
    throw last;
  }
  JC.viewer.applyPath = (oid) => "/api/openings/" + encodeURIComponent(oid) + "/applications";

  // Applications made while offline, in localStorage until the server has them.
  const OUTBOX_KEY = "jc_outbox_" + bid;
  const outbox = {
    items() { try { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); } catch (e) { return []; } },
    save(list) { try { localStorage.setItem(OUTBOX_KEY, JSON.stringify(list)); } catch (e) { /* private mode */ } },
    put(oid, body, key) {
      this.save([...this.items().filter((x) => x.oid !== oid), { oid, body, key }]);
      for (const el of $$('[data-apply="' + CSS.escape(oid) + '"]')) { el.textContent = _("Waiting to send…"); el.disabled = true; }
    },
    drop(oid) { this.save(this.items().filter((x) => x.oid !== oid)); },
    sending: false,
    async flush() {
      if (this.sending || !this.items().length) return;
      this.sending = true;
      try {
        for (const it of this.items()) {
          try {
            await submitApplication(it.oid, it.body, it.key);
            this.drop(it.oid);
            markApplied(it.oid);
            JC.toast(_("Your application was sent"));
          } catch (ex) {
            if (ex.status === 0 || ex.status >= 500) break;  // still offline: next time
            this.drop(it.oid);  // refused (closed meanwhile, or invalid): say so
            JC.toast(_("Your application could not be sent: %(why)s", { why: ex.text() }), "error");
            for (const el of $$('[data-apply="' + CSS.escape(it.oid) + '"]')) { el.textContent = _("Apply"); el.disabled = false; }
          }
        }
      } finally { this.sending = false; }
    },
  };
  JC.viewer.outbox = outbox;
  for (const it of outbox.items()) outbox.put(it.oid, it.body, it.key);  // after a reload

  // Offline: a banner says so, and what was kept is sent when the network is back. The
  // banner shows when the browser says it is offline or a request could not reach the
  // server; it goes when the server answers again (a probe every few seconds meanwhile, or
  // the socket synced). The browser's own word alone is not trusted to hide it: on some
  // networks it says offline while the server is reachable, or never says it is back.
  const offline = document.getElementById("offline");
  function setOffline(on) { if (offline) offline.hidden = !on; }
  async function reachable() {
    try { return (await fetch("/healthz", { cache: "no-store" })).status > 0; } catch (e) { return false; }
  }
  async function back() { if (await reachable()) { setOffline(false); outbox.flush(); } }
  window.addEventListener("offline", () => setOffline(true));
  window.addEventListener("online", back);
  live.on("synced", () => { setOffline(false); outbox.flush(); });
  // while the banner shows, look every few seconds (not every browser says when it is back)
  setInterval(() => { if (offline && !offline.hidden) back(); }, 4000);
  if (navigator.onLine === false) { setOffline(true); back(); }
  for (const b of $$("[data-close]", dialog)) b.addEventListener("click", () => dialog.close());
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-apply]");
    if (b) openApply(b.dataset.apply);
  });

  // -- tabs (arrow keys move between them) -------------------------------------------------------
  const tabs = $$('[role="tab"]', root);
  function selectTab(t, focus) {
    for (const x of tabs) {
      const on = x === t;
      x.setAttribute("aria-selected", String(on));
      x.tabIndex = on ? 0 : -1;
      document.getElementById(x.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) t.focus();
    document.dispatchEvent(new CustomEvent("jc:tab", { detail: t.id }));
  }
  for (const t of tabs) {
    t.addEventListener("click", () => selectTab(t));
    t.addEventListener("keydown", (e) => {
      const vis = tabs.filter((x) => !x.hidden);
      const i = vis.indexOf(t);
      let n = null;
      if (e.key === "ArrowRight") n = vis[(i + 1) % vis.length];
      else if (e.key === "ArrowLeft") n = vis[(i - 1 + vis.length) % vis.length];
      else if (e.key === "Home") n = vis[0];
      else if (e.key === "End") n = vis[vis.length - 1];
      if (n) { e.preventDefault(); selectTab(n, true); }
    });
  }
  JC.viewer.selectTab = selectTab;

  document.addEventListener("DOMContentLoaded", () => live.start());
})();
