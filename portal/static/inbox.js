/* The inbox page: a plain client of the portal API (docs/openapi.yaml). No framework, no build step.
 *
 * - The firm's API key comes from the URL fragment (#key=lsk_...), which the browser never
 *   sends to a server; `&user=` optionally names the portal user (default "demo-user").
 * - Every piece of data is put on the page with textContent / createElement: nothing the
 *   API returns is ever parsed as HTML.
 * - The list and the open thread are refreshed every 1.5 s, so delivery statuses and
 *   replies appear without a reload.
 */
(function () {
  "use strict";

  var POLL_MS = 1500;
  var PICKER_DELAY_MS = 200;
  var ERROR_HIDE_MS = 10000;
  var THREAD_PAGE = 200;

  var STATUS_WORDS = {
    queued: "Queued", sending: "Sending", sent: "Sent", delivered: "Delivered",
    undelivered: "Not delivered", failed: "Failed", blocked: "Not sent", received: "Received"
  };

  var state = {
    key: null,
    user: "demo-user",
    demo: false,
    conversations: [],       // as GET /v1/conversations gives them, most recent first
    openId: null,            // the open conversation's id
    open: null,              // GET /v1/conversations/{id} of the open one
    messages: [],            // the open thread, oldest first
    pending: [],             // optimistic bubbles: {tempId, body, created_at, conversation_id}
    sending: false,
    listBusy: false,
    threadBusy: false,
    threadGen: 0,            // bumps when another conversation is opened (drops stale answers)
    pickerSeq: 0,
    pickerTimer: null,
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

  function formatPhone(e164) {
    var m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164 || "");
    return m ? "(" + m[1] + ") " + m[2] + "-" + m[3] : (e164 || "");
  }

  function statusText(message) {
    var word = STATUS_WORDS[message.status] || message.status || "";
    if ((message.status === "undelivered" || message.status === "failed") && message.error_code) {
      word += " (" + message.error_code + ")";
    }
    return word;
  }

  // ---- errors (red, at the top) -----------------------------------------------------------

  function showError(text) {
    $("error-text").textContent = text;
    $("error").hidden = false;
    clearTimeout(state.errorTimer);
    state.errorTimer = setTimeout(hideError, ERROR_HIDE_MS);
  }

  function hideError() {
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
          throw new ApiError(resp.status, data && data.code, message, data);
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, "network", "Cannot reach the server. Is leadsms running?", null);
    });
  }

  function reportError(err) {
    if (err && err.status === 401) {
      showError(err.message + " Check the key in the address (#key=...).");
    } else {
      showError((err && err.message) || "Something went wrong.");
    }
  }

  // ---- conversation list ------------------------------------------------------------------

  function loadList() {
    if (state.listBusy) return Promise.resolve();
    state.listBusy = true;
    return api("GET", "/v1/conversations?limit=100").then(function (data) {
      state.conversations = (data && data.items) || [];
      // A send still in flight keeps its conversation on top until the server has it.
      state.pending.forEach(function (p) {
        if (p.pending) bumpLocally(p.conversation_id, p, true);
      });
      renderList();
    }).catch(reportError).then(function () { state.listBusy = false; });
  }

  function renderList() {
    var list = $("conversation-list");
    var items = state.conversations.map(function (c) {
      var li = el("li", "conversation" + (c.conversation_id === state.openId ? " active" : ""));
      li.dataset.id = String(c.conversation_id);
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      var top = el("div", "conversation-top");
      top.appendChild(el("span", "conversation-name", c.name || formatPhone(c.phone)));
      top.appendChild(el("span", "conversation-time", formatTime(c.last_message_at)));
      li.appendChild(top);
      var last = c.last_message;
      var preview = last ? (last.direction === "out" ? "You: " : "") + last.body : "No messages yet";
      li.appendChild(el("div", "conversation-preview", preview));
      if (!c.can_send && c.notice) {
        li.appendChild(el("span", "tag tag-" + c.notice.level, tagText(c.notice.code)));
      } else if (last && last.direction === "out") {
        li.appendChild(el("span", "tag tag-status status-" + last.status, statusText(last)));
      }
      li.addEventListener("click", function () { openConversation(c.conversation_id); });
      li.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") openConversation(c.conversation_id);
      });
      return li;
    });
    list.replaceChildren.apply(list, items);
    $("list-empty").hidden = items.length > 0;
  }

  function tagText(code) {
    return {
      no_phone: "No phone", pending: "Checking", invalid_phone: "Invalid number", landline: "Landline",
      opted_out: "Opted out", review_opt_out: "Review reply", blocked: "Blocked"
    }[code] || code;
  }

  // Move a conversation to the top of the list at once, as the server will on its next answer.
  function bumpLocally(conversationId, message, quiet) {
    var idx = -1;
    state.conversations.forEach(function (c, i) { if (c.conversation_id === conversationId) idx = i; });
    var conv = idx >= 0 ? state.conversations.splice(idx, 1)[0] : state.open;
    if (!conv) return;
    conv.last_message = message;
    conv.last_message_at = message.created_at;
    state.conversations.unshift(conv);
    if (!quiet) renderList();
  }

  // ---- thread -----------------------------------------------------------------------------

  function openConversation(id) {
    hideError();
    closePicker();
    state.openId = id;
    state.open = null;
    state.messages = [];
    state.pending = [];
    state.threadGen += 1;
    state.threadBusy = false;
    var known = state.conversations.filter(function (c) { return c.conversation_id === id; })[0];
    $("thread-placeholder").hidden = true;
    $("thread-view").hidden = false;
    $("thread-name").textContent = known ? (known.name || formatPhone(known.phone)) : "";
    $("thread-phone").textContent = known ? formatPhone(known.phone) : "";
    $("messages").replaceChildren();
    $("notice").hidden = true;
    $("compose").hidden = true;
    $("demo-reply").hidden = !state.demo;
    renderList();
    setHashConversation(id);
    return refreshThread();
  }

  function refreshThread() {
    if (state.openId === null || state.threadBusy) return Promise.resolve();
    var id = state.openId;
    var gen = state.threadGen;
    state.threadBusy = true;
    return Promise.all([api("GET", "/v1/conversations/" + id), loadThread(id)]).then(function (res) {
      if (gen !== state.threadGen) return;
      state.open = res[0];
      state.messages = res[1];
      renderThread();
    }).catch(function (err) {
      if (gen !== state.threadGen) return;
      reportError(err);
    }).then(function () {
      if (gen === state.threadGen) state.threadBusy = false;
    });
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

  function renderThread() {
    var conv = state.open;
    if (!conv) return;
    $("thread-name").textContent = conv.name || formatPhone(conv.phone);
    $("thread-phone").textContent = formatPhone(conv.phone);

    var box = $("messages");
    var nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    var known = {};
    state.messages.forEach(function (m) { known[m.id] = true; });
    state.pending = state.pending.filter(function (p) { return !(p.id && known[p.id]); });
    var bubbles = state.messages.map(bubble);
    state.pending.forEach(function (p) { bubbles.push(bubble(p)); });
    if (!bubbles.length) bubbles.push(el("li", "thread-empty", "No messages yet."));
    box.replaceChildren.apply(box, bubbles);
    if (nearBottom) box.scrollTop = box.scrollHeight;

    var notice = $("notice");
    if (conv.can_send) {
      notice.hidden = true;
      notice.replaceChildren();
      $("compose").hidden = false;
    } else {
      var n = conv.notice || { level: "info", code: "", text: "This lead can't be texted." };
      notice.className = "notice notice-" + n.level;
      notice.dataset.code = n.code || "";
      notice.textContent = n.text;
      notice.hidden = false;
      $("compose").hidden = true;
    }
  }

  function bubble(m) {
    var li = el("li", "bubble " + (m.direction === "in" ? "bubble-in" : "bubble-out"));
    if (m.id) li.dataset.id = String(m.id);
    if (m.pending) li.classList.add("bubble-pending");
    li.appendChild(el("div", "bubble-body", m.body));
    var meta = el("div", "bubble-meta");
    meta.appendChild(el("span", "bubble-time", formatTime(m.created_at)));
    if (m.direction === "out") {
      var status = el("span", "bubble-status status-" + (m.pending ? "sending" : m.status),
                      m.pending ? "Sending…" : statusText(m));
      if (m.error_message) status.title = m.error_message;
      if (m.blocked_reason) status.title = m.blocked_reason;
      meta.appendChild(status);
      if (m.sent_by) meta.appendChild(el("span", "bubble-by", m.sent_by));
    }
    li.appendChild(meta);
    return li;
  }

  // ---- sending ----------------------------------------------------------------------------

  function send() {
    var input = $("compose-input");
    var text = input.value;
    if (state.sending || !text.trim() || state.openId === null) return;
    var id = state.openId;
    var gen = state.threadGen;
    var optimistic = {
      pending: true, direction: "out", body: text.trim(), created_at: new Date().toISOString(),
      conversation_id: id, status: "queued"
    };
    state.pending.push(optimistic);
    setSending(true);
    input.value = "";
    renderThread();
    bumpLocally(id, optimistic);
    $("messages").scrollTop = $("messages").scrollHeight;

    api("POST", "/v1/conversations/" + id + "/messages", { body: text }, { "X-User-Id": state.user })
      .then(function (message) {
        optimistic.pending = false;
        Object.keys(message).forEach(function (k) { optimistic[k] = message[k]; });
        if (gen === state.threadGen) renderThread();
        bumpLocally(id, message);
      })
      .catch(function (err) {
        state.pending = state.pending.filter(function (p) { return p !== optimistic; });
        if (gen === state.threadGen) {
          if (!input.value) input.value = text;  // give the text back, to retry
          renderThread();
        }
        reportError(err);
        loadList();
        if (err.status === 409) refreshThread();  // the notice replaces the compose box
      })
      .then(function () {
        setSending(false);
        if (gen === state.threadGen) input.focus();
      });
  }

  function setSending(on) {
    state.sending = on;
    var button = $("send");
    button.disabled = on;
    button.textContent = on ? "Sending..." : "Send";
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

  function startConversation(leadId) {
    api("POST", "/v1/conversations", { lead_id: leadId }).then(function (conv) {
      closePicker();
      var exists = state.conversations.some(function (c) { return c.conversation_id === conv.conversation_id; });
      if (!exists) state.conversations.unshift(conv);
      openConversation(conv.conversation_id);
      loadList();
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
      input.value = "";
      return Promise.all([refreshThread(), loadList()]);
    }).catch(reportError).then(function () { button.disabled = false; });
  }

  function detectDemo() {
    return fetch("/demo/status").then(function (resp) {
      state.demo = resp.ok;
      $("demo-badge").hidden = !resp.ok;
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

  function poll() {
    var work = [loadList()];
    if (state.openId !== null) work.push(refreshThread());
    Promise.all(work).then(function () { setTimeout(poll, POLL_MS); });
  }

  function start() {
    var hash = readHash();
    $("error-close").addEventListener("click", hideError);
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

    $("compose").addEventListener("submit", function (ev) { ev.preventDefault(); send(); });
    $("compose-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
    $("new-conversation").addEventListener("click", function () {
      if ($("picker").hidden) openPicker(); else closePicker();
    });
    $("picker-input").addEventListener("input", onPickerInput);
    $("picker-input").addEventListener("keydown", function (ev) { if (ev.key === "Escape") closePicker(); });
    $("demo-reply").addEventListener("submit", function (ev) { ev.preventDefault(); demoReply(); });

    detectDemo().then(function () {
      var first = hash.conversation && /^\d+$/.test(hash.conversation) ? Number(hash.conversation) : null;
      if (first !== null) openConversation(first);
      poll();
    });
  }

  start();
})();
