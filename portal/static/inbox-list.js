/* The inbox page's conversation list: rows updated in place, paging by cursor, search, the
 * needs-reply count in the title.
 */
(function (app) {
  "use strict";

  var state = app.state;
  var $ = app.$;

  var LIST_PAGE = 50;
  var SEARCH_DELAY_MS = 250;

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
    var li = app.el("li", "conversation");
    li.dataset.id = String(id);
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    var top = app.el("div", "conversation-top");
    top.appendChild(app.el("span", "conversation-name"));
    top.appendChild(app.el("span", "conversation-time"));
    li.appendChild(top);
    li.appendChild(app.el("div", "conversation-preview"));
    li.appendChild(app.el("div", "conversation-tags"));
    li.addEventListener("click", function () { app.openConversation(id); });
    li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") app.openConversation(id); });
    return li;
  }

  // Bring a row's content up to date in place: the row itself stays (and keeps focus).
  function fillRow(li, c) {
    li.classList.toggle("active", c.conversation_id === state.openId);
    li.classList.toggle("needs-reply", waiting(c));
    app.setText(li.querySelector(".conversation-name"), c.name || app.formatPhone(c.phone));
    app.setText(li.querySelector(".conversation-time"), app.formatTime(c.last_message_at));
    var last = c.last_message;
    app.setText(li.querySelector(".conversation-preview"), last ? (last.direction === "out" ? "You: " : "") + last.body : "");
    var tags = li.querySelector(".conversation-tags");
    var want = [];
    if (waiting(c)) want.push(["reply-marker", "Needs reply"]);
    if (!c.can_send && c.notice) want.push(["tag tag-" + c.notice.level, tagText(c.notice.code)]);
    else if (last && last.direction === "out") want.push(["tag tag-status status-" + app.statusClass(last.status), app.statusText(last)]);
    var have = Array.prototype.map.call(tags.children, function (t) { return t.className + "|" + t.textContent; });
    if (have.join("\n") !== want.map(function (w) { return w[0] + "|" + w[1]; }).join("\n")) {
      tags.replaceChildren.apply(tags, want.map(function (w) { return app.el("span", w[0], w[1]); }));
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
      app.setText(status, "Loading conversations…");
      status.hidden = false;
    } else {
      status.hidden = true;
    }
    var none = !state.listLoading && state.listDone && rows === 0;
    empty.hidden = !none;
    if (none) {
      app.setText(empty, state.query.length >= 2 ? "No conversation matches “" + state.query + "”."
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
    return app.api("GET", path).then(function (data) {
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
      app.reportError(err);
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

  app.bumpLocally = bumpLocally;
  app.fillList = fillList;
  app.listable = listable;
  app.loadMore = loadMore;
  app.onListSearch = onListSearch;
  app.removeRow = removeRow;
  app.renderListStatus = renderListStatus;
  app.renderTitle = renderTitle;
  app.resetList = resetList;
  app.upsertConversation = upsertConversation;
})(window.LeadsmsInbox);
