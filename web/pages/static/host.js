// Host pages: log in and out, list and create broadcasts, and the console of one broadcast.
"use strict";
(function () {
  const JC = window.JC;
  const { _, h, $, $$ } = JC;
  const root = document.getElementById("host");
  const csrf = root ? root.dataset.csrf : "";
  const api = (method, path, body, opts) => JC.api(method, path, body, Object.assign({ csrf }, opts || {}));

  // -- forms: collect values, show 422 `fields` next to their inputs -------------------------
  function clearErrors(form) {
    for (const p of $$(".field-error", form)) p.textContent = "";
    for (const i of $$("[aria-invalid]", form)) i.removeAttribute("aria-invalid");
    const fe = $(".form-error", form);
    if (fe) fe.textContent = "";
  }
  function showErrors(form, err) {
    const fields = err.fields || {};
    let first = null;
    for (const [name, msg] of Object.entries(fields)) {
      const p = $('.field-error[data-field="' + CSS.escape(name) + '"]', form);
      const input = form.elements[name];
      if (p) p.textContent = JC.fieldText(msg);
      if (input && input.setAttribute) { input.setAttribute("aria-invalid", "true"); first = first || input; }
    }
    const fe = $(".form-error", form);
    if (fe) fe.textContent = err.text ? err.text() : JC.errorText(err);
    if (first && first.focus) first.focus();
  }
  JC.clearErrors = clearErrors;
  JC.showErrors = showErrors;

  function localToIso(v) { return v ? new Date(v).toISOString() : null; }
  function isoToLocal(ms) {
    if (!ms) return "";
    const d = new Date(Number(ms));
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
  }
  function statusBadge(st) {
    const words = { live: _("Live"), ended: _("Ended"), scheduled: _("Not live yet") };
    return h("span", { class: "status status-" + st, dataset: { status: st } }, words[st] || st);
  }
  JC.statusBadge = statusBadge;

  // Copy buttons: data-copy="text"
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-copy]");
    if (!b) return;
    try { await navigator.clipboard.writeText(b.dataset.copy); JC.toast(_("Copied")); }
    catch (err) { JC.toast(b.dataset.copy); }
  });

  // -- login / logout ------------------------------------------------------------------------
  const loginForm = document.getElementById("login-form");
  if (loginForm) {
    loginForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const err = document.getElementById("login-error");
      err.textContent = "";
      const btn = loginForm.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        await JC.api("POST", "/api/login", {
          username: loginForm.elements.username.value.trim(),
          password: loginForm.elements.password.value,
        });
        location.reload();
      } catch (ex) {
        err.textContent = ex.text();
        btn.disabled = false;
        loginForm.elements.password.focus();
      }
    });
    loginForm.elements.username.focus();
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      try { await api("POST", "/api/logout", {}); } catch (e) { /* the session may be gone already */ }
      location.href = "/host";
    });
  }
  if (!root) return;

  // -- broadcast list ------------------------------------------------------------------------
  if (root.dataset.page === "index") {
    const list = document.getElementById("broadcast-list");
    const isHost = root.dataset.role === "host";
    async function load() {
      let data;
      const replays = {};
      try {
        const [bs, rs] = await Promise.all([
          api("GET", "/api/broadcasts"),
          api("GET", "/api/replays").catch(() => ({ replays: [] })),
        ]);
        data = bs;
        for (const r of rs.replays || []) replays[r.broadcast_id] = r;
      }
      catch (e) { list.replaceChildren(h("li", { class: "form-error" }, e.text())); return; }
      const items = data.broadcasts || [];
      if (!items.length) { list.replaceChildren(h("li", { class: "empty" }, _("No broadcasts yet"))); return; }
      list.replaceChildren(...items.map((b) => {
        const actions = [];
        if (isHost && b.status === "scheduled") actions.push(h("a", { class: "btn small primary", href: "/host/b/" + encodeURIComponent(b.id) + "#golive" }, _("Go live")));
        if (isHost && b.status === "live") actions.push(h("button", { type: "button", class: "small danger", onclick: () => act(b.id, "end") }, _("End broadcast")));
        if (isHost && b.status !== "scheduled") actions.push(h("a", { class: "btn small", href: "/host/b/" + encodeURIComponent(b.id) + "/report" }, _("Event report")));
        const rep = replays[b.id];
        if (rep && isHost && b.status !== "live") actions.push(h("button", { type: "button", class: "small danger", onclick: () => dropReplay(b.id) }, _("Delete replay")));
        return h("li", { dataset: { bid: b.id } },
          h("a", { class: "title", href: "/host/b/" + encodeURIComponent(b.id) }, b.title),
          statusBadge(b.status),
          b.scheduled_at ? h("span", { class: "hint" }, JC.dateTime(b.scheduled_at)) : null,
          rep ? h("span", { class: "hint replay-info" }, _("Replay") + " " + JC.duration(rep.duration) + " · " + JC.bytes(rep.bytes)) : null,
          h("a", { href: "/b/" + encodeURIComponent(b.id), class: "small", target: "_blank", rel: "noopener" }, _("Viewer page")),
          actions);
      }));
    }
    async function dropReplay(bid) {
      if (!confirm(_("Delete this replay? Viewers will no longer be able to watch it."))) return;
      try { await api("DELETE", "/api/broadcasts/" + encodeURIComponent(bid) + "/replay"); JC.toast(_("Replay deleted")); }
      catch (e) { JC.toast(e.text(), "error"); }
      load();
    }
    async function act(bid, what) {
      if (what === "end" && !confirm(_("End this broadcast? Viewers will see that it has ended."))) return;
      try { await api("POST", "/api/broadcasts/" + encodeURIComponent(bid) + "/" + what, {}); }
      catch (e) { JC.toast(e.text(), "error"); }
      load();
    }
    const form = document.getElementById("create-form");
    if (form) {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        clearErrors(form);
        const body = {
          title: form.elements.title.value,
          description: form.elements.description.value,
          scheduled_at: localToIso(form.elements.scheduled_at.value),
        };
        try {
          const b = await api("POST", "/api/broadcasts", body);
          location.href = "/host/b/" + encodeURIComponent(b.id);
        } catch (ex) { showErrors(form, ex); }
      });
    }
    load();
    return;
  }

  // -- console of one broadcast --------------------------------------------------------------
  const bid = root.dataset.bid;
  const bpath = "/api/broadcasts/" + encodeURIComponent(bid);
  const state = { broadcast: null, features: new Set() };
  JC.host = { root, bid, bpath, api, state, csrf, clearErrors, showErrors };

  const live = new JC.Live({
    path: "/ws/host/b/" + encodeURIComponent(bid),
    onStatus: (s) => { document.getElementById("conn").hidden = s === "live" || s === "connecting"; },
  });
  JC.host.live = live;

  // Parts of the console appear when the server has the feature (its key is in the snapshot).
  function showFeature(name, on) {
    for (const el of $$('[data-feature="' + name + '"]')) el.hidden = !on;
    for (const el of $$('[data-feature-missing="' + name + '"]')) el.hidden = on;
  }
  JC.host.showFeature = showFeature;

  function applyBroadcast(b) {
    state.broadcast = b;
    document.getElementById("b-title").textContent = b.title;
    document.getElementById("b-status").replaceChildren(statusBadge(b.status));
    document.getElementById("host").dataset.status = b.status;  // the live layout (app.css)
    const when = document.getElementById("b-when");
    when.textContent = b.status === "scheduled" && b.scheduled_at ? _("Scheduled for %(t)s", { t: JC.dateTime(b.scheduled_at) }) : "";
    const start = document.getElementById("b-start");
    const end = document.getElementById("b-end");
    if (start) start.hidden = b.status !== "scheduled";
    const novideo = document.getElementById("b-novideo");
    if (novideo) novideo.hidden = b.status !== "scheduled";
    if (end) end.hidden = b.status !== "live";
    const edit = document.getElementById("b-edit");
    if (edit && edit.hidden) {
      edit.elements.title.value = b.title;
      edit.elements.description.value = b.description || "";
      edit.elements.scheduled_at.value = isoToLocal(b.scheduled_at);
    }
  }

  live.on("snapshot", (d) => {
    applyBroadcast(d.broadcast);
    document.getElementById("fig-viewers").textContent = d.viewers || 0;
  });
  live.on("broadcast.updated", applyBroadcast);
  live.on("presence", (d) => { document.getElementById("fig-viewers").textContent = d.viewers; });
  live.on("error", (d) => {
    // The session ended (logout elsewhere, account changed, disabled or removed): reconnecting
    // cannot help; reloading shows the login page.
    if (d && d.code === "session_revoked") { live.stop(); location.reload(); return; }
    JC.toast(JC.errorText(d), "error");
  });

  // "Go live" leads to the Go live panel: the broadcast goes live when its first frame
  // arrives, so viewers never see "live" over a black screen.
  const startBtn = document.getElementById("b-start");
  if (startBtn) startBtn.addEventListener("click", () => {
    const panel = document.getElementById("golive");
    if (!panel) return;
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
    const go = document.getElementById("preview-btn") || document.getElementById("publish-btn");
    if (go) go.focus({ preventScroll: true });
    JC.toast(_("Pick the camera, the screen or OBS, preview, then go live: viewers see live with the first picture."));
  });
  const noVideoBtn = document.getElementById("b-novideo");
  if (noVideoBtn) noVideoBtn.addEventListener("click", async () => {
    if (!confirm(_("Set the broadcast live without video? Viewers will see that it is live, and the cards and chat, but no picture until a video arrives."))) return;
    try { applyBroadcast(await api("POST", bpath + "/start", {})); } catch (e) { JC.toast(e.text(), "error"); }
  });
  const endBtn = document.getElementById("b-end");
  if (endBtn) endBtn.addEventListener("click", async () => {
    if (!confirm(_("End this broadcast? Viewers will see that it has ended."))) return;
    try { applyBroadcast(await api("POST", bpath + "/end", {})); } catch (e) { JC.toast(e.text(), "error"); }
  });
  const editToggle = document.getElementById("b-edit-toggle");
  const editForm = document.getElementById("b-edit");
  if (editToggle && editForm) {
    editToggle.addEventListener("click", () => {
      editForm.hidden = !editForm.hidden;
      editToggle.setAttribute("aria-expanded", String(!editForm.hidden));
      if (!editForm.hidden) editForm.elements.title.focus();
    });
    editForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(editForm);
      try {
        const b = await api("PATCH", bpath, {
          title: editForm.elements.title.value,
          description: editForm.elements.description.value,
          scheduled_at: localToIso(editForm.elements.scheduled_at.value),
        });
        editForm.hidden = true;
        editToggle.setAttribute("aria-expanded", "false");
        applyBroadcast(b);
        JC.toast(_("Saved"));
      } catch (ex) { showErrors(editForm, ex); }
    });
  }

  // Feature modules (host parts below and in other files) register before start.
  document.addEventListener("DOMContentLoaded", () => live.start());
})();
