// The live socket client shared by the viewer page and the host console (docs/protocol.md).
// One WebSocket; frames are arrays of events; events with a seq are applied only when newer
// than the last one applied; a snapshot replaces the state and the last seq; reconnects use
// `since` and jittered exponential backoff; actions get a Promise for their ack or error.
"use strict";
(function () {
  const JC = (window.JC = window.JC || {});

  function parseSeq(s) {
    const m = /^(\d+)-(\d+)$/.exec(String(s || ""));
    return m ? [Number(m[1]), Number(m[2])] : null;
  }
  function newer(a, b) { return b === null || a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]); }

  class Live {
    // opts: {path: "/ws/b/ID", name, onStatus(status), pingEvery (ms)}
    constructor(opts) {
      this.opts = opts;
      this.lastSeq = null;
      this.handlers = {};
      this.pending = new Map();
      this.nextId = 1;
      this.attempt = 0;
      this.ws = null;
      this.status = "idle";   // connecting | live | reconnecting | closed
      this.synced = false;
      this.hello = null;
      this.stopped = false;
      this._timer = null;
      this._ping = null;
      this._lastRx = 0;
      window.addEventListener("online", () => this.reconnectNow());
    }

    // on("card.pinned", fn) ; on("*", fn) for every applied event.
    on(type, fn) { (this.handlers[type] = this.handlers[type] || []).push(fn); return this; }

    _emit(type, ev) {
      for (const fn of this.handlers[type] || []) {
        try { fn(ev.data || {}, ev); } catch (e) { console.error("handler for", type, e); }
      }
    }

    _setStatus(s) {
      if (this.status === s) return;
      this.status = s;
      document.documentElement.dataset.live = s;
      if (this.opts.onStatus) this.opts.onStatus(s);
      this._emit("status", { data: { status: s } });
    }

    url() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const q = new URLSearchParams();
      if (this.lastSeq) q.set("since", this.lastSeq[0] + "-" + this.lastSeq[1]);
      if (this.opts.name) q.set("name", this.opts.name);
      const qs = q.toString();
      return proto + "//" + location.host + this.opts.path + (qs ? "?" + qs : "");
    }

    start() {
      this.stopped = false;
      this._open();
      return this;
    }

    _open() {
      clearTimeout(this._timer);
      this._setStatus(this.attempt === 0 && !this.lastSeq ? "connecting" : "reconnecting");
      this.synced = false;
      let ws;
      try { ws = new WebSocket(this.url()); } catch (e) { this._scheduleReconnect(); return; }
      this.ws = ws;
      ws.onopen = () => { this._lastRx = Date.now(); this._startPing(); };
      ws.onmessage = (m) => {
        this._lastRx = Date.now();
        let frame;
        try { frame = JSON.parse(m.data); } catch (e) { return; }
        for (const ev of Array.isArray(frame) ? frame : [frame]) this._handle(ev);
      };
      ws.onclose = (e) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this._stopPing();
        this._failPending("network");
        this._emit("closed", { data: { code: e.code, reason: e.reason } });
        if (this.stopped) { this._setStatus("closed"); return; }
        this._scheduleReconnect(e.code);
      };
    }

    _scheduleReconnect(code) {
      this._setStatus("reconnecting");
      this.attempt += 1;
      // 0.5 s doubling to 30 s, times a random factor in [0.5, 1).
      let base = Math.min(30000, 500 * 2 ** Math.min(this.attempt - 1, 6));
      if (code === 4003 || code === 4029) base = Math.max(base, 10000);
      const delay = base * (0.5 + Math.random() / 2);
      this._timer = setTimeout(() => this._open(), delay);
    }

    reconnectNow() {
      if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
      this.attempt = 0;
      this._open();
    }

    // Drop the socket (e.g. a dead network path) and reconnect with `since`.
    drop() {
      if (this.ws) { try { this.ws.close(4000, "client reconnect"); } catch (e) { /* closed */ } }
    }

    stop() {
      this.stopped = true;
      clearTimeout(this._timer);
      if (this.ws) this.ws.close(1000, "bye");
    }

    _startPing() {
      this._stopPing();
      const every = this.opts.pingEvery || 25000;
      this._ping = setInterval(() => {
        if (!this.ws || this.ws.readyState !== 1) return;
        if (Date.now() - this._lastRx > every * 2.2) { this.drop(); return; }  // silent: dead path
        this.ws.send(JSON.stringify({ type: "ping", data: { t: Date.now() } }));
      }, every);
    }
    _stopPing() { clearInterval(this._ping); this._ping = null; }

    _handle(ev) {
      if (!ev || typeof ev.type !== "string") return;
      switch (ev.type) {
        case "hello":
          this.hello = ev.data || {};
          this._emit("hello", ev);
          return;
        case "snapshot":
          this.lastSeq = parseSeq(ev.seq);
          this._emit("snapshot", ev);
          return;
        case "synced":
          this.synced = true;
          this.attempt = 0;
          this._setStatus("live");
          this._emit("synced", ev);
          return;
        case "ack":
        case "error": {
          const p = ev.id != null ? this.pending.get(String(ev.id)) : null;
          if (p) {
            this.pending.delete(String(ev.id));
            clearTimeout(p.timer);
            if (ev.type === "ack") p.resolve(ev.data || {});
            else p.reject(new JC.ApiError(0, ev.data || {}));
            return;
          }
          this._emit(ev.type, ev);
          return;
        }
      }
      if (ev.seq) {
        const s = parseSeq(ev.seq);
        if (!s) return;
        if (!newer(s, this.lastSeq)) return;  // already applied (replay overlap, snapshot)
        this.lastSeq = s;
      }
      this._emit(ev.type, ev);
      this._emit("*", ev);
    }

    // send("chat.send", {text}) -> Promise of the ack's data; rejects with an ApiError.
    send(type, data, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== 1) {
          reject(new JC.ApiError(0, { code: "network" }));
          return;
        }
        const id = "c" + this.nextId++;
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new JC.ApiError(0, { code: "timeout" }));
        }, timeoutMs || 10000);
        this.pending.set(id, { resolve, reject, timer });
        this.ws.send(JSON.stringify({ type, id, data: data || {} }));
      });
    }

    _failPending(code) {
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new JC.ApiError(0, { code }));
        this.pending.delete(id);
      }
    }
  }

  JC.Live = Live;
  JC.parseSeq = parseSeq;
})();
