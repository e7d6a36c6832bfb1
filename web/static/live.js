// Live connection for the viewer page: one WebSocket, reconnect with jittered backoff and
// `since`, apply events in seq order, drop what was already seen.
"use strict";
(function () {
  const root = document.getElementById("viewer");
  if (!root) return;
  const bid = root.dataset.bid;
  const conn = document.getElementById("conn");
  const list = document.getElementById("events");
  let lastSeq = null;   // [ms, n]
  let attempt = 0;

  function parseSeq(s) { const [a, b] = s.split("-"); return [Number(a), Number(b)]; }
  function after(a, b) { return b === null || a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]); }
  function seqStr(s) { return s[0] + "-" + s[1]; }

  const handlers = {
    snapshot(ev) { applyBroadcast(ev.data.broadcast); setText("viewers", ev.data.viewers); },
    "broadcast.updated"(ev) { applyBroadcast(ev.data); },
    presence(ev) { setText("viewers", ev.data.viewers); },
  };
  function setText(id, v) { const el = document.getElementById(id); if (el) el.textContent = String(v); }
  function applyBroadcast(b) {
    setText("title", b.title); setText("description", b.description);
    const st = document.getElementById("status");
    if (st) { st.textContent = b.status; st.className = "status status-" + b.status; }
  }
  function log(ev) {
    if (!list || ev.type === "presence") return;
    const li = document.createElement("li");
    li.textContent = ev.type;  // textContent: never parsed as HTML
    list.prepend(li);
    while (list.children.length > 20) list.lastChild.remove();
  }

  function handle(ev) {
    if (ev.type === "snapshot") {
      lastSeq = parseSeq(ev.seq);
    } else if (ev.seq) {
      const s = parseSeq(ev.seq);
      if (!after(s, lastSeq)) return;
      lastSeq = s;
    }
    const h = handlers[ev.type];
    if (h) h(ev);
    log(ev);
    document.dispatchEvent(new CustomEvent("jobcast:event", { detail: ev }));
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = proto + "//" + location.host + "/ws/b/" + encodeURIComponent(bid);
    if (lastSeq) url += "?since=" + seqStr(lastSeq);
    const ws = new WebSocket(url);
    window.jobcastSocket = ws;
    ws.onopen = () => { attempt = 0; conn.hidden = true; };
    ws.onmessage = (m) => {
      let frame;
      try { frame = JSON.parse(m.data); } catch (e) { return; }
      for (const ev of (Array.isArray(frame) ? frame : [frame])) handle(ev);
    };
    ws.onclose = () => {
      conn.hidden = false;
      attempt += 1;
      const base = Math.min(30000, 500 * 2 ** Math.min(attempt, 6));
      setTimeout(connect, base / 2 + Math.random() * base / 2);
    };
  }
  connect();
})();
