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
  }

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
