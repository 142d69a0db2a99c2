/* The inbox page's live stream: token, EventSource, reconnect from the last cursor, resync
 * after cursor_expired, events applied to the screen.
 */
(function (app) {
  "use strict";

  var state = app.state;
  var $ = app.$;

  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 30000;
  var EVENT_TYPES = [
    "message.created", "message.status", "message.received", "conversation.updated",
    "conversation.deleted", "consent.changed", "lead.updated", "lead.deleted", "leads.imported",
    "optouts.imported"
  ];

  // ---- the live stream ----------------------------------------------------------------------

  function closeStream() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
  }

  function connectStream() {
    if (state.stopped) return;
    app.api("POST", "/v1/stream-tokens").then(function (t) {
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
    var wait = state.reconnectMs || RECONNECT_MIN_MS;
    state.reconnectMs = Math.min(RECONNECT_MAX_MS, wait * 2);
    state.reconnectTimer = setTimeout(reconnect, wait);
  }

  // Before a new stream, ask the feed whether the cursor is still kept (and the key valid).
  function reconnect() {
    if (state.stopped) return;
    if (!state.cursor) { resync(); return; }
    app.api("GET", "/v1/events?limit=1&after=" + encodeURIComponent(state.cursor)).then(connectStream, function (err) {
      if (err.status === 410 || err.status === 400) resync();  // cursor_expired: reload what is shown
      else if (!state.stopped) scheduleReconnect();
    });
  }

  // Start again from the feed's current cursor: the list and the open thread read anew.
  function resync() {
    return app.api("GET", "/v1/events").then(function (data) {
      state.cursor = data && data.next;
      app.resetList();
      var work = [app.loadMore()];
      if (state.openId !== null) work.push(reloadThread());
      return Promise.all(work);
    }).then(connectStream, function (err) {
      if (!state.stopped) { app.reportError(err); scheduleReconnect(); }
    });
  }

  // A resync of the open thread keeps the draft and the compose box's focus.
  function reloadThread() {
    var id = state.openId, gen = state.threadGen;
    return Promise.all([app.api("GET", "/v1/conversations/" + id), app.loadThread(id)]).then(function (res) {
      if (gen !== state.threadGen) return;
      app.setOpen(res[0], true);
      res[1].forEach(app.upsertMessage);
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
        app.upsertMessage(data);
        break;
      case "message.received":
        app.upsertMessage(data);
        if (data.conversation_id === state.openId) {
          var conv = state.open;
          app.announce("New reply from " + (conv ? conv.name || app.formatPhone(conv.phone) : "the lead") + ": " + data.body);
        }
        break;
      case "conversation.updated":
        app.upsertConversation(data);
        if (data.conversation_id === state.openId) app.setOpen(data, false);
        break;
      case "conversation.deleted":
        delete state.convs[data.conversation_id];
        app.removeRow(data.conversation_id);
        app.renderTitle();
        if (data.conversation_id === state.openId) app.closeThread("This conversation was deleted.");
        break;
      case "consent.changed":
        if (state.open && data.phone === state.open.phone) app.refreshOpen();
        break;
      default:
        break;
    }
  }

  app.closeStream = closeStream;
  app.connectStream = connectStream;
  app.scheduleReconnect = scheduleReconnect;
})(window.LeadsmsInbox);
