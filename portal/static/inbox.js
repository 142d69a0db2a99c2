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

  var PICKER_DELAY_MS = 200;
  var SEARCH_DELAY_MS = 250;
  var ERROR_HIDE_MS = 10000;
  var LIST_PAGE = 50;
  var THREAD_PAGE = 200;
  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 30000;
  var MAX_BODY_CHARS = 1600;
  var SENDING = "Sending…";  // one word for a message on its way, wherever it shows

  var STATUS_WORDS = {
    scheduled: "Scheduled", canceled: "Canceled", queued: SENDING, sending: SENDING, sent: "Sent",
    delivered: "Delivered", undelivered: "Not delivered", failed: "Failed", blocked: "Not sent",
    received: "Received"
  };
  var EVENT_TYPES = [
    "message.created", "message.status", "message.received", "conversation.updated",
    "conversation.deleted", "consent.changed", "lead.updated", "lead.deleted", "leads.imported",
    "optouts.imported"
  ];

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
    reconnectMs: RECONNECT_MIN_MS,
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
    closeStream();
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

  // ---- the conversation list -----------------------------------------------------------------

  // design.md's list rule: a conversation joins the list once it has a message.
  function listable(c) { return !!(c && c.last_message); }

  function activity(c) {
    var t = Date.parse(c.last_message_at || (c.last_message && c.last_message.created_at) || "");
    return isNaN(t) ? 0 : t;
  }

  // The list's order: most recent activity first, then the higher id (as the server sorts).
  function before(a, b) {
    var ta = activity(a), tb = activity(b);
    return ta !== tb ? ta > tb : a.conversation_id > b.conversation_id;
  }

  // The search's rule (docs/portal-api.md), so a conversation that comes alive while a
  // search is shown joins it only if the server would have listed it.
  function matchesQuery(c) {
    var q = state.query;
    if (q.length < 2) return true;
    var digits = q.replace(/\D/g, "");
    if (digits.length >= 3 && !/\p{L}/u.test(q)) return (c.phone || "").replace(/\D/g, "").indexOf(digits) >= 0;
    return (c.name || "").toLowerCase().indexOf(q.toLowerCase()) >= 0;
  }

  // The lead wrote last and can be answered (a STOP needs no reply: none can be sent).
  function waiting(c) { return !!(c.needs_reply && c.can_send); }

  function listRows() { return Array.prototype.slice.call($("conversation-list").children); }

  function tagText(code) {
    return {
      no_phone: "No phone", pending: "Checking", invalid_phone: "Invalid number", landline: "Landline",
      opted_out: "Opted out", review_opt_out: "Review reply", blocked: "Blocked"
    }[code] || code;
  }

  function makeRow(id) {
    var li = el("li", "conversation");
    li.dataset.id = String(id);
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    var top = el("div", "conversation-top");
    top.appendChild(el("span", "conversation-name"));
    top.appendChild(el("span", "conversation-time"));
    li.appendChild(top);
    li.appendChild(el("div", "conversation-preview"));
    li.appendChild(el("div", "conversation-tags"));
    li.addEventListener("click", function () { openConversation(id); });
    li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") openConversation(id); });
    return li;
  }

  // Bring a row's content up to date in place: the row itself stays (and keeps focus).
  function fillRow(li, c) {
    li.classList.toggle("active", c.conversation_id === state.openId);
    li.classList.toggle("needs-reply", waiting(c));
    setText(li.querySelector(".conversation-name"), c.name || formatPhone(c.phone));
    setText(li.querySelector(".conversation-time"), formatTime(c.last_message_at));
    var last = c.last_message;
    setText(li.querySelector(".conversation-preview"), last ? (last.direction === "out" ? "You: " : "") + last.body : "");
    var tags = li.querySelector(".conversation-tags");
    var want = [];
    if (waiting(c)) want.push(["reply-marker", "Needs reply"]);
    if (!c.can_send && c.notice) want.push(["tag tag-" + c.notice.level, tagText(c.notice.code)]);
    else if (last && last.direction === "out") want.push(["tag tag-status status-" + statusClass(last.status), statusText(last)]);
    var have = Array.prototype.map.call(tags.children, function (t) { return t.className + "|" + t.textContent; });
    if (have.join("\n") !== want.map(function (w) { return w[0] + "|" + w[1]; }).join("\n")) {
      tags.replaceChildren.apply(tags, want.map(function (w) { return el("span", w[0], w[1]); }));
    }
  }

  // Put a row where the order says, moving it only if it is out of place.
  function placeRow(li, c) {
    var list = $("conversation-list");
    var after = null;
    var rows = listRows();
    for (var i = 0; i < rows.length; i++) {
      if (rows[i] === li) continue;
      var other = state.convs[Number(rows[i].dataset.id)];
      if (other && before(c, other)) { after = rows[i]; break; }
    }
    if (li.parentNode === list && li.nextSibling === after) return;
    if (li.parentNode === list && after === null && list.lastElementChild === li) return;
    var focused = document.activeElement === li;
    list.insertBefore(li, after);
    if (focused) li.focus({ preventScroll: true });
  }

  // A conversation as the server now has it: update, add or move its row.
  // `fromPage`: it comes from a list page, in order; otherwise from an event or a send.
  function upsertConversation(c, fromPage) {
    var id = c.conversation_id;
    var known = state.convs[id];
    if (fromPage && known && state.nodes[id]) { renderTitle(); return; }  // an event has newer news
    state.convs[id] = c;
    var li = state.nodes[id];
    if (!listable(c) || !matchesQuery(c)) {
      if (li && !listable(c)) removeRow(id);
      renderTitle();
      return;
    }
    if (!li) {
      if (!fromPage && !state.listDone && !newerThanLoaded(c)) { renderTitle(); return; }  // a later page has it
      li = makeRow(id);
      state.nodes[id] = li;
    }
    fillRow(li, c);
    if (fromPage && !li.parentNode) $("conversation-list").appendChild(li);
    else placeRow(li, c);
    renderListStatus();
    renderTitle();
  }

  function newerThanLoaded(c) {
    var rows = listRows();
    if (!rows.length) return state.listDone;
    var oldest = state.convs[Number(rows[rows.length - 1].dataset.id)];
    return !oldest || before(c, oldest);
  }

  function removeRow(id) {
    var li = state.nodes[id];
    if (li && li.parentNode) li.parentNode.removeChild(li);
    delete state.nodes[id];
    renderListStatus();
  }

  function renderTitle() {
    var n = 0;
    Object.keys(state.convs).forEach(function (id) {
      var c = state.convs[id];
      if (listable(c) && waiting(c)) n += 1;
    });
    var title = (n ? "(" + n + ") " : "") + "Messages · leadsms";
    if (document.title !== title) document.title = title;
  }

  function renderListStatus() {
    var status = $("list-status");
    var empty = $("list-empty");
    var rows = $("conversation-list").children.length;
    if (state.listLoading) {
      setText(status, "Loading conversations…");
      status.hidden = false;
    } else {
      status.hidden = true;
    }
    var none = !state.listLoading && state.listDone && rows === 0;
    empty.hidden = !none;
    if (none) {
      setText(empty, state.query.length >= 2 ? "No conversation matches “" + state.query + "”."
        : "No conversations yet. Start one with “+ New conversation”.");
    }
  }

  function resetList() {
    state.listGen += 1;
    state.listNext = null;
    state.listDone = false;
    state.listLoading = false;
    Object.keys(state.nodes).forEach(function (id) { delete state.nodes[id]; });
    $("conversation-list").replaceChildren();
  }

  // The next page of the list (as the user scrolls, or until the visible part is full).
  function loadMore() {
    if (state.stopped || state.listLoading || state.listDone) return Promise.resolve();
    state.listLoading = true;
    renderListStatus();
    var gen = state.listGen;
    var path = "/v1/conversations?limit=" + LIST_PAGE +
      (state.query.length >= 2 ? "&q=" + encodeURIComponent(state.query) : "") +
      (state.listNext ? "&before=" + encodeURIComponent(state.listNext) : "");
    return api("GET", path).then(function (data) {
      if (gen !== state.listGen) return;
      ((data && data.items) || []).forEach(function (c) { upsertConversation(c, true); });
      state.listNext = data && data.next;
      state.listDone = !state.listNext;
      state.listLoading = false;
      renderListStatus();
      fillList();
    }, function (err) {
      if (gen !== state.listGen) return;
      state.listLoading = false;
      renderListStatus();
      reportError(err);
    });
  }

  // Keep reading pages while the list does not reach below its visible end.
  function fillList() {
    var list = $("conversation-list");
    if (state.listDone || state.listLoading) return;
    if (list.offsetParent === null) return;  // hidden (the thread view on a phone): on return
    if (list.scrollHeight - list.scrollTop - list.clientHeight < 200) loadMore();
  }

  function onListSearch() {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(function () {
      var q = $("list-search").value.trim();
      if (q === state.query) return;
      state.query = q;
      resetList();
      loadMore();
    }, SEARCH_DELAY_MS);
  }

  // A send moves its conversation to the top (and into the list) at once.
  function bumpLocally(id, message) {
    var base = state.convs[id] || state.open;
    if (!base) return null;
    var previous = state.convs[id];
    var copy = {};
    Object.keys(base).forEach(function (k) { copy[k] = base[k]; });
    copy.last_message = { id: message.id || null, direction: "out", body: message.body, status: message.status,
                          created_at: message.created_at, send_at: message.send_at };
    copy.last_message_at = message.created_at;
    copy.needs_reply = false;
    if (state.quiet && copy.notice && copy.notice.code === "quiet_hours") copy.notice = null;
    upsertConversation(copy);
    return previous || null;
  }

  // ---- the thread -------------------------------------------------------------------------

  function openConversation(id) {
    if (state.stopped) return Promise.resolve();
    hideError();
    closePicker();
    if (state.openId !== null) state.drafts[state.openId] = $("compose-input").value;
    state.openId = id;
    state.open = null;
    state.quiet = null;
    state.refusal = null;
    state.messages = {};
    state.bubbles = {};
    state.pending = [];
    state.threadGen += 1;
    var gen = state.threadGen;
    var known = state.convs[id];
    $("thread-placeholder").hidden = true;
    $("thread-view").hidden = false;
    document.body.classList.add("view-thread");
    setText($("thread-name"), known ? (known.name || formatPhone(known.phone)) : "");
    setText($("thread-phone"), known ? formatPhone(known.phone) : "");
    $("messages").replaceChildren();
    $("thread-loading").hidden = false;
    $("notice").hidden = true;
    $("compose").hidden = true;
    $("opt-out").hidden = true;
    $("opt-out-confirm").hidden = true;
    $("demo-reply").hidden = !state.demo;
    $("compose-input").value = state.drafts[id] || "";
    updateMeter();
    Object.keys(state.nodes).forEach(function (cid) {
      state.nodes[cid].classList.toggle("active", Number(cid) === id);
    });
    setHashConversation(id);
    return Promise.all([api("GET", "/v1/conversations/" + id), loadThread(id)]).then(function (res) {
      if (gen !== state.threadGen) return;
      setOpen(res[0], true);
      res[1].forEach(upsertMessage);
      $("thread-loading").hidden = true;
      var box = $("messages");
      box.scrollTop = box.scrollHeight;
      renderEmptyThread();
      if (state.open.can_send) $("compose-input").focus();
    }).catch(function (err) {
      if (gen !== state.threadGen) return;
      $("thread-loading").hidden = true;
      if (err.status === 404) closeThread("This conversation no longer exists.");
      reportError(err);
    });
  }

  function closeThread(text) {
    state.openId = null;
    state.open = null;
    state.threadGen += 1;
    $("thread-view").hidden = true;
    $("thread-placeholder").hidden = false;
    setText($("thread-placeholder"), text || "Select a conversation, or start a new one.");
    document.body.classList.remove("view-thread");
    Object.keys(state.nodes).forEach(function (cid) { state.nodes[cid].classList.remove("active"); });
  }

  // Every page of the thread, oldest first.
  function loadThread(id) {
    var all = [];
    function page(after) {
      var path = "/v1/conversations/" + id + "/messages?limit=" + THREAD_PAGE + (after ? "&after=" + encodeURIComponent(after) : "");
      return api("GET", path).then(function (data) {
        all = all.concat((data && data.items) || []);
        return data && data.next ? page(data.next) : all;
      });
    }
    return page(null);
  }

  // The open conversation's shape: from thread open (`opened`), or from an event or a
  // re-read of the conversation (events carry no quiet_hours notice: thread open's is kept
  // while nothing blocks sending).
  function setOpen(conv, opened) {
    if (opened) {
      state.quiet = conv.can_send && conv.notice && conv.notice.code === "quiet_hours" ? conv.notice : null;
    } else if (!conv.can_send) {
      state.quiet = null;
    }
    state.open = conv;
    if (listable(conv)) {
      var listed = {};
      Object.keys(conv).forEach(function (k) { listed[k] = conv[k]; });
      if (listed.notice && listed.notice.code === "quiet_hours") listed.notice = null;
      upsertConversation(listed);
    } else if (!state.convs[conv.conversation_id]) {
      state.convs[conv.conversation_id] = conv;
    }
    renderHeader();
    renderNotice();
  }

  function renderHeader() {
    var conv = state.open;
    if (!conv) return;
    setText($("thread-name"), conv.name || formatPhone(conv.phone));
    setText($("thread-phone"), formatPhone(conv.phone));
    var optedOut = !conv.can_send && conv.notice && conv.notice.code === "opted_out";
    $("opt-out").hidden = optedOut || !conv.phone || !$("opt-out-confirm").hidden;
    if (optedOut) $("opt-out-confirm").hidden = true;
  }

  function renderNotice() {
    var conv = state.open;
    if (!conv) return;
    var notice = $("notice");
    var n = null;
    var schedule = $("schedule");
    schedule.hidden = true;
    if (!conv.can_send) {
      n = conv.notice || { level: "info", code: "", text: "This lead can't be texted." };
    } else if (state.refusal) {
      n = state.refusal.notice;
      if (state.refusal.next_allowed_at) {
        setText(schedule, "Schedule for " + leadClock(state.refusal.next_allowed_at, state.refusal.timezone));
        schedule.hidden = false;
      }
    } else if (state.quiet) {
      n = state.quiet;
    }
    if (n) {
      notice.className = "notice notice-" + n.level;
      notice.dataset.code = n.code || "";
      setText($("notice-text"), n.text);
      notice.hidden = false;
    } else {
      notice.hidden = true;
      notice.dataset.code = "";
    }
    $("compose").hidden = !conv.can_send;
  }

  function renderEmptyThread() {
    var box = $("messages");
    var empty = box.querySelector(".thread-empty");
    var any = Object.keys(state.bubbles).length + state.pending.length > 0;
    if (!any && !empty && $("thread-loading").hidden) box.appendChild(el("li", "thread-empty", "No messages yet."));
    if (any && empty) box.removeChild(empty);
  }

  function earlier(a, b) {
    var ta = Date.parse(a.created_at), tb = Date.parse(b.created_at);
    return ta !== tb ? ta < tb : a.id < b.id;
  }

  function makeBubble(direction) {
    var li = el("li", "bubble " + (direction === "in" ? "bubble-in" : "bubble-out"));
    li.appendChild(el("div", "bubble-body"));
    var meta = el("div", "bubble-meta");
    meta.appendChild(el("span", "bubble-time"));
    if (direction !== "in") {
      meta.appendChild(el("span", "bubble-status"));
      meta.appendChild(el("span", "bubble-by"));
    }
    li.appendChild(meta);
    return li;
  }

  // Bring a bubble up to date in place: the body's text is set only if it differs, so a
  // selection inside it survives a status change.
  function fillBubble(li, m) {
    if (m.id) li.dataset.id = String(m.id);
    li.classList.toggle("bubble-pending", !!m.pending);
    li.dataset.status = m.pending ? "pending" : (m.status || "");
    setText(li.querySelector(".bubble-body"), m.body);
    setText(li.querySelector(".bubble-time"), formatTime(m.created_at));
    var status = li.querySelector(".bubble-status");
    if (status) {
      var cls = "bubble-status status-" + (m.pending ? "sending" : statusClass(m.status));
      if (status.className !== cls) status.className = cls;
      setText(status, m.pending ? (m.send_at ? "Scheduling…" : SENDING) : statusText(m));
      var title = m.blocked_reason || m.error_message || (m.send_at ? new Date(m.send_at).toString() : "");
      if (status.title !== title) status.title = title;
      setText(li.querySelector(".bubble-by"), m.sent_by || "");
      var cancel = li.querySelector(".bubble-cancel");
      if (m.status === "scheduled" && !m.pending && !cancel) {
        cancel = el("button", "bubble-cancel", "Cancel");
        cancel.type = "button";
        cancel.setAttribute("aria-label", "Cancel this scheduled message");
        cancel.addEventListener("click", function () { cancelScheduled(m.id, cancel); });
        li.querySelector(".bubble-meta").appendChild(cancel);
      } else if (cancel && m.status !== "scheduled") {
        cancel.parentNode.removeChild(cancel);
      }
    }
  }

  function placeBubble(li, m) {
    var box = $("messages");
    var next = null;
    var nodes = box.children;
    for (var i = nodes.length - 1; i >= 0; i--) {
      var id = Number(nodes[i].dataset.id);
      var other = id ? state.messages[id] : null;
      if (nodes[i] === li || !other) continue;
      if (earlier(other, m)) break;
      next = nodes[i];
    }
    if (next === null) {  // after every message; before the sends still on their way
      var firstPending = state.pending.length ? state.pending[0].node : null;
      next = firstPending && firstPending !== li && firstPending.parentNode === box ? firstPending : null;
    }
    if (li.parentNode === box && li.nextSibling === next) return;
    box.insertBefore(li, next);
  }

  // A message as the server now has it (thread read, event, or a send's answer).
  function upsertMessage(m) {
    if (m.conversation_id !== state.openId) return;
    var known = state.messages[m.id];
    if (known && known.updated_at && m.updated_at && Date.parse(known.updated_at) > Date.parse(m.updated_at)) {
      return;  // a read that started before the last event: what is shown is newer
    }
    var node = state.bubbles[m.id];
    var isNew = !node;
    if (!node) {
      var p = takePending(m);
      node = p ? p.node : makeBubble(m.direction);
      state.bubbles[m.id] = node;
    }
    state.messages[m.id] = m;
    fillBubble(node, m);
    var box = $("messages");
    var nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    placeBubble(node, m);
    if (isNew) {
      renderEmptyThread();
      if (nearBottom) box.scrollTop = box.scrollHeight;
    }
  }

  // The optimistic bubble this message is (the same text, still unanswered), if any.
  function takePending(m) {
    if (m.direction !== "out") return null;
    for (var i = 0; i < state.pending.length; i++) {
      var p = state.pending[i];
      if (p.id === null && p.body === m.body) {
        state.pending.splice(i, 1);
        p.id = m.id;
        return p;
      }
    }
    return null;
  }

  function dropPending(p) {
    var i = state.pending.indexOf(p);
    if (i >= 0) state.pending.splice(i, 1);
    if (p.node.parentNode && !(p.id && state.bubbles[p.id] === p.node)) p.node.parentNode.removeChild(p.node);
    renderEmptyThread();
  }

  function cancelScheduled(id, button) {
    button.disabled = true;
    api("DELETE", "/v1/messages/" + id).then(upsertMessage, function (err) {
      button.disabled = false;
      reportError(err);
    });
  }

  // Re-read the open conversation's shape (a small read; the thread is not re-read).
  function refreshOpen() {
    var id = state.openId, gen = state.threadGen;
    if (id === null) return Promise.resolve();
    return api("GET", "/v1/conversations/" + id).then(function (conv) {
      if (gen === state.threadGen) setOpen(conv, true);
    }, reportError);
  }

  // ---- sending ----------------------------------------------------------------------------

  function send(sendAt) {
    var input = $("compose-input");
    var text = input.value.trim();
    if (state.stopped || state.sending || !text || state.openId === null || !state.open) return;
    var id = state.openId;
    var gen = state.threadGen;
    var now = new Date().toISOString();
    var p = { body: text, id: null, node: makeBubble("out") };
    fillBubble(p.node, { pending: true, direction: "out", body: text, created_at: now, send_at: sendAt || null });
    state.pending.push(p);
    $("messages").appendChild(p.node);
    renderEmptyThread();
    $("messages").scrollTop = $("messages").scrollHeight;
    setSending(true);
    input.value = "";
    state.drafts[id] = "";
    updateMeter();
    var previous = bumpLocally(id, { body: text, status: sendAt ? "scheduled" : "queued", created_at: now, send_at: sendAt });
    var payload = { body: text };
    if (sendAt) payload.send_at = sendAt;

    api("POST", "/v1/conversations/" + id + "/messages", payload, { "X-User-Id": state.user })
      .then(function (message) {
        if (gen !== state.threadGen) return;
        if (state.refusal) { state.refusal = null; renderNotice(); }
        if (state.bubbles[message.id] && state.bubbles[message.id] !== p.node) {
          dropPending(p);  // a duplicate inside the window: the message already has its bubble
        } else {
          var i = state.pending.indexOf(p);
          if (i >= 0) state.pending.splice(i, 1);
          p.id = message.id;
          state.bubbles[message.id] = p.node;
        }
        upsertMessage(message);
      })
      .catch(function (err) {
        dropPending(p);
        var conv = state.convs[id];
        if (conv && conv.last_message && conv.last_message.id === null) {  // still our optimistic row
          if (previous) upsertConversation(previous); else removeRow(id);
        }
        if (gen !== state.threadGen) { reportError(err); return; }
        if (!input.value) { input.value = text; updateMeter(); }  // give the text back, to retry
        if (err.code === "quiet_hours" && err.data) {
          state.refusal = { notice: err.data.notice || { level: "info", code: "quiet_hours", text: err.message },
                            next_allowed_at: err.data.next_allowed_at, timezone: err.data.timezone };
          renderNotice();
          announce(err.message);
          return;
        }
        reportError(err);
        if (err.status === 409) refreshOpen();  // the notice replaces the compose box
      })
      .then(function () {
        setSending(false);
        if (gen === state.threadGen && !$("compose").hidden) input.focus();
      });
  }

  function setSending(on) {
    state.sending = on;
    var button = $("send");
    button.disabled = on;
    button.textContent = on ? SENDING : "Send";
    $("schedule").disabled = on;
  }

  // characters, segments and encoding, by the server's rules (segments.js)
  function updateMeter() {
    var text = $("compose-input").value.trim();
    var info = window.LeadsmsSegments.info(text);
    var meter = $("meter");
    var line = info.units + " / " + info.limit + " · " + info.segments + (info.segments === 1 ? " segment" : " segments");
    if (info.encoding === "UCS-2") line += " · Unicode";
    if (info.characters > MAX_BODY_CHARS) line += " · too long: at most " + MAX_BODY_CHARS.toLocaleString("en-US") + " characters";
    setText(meter, line);
    meter.dataset.segments = String(info.segments);
    meter.dataset.encoding = info.encoding;
    meter.dataset.units = String(info.units);
    meter.classList.toggle("meter-over", info.characters > MAX_BODY_CHARS);
    meter.title = info.encoding === "GSM-7" ? "GSM-7: 160 characters in one segment, 153 per segment when split"
      : "Unicode (UCS-2): 70 characters in one segment, 67 per segment when split";
    var hint = $("meter-hint");
    if (info.firstUnicode) {
      setText(hint, "Emoji or special characters switch this text to Unicode: 70 characters per segment (“" +
        info.firstUnicode + "” is the first).");
      hint.hidden = false;
    } else {
      hint.hidden = true;
    }
  }

  // ---- staff opt-out ------------------------------------------------------------------------

  function askOptOut() {
    $("opt-out").hidden = true;
    $("opt-out-confirm").hidden = false;
    $("opt-out-no").focus();
  }

  function keepLead() {
    $("opt-out-confirm").hidden = true;
    renderHeader();
    $("opt-out").focus();
  }

  function optOut() {
    var conv = state.open;
    if (!conv) return;
    var button = $("opt-out-yes");
    button.disabled = true;
    api("POST", "/v1/opt-outs", { phone: conv.phone, reason: "Marked as opted out in the inbox" },
        { "X-User-Id": state.user }).then(function () {
      $("opt-out-confirm").hidden = true;
      return refreshOpen();
    }).catch(reportError).then(function () { button.disabled = false; renderHeader(); });
  }

  // ---- the live stream ----------------------------------------------------------------------

  function closeStream() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
  }

  function connectStream() {
    if (state.stopped) return;
    api("POST", "/v1/stream-tokens").then(function (t) {
      if (state.stopped) return;
      var url = "/v1/events/stream?token=" + encodeURIComponent(t.token) +
        (state.cursor ? "&after=" + encodeURIComponent(state.cursor) : "");
      var source = new EventSource(url);
      state.source = source;
      source.onopen = function () { state.reconnectMs = RECONNECT_MIN_MS; };
      EVENT_TYPES.forEach(function (type) { source.addEventListener(type, onEvent); });
      source.onerror = function () {
        if (state.source !== source) return;
        closeStream();  // reconnect ourselves: the token in the URL is single-use and short-lived
        scheduleReconnect();
      };
    }, function (err) {
      if (!state.stopped) scheduleReconnect(err);
    });
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    var wait = state.reconnectMs;
    state.reconnectMs = Math.min(RECONNECT_MAX_MS, state.reconnectMs * 2);
    state.reconnectTimer = setTimeout(reconnect, wait);
  }

  // Before a new stream, ask the feed whether the cursor is still kept (and the key valid).
  function reconnect() {
    if (state.stopped) return;
    if (!state.cursor) { resync(); return; }
    api("GET", "/v1/events?limit=1&after=" + encodeURIComponent(state.cursor)).then(connectStream, function (err) {
      if (err.status === 410 || err.status === 400) resync();  // cursor_expired: reload what is shown
      else if (!state.stopped) scheduleReconnect();
    });
  }

  // Start again from the feed's current cursor: the list and the open thread read anew.
  function resync() {
    return api("GET", "/v1/events").then(function (data) {
      state.cursor = data && data.next;
      resetList();
      var work = [loadMore()];
      if (state.openId !== null) work.push(reloadThread());
      return Promise.all(work);
    }).then(connectStream, function (err) {
      if (!state.stopped) { reportError(err); scheduleReconnect(); }
    });
  }

  // A resync of the open thread keeps the draft and the compose box's focus.
  function reloadThread() {
    var id = state.openId, gen = state.threadGen;
    return Promise.all([api("GET", "/v1/conversations/" + id), loadThread(id)]).then(function (res) {
      if (gen !== state.threadGen) return;
      setOpen(res[0], true);
      res[1].forEach(upsertMessage);
    });
  }

  function onEvent(ev) {
    var item;
    try { item = JSON.parse(ev.data); } catch (e) { return; }
    if (ev.lastEventId) state.cursor = ev.lastEventId;
    else if (item && item.cursor) state.cursor = String(item.cursor);
    var data = item && item.data;
    if (!data) return;
    switch (ev.type) {
      case "message.created":
      case "message.status":
        upsertMessage(data);
        break;
      case "message.received":
        upsertMessage(data);
        if (data.conversation_id === state.openId) {
          var conv = state.open;
          announce("New reply from " + (conv ? conv.name || formatPhone(conv.phone) : "the lead") + ": " + data.body);
        }
        break;
      case "conversation.updated":
        upsertConversation(data);
        if (data.conversation_id === state.openId) setOpen(data, false);
        break;
      case "conversation.deleted":
        delete state.convs[data.conversation_id];
        removeRow(data.conversation_id);
        renderTitle();
        if (data.conversation_id === state.openId) closeThread("This conversation was deleted.");
        break;
      case "consent.changed":
        if (state.open && data.phone === state.open.phone) refreshOpen();
        break;
      default:
        break;
    }
  }

  // ---- "+ New conversation" ---------------------------------------------------------------

  function openPicker() {
    $("picker").hidden = false;
    $("picker-input").value = "";
    $("picker-results").replaceChildren();
    $("picker-hint").textContent = "Type at least 2 characters.";
    $("picker-hint").hidden = false;
    $("picker-input").focus();
  }

  function closePicker() {
    $("picker").hidden = true;
    state.pickerSeq += 1;
    clearTimeout(state.pickerTimer);
  }

  function onPickerInput() {
    var q = $("picker-input").value.trim();
    var seq = ++state.pickerSeq;
    clearTimeout(state.pickerTimer);
    if (q.length < 2) {
      $("picker-results").replaceChildren();
      $("picker-hint").textContent = "Type at least 2 characters.";
      $("picker-hint").hidden = false;
      return;
    }
    state.pickerTimer = setTimeout(function () {
      api("GET", "/v1/leads/sendable?q=" + encodeURIComponent(q)).then(function (data) {
        if (seq !== state.pickerSeq) return;
        renderPicker((data && data.items) || []);
      }).catch(function (err) {
        if (seq === state.pickerSeq) reportError(err);
      });
    }, PICKER_DELAY_MS);
  }

  function renderPicker(items) {
    var results = $("picker-results");
    var hint = $("picker-hint");
    hint.hidden = items.length > 0;
    hint.textContent = "No lead you can text matches.";
    results.replaceChildren.apply(results, items.map(function (lead) {
      var li = el("li", "picker-item");
      li.dataset.leadId = String(lead.lead_id);
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.appendChild(el("div", "picker-name", lead.name || formatPhone(lead.phone)));
      var detail = [formatPhone(lead.phone), lead.email, lead.event].filter(Boolean).join(" · ");
      li.appendChild(el("div", "picker-detail", detail));
      li.addEventListener("click", function () { startConversation(lead.lead_id); });
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") startConversation(lead.lead_id); });
      return li;
    }));
  }

  // The lead's conversation opens as an empty thread; it joins the list with its first message.
  function startConversation(leadId) {
    api("POST", "/v1/conversations", { lead_id: leadId }).then(function (conv) {
      closePicker();
      if (!state.convs[conv.conversation_id]) state.convs[conv.conversation_id] = conv;
      openConversation(conv.conversation_id);
    }).catch(reportError);
  }

  // ---- demo: the lead replies through the Twilio simulator ----------------------------------

  function demoReply() {
    var input = $("demo-reply-input");
    var text = input.value.trim();
    if (!text || state.openId === null) return;
    var button = $("demo-reply-send");
    button.disabled = true;
    api("POST", "/demo/conversations/" + state.openId + "/reply", { body: text }).then(function () {
      input.value = "";  // the reply arrives through the stream, like any other
    }).catch(reportError).then(function () { button.disabled = false; });
  }

  function loadConfig() {
    return fetch("/inbox/config").then(function (resp) { return resp.ok ? resp.json() : {}; })
      .then(function (config) {
        state.demo = !!(config && config.demo);
        $("demo-badge").hidden = !state.demo;
        if (state.openId !== null) $("demo-reply").hidden = !state.demo;
      }, function () { state.demo = false; });
  }

  // ---- start --------------------------------------------------------------------------------

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { key: params.get("key"), user: params.get("user"), conversation: params.get("conversation") };
  }

  function setHashConversation(id) {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    params.set("conversation", String(id));
    history.replaceState(null, "", "#" + params.toString());
  }

  function wire() {
    $("error-close").addEventListener("click", hideError);
    $("compose").addEventListener("submit", function (ev) { ev.preventDefault(); send(); });
    $("compose-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
    $("compose-input").addEventListener("input", updateMeter);
    $("schedule").addEventListener("click", function () {
      if (state.refusal && state.refusal.next_allowed_at) send(state.refusal.next_allowed_at);
    });
    $("new-conversation").addEventListener("click", function () {
      if ($("picker").hidden) openPicker(); else closePicker();
    });
    $("picker-close").addEventListener("click", function () { closePicker(); $("new-conversation").focus(); });
    $("picker-input").addEventListener("input", onPickerInput);
    $("picker-input").addEventListener("keydown", function (ev) { if (ev.key === "Escape") closePicker(); });
    $("list-search").addEventListener("input", onListSearch);
    $("conversation-list").addEventListener("scroll", fillList, { passive: true });
    window.addEventListener("resize", fillList);
    $("back").addEventListener("click", function () {
      document.body.classList.remove("view-thread");
      fillList();
      var row = state.openId !== null ? state.nodes[state.openId] : null;
      if (row) row.focus(); else $("list-search").focus();
    });
    $("opt-out").addEventListener("click", askOptOut);
    $("opt-out-no").addEventListener("click", keepLead);
    $("opt-out-yes").addEventListener("click", optOut);
    $("demo-reply").addEventListener("submit", function (ev) { ev.preventDefault(); demoReply(); });
  }

  function start() {
    var hash = readHash();
    $("key-entry").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var key = $("key-input").value.trim();
      if (!key) return;
      var params = new URLSearchParams(location.hash.replace(/^#/, ""));
      params.set("key", key);
      location.hash = params.toString();
      location.reload();
    });
    if (!hash.key) {
      $("key-form").hidden = false;
      return;
    }
    state.key = hash.key;
    if (hash.user) state.user = hash.user;
    $("user-label").textContent = "Signed in as " + state.user;
    $("layout").hidden = false;
    wire();
    updateMeter();
    renderListStatus();

    // The feed's cursor first, then what is shown, then the stream from that cursor:
    // whatever changes while the screen loads arrives through the stream.
    loadConfig().then(function () {
      return api("GET", "/v1/events");
    }).then(function (data) {
      state.cursor = data && data.next;
      var first = hash.conversation && /^\d+$/.test(hash.conversation) ? Number(hash.conversation) : null;
      var work = [loadMore()];
      if (first !== null) work.push(openConversation(first));
      return Promise.all(work);
    }).then(connectStream, function (err) {
      if (!state.stopped) { reportError(err); scheduleReconnect(); }
    });
  }

  start();
})();
