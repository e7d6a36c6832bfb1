// 预约: before a scheduled broadcast, a viewer adds it to their calendar (the .ics link) or
// asks this browser to tell them when it goes live (a notification, where the browser allows
// it and the page stays open; nothing is sent from the server).
"use strict";
(function () {
  const JC = window.JC;
  const V = JC.viewer;
  const box = document.getElementById("remind");
  if (!V || !box) return;
  const { _ } = JC;
  const KEY = "jc_remind_" + V.bid;
  const btn = document.getElementById("remind-notify");
  const canNotify = "Notification" in window && Notification.permission !== "denied";
  let wanted = false;
  try { wanted = localStorage.getItem(KEY) === "1"; } catch (e) { /* private mode */ }

  function render() {
    if (!btn) return;
    btn.hidden = !canNotify;
    const on = wanted && Notification.permission === "granted";
    btn.setAttribute("aria-pressed", String(on));
    btn.textContent = on ? _("You will be notified when it starts") : _("Notify me when it starts");
  }
  if (btn) btn.addEventListener("click", async () => {
    if (wanted && Notification.permission === "granted") { wanted = false; }
    else {
      const p = await Notification.requestPermission();
      wanted = p === "granted";
      if (!wanted) JC.toast(_("Notifications are blocked in this browser: add it to your calendar instead"), "error");
    }
    try { if (wanted) localStorage.setItem(KEY, "1"); else localStorage.removeItem(KEY); } catch (e) { /* private mode */ }
    render();
  });
  document.addEventListener("jc:status", (e) => {
    box.hidden = e.detail !== "scheduled";
    if (e.detail !== "live" || !wanted) return;
    wanted = false;
    try { localStorage.removeItem(KEY); } catch (err) { /* private mode */ }
    const title = document.getElementById("title").textContent;
    if (Notification.permission === "granted") {
      try {
        const n = new Notification(_("Live now: %(t)s", { t: title }), { body: _("Tap to watch and apply"), tag: KEY });
        n.onclick = () => { window.focus(); n.close(); };
      } catch (err) { /* some phones allow notifications only from a service worker */ }
    }
    JC.toast(_("Live now: %(t)s", { t: title }));
  });
  render();
})();
