/* The inbox page's start: the picker ("+ New conversation"), the demo's "Lead replies",
 * the controls' wiring and the first load. The page's parts are inbox-core.js, -list,
 * -thread, -compose and -stream, loaded before this file; they share window.LeadsmsInbox.
 */
(function (app) {
  "use strict";

  var state = app.state;
  var $ = app.$;

  var PICKER_DELAY_MS = 200;

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
      app.api("GET", "/v1/leads/sendable?q=" + encodeURIComponent(q)).then(function (data) {
        if (seq !== state.pickerSeq) return;
        renderPicker((data && data.items) || []);
      }).catch(function (err) {
        if (seq === state.pickerSeq) app.reportError(err);
      });
    }, PICKER_DELAY_MS);
  }

  function renderPicker(items) {
    var results = $("picker-results");
    var hint = $("picker-hint");
    hint.hidden = items.length > 0;
    hint.textContent = "No lead you can text matches.";
    results.replaceChildren.apply(results, items.map(function (lead) {
      var li = app.el("li", "picker-item");
      li.dataset.leadId = String(lead.lead_id);
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.appendChild(app.el("div", "picker-name", lead.name || app.formatPhone(lead.phone)));
      var detail = [app.formatPhone(lead.phone), lead.email, lead.event].filter(Boolean).join(" · ");
      li.appendChild(app.el("div", "picker-detail", detail));
      li.addEventListener("click", function () { startConversation(lead.lead_id); });
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") startConversation(lead.lead_id); });
      return li;
    }));
  }

  // The lead's conversation opens as an empty thread; it joins the list with its first message.
  function startConversation(leadId) {
    app.api("POST", "/v1/conversations", { lead_id: leadId }).then(function (conv) {
      closePicker();
      if (!state.convs[conv.conversation_id]) state.convs[conv.conversation_id] = conv;
      app.openConversation(conv.conversation_id);
    }).catch(app.reportError);
  }

  // ---- demo: the lead replies through the Twilio simulator ----------------------------------

  function demoReply() {
    var input = $("demo-reply-input");
    var text = input.value.trim();
    if (!text || state.openId === null) return;
    var button = $("demo-reply-send");
    button.disabled = true;
    app.api("POST", "/demo/conversations/" + state.openId + "/reply", { body: text }).then(function () {
      input.value = "";  // the reply arrives through the stream, like any other
    }).catch(app.reportError).then(function () { button.disabled = false; });
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
    $("error-close").addEventListener("click", app.hideError);
    $("compose").addEventListener("submit", function (ev) { ev.preventDefault(); app.send(); });
    $("compose-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        app.send();
      }
    });
    $("compose-input").addEventListener("input", app.updateMeter);
    $("schedule").addEventListener("click", function () {
      if (state.refusal && state.refusal.next_allowed_at) app.send(state.refusal.next_allowed_at);
    });
    $("new-conversation").addEventListener("click", function () {
      if ($("picker").hidden) openPicker(); else closePicker();
    });
    $("picker-close").addEventListener("click", function () { closePicker(); $("new-conversation").focus(); });
    $("picker-input").addEventListener("input", onPickerInput);
    $("picker-input").addEventListener("keydown", function (ev) { if (ev.key === "Escape") closePicker(); });
    $("list-search").addEventListener("input", app.onListSearch);
    $("conversation-list").addEventListener("scroll", app.fillList, { passive: true });
    window.addEventListener("resize", app.fillList);
    $("back").addEventListener("click", function () {
      document.body.classList.remove("view-thread");
      app.fillList();
      var row = state.openId !== null ? state.nodes[state.openId] : null;
      if (row) row.focus(); else $("list-search").focus();
    });
    $("opt-out").addEventListener("click", app.askOptOut);
    $("opt-out-no").addEventListener("click", app.keepLead);
    $("opt-out-yes").addEventListener("click", app.optOut);
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
    app.updateMeter();
    app.renderListStatus();

    // The feed's cursor first, then what is shown, then the stream from that cursor:
    // whatever changes while the screen loads arrives through the stream.
    loadConfig().then(function () {
      return app.api("GET", "/v1/events");
    }).then(function (data) {
      state.cursor = data && data.next;
      var first = hash.conversation && /^\d+$/.test(hash.conversation) ? Number(hash.conversation) : null;
      var work = [app.loadMore()];
      if (first !== null) work.push(app.openConversation(first));
      return Promise.all(work);
    }).then(app.connectStream, function (err) {
      if (!state.stopped) { app.reportError(err); app.scheduleReconnect(); }
    });
  }

  app.closePicker = closePicker;
  app.setHashConversation = setHashConversation;

  start();
})(window.LeadsmsInbox);
