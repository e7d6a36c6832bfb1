// The viewer's chat and Q&A tabs: post, ask (about an opening, anonymously), upvote, answers
// and the highlighted question, refusals in words (docs/protocol.md, "Chat, questions...").
"use strict";
(function () {
  const JC = window.JC;
  const V = JC.viewer;
  if (!V) return;
  const { _, h, $$ } = JC;
  const live = V.live;
  const bid = V.bid;
  const MAX_SHOWN = 200;

  const chat = { messages: new Map(), order: [] };
  const qa = { questions: new Map(), highlighted: null, mine: new Set(), voted: new Set() };
  let openAfterEnd = false;  // chat_settings.open_after_end: the host keeps the room open
  const VOTED_KEY = "jc_votes_" + bid;
  const NAME_KEY = "jc_name";
  try { for (const id of JSON.parse(localStorage.getItem(VOTED_KEY) || "[]")) qa.voted.add(String(id)); } catch (e) { /* none */ }
  try { const n = localStorage.getItem(NAME_KEY); if (n) live.opts.name = n; } catch (e) { /* none */ }
  V.chat = chat;
  V.qa = qa;

  function showFeature(name, on) {
    for (const el of $$('[data-feature="' + name + '"]', V.root)) el.hidden = !on;
  }

  // -- chat --------------------------------------------------------------------------------------
  const feed = document.getElementById("chat");
  const chatForm = document.getElementById("chat-form");
  const chatText = document.getElementById("chat-text");
  const chatError = document.getElementById("chat-error");

  function roleTag(role) {
    if (role === "host") return h("span", { class: "host-tag" }, _("Host"));
    if (role === "moderator") return h("span", { class: "host-tag" }, _("Moderator"));
    return null;
  }
  const sent = new Set();  // ids of the messages this page sent: marked as the viewer's own
  function messageEl(m) {
    const mine = sent.has(String(m.id));
    return h("li", { class: "msg role-" + m.role + (mine ? " mine" : ""), dataset: { id: m.id } },
      roleTag(m.role), h("span", { class: "who" }, m.name), mine ? h("span", { class: "you" }, _("(you)")) : null,
      " ", h("span", { class: "text" }, m.text));
  }
  function nearBottom() { return feed.scrollHeight - feed.scrollTop - feed.clientHeight < 60; }
  function renderChat() {
    const stick = nearBottom();
    const items = chat.order.slice(-MAX_SHOWN).map((id) => messageEl(chat.messages.get(id)));
    feed.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("No messages yet: say hello!"))]));
    if (stick) feed.scrollTop = feed.scrollHeight;
  }
  function addMessage(m) {
    const id = String(m.id);
    if (chat.messages.has(id)) return false;
    chat.messages.set(id, m);
    chat.order.push(id);
    if (chat.order.length > MAX_SHOWN * 2) for (const old of chat.order.splice(0, chat.order.length - MAX_SHOWN)) chat.messages.delete(old);
    return true;
  }

  let errTimer = null;
  // A neutral notice in the same place as errors (e.g. "waiting for a moderator").
  let heldQuestion = null;  // the id of this viewer's question waiting for review
  function note(box, text) {
    box.textContent = text;
    box.dataset.kind = "info";
    clearTimeout(errTimer);
    errTimer = setTimeout(() => { box.textContent = ""; }, 12000);
  }
  function showError(box, err) {
    box.dataset.kind = "error";
    box.textContent = JC.errorText(err);
    clearTimeout(errTimer);
    const wait = err && err.retry_after ? Math.ceil(Number(err.retry_after)) * 1000 + 500 : 8000;
    errTimer = setTimeout(() => { box.textContent = ""; }, Math.min(wait, 60000));
  }

  chatForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = chatText.value.trim();
    if (!text) { chatText.focus(); return; }
    chatError.textContent = "";
    const btn = chatForm.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const m = await live.send("chat.send", { text });
      chatText.value = "";
      if (m && m.id != null) { sent.add(String(m.id)); addMessage(m); renderChat(); }
    } catch (err) {
      if (err.code === "held") { chatText.value = ""; note(chatError, _("Your message is waiting for a moderator")); }
      else showError(chatError, err);
    } finally {
      btn.disabled = false;
      renderClosed();
      chatText.focus();
    }
  });

  // Display name: shown under the chat, changed in place.
  const myName = document.getElementById("my-name");
  const nameBtn = document.getElementById("name-btn");
  nameBtn.addEventListener("click", () => {
    const input = h("input", { type: "text", maxlength: 24, value: myName.textContent, "aria-label": _("Your name"), class: "name-input" });
    const save = h("button", { type: "submit", class: "small" }, _("Save"));
    const form = h("form", { class: "row" }, input, save);
    nameBtn.hidden = true;
    myName.replaceWith(form);
    input.focus();
    input.select();
    const done = () => { form.replaceWith(myName); nameBtn.hidden = false; nameBtn.focus(); };
    input.addEventListener("keydown", (ev) => { if (ev.key === "Escape") done(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name) { done(); return; }
      try {
        const r = await live.send("set_name", { name });
        myName.textContent = r.name;
        live.opts.name = r.name;
        try { localStorage.setItem(NAME_KEY, r.name); } catch (e2) { /* private mode */ }
        done();
      } catch (err) { JC.toast(err.text(), "error"); }
    });
  });
  live.on("hello", (d) => { myName.textContent = d.name || ""; });

  // -- questions -----------------------------------------------------------------------------------
  const list = document.getElementById("questions");
  const askForm = document.getElementById("ask-form");
  const askText = document.getElementById("ask-text");
  const askOpening = document.getElementById("ask-opening");
  const askAnon = document.getElementById("ask-anon");
  const askError = document.getElementById("ask-error");

  function openingTitle(oid) {
    const o = V.state.openings.get(oid);
    return o ? o.title : "";
  }
  function sorted() {
    return [...qa.questions.values()]
      .filter((q) => !q.hidden)
      .sort((a, b) => (b.votes || 0) - (a.votes || 0) || (a.ts || 0) - (b.ts || 0) || String(a.id).localeCompare(String(b.id)));
  }
  function questionEl(q) {
    const id = String(q.id);
    const voted = qa.voted.has(id);
    const hl = qa.highlighted != null && String(qa.highlighted) === id;
    const about = q.opening_id ? openingTitle(q.opening_id) : "";
    const voteBtn = h("button", {
      type: "button", "aria-pressed": String(voted), dataset: { vote: id },
      "aria-label": voted ? _("Withdraw my vote") : _("Vote for this question"),
    }, "▲");
    return h("li", { class: "question" + (hl ? " highlighted" : ""), dataset: { qid: id } },
      h("div", { class: "vote" }, voteBtn, h("span", { class: "votes", "aria-label": _("%(n)s votes", { n: q.votes || 0 }) }, String(q.votes || 0))),
      h("div", { class: "q-body" },
        hl ? h("p", { class: "pin-label" }, _("On screen now")) : null,
        h("p", { class: "q-text" }, q.text),
        h("p", { class: "q-meta" }, q.anonymous || !q.name ? _("Anonymous") : q.name, about ? " · " + _("About: %(t)s", { t: about }) : ""),
        q.status === "answered" || q.answer
          ? h("p", { class: "answer" }, h("b", null, _("Answer") + ": "), q.answer || _("Answered live"))
          : null));
  }
  function renderQuestions() {
    const qs = sorted();
    const hl = qs.find((q) => String(q.id) === String(qa.highlighted));
    const rest = qs.filter((q) => q !== hl);
    const items = (hl ? [hl] : []).concat(rest).map(questionEl);
    list.replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, _("No questions yet: ask the first one!"))]));
    if (V.root.dataset.status === "ended" && !openAfterEnd) for (const b of list.querySelectorAll("[data-vote]")) b.disabled = true;
  }
  function setQuestion(q) {
    if (q.hidden) qa.questions.delete(String(q.id));
    else qa.questions.set(String(q.id), q);
  }
  function rememberVotes() {
    try { localStorage.setItem(VOTED_KEY, JSON.stringify([...qa.voted])); } catch (e) { /* private mode */ }
  }

  list.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-vote]");
    if (!b) return;
    const id = b.dataset.vote;
    const up = !qa.voted.has(id);
    b.disabled = true;
    try {
      const r = await live.send("question.vote", { id: isNaN(Number(id)) ? id : Number(id), up });
      if (r.voted) qa.voted.add(id); else qa.voted.delete(id);
      rememberVotes();
      const q = qa.questions.get(id);
      if (q && r.votes != null) q.votes = r.votes;
      renderQuestions();
      const again = list.querySelector('[data-vote="' + CSS.escape(id) + '"]');
      if (again) again.focus();
    } catch (err) {
      JC.toast(err.text(), "error");
      b.disabled = false;
    }
  });

  function fillOpenings() {
    const cur = askOpening.value;
    const first = askOpening.options[0];
    askOpening.replaceChildren(first, ...V.visibleOpenings().map((o) => h("option", { value: o.id }, o.title + " · " + ((o.employer && o.employer.name) || ""))));
    askOpening.value = cur;
    if (askOpening.value !== cur) askOpening.value = "";
  }
  document.addEventListener("jc:openings", () => { fillOpenings(); renderQuestions(); });

  askForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = askText.value.trim();
    askError.textContent = "";
    if (!text) { askError.textContent = _("Write your question first"); askText.focus(); return; }
    const data = { text, anonymous: askAnon.checked };
    if (askOpening.value) data.opening_id = askOpening.value;
    const btn = askForm.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const q = await live.send("question.ask", data);
      askText.value = "";
      if (q && q.id != null) { qa.mine.add(String(q.id)); setQuestion(q); renderQuestions(); }
      JC.toast(_("Question sent"));
    } catch (err) {
      if (err.code === "held") {
        askText.value = "";
        note(askError, _("Your question was sent and will appear once a moderator approves it"));
        // the notice goes once the question is shown (question.updated), not only with time
        if (err.extra.question_id != null) { heldQuestion = String(err.extra.question_id); qa.mine.add(heldQuestion); }
      }
      else showError(askError, err);
    } finally {
      btn.disabled = false;
      renderClosed();
    }
  });

  // -- the pinned message and the room closing with the broadcast ---------------------------------
  const pinnedBox = document.getElementById("chat-pinned");
  function renderPinnedMessage(m) {
    pinnedBox.hidden = !m;
    if (m) pinnedBox.replaceChildren(h("span", { class: "pin-label" }, _("Pinned by the host")), " ", h("span", { class: "who" }, m.name), " ", h("span", { class: "text" }, m.text));
    else pinnedBox.replaceChildren();
  }
  function renderClosed() {
    const closed = V.root.dataset.status === "ended" && !openAfterEnd;
    for (const el of [chatText, chatForm.querySelector("button[type=submit]"), askText, askForm.querySelector("button[type=submit]")]) {
      if (closed) el.disabled = true;
      else if (!chatText.dataset.paused || (el !== chatText && el.form !== chatForm)) el.disabled = false;
    }
    document.getElementById("chat-closed").hidden = !closed;
    document.getElementById("qa-closed").hidden = !closed;
    for (const b of list.querySelectorAll("[data-vote]")) b.disabled = closed;
  }
  document.addEventListener("jc:status", renderClosed);
  live.on("chat.pinned", (d) => renderPinnedMessage(d.message));
  live.on("chat.settings", (d) => { if ("open_after_end" in d) { openAfterEnd = !!d.open_after_end; renderClosed(); } });

  // -- events --------------------------------------------------------------------------------------
  live.on("snapshot", (d) => {
    if ("chat_pinned" in d) renderPinnedMessage(d.chat_pinned);
    if (d.chat_settings) { openAfterEnd = !!d.chat_settings.open_after_end; renderClosed(); }
    const hasChat = "chat" in d;
    showFeature("chat", hasChat);
    showFeature("questions", "questions" in d);
    if (hasChat) {
      chat.messages.clear();
      chat.order = [];
      for (const m of d.chat || []) addMessage(m);
      renderChat();
    }
    if ("questions" in d) {
      qa.questions.clear();
      for (const q of d.questions || []) setQuestion(q);
      qa.highlighted = d.highlighted_question != null ? d.highlighted_question : null;
      renderQuestions();
    }
  });
  live.on("chat.message", (m) => { if (addMessage(m)) renderChat(); });
  live.on("chat.messages", (d) => {
    let changed = false;
    for (const m of d.messages || []) changed = addMessage(m) || changed;
    if (changed) renderChat();
  });
  live.on("chat.hidden", (d) => {
    const id = String(d.id);
    if (chat.messages.delete(id)) { chat.order = chat.order.filter((x) => x !== id); renderChat(); }
    if (sent.has(id)) note(chatError, _("A moderator removed your message"));  // not in silence
  });
  live.on("question.updated", (q) => {
    setQuestion(q);
    renderQuestions();
    if (heldQuestion != null && String(q.id) === heldQuestion) {
      heldQuestion = null;
      askError.textContent = "";
      JC.toast(_("Your question was approved and is shown"));
    }
  });
  live.on("question.hidden", (d) => { qa.questions.delete(String(d.id)); renderQuestions(); });
  live.on("question.votes", (d) => {
    for (const [id, n] of Object.entries(d.votes || {})) { const q = qa.questions.get(String(id)); if (q) q.votes = n; }
    renderQuestions();
  });
  live.on("question.highlighted", (d) => { qa.highlighted = d.id != null ? d.id : null; renderQuestions(); });
  // Errors not answering a request: a time-out or a ban told to this viewer.
  live.on("error", (d) => {
    if (d.code === "unmuted") { resumeComposer(); note(chatError, _("You can write again")); return; }
    if (d.code === "rejected") {  // one of this viewer's held items was not approved
      if (d.item === "question") {
        if (heldQuestion === String(d.id)) heldQuestion = null;
        qa.mine.delete(String(d.id));
        note(askError, _("A moderator did not approve your question"));
      } else note(chatError, _("A moderator did not approve your message"));
      return;
    }
    showError(chatError, d);
    JC.toast(JC.errorText(d), "error");
    if ((d.code === "muted" || d.code === "timed_out") && d.until) pauseComposer(Number(d.until));
    if (d.code === "banned") pauseComposer(Infinity);
  });
  // Timed out (or banned): the composer says so and takes no text until the time is up.
  let pauseTimer = null;
  function pauseComposer(until) {
    const send = chatForm.querySelector("button[type=submit]");
    chatText.disabled = send.disabled = true;
    chatText.dataset.paused = "1";
    chatText.placeholder = JC.errorText(until === Infinity ? { code: "banned" } : { code: "muted", until });
    clearTimeout(pauseTimer);
    if (until !== Infinity) pauseTimer = setTimeout(resumeComposer, Math.max(0, until - Date.now()));
  }
  function resumeComposer() {
    clearTimeout(pauseTimer);
    delete chatText.dataset.paused;
    chatText.disabled = chatForm.querySelector("button[type=submit]").disabled = false;
    chatText.placeholder = _("Say something…");
    chatError.textContent = "";
    renderClosed();
  }
})();
