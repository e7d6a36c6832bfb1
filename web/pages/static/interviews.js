// Interviews (docs/protocol.md, "Interviews"). On the viewer page: when this viewer's
// application is invited, the opening's interview times with the seats left as big choices
// (one tap books, another tap moves the booking), the booking with cancel, and the calendar
// file. On the host console: the interview times of each opening (add, change the seats,
// delete) and an Invite button on each application row.
// The viewer's state comes from GET /api/me/interviews and their private interview.mine events.
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;
  const enc = encodeURIComponent;

  function when(s) {
    const end = Number(s.start) + Number(s.duration || 0) * 60000;
    return JC.dateTime(s.start) + " – " + JC.time(end);
  }
  function where(s) { return s.place || (s.link ? _("Online") : ""); }
  function seatsLeft(n) { return n === 1 ? _("1 seat left") : _("%(n)s seats left", { n }); }
  const FIELD_TEXT = {
    start: _("Choose a time in the future"),
    capacity: _("Seats: a whole number from 1 to 500"),
    duration: _("Minutes: from 5 to 480"),
    place: _("Give a place or a link"),
    link: _("A link starting with https://"),
  };
  function errorText(e) {
    switch (e && e.code) {
      case "slot_full": return _("That time is full: choose another");
      case "slot_past": return _("That time has passed: choose another");
      case "slot_not_found": return _("That time was removed: choose another");
      case "interview_not_found": return _("This invitation is no longer available");
      case "booking_not_found": return _("You have no interview time booked");
      case "slot_booked": return _("People booked this time: delete it to cancel their bookings");
      case "capacity_below_booked": return _("More people booked this time than that");
      case "too_many_slots": return _("This opening has as many interview times as it can");
      case "bad_slot": {
        const names = Object.keys((e && e.fields) || {});
        const known = names.filter((n) => FIELD_TEXT[n]).map((n) => FIELD_TEXT[n]);
        return known.length ? known.join(" · ") : _("Please check the marked fields");
      }
      default: return JC.errorText(e);
    }
  }
  function text(err) { return errorText(err || {}); }

  // -- viewer page ------------------------------------------------------------------------------
  function viewer(V) {
    const box = document.getElementById("interviews");
    if (!box) return;
    const state = { items: new Map(), busy: false };
    V.interviews = state;

    async function load() {
      try {
        const r = await V.api("GET", "/api/me/interviews?bid=" + enc(V.bid));
        state.items = new Map((r.interviews || []).map((v) => [v.application_id, v]));
        render();
      } catch (e) { /* the next join asks again */ }
    }
    function slotButton(v, s) {
      const full = s.remaining <= 0;
      return h("li", null, h("button", {
        type: "button", class: "iv-slot", dataset: { book: s.id, app: v.application_id },
        disabled: full || state.busy,
        "aria-label": when(s) + ", " + where(s) + ", " + (full ? _("Full") : seatsLeft(s.remaining)),
      },
      h("span", { class: "iv-when" }, when(s)),
      h("span", { class: "iv-where" }, where(s)),
      h("span", { class: "iv-seats" }, full ? _("Full") : seatsLeft(s.remaining))));
    }
    function item(v) {
      const b = v.booking;
      const parts = [
        h("p", { class: "iv-label" }, _("Interview invitation")),
        h("p", { class: "iv-title" }, v.opening_title, v.employer ? " · " + v.employer : ""),
      ];
      if (b) {
        parts.push(h("div", { class: "iv-booked", role: "status" },
          h("p", { class: "iv-label" }, _("Your interview")),
          h("p", { class: "iv-when" }, when(b)),
          b.place ? h("p", { class: "iv-where" }, b.place) : null,
          b.link ? h("p", null, h("a", { href: b.link, target: "_blank", rel: "noopener noreferrer" }, _("Open the interview link"))) : null,
          h("div", { class: "row" },
            h("a", { class: "btn", href: "/api/me/interviews/" + enc(v.application_id) + "/interview.ics", download: "interview.ics" }, _("Add to calendar")),
            h("button", { type: "button", dataset: { cancel: v.application_id }, disabled: state.busy }, _("Cancel booking")))));
      }
      const others = (v.slots || []).filter((s) => !b || s.id !== b.id);
      if (others.length) {
        parts.push(h("p", { class: "hint" }, b ? _("To change the time, tap another one") : _("Tap a time to book it")));
        parts.push(h("ul", { class: "iv-slots" }, others.map((s) => slotButton(v, s))));
      } else if (!b) {
        parts.push(h("p", { class: "hint" }, _("No interview times yet: they will show here")));
      }
      return h("article", { class: "iv-item", dataset: { interview: v.application_id } }, parts);
    }
    function render() {
      const items = Array.from(state.items.values());
      box.hidden = !items.length;
      box.replaceChildren(...items.map(item));
    }
    async function send(method, path, body) {
      state.busy = true;
      render();
      try {
        const v = await V.api(method, path, body);
        state.items.set(v.application_id, v);
        return v;
      } catch (e) {
        JC.toast(text(e), "error");
        if (e && e.code) load();
        return null;
      } finally {
        state.busy = false;
        render();
      }
    }
    box.addEventListener("click", async (e) => {
      const btn = e.target.closest("button");
      if (!btn || btn.disabled || state.busy) return;
      if (btn.dataset.book) {
        const v = await send("POST", "/api/me/interviews/" + enc(btn.dataset.app) + "/book", { slot_id: btn.dataset.book });
        if (v && v.booking) JC.toast(_("Booked: %(t)s", { t: when(v.booking) }));
      } else if (btn.dataset.cancel) {
        if (!confirm(_("Cancel your interview booking?"))) return;
        const v = await send("DELETE", "/api/me/interviews/" + enc(btn.dataset.cancel) + "/booking");
        if (v) JC.toast(_("Booking cancelled"));
      }
    });
    V.live.on("interview.mine", (d) => {
      if (!d || !d.application_id || (d.broadcast_id && d.broadcast_id !== V.bid)) return;
      state.items.set(d.application_id, d);
      if (!state.busy) render();
    });
    // Only a viewer who applied can be invited: the others (most of the audience) never ask.
    const mayHave = () => state.items.size > 0 || (V.state && V.state.applied && V.state.applied.size > 0);
    V.live.on("application.mine", load);
    V.live.on("synced", () => { if (mayHave()) load(); });
  }

  // -- host console -----------------------------------------------------------------------------
  function host(H) {
    const panel = document.getElementById("iv-panel");
    if (!panel) return;
    if (H.root.dataset.role !== "host") { panel.hidden = true; return; }
    panel.hidden = false;
    const { live, api, bpath } = H;
    const S = H.S || { openings: new Map(), order: [] };
    const pick = document.getElementById("iv-opening");
    const list = document.getElementById("iv-slots");
    const form = document.getElementById("iv-form");
    const err = document.getElementById("iv-error");
    const rows = document.getElementById("apps-rows");
    const iv = { invited: {}, bookings: {}, slots: [] };

    function openings() {
      const seen = new Set(S.order);
      const ids = [...S.order, ...Array.from(S.openings.keys()).filter((id) => !seen.has(id))];
      return ids.map((id) => S.openings.get(id)).filter(Boolean);
    }
    function fillOpenings() {
      const cur = pick.value;
      const items = openings();
      pick.replaceChildren(...items.map((o) => h("option", { value: o.id }, o.title)));
      if (items.some((o) => o.id === cur)) pick.value = cur;
      form.hidden = !items.length;
      if (pick.value !== cur) loadSlots();
      else if (!items.length) list.replaceChildren(h("li", { class: "empty" }, _("Add an opening first")));
    }
    async function loadSlots() {
      const oid = pick.value;
      if (!oid) return;
      try {
        const r = await api("GET", bpath + "/openings/" + enc(oid) + "/slots");
        if (pick.value !== oid) return;
        iv.slots = r.slots || [];
        renderSlots();
      } catch (e) { err.textContent = text(e); }
    }
    function renderSlots() {
      if (!iv.slots.length) { list.replaceChildren(h("li", { class: "empty" }, _("No interview times yet"))); return; }
      list.replaceChildren(...iv.slots.map((s) => h("li", { class: "iv-row", dataset: { slot: s.id } },
        h("div", null,
          h("div", { class: "iv-when" }, when(s)),
          h("div", { class: "hint" }, [s.place, s.link].filter(Boolean).join(" · "), " · ",
            h("span", { class: "iv-count" }, _("%(b)s of %(c)s booked", { b: s.booked, c: s.capacity })))),
        h("div", { class: "actions" },
          h("label", { class: "visually-hidden", for: "iv-cap-" + s.id }, _("Seats")),
          h("input", { id: "iv-cap-" + s.id, type: "number", min: "1", max: "500", value: s.capacity, class: "iv-cap", dataset: { cap: s.id } }),
          h("button", { type: "button", class: "small", dataset: { save: s.id } }, _("Save seats")),
          h("button", { type: "button", class: "small", dataset: { del: s.id, booked: s.booked } }, _("Delete"))))));
    }
    pick.addEventListener("change", loadSlots);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      const startText = form.querySelector("#iv-start").value;
      const start = startText ? new Date(startText).getTime() : null;
      const body = {
        start,
        duration: Number(form.querySelector("#iv-duration").value || 30),
        place: form.querySelector("#iv-place").value.trim(),
        link: form.querySelector("#iv-link").value.trim(),
        capacity: Number(form.querySelector("#iv-capacity").value),
      };
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        await api("POST", bpath + "/openings/" + enc(pick.value) + "/slots", body);
        JC.toast(_("Interview time added"));
        loadSlots();
      } catch (ex) { err.textContent = text(ex); } finally { btn.disabled = false; }
    });
    list.addEventListener("click", async (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      const path = bpath + "/openings/" + enc(pick.value) + "/slots/";
      err.textContent = "";
      try {
        if (b.dataset.save) {
          const cap = Number(list.querySelector('[data-cap="' + CSS.escape(b.dataset.save) + '"]').value);
          await api("PATCH", path + enc(b.dataset.save), { capacity: cap });
          JC.toast(_("Saved"));
        } else if (b.dataset.del) {
          const n = Number(b.dataset.booked || 0);
          if (n && !confirm(_("%(n)s people booked this time. Delete it and cancel their bookings?", { n }))) return;
          if (!n && !confirm(_("Delete this interview time?"))) return;
          await api("DELETE", path + enc(b.dataset.del) + (n ? "?force=1" : ""));
        }
        loadSlots();
      } catch (ex) { err.textContent = text(ex); }
    });

    // The Invite button of each application row (console.js draws the rows).
    function decorate(tr) {
      const aid = tr.dataset.app;
      if (!aid) return;
      const cell = tr.lastElementChild;
      let box = cell.querySelector(".iv-invite");
      if (!box) { box = h("span", { class: "iv-invite" }); cell.append(" ", box); }
      const invited = aid in iv.invited;
      const booked = aid in iv.bookings;
      const label = booked ? _("Interview booked") : invited ? _("Invited: choosing a time") : null;
      box.replaceChildren(invited
        ? h("span", { class: "reason", dataset: { invited: aid } }, label)
        : h("button", { type: "button", class: "small", dataset: { invite: aid } }, _("Invite to interview")));
    }
    function decorateAll() { if (rows) for (const tr of rows.querySelectorAll("tr[data-app]")) decorate(tr); }
    if (rows) {
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) if (n.nodeType === 1 && n.matches("tr[data-app]")) decorate(n);
      }).observe(rows, { childList: true });
      rows.addEventListener("click", async (e) => {
        const b = e.target.closest("button[data-invite]");
        if (!b) return;
        b.disabled = true;
        try {
          const r = await api("POST", bpath + "/applications/" + enc(b.dataset.invite) + "/invite");
          iv.invited[r.application_id] = r.opening_id;
          const tr = b.closest("tr");
          const sel = tr && tr.querySelector("select[data-app]");
          if (sel) sel.value = "interview";
          if (tr) decorate(tr);
          JC.toast(_("Invited: they choose a time on their phone"));
        } catch (ex) { JC.toast(text(ex), "error"); b.disabled = false; }
      });
    }
    async function loadOverview() {
      try {
        const r = await api("GET", bpath + "/interviews");
        iv.invited = r.invited || {};
        iv.bookings = r.bookings || {};
        decorateAll();
      } catch (e) { /* shown when acted on */ }
    }
    function rowOf(aid) { return rows && rows.querySelector('tr[data-app="' + CSS.escape(aid) + '"]'); }
    function slotsChanged(oid) { if (oid === pick.value) loadSlots(); }
    live.on("interview.invited", (d) => { iv.invited[d.application_id] = d.opening_id; const tr = rowOf(d.application_id); if (tr) decorate(tr); });
    live.on("interview.booked", (d) => {
      iv.bookings[d.application_id] = d.slot_id;
      const tr = rowOf(d.application_id);
      if (tr) decorate(tr);
      slotsChanged(d.opening_id);
    });
    live.on("interview.cancelled", (d) => {
      delete iv.bookings[d.application_id];
      const tr = rowOf(d.application_id);
      if (tr) decorate(tr);
      slotsChanged(d.opening_id);
    });
    live.on("interview.slot_saved", (d) => slotsChanged(d.opening_id));
    live.on("interview.slot_deleted", (d) => {
      for (const [aid, sid] of Object.entries(iv.bookings)) if (sid === d.slot_id) { delete iv.bookings[aid]; const tr = rowOf(aid); if (tr) decorate(tr); }
      slotsChanged(d.opening_id);
    });
    for (const type of ["snapshot", "opening.saved", "opening.deleted", "openings.imported", "lineup.saved"]) live.on(type, fillOpenings);
    live.on("synced", loadOverview);
    fillOpenings();
  }

  if (JC.viewer && JC.viewer.live) viewer(JC.viewer);
  else if (JC.host && JC.host.live) host(JC.host);
})();
