// Going live from the host console: camera or screen with device choice, sent over WHIP with
// the broadcast's stream key; or the WHIP URL and key to paste into OBS.
"use strict";
(function () {
  const JC = window.JC;
  const H = JC.host;
  if (!H || !document.getElementById("golive")) return;
  const { _, h, $ } = JC;
  const { live, api, bpath, bid } = H;
  const preview = $("#preview");
  const kind = $("#src-kind");
  const vSel = $("#src-video");
  const aSel = $("#src-audio");
  const stateEl = $("#publish-state");
  const pubBtn = $("#publish-btn");
  const stopBtn = $("#unpublish-btn");
  const keyInput = $("#whip-key");
  const KEY = "jc_stream_key_" + bid;

  const G = { stream: null, session: null, streamInfo: { state: "offline" } };
  H.golive = G;

  function say(text) { stateEl.textContent = text; }

  function storedKey() { try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; } }
  function storeKey(k) { try { sessionStorage.setItem(KEY, k); } catch (e) { /* private mode */ } }

  async function newKey() {
    const r = await api("POST", bpath + "/stream-key", {});
    storeKey(r.stream_key);
    keyInput.value = r.stream_key;
    return r.stream_key;
  }

  async function fillDevices() {
    let devs = [];
    try { devs = await navigator.mediaDevices.enumerateDevices(); } catch (e) { return; }
    const fill = (sel, k, none) => {
      const cur = sel.value;
      const list = devs.filter((d) => d.kind === k);
      sel.replaceChildren(...list.map((d, i) => h("option", { value: d.deviceId }, d.label || none + " " + (i + 1))));
      if (list.some((d) => d.deviceId === cur)) sel.value = cur;
    };
    fill(vSel, "videoinput", _("Camera"));
    fill(aSel, "audioinput", _("Microphone"));
    vSel.disabled = kind.value === "screen";
  }

  function stopTracks(s) { if (s) for (const t of s.getTracks()) t.stop(); }

  async function capture() {
    const audio = aSel.value ? { deviceId: { exact: aSel.value } } : true;
    if (kind.value === "screen") {
      const screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
      let mic = null;
      try { mic = await navigator.mediaDevices.getUserMedia({ audio, video: false }); } catch (e) { mic = null; }
      return new MediaStream([...screen.getVideoTracks(), ...(mic ? mic.getAudioTracks() : [])]);
    }
    const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 } };
    if (vSel.value) video.deviceId = { exact: vSel.value };
    return navigator.mediaDevices.getUserMedia({ video, audio });
  }

  async function startPreview() {
    try {
      const s = await capture();
      const old = G.stream;
      G.stream = s;
      preview.srcObject = s;
      if (G.session) await G.session.replace(s);
      stopTracks(old);
      await fillDevices();
      say(G.session ? stateEl.textContent : _("Preview on. Nobody sees it until you go live."));
    } catch (e) {
      say(_("The camera or screen could not be opened: %(m)s", { m: e.message || e.name }));
    }
  }

  async function publish() {
    pubBtn.disabled = true;
    try {
      if (!G.stream) await startPreview();
      if (!G.stream) return;
      say(_("Connecting…"));
      let key = storedKey() || (await newKey());
      for (let attempt = 0; attempt < 2; attempt++) {
        const s = new JC.WhipSession(H.root.dataset.whipUrl, G.stream, {
          headers: { Authorization: "Bearer " + key },
          onState: (st) => {
            if (G.session !== s) return;
            if (st === "connected") say(_("Sending video. Viewers see you live."));
            else if (st === "failed" || st === "disconnected") say(_("The connection to the server dropped: press Go live again."));
          },
        });
        try {
          G.session = s;
          await s.start();
          break;
        } catch (e) {
          G.session = null;
          if ((e.code === "bad_key" || e.code === "no_key") && attempt === 0) { key = await newKey(); continue; }
          throw e;
        }
      }
      pubBtn.hidden = true;
      stopBtn.hidden = false;
      stopBtn.focus();
    } catch (e) {
      say(e.text ? e.text() : String(e));
    } finally {
      pubBtn.disabled = false;
    }
  }

  async function unpublish() {
    const s = G.session;
    G.session = null;
    if (s) await s.stop();
    pubBtn.hidden = false;
    stopBtn.hidden = true;
    say(_("Stopped sending."));
    pubBtn.focus();
  }

  function renderStream() {
    const s = G.streamInfo;
    const words = { live: _("Video: live"), starting: _("Video: starting"), offline: _("Video: off") };
    let text = words[s.state] || s.state;
    if (s.state === "live" && s.codecs) text += " (" + [s.codecs.video, s.codecs.audio].filter(Boolean).join(", ") + ")";
    if (s.state === "live") {
      const hls = {
        on: _("HLS on: viewers past the low-latency relay watch over HLS, and the replay is kept."),
        video_codec: _("No HLS: this encoder sends VP8. Set it to H264 so that every viewer can watch and a replay is kept."),
        audio_only: _("No HLS: the stream has no video."),
        disk_full: _("HLS stopped: the server's disk is full. Low-latency viewers keep watching; HLS resumes when there is space."),
      }[s.hls_state];
      if (hls) text += " · " + hls;
    }
    const el = $("#stream-state");
    el.textContent = text;
    el.classList.toggle("warn", s.state === "live" && s.hls_state !== "on" && s.hls_state !== "off");
    if (typeof pollHealth === "function") pollHealth();
  }

  // Stream health while live: what the publisher sends and how viewers watch, every 3 s.
  const healthEl = $("#stream-health");
  const REASONS = {
    stalled: _("no frames are arriving"), no_video: _("no video"),
    low_fps: _("low frame rate"), rare_keyframes: _("keyframes too rare: set the encoder's keyframe interval to 1-2 s"),
  };
  const VERDICT = { good: _("Stream healthy"), warn: _("Stream: check"), bad: _("Stream: problem") };
  let healthTimer = null;
  function renderHealth(x) {
    const ing = x.ingest || {};
    const v = ing.video, a = ing.audio;
    const parts = [VERDICT[x.verdict] || (x.state === "offline" ? _("Video: off") : _("Measuring…"))];
    if (v) parts.push(_("%(n)s fps", { n: v.fps }), _("video %(n)s kbps", { n: v.kbps }));
    if (v && v.keyframe_s) parts.push(_("keyframe every %(n)s s", { n: v.keyframe_s }));
    if (a) parts.push(_("audio %(n)s kbps", { n: a.kbps }));
    parts.push(_("WebRTC %(a)s · HLS or paused %(b)s", { a: x.viewers.webrtc, b: x.viewers.other }));
    const why = (x.reasons || []).map((r) => REASONS[r] || r);
    healthEl.querySelector(".health-text").textContent = parts.join(" · ") + (why.length ? " (" + why.join(", ") + ")" : "");
    healthEl.dataset.verdict = x.verdict || "off";
    healthEl.hidden = false;
  }
  async function pollHealth() {
    clearTimeout(healthTimer);
    if (G.streamInfo.state === "offline") { healthEl.hidden = true; return; }
    try { if (!document.hidden) renderHealth(await api("GET", bpath + "/stream/health")); } catch (e) { /* next time */ }
    healthTimer = setTimeout(pollHealth, 3000);
  }
  H.pollHealth = pollHealth;

  kind.addEventListener("change", () => { vSel.disabled = kind.value === "screen"; if (G.stream) startPreview(); });
  vSel.addEventListener("change", () => { if (G.stream) startPreview(); });
  aSel.addEventListener("change", () => { if (G.stream) startPreview(); });
  $("#preview-btn").addEventListener("click", startPreview);
  pubBtn.addEventListener("click", publish);
  stopBtn.addEventListener("click", unpublish);
  $("#whip-key-show").addEventListener("click", (e) => {
    const on = keyInput.type === "password";
    keyInput.type = on ? "text" : "password";
    e.currentTarget.setAttribute("aria-pressed", String(on));
    e.currentTarget.textContent = on ? _("Hide") : _("Show");
  });
  $("#whip-key-new").addEventListener("click", async () => {
    if (storedKey() && !confirm(_("Make a new stream key? The old one stops working for new connections."))) return;
    try { await newKey(); keyInput.type = "text"; JC.toast(_("New stream key made: paste it into your encoder")); }
    catch (e) { JC.toast(e.text(), "error"); }
  });
  window.addEventListener("pagehide", () => { if (G.session) G.session.stop(); });

  live.on("snapshot", async (d) => {
    const has = "stream" in d;
    H.showFeature("media", has);
    if (!has) return;
    G.streamInfo = d.stream || { state: "offline" };
    renderStream();
    if (!keyInput.value) {
      keyInput.value = storedKey();
      if (!keyInput.value) {
        try {
          const info = await api("GET", bpath + "/stream-key");
          keyInput.placeholder = info.has_key ? _("Made earlier: press New key to see a new one") : _("None yet: press New key");
        } catch (e) { /* moderators cannot see it */ }
      }
    }
  });
  live.on("stream.live", (d) => { G.streamInfo = Object.assign({ state: "live" }, d); renderStream(); });
  live.on("stream.hls", (d) => {
    G.streamInfo = Object.assign({}, G.streamInfo, { hls_state: d.state });
    renderStream();
    if (d.state === "disk_full") JC.toast(_("HLS stopped: the server's disk is full."), "error");
  });
  live.on("stream.ended", (d) => {
    G.streamInfo = { state: "offline" };
    renderStream();
    if (G.session && d.reason !== "replaced") { G.session.stop(); G.session = null; pubBtn.hidden = false; stopBtn.hidden = true; say(_("The stream ended.")); }
  });
  fillDevices();
})();
