/* The inbox page: a plain client of the portal API (docs/openapi.yaml). No framework, no build step.
 *
 * - The firm's API key comes from the URL fragment (#key=lsk_...), which the browser never
 *   sends to a server; `&user=` optionally names the portal user (default "demo-user").
 * - Every piece of data is put on the page with textContent / createElement: nothing the
 *   API returns is ever parsed as HTML.
 * - Live, without polling: the page reads the list and the open thread once, then follows
 *   the change feed's stream (POST /v1/stream-tokens, then an EventSource on
 *   /v1/events/stream) and applies each event to what is on screen, in place: a list row
 *   or a bubble is updated, never rebuilt, so keyboard focus, a text selection and the
 *   draft survive. A dropped stream reconnects with a fresh token from its last cursor;
 *   a cursor the feed no longer keeps (410 cursor_expired) reloads the screen once.
 *   No timer re-reads anything: the only timers are the error banner's, the search
 *   debounces and the reconnect backoff after a stream error.
 * - A rejected API key (401) stops the page: no more requests, and it says why.
 */
(function () {
  "use strict";

  var ERROR_HIDE_MS = 10000;
  var SENDING = "Sending…";  // one word for a message on its way, wherever it shows

  var STATUS_WORDS = {
    scheduled: "Scheduled", canceled: "Canceled", queued: SENDING, sending: SENDING, sent: "Sent",
    delivered: "Delivered", undelivered: "Not delivered", failed: "Failed", blocked: "Not sent",
    received: "Received"
  };

  var state = {
    key: null,
    user: "demo-user",
    demo: false,
    stopped: false,          // the API key was refused: no more requests
    convs: {},               // id -> the newest conversation shape seen (list, event, open)
    nodes: {},               // id -> its row in the list, while listed
    listNext: null,          // the list's `next` cursor
    listDone: false,
    listLoading: false,
    listGen: 0,              // bumps when the search changes (drops stale pages)
    query: "",
    openId: null,
    open: null,              // the open conversation (thread open's answer, then events)
    quiet: null,             // thread open's quiet_hours notice, while can_send is true
    refusal: null,           // a send refused with quiet_hours: {notice, next_allowed_at, timezone}
    messages: {},            // id -> message of the open thread
    bubbles: {},             // id -> its bubble
    pending: [],             // sends not yet answered: {body, node, id}
    drafts: {},              // conversation id -> unsent text
    threadGen: 0,
    sending: false,
    cursor: null,            // the last event's cursor
    source: null,            // the EventSource
    reconnectMs: 0,          // the stream's next backoff (0: the first)
    reconnectTimer: null,
    pickerSeq: 0,
    pickerTimer: null,
    searchTimer: null,
    errorTimer: null
  };

  var $ = function (id) { return document.getElementById(id); };

  // ---- small DOM helpers (text only) -----------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(node, text) {
    text = text === undefined || text === null ? "" : String(text);
    if (node.textContent !== text) node.textContent = text;  // an unchanged text keeps a selection
  }

  function formatTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var now = new Date();
    if (d.toDateString() === now.toDateString()) {
      return d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
    }
    return d.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  function formatWhen(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var day = d.toDateString() === new Date().toDateString() ? "" :
      d.toLocaleDateString([], { month: "short", day: "numeric" }) + ", ";
    return day + d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  }

  // "8:00 AM" in the lead's zone, as the server's quiet-hours sentence writes it.
  function leadClock(iso, zone) {
    var d = new Date(iso);
    try {
      return d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", timeZone: zone || undefined });
    } catch (e) {
      return d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit" });
    }
  }

  function formatPhone(e164) {
    var m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164 || "");
    return m ? "(" + m[1] + ") " + m[2] + "-" + m[3] : (e164 || "");
  }

  function statusText(message) {
    if (message.status === "scheduled" && message.send_at) return "Scheduled for " + formatWhen(message.send_at);
    var word = STATUS_WORDS[message.status] || message.status || "";
    if ((message.status === "undelivered" || message.status === "failed") && message.error_code) {
      word += " (" + message.error_code + ")";
    }
    return word;
  }

  function statusClass(status) {
    return status === "queued" || status === "sending" ? "sending" : status;
  }

  function announce(text) { setText($("live"), text); }

  // ---- errors (red, at the top) -----------------------------------------------------------

  function showError(text, keep) {
    $("error-text").textContent = text;
    $("error").hidden = false;
    clearTimeout(state.errorTimer);
    if (!keep) state.errorTimer = setTimeout(hideError, ERROR_HIDE_MS);
  }

  function hideError() {
    if (state.stopped) return;
    $("error").hidden = true;
    clearTimeout(state.errorTimer);
  }

  // ---- the API --------------------------------------------------------------------------

  function ApiError(status, code, message, data) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.data = data;
  }

  function api(method, path, body, headers) {
    if (state.stopped) return Promise.reject(new ApiError(401, "stopped", "The API key was refused.", null));
    var opts = { method: method, headers: { "Authorization": "Bearer " + state.key } };
    if (headers) Object.keys(headers).forEach(function (k) { opts.headers[k] = headers[k]; });
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          var message = (data && data.error) || ("The server answered " + resp.status + ".");
          var err = new ApiError(resp.status, data && data.code, message, data);
          if (resp.status === 401) stop(err);
          throw err;
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, "network", "Cannot reach the server. Is leadsms running?", null);
    });
  }

  function reportError(err) {
    if (state.stopped || (err && err.status === 401)) return;  // stop() has said it
    showError((err && err.message) || "Something went wrong.");
  }

  // A refused key will not start working by itself: stop every request and say so.
  function stop(err) {
    if (state.stopped) return;
    state.stopped = true;
    app.closeStream();
    clearTimeout(state.reconnectTimer);
    clearTimeout(state.pickerTimer);
    clearTimeout(state.searchTimer);
    $("layout").hidden = true;
    $("key-form").hidden = false;
    $("key-form-text").textContent = "The server refused this API key (" + (err.message || "401") +
      "), so the inbox has stopped: it sends no more requests. Enter a valid key to open it.";
    showError("The API key was refused. The inbox has stopped; enter a valid key below.", true);
    document.title = "Messages · leadsms";
  }

  var app = window.LeadsmsInbox = { state: state, $: $ };
  app.SENDING = SENDING;
  app.announce = announce;
  app.api = api;
  app.el = el;
  app.formatPhone = formatPhone;
  app.formatTime = formatTime;
  app.hideError = hideError;
  app.leadClock = leadClock;
  app.reportError = reportError;
  app.setText = setText;
  app.statusClass = statusClass;
  app.statusText = statusText;
})();
