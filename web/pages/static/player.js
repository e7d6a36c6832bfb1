// The viewer's stage: plays the broadcast while its stream is live, over WHEP (WebRTC, about a
// second behind) or over HLS (hlsplay.js, a few seconds behind, through any network that
// loads web pages) when the relay is full, when WebRTC does not connect, or when the viewer
// chose stable mode; shows "not live yet / live / ended" and which mode plays, reconnects
// with backoff, and has an audio-only mode for weak networks (docs/protocol.md, "Media").
"use strict";
(function () {
  const JC = window.JC;
  const V = JC.viewer;
  if (!V) return;
  const { _ } = JC;
  const video = document.getElementById("video");
  const playBtn = document.getElementById("play-btn");
  const muteBtn = document.getElementById("mute-btn");
  const lowBtn = document.getElementById("lowbw-btn");
  const stableBtn = document.getElementById("stable-btn");
  const stage = document.getElementById("stage");
  const modeBox = document.getElementById("stage-mode");
  const modeName = document.getElementById("mode-name");
  const modeLag = document.getElementById("mode-lag");
  const LOW_KEY = "jc_audio_only";
  const STABLE_KEY = "jc_stable";
  const CONNECT_WAIT = 5000;  // ms from the WHEP answer for WebRTC to come up, then HLS
  const LAG_EVERY = 2000;     // ms between updates of "N s behind live"

  function stored(key) {
    try { return localStorage.getItem(key) === "1"; } catch (e) { return false; }
  }
  function store(key, on) {
    try { localStorage.setItem(key, on ? "1" : "0"); } catch (e) { /* private mode */ }
  }

  // Scripts loaded on demand (the HLS player), each once; a failed load may be tried again.
  const loading = new Map();
  function loadScript(url) {
    if (!loading.has(url)) {
      loading.set(url, new Promise((resolve, reject) => {
        const el = document.createElement("script");
        el.src = url;
        el.async = true;
        el.onload = () => resolve();
        el.onerror = () => { loading.delete(url); el.remove(); reject(new JC.ApiError(0, { code: "network" })); };
        document.head.appendChild(el);
      }));
    }
    return loading.get(url);
  }
  // hlsplay.js, and hls.js where MediaSource exists (elsewhere the browser plays HLS itself).
  function loadHls() {
    const mse = !!(window.ManagedMediaSource || window.MediaSource);
    return Promise.all([loadScript(stage.dataset.hlsplay), mse ? loadScript(stage.dataset.hlsjs) : null]);
  }

  class Player {
    constructor() {
      this.stream = { state: "offline" };  // the snapshot's `stream` part / stream.* events
      this.status = (V.root.dataset.status) || "scheduled";
      this.session = null;      // the WhepSession while in WebRTC mode
      this.hls = null;          // the HlsPlayback while in HLS mode
      this.want = false;        // should be playing (stream live)
      this.attempt = 0;
      this.timer = null;
      this.upTimer = null;
      this.lagTimer = null;
      this.phase = "idle";      // idle | connecting | playing | retrying
      this.mode = "webrtc";     // what plays or is being tried: webrtc | hls
      this.fallback = null;     // why HLS plays unasked: full (WHEP 503) | no_connect
      this.hlsUnsupported = false;
      this.audioOnly = stored(LOW_KEY);
      this.stable = stored(STABLE_KEY);
      this.gen = 0;
    }

    setBroadcastStatus(st) {
      this.status = st;
      if (st === "ended") this.setStream({ state: "offline" });
      this.render();
    }

    setStream(s) {
      if (this.replaying) return;  // the broadcast ended and replay.js plays the replay
      const wasLive = this.stream.state === "live";
      const session = this.stream.session;
      this.stream = s || { state: "offline" };
      const live = this.stream.state === "live";
      const playing = this.session || this.hls;
      if (live && (!wasLive || this.stream.session !== session || !playing)) this.restart(true);
      else if (!live) this.stopVideo();
      this.render();
    }

    url() { return this.stream.whep || "/whep/" + encodeURIComponent(V.bid); }

    // HLS when the stream has it and the viewer chose it or WebRTC could not serve them.
    hlsWanted() { return !!this.stream.hls && !this.hlsUnsupported && (this.stable || !!this.fallback); }

    async restart(fresh) {
      if (fresh) this.attempt = 0;
      this.want = true;
      clearTimeout(this.timer);
      const gen = ++this.gen;
      await this._close();
      if (gen !== this.gen || !this.want) return;
      this.mode = this.hlsWanted() ? "hls" : "webrtc";
      this.phase = "connecting";
      this.render();
      if (this.mode === "hls") { this._startHls(gen); return; }
      const s = new JC.WhepSession(this.url(), {
        audioOnly: this.audioOnly,
        onState: (st) => {
          if (gen !== this.gen) return;
          if (st === "connected") { clearTimeout(this.upTimer); this.attempt = 0; this.phase = "playing"; this.play(); this.render(); }
          if (st === "failed" || st === "closed" || st === "disconnected") this._lost(gen, st);
        },
      });
      this.session = s;
      try {
        const ms = await s.start();
        if (gen !== this.gen) { s.stop(); return; }
        video.srcObject = ms;
        // No connection a few seconds after the answer: UDP is blocked on this network (some
        // mobile carriers and offices); HLS comes over the same HTTP as the page.
        this.upTimer = setTimeout(() => {
          const pc = s.pc;
          if (gen === this.gen && this.want && !(pc && pc.connectionState === "connected")) this._fallBack(gen, "no_connect");
        }, CONNECT_WAIT);
      } catch (e) {
        if (gen !== this.gen) return;
        this.session = null;
        this.lastError = e.code || String(e);
        if (e.code === "not_live") { this.phase = "idle"; this.render(); return; }  // wait for stream.live
        if (e.status === 503 && this._fallBack(gen, "full")) return;  // the relay is full
        this._retry(gen, e.retry_after ? e.retry_after * 1000 : 0);
      }
    }

    // Play over HLS instead of WebRTC; false (and nothing done) when the stream has no HLS.
    _fallBack(gen, why) {
      if (gen !== this.gen || !this.want || !this.stream.hls || this.hlsUnsupported) return false;
      this.fallback = why;
      this.restart(true);
      return true;
    }

    async _startHls(gen) {
      try { await loadHls(); }
      catch (e) {
        if (gen !== this.gen) return;
        this.lastError = "hls_script";
        this._retry(gen, 0);
        return;
      }
      if (gen !== this.gen || !this.want) return;
      video.srcObject = null;
      const h = new JC.HlsPlayback(video, this.stream.hls, {
        onFatal: (code) => {
          if (gen !== this.gen) return;
          this.lastError = code;
          this._closeHls();
          this._retry(gen, 0);
        },
      });
      if (!h.start()) {  // neither MediaSource nor the browser's own HLS: WebRTC only
        this.hlsUnsupported = true;
        this.restart(true);
        return;
      }
      this.hls = h;
      this.lagTimer = setInterval(() => this.renderMode(), LAG_EVERY);
      this.play();
    }

    _lost(gen, st) {
      // Failed before it ever connected: as good as blocked; HLS if the stream has it.
      if (st === "failed" && this.phase === "connecting" && this._fallBack(gen, "no_connect")) return;
      // "disconnected" may heal by itself; give it a moment before a new session.
      clearTimeout(this._lostTimer);
      const wait = st === "disconnected" ? 4000 : 0;
      this._lostTimer = setTimeout(() => {
        if (gen !== this.gen || !this.want) return;
        const pc = this.session && this.session.pc;
        if (pc && pc.connectionState === "connected") return;
        this._retry(gen, 0);
      }, wait);
    }

    _retry(gen, minDelay) {
      if (gen !== this.gen || !this.want) return;
      this.phase = "retrying";
      this.render();
      this.attempt += 1;
      const base = Math.min(15000, 1000 * 2 ** Math.min(this.attempt - 1, 4));
      const delay = Math.max(minDelay || 0, base * (0.5 + Math.random() / 2));
      this.timer = setTimeout(() => { if (gen === this.gen && this.want) this.restart(false); }, delay);
    }

    _closeHls() {
      clearInterval(this.lagTimer);
      this.lagTimer = null;
      const h = this.hls;
      this.hls = null;
      if (h) h.stop();
    }

    async _close() {
      clearTimeout(this.upTimer);
      this._closeHls();
      const s = this.session;
      this.session = null;
      if (s) await s.stop();
    }

    stopVideo() {
      this.want = false;
      this.gen++;
      clearTimeout(this.timer);
      this.phase = "idle";
      this._close();
      video.srcObject = null;
    }

    async play() {
      try { await video.play(); this.blocked = false; }
      catch (e) {
        // Only a refused autoplay needs a tap; a play() cut short by a new source does not.
        if (e && e.name === "NotAllowedError") this.blocked = true;
      }
      this.render();
    }

    // The video shows pictures: in HLS mode that is when it is playing (WebRTC: connected).
    onPlaying() {
      if (this.mode === "hls" && this.hls && this.phase !== "playing") { this.attempt = 0; this.phase = "playing"; }
      this.blocked = false;
      this.render();
    }

    setAudioOnly(on) {
      this.audioOnly = on;
      store(LOW_KEY, on);
      if (this.want) this.restart(true);
      this.render();
    }

    // Stable mode (HLS) on or off. Off also ends a fallback: a viewer moved to HLS by a full
    // relay or a blocked network may try WebRTC again (and is moved back if it still fails).
    setStable(on) {
      this.stable = on;
      if (!on) this.fallback = null;
      store(STABLE_KEY, on);
      if (this.want) this.restart(true);
      this.render();
    }

    hlsMode() { return this.want && this.mode === "hls"; }

    renderMode() {
      const shown = this.stream.state === "live" && this.phase === "playing";
      modeBox.hidden = !shown;
      if (!shown) return;
      const hls = this.hlsMode();
      modeName.textContent = hls ? _("Stable mode (HLS)") : _("Live (low latency)");
      const lag = hls && this.hls ? this.hls.latency() : null;
      modeLag.hidden = lag == null;
      modeLag.textContent = lag == null ? "" : _("%(s)s s behind live", { s: Math.max(1, Math.round(lag)) });
    }

    render() {
      if (this.replaying) return;  // replay.js has the stage
      const st = this.status;
      const live = this.stream.state === "live";
      const hls = this.hlsMode();
      const audioOnly = this.audioOnly && !hls;
      let title = "", sub = "";
      if (st === "ended") { title = _("This broadcast has ended"); sub = _("Thank you for watching. The openings stay open until their deadlines."); }
      else if (!live) {
        if (st === "live") { title = _("Live now"); sub = _("Waiting for the host's video…"); }
        else {
          title = _("Not live yet");
          const b = V.state.broadcast;
          sub = b && b.scheduled_at ? _("Starts at %(t)s", { t: JC.dateTime(b.scheduled_at) }) : _("You can already browse the openings below.");
        }
      } else if (this.phase === "connecting") {
        title = _("Connecting video…");
        if (hls && this.fallback === "full") sub = _("The low-latency video is full: switching to stable mode");
        else if (hls && this.fallback === "no_connect") sub = _("Your network does not let low-latency video through: switching to stable mode");
      }
      else if (this.phase === "retrying") { title = _("Video interrupted, reconnecting…"); }
      else if (this.blocked) { title = _("Tap Play to start"); }
      else if (audioOnly) { title = _("Audio only"); sub = _("Saving data: the picture is off."); }
      V.showOverlay(title, sub);
      stage.classList.toggle("audio-only", audioOnly);
      stage.dataset.phase = live ? this.phase : "offline";
      stage.dataset.mode = live && this.want ? this.mode : "";
      V.controls.hidden = !live;
      playBtn.textContent = video.paused || this.blocked ? _("Play") : _("Pause");
      muteBtn.textContent = video.muted ? _("Unmute") : _("Mute");
      muteBtn.setAttribute("aria-pressed", String(video.muted));
      lowBtn.setAttribute("aria-pressed", String(audioOnly));
      lowBtn.textContent = audioOnly ? _("Show video") : _("Audio only");
      lowBtn.disabled = hls;  // audio only is a WebRTC choice (HLS sends what it has)
      stableBtn.hidden = !this.stream.hls && !hls;
      stableBtn.setAttribute("aria-pressed", String(this.want ? hls : this.stable));
      this.renderMode();
    }
  }

  const player = new Player();
  V.player = player;
  V.loadHls = loadHls;  // replay.js plays the replay with the same player

  playBtn.addEventListener("click", () => {
    if (video.paused || player.blocked) player.play(); else { video.pause(); player.render(); }
  });
  muteBtn.addEventListener("click", () => {
    video.muted = !video.muted;
    if (!video.muted && video.paused) player.play();
    player.render();
  });
  lowBtn.addEventListener("click", () => player.setAudioOnly(!player.audioOnly));
  stableBtn.addEventListener("click", () => player.setStable(stableBtn.getAttribute("aria-pressed") !== "true"));
  // Full screen: the whole stage (video, mode and controls); iPhones only put the video itself
  // in full screen. Landscape is what a phone turned sideways gets (CSS), full screen or not.
  const fsBtn = document.getElementById("fs-btn");
  if (fsBtn) fsBtn.addEventListener("click", async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else if (stage.requestFullscreen) {
        await stage.requestFullscreen({ navigationUI: "hide" });
        if (screen.orientation && screen.orientation.lock) screen.orientation.lock("landscape").catch(() => {});
      } else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen();
    } catch (e) { /* refused: stay as is */ }
  });
  document.addEventListener("fullscreenchange", () => {
    if (fsBtn) fsBtn.setAttribute("aria-pressed", String(document.fullscreenElement === stage));
  });
  video.addEventListener("playing", () => player.onPlaying());
  video.addEventListener("pause", () => player.render());

  V.live.on("snapshot", (d) => {
    player.status = d.broadcast.status;
    player.setStream(d.stream || { state: "offline" });
  });
  V.live.on("stream.live", (d) => player.setStream(Object.assign({ state: "live" }, d)));
  V.live.on("stream.ended", () => player.setStream({ state: "offline" }));
  window.addEventListener("pagehide", () => player.stopVideo());
  player.render();
})();
