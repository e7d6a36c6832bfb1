// The presenter output (/b/{id}/screen): for the screen behind the host, or as an OBS browser
// source. It follows the broadcast live: the card being presented, the question the host
// puts "on screen" (with its answer), and the QR code to join, large enough to read from the
// back of a hall. It only watches (a viewer socket); it never acts.
"use strict";
(function () {
  const JC = window.JC;
  const root = document.getElementById("screen");
  if (!root || !JC.Live) return;
  const { _, h } = JC;
  const bid = root.dataset.bid;
  const cardBox = document.getElementById("screen-card");
  const questionBox = document.getElementById("screen-question");
  const S = { pinned: null, questions: new Map(), highlighted: null, status: root.dataset.status };

  function salary(o) {
    if (!o.salary_min && !o.salary_max) return "";
    const range = o.salary_min === o.salary_max || !o.salary_max ? String(o.salary_min) : o.salary_min + "–" + o.salary_max;
    return range + " " + _("yuan/month");
  }

  function renderCard() {
    const o = S.status !== "ended" && S.pinned && S.pinned.opening;
    cardBox.hidden = !o;
    if (!o) { cardBox.replaceChildren(); return; }
    const emp = o.employer || {};
    cardBox.replaceChildren(
      h("p", { class: "pin-label" }, _("Now presenting")),
      h("h2", { class: "screen-title" }, o.title),
      h("p", { class: "screen-employer" }, emp.name || ""),
      h("p", { class: "screen-facts" }, [o.city, salary(o), _("Hiring %(n)s", { n: o.headcount })].filter(Boolean).join(" · ")));
  }

  function renderQuestion() {
    const q = S.highlighted != null ? S.questions.get(String(S.highlighted)) : null;
    questionBox.hidden = !q;
    if (!q) { questionBox.replaceChildren(); return; }
    questionBox.replaceChildren(
      h("p", { class: "pin-label" }, _("Question")),
      h("p", { class: "screen-q" }, q.text),
      q.answer ? h("p", { class: "screen-a" }, q.answer) : null);
  }

  const live = new JC.Live({ path: "/ws/b/" + encodeURIComponent(bid) });
  live.on("snapshot", (d) => {
    S.status = d.broadcast ? d.broadcast.status : S.status;
    S.pinned = d.pinned || null;
    S.questions.clear();
    for (const q of d.questions || []) S.questions.set(String(q.id), q);
    S.highlighted = d.highlighted_question != null ? d.highlighted_question : null;
    renderCard();
    renderQuestion();
  });
  live.on("broadcast.updated", (b) => { S.status = b.status; renderCard(); });
  live.on("card.pinned", (d) => { S.pinned = d; renderCard(); });
  live.on("card.unpinned", () => { S.pinned = null; renderCard(); });
  live.on("opening.updated", (d) => {
    if (S.pinned && S.pinned.opening && d.opening && S.pinned.opening.id === d.opening.id) { S.pinned.opening = d.opening; renderCard(); }
  });
  live.on("question.updated", (q) => { S.questions.set(String(q.id), q); renderQuestion(); });
  live.on("question.hidden", (d) => { S.questions.delete(String(d.id)); renderQuestion(); });
  live.on("question.highlighted", (d) => { S.highlighted = d.id != null ? d.id : null; renderQuestion(); });
  live.start();
})();
