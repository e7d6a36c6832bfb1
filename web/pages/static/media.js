// WebRTC over WHIP (publish) and WHEP (play), RFC 9725: POST an SDP offer as application/sdp,
// get 201 with the answer and a Location to DELETE when done. ICE is gathered before the
// offer is sent (no trickle), which on a LAN or loopback takes a few milliseconds.
"use strict";
(function () {
  const JC = (window.JC = window.JC || {});

  function waitIce(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { pc.removeEventListener("icegatheringstatechange", check); clearTimeout(t); resolve(); };
      const check = () => { if (pc.iceGatheringState === "complete") done(); };
      const t = setTimeout(done, ms || 3000);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // One SDP exchange. Returns {answer, location}; throws JC.ApiError with the server's code.
  async function exchange(url, offerSdp, headers) {
    let resp;
    try {
      resp = await fetch(url, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/sdp", Accept: "application/sdp" }, headers || {}),
        body: offerSdp,
        credentials: "same-origin",
      });
    } catch (e) {
      throw new JC.ApiError(0, { code: "network", message: String(e) });
    }
    if (resp.status !== 201 && resp.status !== 200) {
      let err = { code: "http_" + resp.status, message: resp.statusText };
      try { const j = await resp.json(); if (j && j.error) err = j.error; } catch (e) { /* not JSON */ }
      if (err.retry_after == null && resp.headers.get("Retry-After")) err.retry_after = Number(resp.headers.get("Retry-After"));
      throw new JC.ApiError(resp.status, err);
    }
    const loc = resp.headers.get("Location");
    return { answer: await resp.text(), location: loc ? new URL(loc, new URL(url, location.href)).toString() : null };
  }

  // Offer, gather (no trickle ICE), exchange, answer. The session's URL is kept before the
  // answer is applied, so that stop() can end it on the server even if applying fails.
  async function negotiate(session, pc) {
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    const { answer, location } = await exchange(session.url, pc.localDescription.sdp, session.opts.headers);
    session.location = location;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  async function release(location, headers) {
    if (!location) return;
    try { await fetch(location, { method: "DELETE", headers: headers || {}, credentials: "same-origin", keepalive: true }); }
    catch (e) { /* the session times out on the server */ }
  }

  // Play a broadcast: new WhepSession(url, {audioOnly}).start() -> MediaStream
  class WhepSession {
    constructor(url, opts) {
      this.url = url;
      this.opts = opts || {};
      this.pc = null;
      this.location = null;
      this.stream = new MediaStream();
    }
    async start() {
      const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers || [] });
      this.pc = pc;
      if (!this.opts.audioOnly) pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.ontrack = (e) => { this.stream.addTrack(e.track); if (this.opts.onTrack) this.opts.onTrack(e.track); };
      pc.onconnectionstatechange = () => { if (this.opts.onState) this.opts.onState(pc.connectionState); };
      await negotiate(this, pc);
      return this.stream;
    }
    async stop() {
      const loc = this.location;
      this.location = null;
      if (this.pc) { this.pc.ontrack = null; this.pc.onconnectionstatechange = null; this.pc.close(); this.pc = null; }
      await release(loc, this.opts.headers);
    }
  }

  // Publish: new WhipSession(url, stream, {headers}).start()
  class WhipSession {
    constructor(url, stream, opts) {
      this.url = url;
      this.stream = stream;
      this.opts = opts || {};
      this.pc = null;
      this.location = null;
    }
    async start() {
      const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers || [] });
      this.pc = pc;
      for (const track of this.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      pc.onconnectionstatechange = () => { if (this.opts.onState) this.opts.onState(pc.connectionState); };
      await negotiate(this, pc);
    }
    // Swap the camera for the screen (or back) without a new session.
    async replace(stream) {
      this.stream = stream;
      if (!this.pc) return;
      for (const s of this.pc.getSenders()) {
        const t = stream.getTracks().find((x) => s.track && x.kind === s.track.kind);
        if (t) await s.replaceTrack(t);
      }
    }
    async stop() {
      const loc = this.location;
      this.location = null;
      if (this.pc) { this.pc.onconnectionstatechange = null; this.pc.close(); this.pc = null; }
      await release(loc, this.opts.headers);
    }
  }

  JC.WhepSession = WhepSession;
  JC.WhipSession = WhipSession;
  JC.sdpExchange = exchange;
})();
