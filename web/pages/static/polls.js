// Live polls (docs/protocol.md, "Polls"). On the viewer page: the poll card under the pinned
// card, options to tap, then the result bars; on the host console: start a poll (written, or
// "which of these jobs interests you?" from the lineup), its live results, close and remove.
// The poll comes from the snapshot and the poll.* events; a viewer's own choice from poll.mine.
"use strict";
(function () {
  const JC = window.JC;
  if (!JC) return;
  const { _, h } = JC;

  function question(p) {
    return p.question || (p.kind === "jobs" ? _("Which of these jobs interests you?") : "");
  }
  function pct(n, total) { return total ? Math.round((100 * n) / total) : 0; }
  function votesText(n) { return n === 1 ? _("1 vote") : _("%(n)s votes", { n }); }
  function errorText(e) {
    if (e && e.code === "poll_closed") return _("This poll is closed");
    if (e && e.code === "poll_not_found") return _("This poll is no longer available");
    if (e && e.code === "poll_open") return _("Close the open poll first");
    if (e && e.code === "not_enough_openings") return _("Publish at least two openings first");
    if (e && e.code === "bad_options") return _("Write 2 to 6 different options");
    return JC.errorText(e);
  }
  // One option's result: its text, share and a bar (its width is set through the CSSOM,
  // which the page's CSP allows, unlike a style attribute).
  function resultParts(text, n, total, extra) {
    const fill = h("span", { class: "poll-fill" });
    fill.style.width = pct(n, total) + "%";
    return [
      h("span", { class: "poll-row" }, h("span", { class: "poll-text" }, text), extra || null,
        h("span", { class: "poll-pct" }, pct(n, total) + "%")),
      h("span", { class: "poll-bar", "aria-hidden": "true" }, fill),
    ];
  }
  function applyEvent(state, type, d) {
    const p = state.poll;
    if (type === "poll.opened") { state.poll = d; state.choice = null; }
    else if (type === "poll.results") {
      if (p && String(p.id) === String(d.id)) { p.totals = d.totals; p.voters = d.voters; }
    } else if (type === "poll.closed") {
      if (!p || String(p.id) !== String(d.id)) state.choice = null;
      state.poll = d;
    } else if (type === "poll.removed") {
      if (p && String(p.id) === String(d.id)) { state.poll = null; state.choice = null; }
    }
  }

  // -- viewer page ------------------------------------------------------------------------------
  function viewer(V) {
    const live = V.live;
    const box = document.getElementById("poll");
    if (!box) return;
    const state = { poll: null, choice: null, sending: false };
    V.poll = state;

    const ended = () => V.root.dataset.status === "ended";
    function render() {
      const p = state.poll;
      box.hidden = !p;
      if (!p) { box.replaceChildren(); return; }
      const closed = p.status === "closed";
      const canVote = !closed && !ended();
      const results = state.choice != null || !canVote;
      const total = (p.totals || []).reduce((a, b) => a + b, 0);
      const options = p.options.map((o, i) => {
        const mine = state.choice === i;
        const n = (p.totals || [])[i] || 0;
        const you = mine ? h("span", { class: "poll-you" }, _("(your choice)")) : null;
        const body = results ? resultParts(o.text, n, total, you) : [h("span", { class: "poll-text" }, o.text)];
        return h("li", null, h("button", {
          type: "button", class: "poll-opt" + (mine ? " mine" : ""), dataset: { option: i },
          "aria-pressed": String(mine), disabled: !canVote || state.sending,
        }, body));
      });
      let foot;
      if (closed) foot = _("Poll closed") + " · " + votesText(total);
      else if (!canVote) foot = _("The broadcast has ended") + " · " + votesText(total);
      else if (state.choice != null) foot = votesText(total) + " · " + _("Tap another option to change your vote");
      else foot = _("Tap an option to vote");
      box.replaceChildren(
        h("p", { class: "poll-label" }, _("Poll"), closed ? h("span", { class: "poll-closed" }, _("Voting closed")) : null),
        h("p", { class: "poll-q" }, question(p)),
        h("ol", { class: "poll-options" + (results ? " results" : "") }, options),
        h("p", { class: "poll-foot hint", role: "status" }, foot),
      );
    }
    box.addEventListener("click", async (e) => {
      const btn = e.target.closest("[data-option]");
      const p = state.poll;
      if (!btn || btn.disabled || !p || state.sending) return;
      const option = Number(btn.dataset.option);
      if (option === state.choice) return;
      state.sending = true;
      render();
      try {
        const r = await live.send("poll.vote", { id: p.id, option });
        if (state.poll && String(state.poll.id) === String(r.id)) {
          state.choice = r.choice;
          state.poll.totals = r.totals;
          state.poll.voters = r.voters;
        }
      } catch (err) {
        JC.toast(errorText(err), "error");
      } finally {
        state.sending = false;
        render();
      }
    });
    async function loadMine() {
      if (!state.poll) return;
      try {
        const r = await live.send("poll.mine", {});
        if (state.poll && r.id != null && String(state.poll.id) === String(r.id)) { state.choice = r.choice; render(); }
      } catch (e) { /* the next join asks again */ }
    }
    live.on("snapshot", (d) => {
      if (!("poll" in d)) return;
      const before = state.poll;
      state.poll = d.poll || null;
      if (!state.poll || !before || String(before.id) !== String(state.poll.id)) state.choice = null;
      render();
    });
    live.on("synced", loadMine);
    for (const type of ["poll.opened", "poll.results", "poll.closed", "poll.removed"]) {
      live.on(type, (d) => { applyEvent(state, type, d); render(); });
    }
    document.addEventListener("jc:status", render);
  }

  // -- host console -----------------------------------------------------------------------------
  function host(H) {
    const live = H.live;
    const panel = document.getElementById("poll-panel");
    if (!panel) return;
    const now = document.getElementById("poll-now");
    const form = document.getElementById("poll-form");
    const err = document.getElementById("poll-error");
    const jobsBtn = document.getElementById("poll-jobs");
    const state = { poll: null, choice: null };
    H.poll = state;

    async function act(type, data, btn) {
      err.textContent = "";
      if (btn) btn.disabled = true;
      try { return await live.send(type, data || {}); }
      catch (e) { err.textContent = errorText(e); return null; }
      finally { if (btn) btn.disabled = false; }
    }
    function render() {
      const p = state.poll;
      const open = !!p && p.status === "open";
      form.hidden = open;  // one poll at a time: a new one once this one is closed
      if (!p) { now.replaceChildren(h("p", { class: "hint" }, _("No poll is shown"))); return; }
      const total = (p.totals || []).reduce((a, b) => a + b, 0);
      const rows = p.options.map((o, i) => {
        const n = (p.totals || [])[i] || 0;
        return h("li", { dataset: { option: i } }, resultParts(o.text, n, total,
          h("span", { class: "poll-count" }, String(n))));
      });
      const close = open ? h("button", { type: "button", class: "small", id: "poll-close" }, _("Close poll")) : null;
      const remove = h("button", { type: "button", class: "small", id: "poll-remove" }, _("Remove poll"));
      if (close) close.addEventListener("click", () => act("poll.close", { id: p.id }, close));
      remove.addEventListener("click", () => act("poll.remove", { id: p.id }, remove));
      now.replaceChildren(
        h("p", { class: "poll-label" }, open ? _("Poll open") : _("Poll closed: results shown to viewers")),
        h("p", { class: "poll-q" }, question(p)),
        h("ol", { class: "poll-options results" }, rows),
        h("p", { class: "hint", id: "poll-total" }, votesText(total)),
        h("div", { class: "row" }, close, remove),
      );
    }
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const q = form.querySelector("#poll-q").value.trim();
      const options = Array.from(form.querySelectorAll("[data-poll-option]"), (el) => el.value.trim()).filter(Boolean);
      if (!q) { err.textContent = _("Write the question"); return; }
      if (options.length < 2) { err.textContent = _("Write 2 to 6 different options"); return; }
      const r = await act("poll.create", { question: q, options }, form.querySelector("button[type=submit]"));
      if (r) form.reset();
    });
    jobsBtn.addEventListener("click", () => act("poll.jobs", {}, jobsBtn));
    live.on("snapshot", (d) => { if ("poll" in d) { state.poll = d.poll || null; render(); } });
    for (const type of ["poll.opened", "poll.results", "poll.closed", "poll.removed"]) {
      live.on(type, (d) => { applyEvent(state, type, d); render(); });
    }
    render();
  }

  if (JC.viewer) viewer(JC.viewer);
  else if (JC.host && JC.host.live) host(JC.host);
})();
