// The host console's live parts: the lineup and pinned card, openings (edit, CSV), live figures,
// applications, the Q&A queue and moderation. Actions go over the host socket or the JSON API;
// the state shown always comes back as events, so every console of the broadcast agrees.
"use strict";
(function () {
  const JC = window.JC;
  const H = JC.host;
  if (!H) return;
  const { _, h, $, $$ } = JC;
  const { live, api, bid, bpath, root } = H;
  const isHost = root.dataset.role === "host";
  const enc = encodeURIComponent;

  const S = {
    openings: new Map(), order: [], pinned: null,
    counts: {}, total: 0,
    questions: new Map(), highlighted: null,
    review: [], moderation: { blocked_words: [], muted: {}, banned: {} },
    chat: new Map(), chatOrder: [], slow: 0,
    names: new Map(),   // viewer id -> last known name
  };
  H.S = S;

  async function act(type, data) {
    try { return await live.send(type, data || {}); }
    catch (e) { JC.toast(e.text(), "error"); throw e; }
  }
  function busy(btn, fn) {
    return async (...args) => {
      if (btn) btn.disabled = true;
      try { await fn(...args); } catch (e) { /* shown already */ } finally { if (btn) btn.disabled = false; }
    };
  }

  // -- figures -------------------------------------------------------------------------------------
  function renderFigures() {
    $("#fig-applications").textContent = S.total;
    // questions held for review are questions waiting (shown in the Q&A panel), not messages
    const held = S.review.filter((it) => it.kind === "question").length;
    const waiting = [...S.questions.values()].filter((q) => !q.hidden && q.status !== "answered").length;
    $("#fig-questions").textContent = waiting + held;
    $("#fig-review").textContent = S.review.length - held;
  }

  // -- lineup ----------------------------------------------------------------------------------------
  const lineup = $("#lineup");
  const STATUS_WORDS = { draft: _("Draft"), closed: _("Closed"), published: _("Published") };
  function ordered() {
    const seen = new Set();
    const out = [];
    for (const id of S.order) if (S.openings.has(id) && !seen.has(id)) { seen.add(id); out.push(S.openings.get(id)); }
    for (const [id, o] of S.openings) if (!seen.has(id)) out.push(o);
    return out;
  }
  function renderLineup() {
    const items = ordered();
    const pinnedId = S.pinned && S.pinned.opening ? S.pinned.opening.id : null;
    $("#pinned-now").textContent = pinnedId ? _("Now presenting: %(t)s", { t: S.pinned.opening.title }) : _("No card is pinned");
    if (!items.length) { lineup.replaceChildren(h("li", { class: "empty" }, _("No openings yet: add one or import a CSV file"))); }
    else lineup.replaceChildren(...items.map((o, i) => {
      const pinned = o.id === pinnedId;
      const n = S.counts[o.id] || 0;
      const actions = [];
      if (isHost) {
        if (o.status === "published") {
          actions.push(pinned
            ? h("button", { type: "button", class: "small", dataset: { unpin: o.id } }, _("Unpin"))
            : h("button", { type: "button", class: "small primary", dataset: { pin: o.id }, "aria-label": _("Pin %(t)s", { t: o.title }) }, _("Pin")));
        }
        actions.push(h("button", { type: "button", class: "small", dataset: { move: o.id, dir: "-1" }, disabled: i === 0, "aria-label": _("Move %(t)s up", { t: o.title }) }, "↑"));
        actions.push(h("button", { type: "button", class: "small", dataset: { move: o.id, dir: "1" }, disabled: i === items.length - 1, "aria-label": _("Move %(t)s down", { t: o.title }) }, "↓"));
        actions.push(h("button", { type: "button", class: "small", dataset: { edit: o.id }, "aria-label": _("Edit %(t)s", { t: o.title }) }, _("Edit")));
      }
      return h("li", { class: pinned ? "is-pinned" : "", dataset: { opening: o.id } },
        h("div", null,
          h("div", { class: "o-title" }, o.title, " ", o.status !== "published" ? h("span", { class: "status" }, STATUS_WORDS[o.status] || o.status) : null),
          h("div", { class: "o-meta" }, [(o.employer && o.employer.name) || "", o.city, JC.eduLabel ? JC.eduLabel(o.education) : o.education].filter(Boolean).join(" · "),
            o.deadline ? [" · ", h("span", { class: JC.isClosed(o) ? "deadline closed" : "deadline" },
              JC.isClosed(o) ? _("Closed %(d)s", { d: o.deadline }) : _("Apply by %(d)s", { d: o.deadline }))] : null,
            " · ", h("span", { class: "app-count", dataset: { count: o.id } }, JC.applications(n)))),
        h("div", { class: "actions" }, actions));
    }));
    fillAppsFilter();
  }
  lineup.addEventListener("click", async (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.pin) busy(b, () => act("card.pin", { opening_id: b.dataset.pin }))();
    else if (b.dataset.unpin) busy(b, () => act("card.unpin"))();
    else if (b.dataset.edit) openEditor(S.openings.get(b.dataset.edit));
    else if (b.dataset.move) {
      const ids = ordered().map((o) => o.id);
      const i = ids.indexOf(b.dataset.move);
      const j = i + Number(b.dataset.dir);
      if (i < 0 || j < 0 || j >= ids.length) return;
      [ids[i], ids[j]] = [ids[j], ids[i]];
      try { await api("PUT", bpath + "/lineup", { order: ids }); } catch (err) { JC.toast(err.text(), "error"); }
      const again = lineup.querySelector('[data-move="' + CSS.escape(b.dataset.move) + '"][data-dir="' + b.dataset.dir + '"]');
      if (again && !again.disabled) again.focus();
    }
  });
  const pinNext = $("#pin-next");
  if (pinNext) pinNext.addEventListener("click", busy(pinNext, () => act("card.pin_next")));
  const unpinBtn = $("#unpin");
  if (unpinBtn) unpinBtn.addEventListener("click", busy(unpinBtn, () => act("card.unpin")));
  if (!isHost) { if (pinNext) pinNext.hidden = true; if (unpinBtn) unpinBtn.hidden = true; }

  function setOpening(o) { S.openings.set(o.id, o); if (!S.order.includes(o.id)) S.order.push(o.id); }
  async function reloadOpenings() {
    try {
      const r = await api("GET", bpath + "/openings");
      for (const o of r.openings || []) setOpening(o);
      renderLineup();
    } catch (e) { /* the next snapshot brings them */ }
  }

  // -- opening editor ------------------------------------------------------------------------------
  const dialog = $("#opening-dialog");
  const form = $("#opening-form");
  const eduSel = $("#of-education");
  if (eduSel) eduSel.replaceChildren(...(JC.EDU || [["any", _("Any education")]]).map(([c, l]) => h("option", { value: c }, l)));
  let editing = null;
  function openEditor(o) {
    if (!dialog) return;
    editing = o || null;
    H.clearErrors(form);
    const f = form.elements;
    const v = o || { title: "", employer: { name: "", verified: false }, city: "", salary_min: "", salary_max: "", headcount: 1, education: "any", majors: [], experience: "", address: "", benefits: [], description: "", deadline: "", status: "published" };
    f.title.value = v.title; f["employer.name"].value = v.employer.name; f["employer.verified"].checked = !!v.employer.verified;
    f.city.value = v.city; f.salary_min.value = v.salary_min || ""; f.salary_max.value = v.salary_max || "";
    f.headcount.value = v.headcount || ""; f.education.value = v.education || "any";
    f.majors.value = (v.majors || []).join(", "); f.experience.value = v.experience || ""; f.address.value = v.address || "";
    f.benefits.value = (v.benefits || []).join(", "); f.description.value = v.description || "";
    f.deadline.value = v.deadline || ""; f.status.value = v.status || "published";
    $("#od-title").textContent = o ? _("Edit opening") : _("New opening");
    $("#of-delete").hidden = !o;
    dialog.showModal();
    f.title.focus();
  }
  H.openEditor = openEditor;
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      H.clearErrors(form);
      const f = form.elements;
      const body = {
        title: f.title.value, employer: { name: f["employer.name"].value, verified: f["employer.verified"].checked },
        city: f.city.value, salary_min: f.salary_min.value, salary_max: f.salary_max.value,
        headcount: f.headcount.value || 1, education: f.education.value, majors: f.majors.value,
        experience: f.experience.value, address: f.address.value, benefits: f.benefits.value,
        description: f.description.value, deadline: f.deadline.value, status: f.status.value,
      };
      try {
        const o = editing ? await api("PATCH", bpath + "/openings/" + enc(editing.id), body) : await api("POST", bpath + "/openings", body);
        setOpening(o);
        renderLineup();
        dialog.close();
        JC.toast(JC.isClosed(o) ? _("Saved, but its deadline has passed: viewers cannot apply.") : _("Saved"), JC.isClosed(o) ? "error" : undefined);
      } catch (ex) { H.showErrors(form, ex); }
    });
    $("#of-delete").addEventListener("click", async () => {
      if (!editing || !confirm(_("Delete this opening? Its applications are kept."))) return;
      try { await api("DELETE", bpath + "/openings/" + enc(editing.id)); dialog.close(); }
      catch (ex) { H.showErrors(form, ex); }
    });
    for (const b of $$("[data-close]", dialog)) b.addEventListener("click", () => dialog.close());
    const newBtn = $("#opening-new");
    if (newBtn) newBtn.addEventListener("click", () => openEditor(null));
  }

  // -- CSV -----------------------------------------------------------------------------------------
  const csvExport = $("#csv-export");
  if (csvExport) csvExport.href = bpath + "/openings.csv";
  // Import: choosing a file runs the dry run and shows it row by row (what will be stored, each
  // problem under the file's own column name); nothing is stored until the host picks an import
  // button. While the broadcast is live the first choice is drafts: published rows reach the
  // viewers at once.
  const csvFile = $("#csv-file");
  const csvDialog = $("#csv-dialog");
  const csvOut = $("#csv-result");
  const csvPublish = $("#csv-publish");
  const csvDrafts = $("#csv-drafts");
  const csvCancel = $("#csv-cancel");
  // csvio's row and file messages, in the host's language (field messages: JC.fieldText)
  const CSV_WORDS = {
    "extra cells": _("More cells than the header has columns"),
    "unknown encoding": _("The file is neither UTF-8 nor GBK text"),
    "no header row": _("The file is empty"),
    "no rows": _("The file has no rows below its header"),
    "too many rows": _("At most 2000 rows per import"),
  };
  const csvText = (v) => CSV_WORDS[String(v).trim()] || JC.fieldText(v);
  let csvPending = null;   // the file previewed, sent again when the host confirms
  let csvShown = null;     // the file the open preview shows
  function csvProblems(rep, r) {
    // by the column's name in the file (its usual Chinese name if absent), not the field's
    const col = (k) => (k === "row" ? "" : (rep.columns && (rep.columns[k] || rep.columns[k.split(".")[0]])) || k);
    return Object.entries(r.errors || {}).map(([k, v]) => (col(k) ? _("%(c)s: %(m)s", { c: col(k), m: csvText(v) }) : csvText(v)));
  }
  // A file that cannot be read at all (no rows to preview): why, in the result line.
  function csvFileError(e) {
    const lines = [e.code === "invalid" ? _("This file cannot be imported") : e.text()];
    for (const [k, v] of Object.entries(e.fields || {})) {
      if (k === "columns" && /^missing: /.test(v)) lines.push(_("Missing columns: %(c)s", { c: v.slice(9) }));
      else if (k === "file" && /^unreadable/.test(v)) lines.push(_("Not a CSV file"));
      else if (!(k === "file" && e.code === "import_invalid")) lines.push(csvText(v));
    }
    csvOut.replaceChildren(...lines.map((l) => h("span", { class: "block" }, l)));
  }
  function csvShow(rep) {
    const isLive = !!(H.state.broadcast && H.state.broadcast.status === "live");
    const bad = rep.rows.filter((r) => !r.ok);
    const late = rep.rows.filter((r) => JC.isClosed(r)).length;
    const summary = [_("%(n)s rows", { n: rep.total }),
      bad.length ? _("%(n)s with errors: correct them in the file and choose it again", { n: bad.length }) : _("All rows can be imported")];
    if (late) summary.push(_("%(n)s past their deadline: viewers cannot apply to those.", { n: late }));
    if ((rep.ignored_columns || []).length) summary.push(_("Columns not read: %(c)s", { c: rep.ignored_columns.join(", ") }));
    $("#csv-summary").textContent = summary.join(" · ");
    $("#csv-errors").replaceChildren(...bad.slice(0, 20).map((r) => {
      const row = _("Row %(n)s", { n: r.row });   // (not inside another _(): it would not be extracted)
      return h("li", null, _("%(c)s: %(m)s", { c: row, m: csvProblems(rep, r).join("; ") }));
    }));
    $("#csv-rows").replaceChildren(...rep.rows.map((r) => h("tr", { class: r.ok ? null : "bad", dataset: { row: r.row } },
      h("td", null, String(r.row)),
      h("td", null, r.title, r.status && r.status !== "published" ? [" ", h("span", { class: "status" }, STATUS_WORDS[r.status] || r.status)] : null),
      h("td", null, r.employer || ""),
      h("td", null, r.city || ""),
      h("td", null, r.salary || ""),
      h("td", null, r.deadline || "", JC.isClosed(r) ? [" ", h("span", { class: "reason" }, _("Deadline passed"))] : null),
      h("td", { class: "csv-problems" }, csvProblems(rep, r).map((p) => h("span", { class: "block" }, p))))));
    $("#csv-live-hint").hidden = !isLive;
    // the default (primary) action last, as the editor's Save
    const [first, second] = isLive ? [csvPublish, csvDrafts] : [csvDrafts, csvPublish];
    first.classList.remove("primary");
    second.classList.add("primary");
    csvPublish.parentNode.append(csvCancel, first, second);
    csvPublish.disabled = csvDrafts.disabled = bad.length > 0;
    csvShown = csvPending;
    if (!csvDialog.open) csvDialog.showModal();
    (bad.length ? csvCancel : second).focus();
  }
  async function csvSend(query) {
    const fd = new FormData();
    fd.append("file", csvPending);
    return JC.api("POST", bpath + "/openings/import" + query, fd, { csrf: H.csrf, raw: true, timeout: 60000 });
  }
  if (csvFile && csvDialog) csvFile.addEventListener("change", async () => {
    const file = csvFile.files && csvFile.files[0];
    csvFile.value = "";   // the same file chosen again (corrected) is a change too
    if (!file) return;
    csvPending = file;
    csvOut.textContent = _("Checking the file…");
    try {
      const rep = await csvSend("?dry_run=1");
      csvOut.textContent = "";
      csvShow(rep);
    } catch (e) { csvPending = null; csvFileError(e); }
  });
  async function csvImport(asDrafts) {
    if (!csvPending) return;
    csvPublish.disabled = csvDrafts.disabled = true;
    try {
      const r = await csvSend(asDrafts ? "?status=draft" : "");
      csvPending = null;
      csvDialog.close();
      const made = r.created || [];
      csvOut.textContent = asDrafts ? _("Imported %(n)s openings as drafts", { n: made.length }) : _("Imported %(n)s openings", { n: made.length });
      await reloadOpenings();
      const late = made.filter((id) => JC.isClosed(S.openings.get(id))).length;
      if (late) csvOut.textContent += " · " + _("%(n)s of them are past their deadline: viewers cannot apply to those.", { n: late });
    } catch (e) {
      const rep = e.extra && e.extra.report;
      if (rep && rep.rows) { csvShow(rep); return; }   // the file changed since its preview
      if (e.status === 413 || e.status === 422) { csvDialog.close(); csvFileError(e); return; }
      JC.toast(e.text(), "error");   // offline, busy: the same preview can try again
      csvPublish.disabled = csvDrafts.disabled = false;
    }
  }
  if (csvDialog) {
    csvPublish.addEventListener("click", () => csvImport(false));
    csvDrafts.addEventListener("click", () => csvImport(true));
    csvCancel.addEventListener("click", () => csvDialog.close());
    // "close" comes a task after close(): a file chosen meanwhile is not the one closed
    csvDialog.addEventListener("close", () => { if (csvPending === csvShown) csvPending = null; });
  }

  // -- applications --------------------------------------------------------------------------------
  // The statuses the applicant sees (openings/applications.py STATUSES), old words read as new.
  const APP_STATUS = [["submitted", _("Submitted")], ["viewed", _("Viewed")], ["contacted", _("Contacted")], ["interview", _("Invited to interview")], ["hired", _("Hired")], ["not_selected", _("Not selected")]];
  const OLD_STATUS = { new: "submitted", rejected: "not_selected" };
  const rows = $("#apps-rows");
  const appsFilter = $("#apps-filter");
  const appsExport = $("#apps-export");
  const appsMore = $("#apps-more");
  let appsOffset = 0;
  function fillAppsFilter() {
    if (!appsFilter) return;
    const cur = appsFilter.value;
    appsFilter.replaceChildren(appsFilter.options[0], ...ordered().map((o) => h("option", { value: o.id }, o.title + " (" + (S.counts[o.id] || 0) + ")")));
    appsFilter.value = cur;
  }
  function appRow(a) {
    const sel = h("select", { class: "small", dataset: { app: a.id }, "aria-label": _("Status of %(n)s", { n: a.name }) },
      APP_STATUS.map(([v, l]) => h("option", { value: v, selected: v === (OLD_STATUS[a.status] || a.status) }, l)));
    sel.dataset.was = OLD_STATUS[a.status] || a.status;
    return h("tr", { dataset: { app: a.id } },
      h("td", null, JC.dateTime(a.created_at)),
      h("td", null, a.opening_title || (S.openings.get(a.opening_id) || {}).title || a.opening_id),
      h("td", null, a.name),
      h("td", null, a.phone, samePhone(a)),
      h("td", null, a.degree ? (JC.eduLabel ? JC.eduLabel(a.degree) : a.degree_label) : "", a.major ? " · " + a.major : ""),
      h("td", null, sel));
  }
  // Every submission is stored, also from a number that applied to the opening before (the
  // sender can't tell); the host sees the others from the same number and decides.
  function samePhone(a) {
    if (!a.same_phone) return null;
    return [" ", h("span", { class: "reason", dataset: { same: a.id }, title: (a.same_phone_ids || []).join(" ") },
      _("Same number: %(n)s more", { n: a.same_phone }))];
  }
  function markSamePhone(a) {
    for (const id of a.same_phone_ids || []) {
      const tr = rows.querySelector('tr[data-app="' + CSS.escape(id) + '"]');
      if (!tr) continue;
      const cell = tr.children[3];
      const old = cell.querySelector("[data-same]");
      if (old) old.remove();
      const ids = [a.id, ...(a.same_phone_ids || []).filter((x) => x !== id)];
      cell.append(...samePhone({ id: id, same_phone: a.same_phone, same_phone_ids: ids }));
    }
  }
  async function loadApps(more) {
    if (!rows || !isHost) return;
    const q = new URLSearchParams({ limit: "50", offset: String(more ? appsOffset : 0) });
    if (appsFilter.value) q.set("opening_id", appsFilter.value);
    try {
      const r = await api("GET", bpath + "/applications?" + q);
      const items = (r.applications || []).map(appRow);
      if (more) rows.append(...items); else rows.replaceChildren(...items);
      appsOffset = (more ? appsOffset : 0) + (r.applications || []).length;
      appsMore.hidden = appsOffset >= r.total;
      if (!rows.children.length) rows.replaceChildren(h("tr", null, h("td", { colspan: 6, class: "empty" }, _("No applications yet"))));
    } catch (e) { JC.toast(e.text(), "error"); }
  }
  if (appsFilter) appsFilter.addEventListener("change", () => {
    appsExport.href = bpath + "/applications.csv" + (appsFilter.value ? "?opening_id=" + enc(appsFilter.value) : "");
    loadApps(false);
  });
  if (appsExport) appsExport.href = bpath + "/applications.csv";
  if (appsMore) appsMore.addEventListener("click", () => loadApps(true));
  // 邀请面试 asks for the interview's time, place or link and a note (the applicant sees them).
  function interviewDialog(name) {
    return new Promise((resolve) => {
      const f = (id, label, input) => h("div", null, h("label", { for: id }, label), input);
      const when = h("input", { id: "ivd-when", type: "datetime-local" });
      const place = h("input", { id: "ivd-place", type: "text", maxlength: "200" });
      const link = h("input", { id: "ivd-link", type: "url", maxlength: "500", placeholder: "https://" });
      const note = h("textarea", { id: "ivd-note", maxlength: "300" });
      const err = h("p", { class: "form-error", role: "alert" });
      const form = h("form", { method: "dialog", class: "ivd-grid" },
        h("h2", null, _("Invite %(n)s to an interview", { n: name })),
        f("ivd-when", _("Interview time"), when), f("ivd-place", _("Place"), place),
        f("ivd-link", _("Video link (optional)"), link), f("ivd-note", _("Note to the applicant"), note), err,
        h("div", { class: "dialog-actions" },
          h("button", { type: "button", dataset: { close: "" } }, _("Cancel")),
          h("button", { type: "submit", class: "primary", id: "ivd-save" }, _("Send invitation"))));
      const dlg = h("dialog", { id: "interview-dialog", "aria-label": _("Invited to interview") }, form);
      let result = null;
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        if (!when.value && !place.value.trim() && !link.value.trim()) { err.textContent = _("Give a time, a place or a link"); return; }
        result = { place: place.value.trim(), link: link.value.trim(), note: note.value.trim() };
        if (when.value) result.starts_at = new Date(when.value).getTime();
        dlg.close();
      });
      form.querySelector("[data-close]").addEventListener("click", () => dlg.close());
      dlg.addEventListener("close", () => { dlg.remove(); resolve(result); });
      document.body.append(dlg);
      dlg.showModal();
      when.focus();
    });
  }
  if (rows) rows.addEventListener("change", async (e) => {
    const sel = e.target.closest("select[data-app]");
    if (!sel) return;
    const body = { status: sel.value };
    if (sel.value === "interview") {
      const tr = sel.closest("tr");
      const details = await interviewDialog(tr ? tr.children[2].textContent : "");
      if (!details) { sel.value = sel.dataset.was || "submitted"; return; }
      body.interview = details;
    }
    try { await api("PATCH", bpath + "/applications/" + enc(sel.dataset.app), body); sel.dataset.was = sel.value; JC.toast(_("Saved")); }
    catch (err) { sel.value = sel.dataset.was || sel.value; JC.toast(err.text(), "error"); }
  });
  async function newApplication(d) {
    if (!rows || !isHost) return;
    if (appsFilter.value && appsFilter.value !== d.opening_id) return;
    if (rows.querySelector('tr[data-app="' + CSS.escape(d.application_id) + '"]')) return;
    try {
      const a = await api("GET", bpath + "/applications/" + enc(d.application_id) + "?peek=1");
      const empty = rows.querySelector(".empty");
      if (empty) empty.closest("tr").remove();
      if (!rows.querySelector('tr[data-app="' + CSS.escape(a.id) + '"]')) { rows.prepend(appRow(a)); appsOffset += 1; markSamePhone(a); }
    } catch (e) { /* deleted meanwhile */ }
  }
  function setCount(oid, n, total) {
    S.counts[oid] = n;
    if (total != null) S.total = total;
    for (const el of $$('[data-count="' + CSS.escape(oid) + '"]')) el.textContent = JC.applications(n);
    renderFigures();
    fillAppsFilter();
  }

  // -- questions -----------------------------------------------------------------------------------
  const qList = $("#qa-queue");
  function qSorted() {
    const rank = (q) => (q.hidden ? 2 : q.status === "answered" ? 1 : 0);
    return [...S.questions.values()].sort((a, b) => rank(a) - rank(b) || (b.votes || 0) - (a.votes || 0) || (a.ts || 0) - (b.ts || 0));
  }
  function askerName(q) {
    const real = (q.author && q.author.name) || q.name || "";
    return q.anonymous ? _("Anonymous") + (real ? " (" + real + ")" : "") : real;
  }
  // Votes count per address (a few viewers each); many voters from few addresses is a burst.
  function voteSources(q) {
    if (!q.voters) return null;
    const burst = q.voters > (q.votes || 0);
    return h("div", { class: "hint", dataset: { sources: String(q.id) } },
      burst ? h("span", { class: "reason" }, _("Vote burst")) : null, burst ? " " : null,
      _("%(v)s voters from %(a)s addresses", { v: q.voters, a: q.addresses || 0 }));
  }
  function questionEl(q) {
    const id = String(q.id);
    const hl = S.highlighted != null && String(S.highlighted) === id;
    const o = q.opening_id ? S.openings.get(q.opening_id) : null;
    const answer = h("textarea", { "aria-label": _("Answer to: %(q)s", { q: q.text }), maxlength: 1000, rows: 2, dataset: { answerText: id } });
    answer.value = q.answer || "";
    return h("li", { class: hl ? "highlighted" : "", dataset: { qid: id } },
      h("div", null, h("strong", { class: "votes" }, "▲ " + (q.votes || 0)), " ", h("span", { class: "q-text" }, q.text)),
      voteSources(q),
      h("div", { class: "hint" }, askerName(q), o ? " · " + _("About: %(t)s", { t: o.title }) : "",
        q.status === "answered" ? " · " + _("Answered") : "", q.hidden ? " · " + _("Hidden") : "", hl ? " · " + _("On screen now") : ""),
      q.hidden ? null : answer,
      h("div", { class: "row" },
        q.hidden ? null : h("button", { type: "button", class: "small primary", dataset: { answer: id } }, q.status === "answered" ? _("Update answer") : _("Answer")),
        q.status === "answered" && !q.hidden ? h("button", { type: "button", class: "small", dataset: { reopen: id } }, _("Reopen")) : null,
        q.hidden ? null : h("button", { type: "button", class: "small", dataset: { highlight: hl ? "" : id } }, hl ? _("Remove from screen") : _("Show on screen")),
        q.hidden ? h("button", { type: "button", class: "small", dataset: { restore: id } }, _("Restore"))
          : h("button", { type: "button", class: "small danger", dataset: { qhide: id } }, _("Hide"))));
  }
  // A question held for review, at the top of the Q&A panel with its decision (Slido's way).
  function heldQuestionEl(it) {
    return h("li", { class: "held", dataset: { kind: "question", rid: it.id } },
      h("div", null, h("span", { class: "reason" }, _("Waiting for review")), " ", REASONS[it.reason] ? h("span", { class: "hint" }, REASONS[it.reason]) : null),
      h("div", null, h("span", { class: "q-text" }, it.text)),
      h("div", { class: "hint" }, (it.author && it.author.name) || ""),
      h("div", { class: "row" },
        h("button", { type: "button", class: "small primary", dataset: { approve: "1" } }, _("Approve")),
        h("button", { type: "button", class: "small danger", dataset: { approve: "0" } }, _("Reject"))));
  }
  function renderQuestions() {
    if (!qList) return;
    const held = S.review.filter((it) => it.kind === "question").map(heldQuestionEl);
    const items = [...held, ...qSorted().map(questionEl)];
    qList.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("No questions yet"))]));
    renderFigures();
  }
  function qid(id) { return /^\d+$/.test(id) ? Number(id) : id; }
  if (qList) qList.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    const d = b.dataset;
    if (d.answer) {
      const text = qList.querySelector('[data-answer-text="' + CSS.escape(d.answer) + '"]').value.trim();
      busy(b, () => act("question.answer", { id: qid(d.answer), answer: text, answered: true }))();
    } else if (d.reopen) busy(b, () => act("question.answer", { id: qid(d.reopen), answered: false }))();
    else if (d.highlight !== undefined) busy(b, () => act("question.highlight", { id: d.highlight ? qid(d.highlight) : null }))();
    else if (d.qhide) busy(b, () => act("question.hide", { id: qid(d.qhide) }))();
    else if (d.restore) busy(b, () => act("question.restore", { id: qid(d.restore) }))();
  });

  // -- moderation ----------------------------------------------------------------------------------
  const REASONS = { phone: _("phone number"), contact: _("contact details"), link: _("link"), question: _("question") };
  const reviewList = $("#review");
  function renderReview() {
    if (!reviewList) return;
    const items = S.review.filter((it) => it.kind !== "question").map((it) => h("li", { dataset: { kind: it.kind, rid: it.id } },
      h("div", null, h("span", { class: "reason" }, REASONS[it.reason] || it.reason), " ", h("strong", null, (it.author && it.author.name) || ""), " ", it.text),
      h("div", { class: "row" },
        h("button", { type: "button", class: "small primary", dataset: { approve: "1" } }, _("Approve")),
        h("button", { type: "button", class: "small danger", dataset: { approve: "0" } }, _("Reject")))));
    reviewList.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("Nothing to review"))]));
    renderQuestions();  // held questions are listed there
  }
  for (const list of [reviewList, qList]) if (list) list.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-approve]");
    if (!b) return;
    const li = b.closest("li");
    busy(b, () => act("review.decide", { kind: li.dataset.kind, id: qid(li.dataset.rid), approve: b.dataset.approve === "1" }))();
  });

  // The host's own messages: posted like a viewer's, shown to everyone with the host's tag.
  const hostChat = $("#host-chat");
  if (hostChat) hostChat.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#host-chat-text");
    const text = input.value.trim();
    if (!text) { input.focus(); return; }
    const btn = hostChat.querySelector("button");
    btn.disabled = true;
    try {
      const m = await act("chat.send", { text });
      input.value = "";
      const pin = $("#host-chat-pin");
      if (pin && pin.checked && m && m.id != null) { await act("chat.pin", { id: qid(m.id) }); pin.checked = false; }
    } catch (err) { /* toasted */ }
    finally { btn.disabled = false; input.focus(); }
  });

  const modChat = $("#mod-chat");
  const isPinned = (id) => !!S.chatPinned && String(S.chatPinned.id) === String(id);
  function renderChatPinned() {
    const box = $("#console-chat-pinned");
    if (!box) return;
    box.hidden = !S.chatPinned;
    box.replaceChildren(...(S.chatPinned ? [h("span", { class: "pin-label" }, _("Pinned above the chat")), " ", h("span", { class: "text" }, S.chatPinned.text), " ",
      h("button", { type: "button", class: "small link", dataset: { unpin: "1" } }, _("Unpin message"))] : []));
  }
  const pinnedBox = $("#console-chat-pinned");
  if (pinnedBox) pinnedBox.addEventListener("click", (e) => { const b = e.target.closest("[data-unpin]"); if (b) busy(b, () => act("chat.pin", { id: null }))(); });
  function renderModChat() {
    renderChatPinned();
    if (!modChat) return;
    const items = S.chatOrder.slice(-100).map((id) => {
      const m = S.chat.get(id);
      const staff = m.role !== "viewer";
      return h("li", { dataset: { mid: id } },
        staff ? h("span", { class: "host-tag" }, m.role === "host" ? _("Host") : _("Moderator")) : null,
        h("span", { class: "who" }, m.name), " ", h("span", { class: "text" }, m.text), " ",
        h("span", { class: "row" },
          h("button", { type: "button", class: "small link", dataset: { hide: id } }, _("Hide")),
          h("button", { type: "button", class: "small link", dataset: { pin: id, pinned: String(isPinned(id)) }, "aria-pressed": String(isPinned(id)) }, isPinned(id) ? _("Unpin message") : _("Pin to top")),
          staff ? null : h("button", { type: "button", class: "small link", dataset: { timeout: id } }, _("Time out 10 min")),
          staff ? null : h("button", { type: "button", class: "small link danger", dataset: { ban: id } }, _("Ban"))));
    });
    const stick = modChat.scrollHeight - modChat.scrollTop - modChat.clientHeight < 60;
    modChat.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("No messages yet"))]));
    if (stick) modChat.scrollTop = modChat.scrollHeight;
  }
  if (modChat) modChat.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    const d = b.dataset;
    if (d.hide) busy(b, () => act("chat.hide", { id: qid(d.hide) }))();
    else if (d.pin) busy(b, () => act("chat.pin", { id: d.pinned === "true" ? null : qid(d.pin) }))();
    else if (d.timeout) busy(b, () => act("mod.timeout", { message_id: qid(d.timeout), seconds: 600 }))();
    else if (d.ban && confirm(_("Ban this viewer from posting in this broadcast?"))) busy(b, () => act("mod.ban", { message_id: qid(d.ban) }))();
  });
  function addChat(m) {
    const id = String(m.id);
    if (S.chat.has(id)) return;
    S.chat.set(id, m);
    S.chatOrder.push(id);
    if (S.chatOrder.length > 400) for (const old of S.chatOrder.splice(0, 200)) S.chat.delete(old);
  }

  const slow = $("#slow-mode");
  if (slow) slow.addEventListener("change", () => act("mod.slow_mode", { seconds: Number(slow.value) }).catch(() => { slow.value = String(S.slow); }));
  const afterEnd = $("#after-end");
  if (afterEnd) afterEnd.addEventListener("change", () => act("mod.after_end", { open: afterEnd.checked }).catch(() => { afterEnd.checked = !!S.openAfterEnd; }));
  function renderSlow() {
    if (afterEnd) afterEnd.checked = !!S.openAfterEnd;
    if (!slow) return;
    if (![...slow.options].some((o) => Number(o.value) === S.slow)) slow.append(h("option", { value: S.slow }, S.slow + " s"));
    slow.value = String(S.slow);
  }

  const words = $("#words");
  function renderWords() {
    if (!words) return;
    words.replaceChildren(...S.moderation.blocked_words.map((w) => h("li", null,
      h("button", { type: "button", class: "small", dataset: { word: w }, "aria-label": _("Remove blocked word %(w)s", { w: w }) }, w + " ✕"))));
  }
  if (words) words.addEventListener("click", (e) => {
    const b = e.target.closest("[data-word]");
    if (b) busy(b, () => act("mod.words", { remove: [b.dataset.word] }))();
  });
  const wordsForm = $("#words-form");
  if (wordsForm) wordsForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#word-new");
    const w = input.value.trim();
    if (!w) return;
    try { await act("mod.words", { add: [w] }); input.value = ""; } catch (err) { /* shown */ }
  });

  const people = $("#mod-people");
  function renderPeople() {
    if (!people) return;
    const m = S.moderation;
    const items = [];
    const nm = (vid) => S.names.get(vid) || vid.slice(0, 8);
    for (const [vid, until] of Object.entries(m.muted || {})) {
      if (Number(until) < Date.now()) continue;
      items.push(h("li", { class: "row" }, h("span", null, nm(vid) + " · " + _("timed out until %(t)s", { t: JC.time(until) })),
        h("button", { type: "button", class: "small", dataset: { untimeout: vid } }, _("Lift time-out"))));
    }
    for (const vid of Object.keys(m.banned || {})) {
      items.push(h("li", { class: "row" }, h("span", null, nm(vid) + " · " + _("banned")),
        h("button", { type: "button", class: "small", dataset: { unban: vid } }, _("Unban"))));
    }
    people.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("Nobody"))]));
  }
  if (people) people.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.untimeout) busy(b, () => act("mod.untimeout", { viewer_id: b.dataset.untimeout }))();
    if (b.dataset.unban) busy(b, () => act("mod.unban", { viewer_id: b.dataset.unban }))();
  });

  // -- events ----------------------------------------------------------------------------------------
  live.on("snapshot", (d) => {
    if ("openings" in d) {
      H.showFeature("openings", true);
      S.openings = new Map((d.openings || []).map((o) => [o.id, o]));
      S.order = d.lineup || [];
      S.pinned = d.pinned || null;
    }
    if ("application_counts" in d) {
      H.showFeature("applications", isHost);
      S.counts = d.application_counts || {};
      S.total = d.applications_total || 0;
      loadApps(false);
    }
    if ("questions" in d) {
      H.showFeature("questions", true);
      S.questions = new Map((d.questions || []).map((q) => [String(q.id), q]));
      S.highlighted = d.highlighted_question != null ? d.highlighted_question : null;
      for (const q of d.questions || []) if (q.author) S.names.set(q.author.viewer_id, q.author.name);
    }
    if ("chat" in d) {
      H.showFeature("chat", true);
      H.showFeature("review", true);
      S.chat = new Map();
      S.chatOrder = [];
      for (const m of d.chat || []) addChat(m);
      S.review = d.review || [];
      for (const it of S.review) if (it.author) S.names.set(it.author.viewer_id, it.author.name);
      S.moderation = Object.assign({ blocked_words: [], muted: {}, banned: {} }, d.moderation || {});
      S.slow = (d.chat_settings && d.chat_settings.slow_mode) || 0;
      S.openAfterEnd = !!(d.chat_settings && d.chat_settings.open_after_end);
      S.chatPinned = d.chat_pinned || null;
    }
    renderLineup(); renderQuestions(); renderReview(); renderModChat(); renderWords(); renderPeople(); renderSlow(); renderFigures();
  });

  live.on("card.pinned", (d) => { S.pinned = d; if (d.opening) S.openings.set(d.opening.id, d.opening); renderLineup(); });
  live.on("card.unpinned", () => { S.pinned = null; renderLineup(); });
  // The console keeps every card (docs/protocol.md): it applies the host events and skips
  // opening.updated, opening.removed, openings.added and lineup.updated, meant for viewers.
  live.on("opening.saved", (d) => { setOpening(d.opening); renderLineup(); });
  live.on("openings.imported", (d) => {
    if (!Array.isArray(d.openings)) { reloadOpenings(); return; }
    for (const o of d.openings) setOpening(o);
    renderLineup();
  });
  live.on("opening.deleted", (d) => {
    S.openings.delete(d.opening_id);
    S.order = S.order.filter((x) => x !== d.opening_id);
    if (S.pinned && S.pinned.opening && S.pinned.opening.id === d.opening_id) S.pinned = null;
    renderLineup();
  });
  live.on("lineup.saved", (d) => { S.order = d.order || []; renderLineup(); });

  live.on("application.received", (d) => { setCount(d.opening_id, d.count, d.total); newApplication(d); });
  live.on("application.deleted", (d) => {
    setCount(d.opening_id, d.count, d.total);
    const tr = rows && rows.querySelector('tr[data-app="' + CSS.escape(d.application_id) + '"]');
    if (tr) tr.remove();
  });
  live.on("application.status", (d) => {
    const sel = rows && rows.querySelector('select[data-app="' + CSS.escape(d.application_id) + '"]');
    if (sel && document.activeElement !== sel) { sel.value = OLD_STATUS[d.status] || d.status; sel.dataset.was = sel.value; }
  });

  live.on("question.updated", (q) => {
    const old = S.questions.get(String(q.id));
    const kept = {};
    if (old) for (const k of ["author", "voters", "addresses"]) if (k in old) kept[k] = old[k];
    S.questions.set(String(q.id), Object.assign({}, q, kept));
    renderQuestions();
  });
  live.on("question.author", (d) => {
    S.names.set(d.viewer_id, d.name);
    const q = S.questions.get(String(d.id));
    if (q) { q.author = { viewer_id: d.viewer_id, name: d.name }; renderQuestions(); }
  });
  live.on("question.hidden", (d) => { const q = S.questions.get(String(d.id)); if (q) { q.hidden = true; renderQuestions(); } });
  live.on("question.votes", (d) => {
    for (const [id, n] of Object.entries(d.votes || {})) { const q = S.questions.get(String(id)); if (q) q.votes = n; }
    renderQuestions();
  });
  live.on("question.voters", (d) => {
    for (const [id, n] of Object.entries(d.voters || {})) { const q = S.questions.get(String(id)); if (q) Object.assign(q, n); }
    renderQuestions();
  });
  live.on("question.highlighted", (d) => { S.highlighted = d.id != null ? d.id : null; renderQuestions(); });

  live.on("chat.message", (m) => { addChat(m); renderModChat(); });
  live.on("chat.messages", (d) => { for (const m of d.messages || []) addChat(m); renderModChat(); });
  live.on("chat.hidden", (d) => {
    const id = String(d.id);
    if (S.chat.delete(id)) { S.chatOrder = S.chatOrder.filter((x) => x !== id); renderModChat(); }
  });
  live.on("chat.settings", (d) => {
    if ("slow_mode" in d) S.slow = d.slow_mode || 0;
    if ("open_after_end" in d) S.openAfterEnd = !!d.open_after_end;
    renderSlow();
  });
  live.on("chat.pinned", (d) => { S.chatPinned = d.message || null; renderModChat(); });
  live.on("review.added", (it) => {
    if (!S.review.some((x) => x.kind === it.kind && String(x.id) === String(it.id))) S.review.push(it);
    if (it.author) S.names.set(it.author.viewer_id, it.author.name);
    renderReview();
  });
  live.on("review.removed", (d) => { S.review = S.review.filter((x) => !(x.kind === d.kind && String(x.id) === String(d.id))); renderReview(); });
  live.on("moderation.muted", (d) => { S.moderation.muted[d.viewer_id] = d.until; renderPeople(); });
  live.on("moderation.unmuted", (d) => { delete S.moderation.muted[d.viewer_id]; renderPeople(); });
  live.on("moderation.banned", (d) => { S.moderation.banned[d.viewer_id] = { ip_banned: d.ip_banned }; renderPeople(); });
  live.on("moderation.unbanned", (d) => { delete S.moderation.banned[d.viewer_id]; renderPeople(); });
  live.on("moderation.words", (d) => { S.moderation.blocked_words = d.words || []; renderWords(); });
})();
