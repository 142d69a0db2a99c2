/* The inbox page's open thread: thread open, bubbles updated in place, the notice, the
 * cancel of a scheduled message.
 */
(function (app) {
  "use strict";

  var state = app.state;
  var $ = app.$;

  var THREAD_PAGE = 200;

  // ---- the thread -------------------------------------------------------------------------

  function openConversation(id) {
    if (state.stopped) return Promise.resolve();
    app.hideError();
    app.closePicker();
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
    app.setText($("thread-name"), known ? (known.name || app.formatPhone(known.phone)) : "");
    app.setText($("thread-phone"), known ? app.formatPhone(known.phone) : "");
    $("messages").replaceChildren();
    $("thread-loading").hidden = false;
    $("notice").hidden = true;
    $("compose").hidden = true;
    $("opt-out").hidden = true;
    $("opt-out-confirm").hidden = true;
    $("demo-reply").hidden = !state.demo;
    $("compose-input").value = state.drafts[id] || "";
    app.updateMeter();
    Object.keys(state.nodes).forEach(function (cid) {
      state.nodes[cid].classList.toggle("active", Number(cid) === id);
    });
    app.setHashConversation(id);
    return Promise.all([app.api("GET", "/v1/conversations/" + id), loadThread(id)]).then(function (res) {
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
      app.reportError(err);
    });
  }

  function closeThread(text) {
    state.openId = null;
    state.open = null;
    state.threadGen += 1;
    $("thread-view").hidden = true;
    $("thread-placeholder").hidden = false;
    app.setText($("thread-placeholder"), text || "Select a conversation, or start a new one.");
    document.body.classList.remove("view-thread");
    Object.keys(state.nodes).forEach(function (cid) { state.nodes[cid].classList.remove("active"); });
  }

  // Every page of the thread, oldest first.
  function loadThread(id) {
    var all = [];
    function page(after) {
      var path = "/v1/conversations/" + id + "/messages?limit=" + THREAD_PAGE + (after ? "&after=" + encodeURIComponent(after) : "");
      return app.api("GET", path).then(function (data) {
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
    if (app.listable(conv)) {
      var listed = {};
      Object.keys(conv).forEach(function (k) { listed[k] = conv[k]; });
      if (listed.notice && listed.notice.code === "quiet_hours") listed.notice = null;
      app.upsertConversation(listed);
    } else if (!state.convs[conv.conversation_id]) {
      state.convs[conv.conversation_id] = conv;
    }
    renderHeader();
    renderNotice();
  }

  function renderHeader() {
    var conv = state.open;
    if (!conv) return;
    app.setText($("thread-name"), conv.name || app.formatPhone(conv.phone));
    app.setText($("thread-phone"), app.formatPhone(conv.phone));
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
        app.setText(schedule, "Schedule for " + app.leadClock(state.refusal.next_allowed_at, state.refusal.timezone));
        schedule.hidden = false;
      }
    } else if (state.quiet) {
      n = state.quiet;
    }
    if (n) {
      notice.className = "notice notice-" + n.level;
      notice.dataset.code = n.code || "";
      app.setText($("notice-text"), n.text);
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
    if (!any && !empty && $("thread-loading").hidden) box.appendChild(app.el("li", "thread-empty", "No messages yet."));
    if (any && empty) box.removeChild(empty);
  }

  function earlier(a, b) {
    var ta = Date.parse(a.created_at), tb = Date.parse(b.created_at);
    return ta !== tb ? ta < tb : a.id < b.id;
  }

  function makeBubble(direction) {
    var li = app.el("li", "bubble " + (direction === "in" ? "bubble-in" : "bubble-out"));
    li.appendChild(app.el("div", "bubble-body"));
    var meta = app.el("div", "bubble-meta");
    meta.appendChild(app.el("span", "bubble-time"));
    if (direction !== "in") {
      meta.appendChild(app.el("span", "bubble-status"));
      meta.appendChild(app.el("span", "bubble-by"));
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
    app.setText(li.querySelector(".bubble-body"), m.body);
    app.setText(li.querySelector(".bubble-time"), app.formatTime(m.created_at));
    var status = li.querySelector(".bubble-status");
    if (status) {
      var cls = "bubble-status status-" + (m.pending ? "sending" : app.statusClass(m.status));
      if (status.className !== cls) status.className = cls;
      app.setText(status, m.pending ? (m.send_at ? "Scheduling…" : app.SENDING) : app.statusText(m));
      var title = m.blocked_reason || m.error_message || (m.send_at ? new Date(m.send_at).toString() : "");
      if (status.title !== title) status.title = title;
      app.setText(li.querySelector(".bubble-by"), m.sent_by || "");
      var cancel = li.querySelector(".bubble-cancel");
      if (m.status === "scheduled" && !m.pending && !cancel) {
        cancel = app.el("button", "bubble-cancel", "Cancel");
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
    app.api("DELETE", "/v1/messages/" + id).then(upsertMessage, function (err) {
      button.disabled = false;
      app.reportError(err);
    });
  }

  // Re-read the open conversation's shape (a small read; the thread is not re-read).
  function refreshOpen() {
    var id = state.openId, gen = state.threadGen;
    if (id === null) return Promise.resolve();
    return app.api("GET", "/v1/conversations/" + id).then(function (conv) {
      if (gen === state.threadGen) setOpen(conv, true);
    }, app.reportError);
  }

  app.closeThread = closeThread;
  app.dropPending = dropPending;
  app.fillBubble = fillBubble;
  app.loadThread = loadThread;
  app.makeBubble = makeBubble;
  app.openConversation = openConversation;
  app.refreshOpen = refreshOpen;
  app.renderEmptyThread = renderEmptyThread;
  app.renderHeader = renderHeader;
  app.renderNotice = renderNotice;
  app.setOpen = setOpen;
  app.upsertMessage = upsertMessage;
})(window.LeadsmsInbox);
