// Shared by every page: translated strings, the JSON API with CSRF and error words, DOM helpers.
"use strict";
(function () {
  const JC = (window.JC = window.JC || {});
  let dict = {};
  try { dict = JSON.parse(document.body.dataset.i18n || "{}"); } catch (e) { dict = {}; }

  // _("Hello %(name)s", {name: "x"}): the page language's text for an English msgid.
  function _(msgid, vars) {
    let s = dict[msgid] || msgid;
    if (vars) s = s.replace(/%\((\w+)\)s/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }
  JC._ = _;
  JC.lang = document.documentElement.lang || "zh-CN";

  // Words for error codes (API and socket). retry_after fills in the seconds.
  function errorText(err) {
    const e = err || {};
    const s = e.retry_after != null ? Math.max(1, Math.ceil(Number(e.retry_after))) : null;
    switch (e.code) {
      case "slow_mode": return _("You are in slow mode, %(s)s s left", { s: s || 1 });
      case "rate_limited": return s ? _("Too fast: try again in %(s)s s", { s: s }) : _("Too fast: please wait a moment");
      case "muted": case "timed_out": {
        if (e.until) return _("A moderator paused your messages until %(t)s", { t: JC.time(e.until) });
        return _("You are timed out for a while");
      }
      case "banned": return _("You can no longer post in this broadcast");
      case "blocked_word": return _("Your message contains a blocked word");
      case "held": return _("Your message is waiting for a moderator");
      case "name_invalid": return _("Choose a name with 1 to 24 visible characters");
      case "name_contact": return _("A name may not hold a phone number, contact or link");
      case "name_reserved": return _("This name is kept for the host and moderators");
      case "invalid": case "bad_json": return _("Please check the marked fields");
      case "too_large": case "too_long": return _("That is too long");
      case "login_required": return _("Please log in");
      case "bad_credentials": return _("Wrong username or password");
      case "host_only": return _("Only the host can do this");
      case "csrf": case "no_viewer": return _("Your session expired: reload the page");
      case "bad_origin": return _("Request refused");
      case "broadcast_not_found": return _("This broadcast does not exist");
      case "broadcast_ended": return _("This broadcast has ended");
      case "chat_closed": return _("The broadcast has ended: chat and questions are closed");
      case "opening_not_found": case "not_found": return _("This opening is no longer available");
      case "opening_closed": return _("Applications for this opening are closed");
      case "deadline_passed": return _("The application deadline has passed");
      case "application_deleted": return _("Your application for this opening was deleted at your request");
      case "idempotency_key_reused": return _("Your details changed: please send the application again");
      case "not_live": return _("The video has not started yet");
      case "viewer_limit": return _("The video is full right now: retrying shortly");
      case "bad_key": case "no_key": return _("The stream key was refused");
      case "publisher_live": return _("Another encoder is already sending video for this broadcast");
      case "unsupported_codec": return _("This browser cannot send a video format the server accepts");
      case "question_not_found": return _("This question is no longer available");
      case "review_not_found": return _("Someone else already decided on this");
      case "staff_only": return _("Only the host can do this");
      case "import_invalid": return _("Some rows have errors: nothing was imported");
      case "too_many_connections": return _("Too many connections from your network");
      case "unavailable": return _("The service is busy: please try again shortly");
      case "network": return _("No connection: check your network and try again");
      case "timeout": return _("No answer from the server: please try again");
      default: return e.message ? _("Something went wrong: %(m)s", { m: e.message }) : _("Something went wrong");
    }
  }
  JC.errorText = errorText;

  // Education levels (openings/models.py EDUCATION), lowest first.
  JC.EDU = [
    ["any", _("Any education")], ["junior_high", _("Junior high school")], ["high_school", _("High school")],
    ["vocational", _("Vocational school")], ["associate", _("Associate degree")], ["bachelor", _("Bachelor's degree")],
    ["master", _("Master's degree")], ["doctorate", _("Doctorate")],
  ];
  JC.eduLabel = (code) => (JC.EDU.find((e) => e[0] === code) || [code, code])[1];

  // Field messages from 422 `fields` that the services use; others are shown as sent.
  const FIELD_WORDS = {
    "required": _("Required"),
    // openings/models.py SALARY_REQUIRED: a salary left out or 面议 (editor and CSV import)
    "enter a salary range; negotiable is not accepted": _("Enter a salary range; 'negotiable' is not accepted"),
    "too long": _("Too long"),
    "must be an object": _("Invalid"),
    "must be a whole number": _("Must be a whole number"),
    "must be true or false": _("Invalid"),
    "unknown field": _("Unknown field"),
    "must be a date like 2026-07-31": _("Use a date like 2026-07-31"),
    "needs a timezone": _("Invalid time"),
    "must be ISO 8601 or unix milliseconds": _("Invalid time"),
  };
  JC.fieldText = function (msg) {
    if (!msg) return "";
    const key = String(msg).trim();
    if (FIELD_WORDS[key]) return FIELD_WORDS[key];
    if (/^(at most|max(imum)?) \d+/.test(key) || /too long/i.test(key)) return _("Too long");
    if (/^required/.test(key)) return _("Required");
    if (/phone|mobile/i.test(key)) return _("Enter a valid mobile number");
    if (/mail/i.test(key)) return _("Enter a valid email address");
    if (/consent|agree/i.test(key)) return _("Please agree to share your details");
    if (/^a year between/.test(key)) return _("Enter a year like 2026");
    if (/^one of /.test(key)) return _("Choose one of the options");
    if (/reload the page/.test(key)) return _("Your session expired: reload the page");
    if (/^must be at least/.test(key)) return _("Must not be below the lower value");
    if (/^must be between/.test(key)) return _("Out of range");
    return key;
  };

  class ApiError extends Error {
    constructor(status, err) {
      super((err && err.message) || "HTTP " + status);
      this.status = status;
      this.code = (err && err.code) || (status ? "http_" + status : "network");
      this.fields = (err && err.fields) || null;
      this.retry_after = err && err.retry_after;
      this.until = err && err.until;
      this.extra = err || {};
    }
    text() { return errorText(this); }
  }
  JC.ApiError = ApiError;

  // JSON API call. opts: {csrf, headers, timeout, raw (body as is), type}
  JC.api = async function (method, path, body, opts) {
    const o = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, o.headers || {});
    if (o.csrf) headers["X-CSRF-Token"] = o.csrf;
    let payload;
    if (body !== undefined && body !== null) {
      if (o.raw) { payload = body; if (o.type) headers["Content-Type"] = o.type; }
      else { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    }
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), o.timeout || 15000);
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, credentials: "same-origin", signal: ctrl.signal });
    } catch (e) {
      throw new ApiError(0, { code: e.name === "AbortError" ? "timeout" : "network", message: String(e) });
    } finally {
      clearTimeout(timer);
    }
    const ctype = resp.headers.get("Content-Type") || "";
    let data = null;
    if (ctype.includes("json")) { try { data = await resp.json(); } catch (e) { data = null; } }
    else if (o.text) { data = await resp.text(); }
    if (!resp.ok) {
      const err = (data && data.error) || { code: "http_" + resp.status, message: resp.statusText };
      if (err.retry_after == null && resp.headers.get("Retry-After")) err.retry_after = Number(resp.headers.get("Retry-After"));
      throw new ApiError(resp.status, err);
    }
    return data;
  };

  // h("li", {class: "x", dataset: {id: 1}, onclick: fn}, "text", child): a new element.
  // Strings become text nodes: nothing a viewer wrote is ever parsed as HTML.
  JC.h = function (tag, attrs) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "dataset") Object.assign(el.dataset, v);
        else if (k === "text") el.textContent = v;
        else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
        else if (v === true) el.setAttribute(k, "");
        else el.setAttribute(k, String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  };
  function append(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { for (const x of c) append(el, x); return; }
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  JC.$ = (sel, root) => (root || document).querySelector(sel);
  JC.$$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  JC.uuid = function () {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
    return x.slice(0, 8) + "-" + x.slice(8, 12) + "-" + x.slice(12, 16) + "-" + x.slice(16, 20) + "-" + x.slice(20);
  };

  JC.time = function (ms) {
    if (!ms) return "";
    const d = new Date(Number(ms));
    return d.toLocaleTimeString(JC.lang, { hour: "2-digit", minute: "2-digit" });
  };
  JC.dateTime = function (ms) {
    if (!ms) return "";
    return new Date(Number(ms)).toLocaleString(JC.lang, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  };

  // An opening past its deadline (the end of its last day, `deadline_ms`): no Apply.
  JC.isClosed = function (o) { return !!(o && o.deadline_ms) && o.deadline_ms < Date.now(); };
  // "1 application" / "3 applications" (one msgid each: zh-CN has no plural).
  JC.applications = function (n) { return n === 1 ? _("1 application") : _("%(n)s applications", { n }); };

  // 1:02:03 / 2:03 from seconds (a replay's length, a chapter's place in it).
  JC.duration = function (seconds) {
    const t = Math.max(0, Math.round(Number(seconds) || 0));
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  };
  JC.bytes = function (n) {
    const units = ["B", "KB", "MB", "GB"];
    let v = Number(n) || 0, i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (i ? v.toFixed(v < 10 ? 1 : 0) : String(v)) + " " + units[i];
  };

  // A short polite message in the page's live region.
  JC.toast = function (text, kind) {
    let box = document.getElementById("toast");
    if (!box) {
      box = JC.h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
      document.body.append(box);
    }
    box.textContent = text;
    box.className = "toast show" + (kind ? " toast-" + kind : "");
    clearTimeout(box._t);
    box._t = setTimeout(() => { box.className = "toast"; }, 4000);
  };
})();
