// HLS playback on the viewer's stage: `new JC.HlsPlayback(video, url, {onFatal}).start()`.
// player.js loads this file, and vendor/hls.light.min.js where MediaSource exists, only when a
// viewer needs HLS (never for WebRTC viewers). hls.js plays wherever MediaSource exists, so
// every browser gets the same latency target (three segments behind the live edge) and the
// same error recovery; the browser's own HLS plays only where there is no MediaSource (older
// iPhones). No words here: the stage's texts are player.js's, which the page's dictionary holds.
"use strict";
(function () {
  const JC = (window.JC = window.JC || {});

  const HLS_CONFIG = {
    enableWorker: false,   // the page's CSP allows scripts from 'self' only: no blob: workers
    lowLatencyMode: false, // the playlists are plain HLS (no parts)
    backBufferLength: 30,  // seconds kept behind the position: a phone's memory, a long fair
  };
  const MEDIA_RECOVERIES = 2;  // hls.js media-error recoveries before a new player is tried

  class HlsPlayback {
    constructor(video, url, opts) {
      this.video = video;
      this.url = url;
      this.opts = opts || {};
      this.hls = null;
      this.engine = null;  // "hls.js" | "native"
      this.recoveries = 0;
      this.onError = null;
    }

    // Starts playing; false when this browser can play HLS in neither way.
    start() {
      const Hls = window.Hls;
      if (Hls && Hls.isSupported()) return this._hlsjs(Hls);
      if (this.video.canPlayType("application/vnd.apple.mpegurl")) return this._native();
      return false;
    }

    _hlsjs(Hls) {
      const hls = new Hls(HLS_CONFIG);
      this.hls = hls;
      this.engine = "hls.js";
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal || this.hls !== hls) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR && this.recoveries < MEDIA_RECOVERIES) {
          this.recoveries += 1;
          hls.recoverMediaError();
          return;
        }
        // A playlist not written yet (404 for the first second of a stream), the network
        // gone, a decoder that keeps failing: the player starts over with backoff.
        this._fatal(data.details || data.type);
      });
      hls.loadSource(this.url);
      hls.attachMedia(this.video);
      return true;
    }

    _native() {
      const v = this.video;
      this.engine = "native";
      this.onError = () => this._fatal("media_error_" + (v.error ? v.error.code : 0));
      v.addEventListener("error", this.onError);
      v.src = this.url;
      return true;
    }

    _fatal(code) {
      const cb = this.opts.onFatal;
      this.stop();
      if (cb) cb(code);
    }

    // Seconds behind the live edge as hls.js measures them, or null: before the first
    // playlist, or with the browser's own HLS (which does not say).
    latency() {
      const lat = this.hls ? this.hls.latency : 0;
      return lat > 0 ? lat : null;
    }

    stop() {
      const hls = this.hls;
      this.hls = null;
      if (hls) hls.destroy();  // detaches: the video's source is removed
      if (this.onError) {
        this.video.removeEventListener("error", this.onError);
        this.onError = null;
        this.video.removeAttribute("src");
        this.video.load();
      }
    }
  }

  JC.HlsPlayback = HlsPlayback;
})();
