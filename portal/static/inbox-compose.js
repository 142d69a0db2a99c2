/* The inbox page's compose box: sending (optimistic bubble, duplicate merge, quiet-hours
 * refusal), the segment meter, the staff opt-out.
 */
(function (app) {
  "use strict";

  var state = app.state;
  var $ = app.$;

  var MAX_BODY_CHARS = 1600;

  // ---- sending ----------------------------------------------------------------------------

  function send(sendAt) {
    var input = $("compose-input");
    var text = input.value.trim();
    if (state.stopped || state.sending || !text || state.openId === null || !state.open) return;
    var id = state.openId;
    var gen = state.threadGen;
    var now = new Date().toISOString();
    var p = { body: text, id: null, node: app.makeBubble("out") };
    app.fillBubble(p.node, { pending: true, direction: "out", body: text, created_at: now, send_at: sendAt || null });
    state.pending.push(p);
    $("messages").appendChild(p.node);
    app.renderEmptyThread();
    $("messages").scrollTop = $("messages").scrollHeight;
    setSending(true);
    input.value = "";
    state.drafts[id] = "";
    updateMeter();
    var previous = app.bumpLocally(id, { body: text, status: sendAt ? "scheduled" : "queued", created_at: now, send_at: sendAt });
    var payload = { body: text };
    if (sendAt) payload.send_at = sendAt;

    app.api("POST", "/v1/conversations/" + id + "/messages", payload, { "X-User-Id": state.user })
      .then(function (message) {
        if (gen !== state.threadGen) return;
        if (state.refusal) { state.refusal = null; app.renderNotice(); }
        if (state.bubbles[message.id] && state.bubbles[message.id] !== p.node) {
          app.dropPending(p);  // a duplicate inside the window: the message already has its bubble
        } else {
          var i = state.pending.indexOf(p);
          if (i >= 0) state.pending.splice(i, 1);
          p.id = message.id;
          state.bubbles[message.id] = p.node;
        }
        app.upsertMessage(message);
      })
      .catch(function (err) {
        app.dropPending(p);
        var conv = state.convs[id];
        if (conv && conv.last_message && conv.last_message.id === null) {  // still our optimistic row
          if (previous) {
            app.upsertConversation(previous);
          } else {  // it had no message: out of the list again (list rule)
            app.removeRow(id);
            if (state.open && state.open.conversation_id === id) state.convs[id] = state.open;
          }
        }
        if (gen !== state.threadGen) { app.reportError(err); return; }
        if (!input.value) { input.value = text; updateMeter(); }  // give the text back, to retry
        if (err.code === "quiet_hours" && err.data) {
          state.refusal = { notice: err.data.notice || { level: "info", code: "quiet_hours", text: err.message },
                            next_allowed_at: err.data.next_allowed_at, timezone: err.data.timezone };
          app.renderNotice();
          app.announce(err.message);
          return;
        }
        app.reportError(err);
        if (err.status === 409) app.refreshOpen();  // the notice replaces the compose box
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
    button.textContent = on ? app.SENDING : "Send";
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
    app.setText(meter, line);
    meter.dataset.segments = String(info.segments);
    meter.dataset.encoding = info.encoding;
    meter.dataset.units = String(info.units);
    meter.classList.toggle("meter-over", info.characters > MAX_BODY_CHARS);
    meter.title = info.encoding === "GSM-7" ? "GSM-7: 160 characters in one segment, 153 per segment when split"
      : "Unicode (UCS-2): 70 characters in one segment, 67 per segment when split";
    var hint = $("meter-hint");
    if (info.firstUnicode) {
      app.setText(hint, "Emoji or special characters switch this text to Unicode: 70 characters per segment (“" +
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
    app.renderHeader();
    $("opt-out").focus();
  }

  function optOut() {
    var conv = state.open;
    if (!conv) return;
    var button = $("opt-out-yes");
    button.disabled = true;
    app.api("POST", "/v1/opt-outs", { phone: conv.phone, reason: "Marked as opted out in the inbox" },
        { "X-User-Id": state.user }).then(function () {
      $("opt-out-confirm").hidden = true;
      return app.refreshOpen();
    }).catch(app.reportError).then(function () { button.disabled = false; app.renderHeader(); });
  }

  app.askOptOut = askOptOut;
  app.keepLead = keepLead;
  app.optOut = optOut;
  app.send = send;
  app.updateMeter = updateMeter;
})(window.LeadsmsInbox);
