// The viewer's stage: plays the broadcast over WHEP while its stream is live, shows "not live
// yet / live / ended", reconnects the video with backoff, and has an audio-only mode for
// weak networks (docs/protocol.md, "Media").
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
  const stage = document.getElementById("stage");
  const LOW_KEY = "jc_audio_only";

  class Player {
    constructor() {
      this.stream = { state: "offline" };  // the snapshot's `stream` part / stream.* events
      this.status = (V.root.dataset.status) || "scheduled";
      this.session = null;
      this.want = false;        // should be playing (stream live)
      this.attempt = 0;
      this.timer = null;
      this.phase = "idle";      // idle | connecting | playing | retrying
      this.audioOnly = false;
      try { this.audioOnly = localStorage.getItem(LOW_KEY) === "1"; } catch (e) { /* none */ }
      this.gen = 0;
    }

    setBroadcastStatus(st) {
      this.status = st;
      if (st === "ended") this.setStream({ state: "offline" });
      this.render();
    }

    setStream(s) {
      const wasLive = this.stream.state === "live";
      const session = this.stream.session;
      this.stream = s || { state: "offline" };
      const live = this.stream.state === "live";
      if (live && (!wasLive || this.stream.session !== session || !this.session)) this.restart(true);
      else if (!live) this.stopVideo();
      this.render();
    }

    url() { return this.stream.whep || "/whep/" + encodeURIComponent(V.bid); }

    async restart(fresh) {
      if (fresh) this.attempt = 0;
      this.want = true;
      clearTimeout(this.timer);
      const gen = ++this.gen;
      await this._close();
      if (gen !== this.gen || !this.want) return;
      this.phase = "connecting";
      this.render();
      const s = new JC.WhepSession(this.url(), {
        audioOnly: this.audioOnly,
        onState: (st) => {
          if (gen !== this.gen) return;
          if (st === "connected") { this.attempt = 0; this.phase = "playing"; this.play(); this.render(); }
          if (st === "failed" || st === "closed" || st === "disconnected") this._lost(gen, st);
        },
      });
      this.session = s;
      try {
        const ms = await s.start();
        if (gen !== this.gen) { s.stop(); return; }
        video.srcObject = ms;
      } catch (e) {
        if (gen !== this.gen) return;
        this.session = null;
        this.lastError = e.code || String(e);
        if (e.code === "not_live") { this.phase = "idle"; this.render(); return; }  // wait for stream.live
        this._retry(gen, e.retry_after ? e.retry_after * 1000 : 0);
      }
    }

    _lost(gen, st) {
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

    async _close() {
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
      catch (e) { this.blocked = true; }
      this.render();
    }

    setAudioOnly(on) {
      this.audioOnly = on;
      try { localStorage.setItem(LOW_KEY, on ? "1" : "0"); } catch (e) { /* private mode */ }
      if (this.want) this.restart(true);
      this.render();
    }

    render() {
      const st = this.status;
      const live = this.stream.state === "live";
      let title = "", sub = "";
      if (st === "ended") { title = _("This broadcast has ended"); sub = _("Thank you for watching. The openings stay open until their deadlines."); }
      else if (!live) {
        if (st === "live") { title = _("Live now"); sub = _("Waiting for the host's video…"); }
        else {
          title = _("Not live yet");
          const b = V.state.broadcast;
          sub = b && b.scheduled_at ? _("Starts at %(t)s", { t: JC.dateTime(b.scheduled_at) }) : _("You can already browse the openings below.");
        }
      } else if (this.phase === "connecting") { title = _("Connecting video…"); }
      else if (this.phase === "retrying") { title = _("Video interrupted, reconnecting…"); }
      else if (this.blocked) { title = _("Tap Play to start"); }
      else if (this.audioOnly) { title = _("Audio only"); sub = _("Saving data: the picture is off."); }
      V.showOverlay(title, sub);
      stage.classList.toggle("audio-only", this.audioOnly);
      stage.dataset.phase = live ? this.phase : "offline";
      V.controls.hidden = !live;
      playBtn.textContent = video.paused || this.blocked ? _("Play") : _("Pause");
      muteBtn.textContent = video.muted ? _("Unmute") : _("Mute");
      muteBtn.setAttribute("aria-pressed", String(video.muted));
      lowBtn.setAttribute("aria-pressed", String(this.audioOnly));
      lowBtn.textContent = this.audioOnly ? _("Show video") : _("Audio only");
    }
  }

  const player = new Player();
  V.player = player;

  playBtn.addEventListener("click", () => {
    if (video.paused || player.blocked) player.play(); else { video.pause(); player.render(); }
  });
  muteBtn.addEventListener("click", () => {
    video.muted = !video.muted;
    if (!video.muted && video.paused) player.play();
    player.render();
  });
  lowBtn.addEventListener("click", () => player.setAudioOnly(!player.audioOnly));
  video.addEventListener("playing", () => player.render());
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
