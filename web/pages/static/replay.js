// The replay on the viewer page: once the broadcast has ended, the stage plays the whole
// stream (its HLS playlist, GET /api/broadcasts/{id}/replay) from the start, with the openings
// presented listed as chapters. Tapping one seeks to where it was presented; the card beside
// the player follows the position, with its Apply button (closed past its deadline, as the
// card says), and under it the opening's answered questions. docs/protocol.md, "HLS".
"use strict";
(function () {
  const JC = window.JC;
  const V = JC.viewer;
  if (!V || !V.loadHls) return;
  const { _, h } = JC;
  const video = document.getElementById("video");
  const stage = document.getElementById("stage");
  const box = document.getElementById("replay");
  const list = document.getElementById("chapters");
  const slot = document.getElementById("pinned-slot");
  if (!box || !list) return;

  let replay = null;     // the API's answer
  let playback = null;   // the JC.HlsPlayback
  let current = null;    // the chapter whose card shows
  let started = false;

  function chapterAt(t) {
    let found = null;
    for (const c of replay.chapters) if (c.offset <= t + 0.25) found = c;
    return found;
  }

  function showCard(c) {
    if (c === current) return;
    current = c;
    for (const li of list.children) li.classList.toggle("current", !!c && li.dataset.opening === c.opening_id && Number(li.dataset.offset) === c.offset);
    if (!c) { slot.replaceChildren(); return; }
    const card = V.cardElement(c.opening, true);
    const label = card.querySelector(".pin-label");
    if (label) label.textContent = _("Presented at %(t)s", { t: JC.duration(c.offset) });
    slot.replaceChildren(card);
    showFaq(c.opening_id, card);
  }

  // The chapter's answered questions (GET .../openings/{oid}/faq) under its card, and a link
  // to the opening's own page; fetched once per opening.
  const faqs = new Map();
  async function showFaq(oid, card) {
    if (!faqs.has(oid)) {
      const path = "/api/broadcasts/" + encodeURIComponent(V.bid) + "/openings/" + encodeURIComponent(oid) + "/faq";
      faqs.set(oid, V.api("GET", path).then((r) => r.questions, () => []));
    }
    const items = await faqs.get(oid);
    if (!card.isConnected || !items.length) return;
    const dl = h("dl", { class: "replay-faq", dataset: { faq: oid } });
    for (const q of items) dl.append(h("dt", {}, q.text), h("dd", {}, q.answer));
    const more = h("a", { href: "/b/" + encodeURIComponent(V.bid) + "/o/" + encodeURIComponent(oid) + "#faq" }, _("Questions about this job"));
    card.append(dl, h("p", { class: "hint" }, more));
  }

  async function seek(c) {
    if (!playback) await start();
    video.currentTime = c.offset;
    showCard(c);
    try { await video.play(); } catch (e) { /* autoplay refused: the controls play */ }
  }

  function renderList() {
    list.replaceChildren(...replay.chapters.map((c) =>
      h("li", { dataset: { opening: c.opening_id, offset: String(c.offset) } },
        h("button", { type: "button", class: "chapter", onclick: () => seek(c) },
          h("span", { class: "at" }, JC.duration(c.offset)), " ",
          h("span", { class: "title" }, c.title)))));
    box.querySelector(".replay-length").textContent = _("Replay, %(d)s", { d: JC.duration(replay.duration) });
    box.hidden = false;
    document.getElementById("chapters-empty").hidden = replay.chapters.length > 0;
  }

  async function start() {
    if (playback || !replay) return;
    await V.loadHls();
    playback = new JC.HlsPlayback(video, replay.playlist, {
      onFatal: () => { playback = null; V.showOverlay(_("The replay could not be played"), _("It may have been deleted.")); },
    });
    if (!playback.start()) { playback = null; return; }
    video.controls = true;
    stage.dataset.mode = "replay";
    V.showOverlay("", "");
    V.controls.hidden = true;
  }

  async function load() {
    if (started) return;
    started = true;
    try { replay = await V.api("GET", "/api/broadcasts/" + encodeURIComponent(V.bid) + "/replay"); }
    catch (e) { started = false; return; }  // none (404), or the network: the page stays as it is
    if (!replay.segments) return;
    if (V.player) V.player.replaying = true;
    V.replayOwnsCard = true;
    renderList();
    await start();
    showCard(chapterAt(0));
  }

  video.addEventListener("timeupdate", () => { if (replay && playback) showCard(chapterAt(video.currentTime)); });
  V.onStatus = (st) => { if (st === "ended") load(); };
  if (V.root.dataset.status === "ended") load();
  V.replay = { load, seek: (i) => seek(replay.chapters[i]) };
})();
