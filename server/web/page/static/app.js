// Roost's status page: an XMPP client over the WebSocket binding (RFC 7395)
// that runs the gateway's administration commands (XEP-0050) and shows
// their answers, updating live. No library, no build step.
//
// XML is parsed with DOMParser and built as DOM nodes serialized by
// XMLSerializer, so every attribute value and text a user typed is
// escaped; nothing is concatenated into markup.
'use strict';

(function () {
  const NS = {
    framing: 'urn:ietf:params:xml:ns:xmpp-framing', // RFC 7395 §3.3
    streams: 'http://etherx.jabber.org/streams',
    sasl: 'urn:ietf:params:xml:ns:xmpp-sasl', // RFC 6120 §6
    bind: 'urn:ietf:params:xml:ns:xmpp-bind', // RFC 6120 §7
    stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas', // RFC 6120 §8.3
    commands: 'http://jabber.org/protocol/commands', // XEP-0050
    data: 'jabber:x:data', // XEP-0004
    ping: 'urn:xmpp:ping', // XEP-0199
    xhtml: 'http://www.w3.org/1999/xhtml',
  };
  const NODES = {
    sessions: 'urn:roost:admin:sessions',
    devices: 'urn:roost:admin:devices',
    status: 'urn:roost:admin:status',
  };
  const POLL_MS = 500;
  const IQ_TIMEOUT_MS = 10000;
  const NOT_ADMIN = 'this account is not an administrator of this gateway';

  const $ = (id) => document.getElementById(id);

  // ---- XML -----------------------------------------------------------

  const xdoc = document.implementation.createDocument(null, null, null);
  const serializer = new XMLSerializer();

  // el builds an element: ns null is no namespace (a stanza, whose
  // namespace the stream gives, RFC 7395 §3.3.3); attrs' values and the
  // string children become escaped attribute values and text nodes.
  function el(name, ns, attrs, ...children) {
    const e = xdoc.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.appendChild(typeof c === 'string' ? xdoc.createTextNode(c) : c);
    }
    return e;
  }

  function xml(e) { return serializer.serializeToString(e); }

  // parse reads one WebSocket frame: one element (RFC 7395 §3.3.3). A
  // frame that relies on the stream prefix without declaring it is read
  // with the declaration added. null: not well-formed.
  function parse(text) {
    const one = (s) => {
      const d = new DOMParser().parseFromString(s, 'text/xml');
      if (d.getElementsByTagNameNS(NS.xhtml, 'parsererror').length) return null;
      return d.documentElement;
    };
    let r = one(text);
    if (!r && /^\s*<stream:/.test(text)) {
      const w = one("<w xmlns:stream='" + NS.streams + "'>" + text + '</w>');
      r = w && w.firstElementChild;
    }
    return r;
  }

  function child(e, ns, name) {
    if (!e) return null;
    for (const c of e.children) {
      if (c.localName === name && (ns === undefined || c.namespaceURI === ns)) return c;
    }
    return null;
  }

  function children(e, ns, name) {
    const out = [];
    if (!e) return out;
    for (const c of e.children) {
      if (c.localName === name && (ns === undefined || c.namespaceURI === ns)) out.push(c);
    }
    return out;
  }

  // stanzaError reads the condition and text of an error stanza
  // (RFC 6120 §8.3.2).
  function stanzaError(st) {
    const err = child(st, undefined, 'error');
    let condition = 'undefined-condition', text = '';
    if (err) {
      for (const c of err.children) {
        if (c.namespaceURI !== NS.stanzas) continue;
        if (c.localName === 'text') text = c.textContent;
        else condition = c.localName;
      }
    }
    return { condition, text };
  }

  // readForm reads a jabber:x:data form (XEP-0004 §3): its fields (var ->
  // {label, values}, in order), and for a multi-item result the reported
  // columns and one object (var -> value) per item.
  function readForm(x) {
    const f = { fields: [], byVar: {}, reported: [], items: [] };
    if (!x) return f;
    for (const fe of children(x, NS.data, 'field')) {
      const v = {
        var: fe.getAttribute('var') || '',
        label: fe.getAttribute('label') || '',
        values: children(fe, NS.data, 'value').map((e) => e.textContent),
      };
      f.fields.push(v);
      if (v.var) f.byVar[v.var] = v;
    }
    const rep = child(x, NS.data, 'reported');
    if (rep) {
      f.reported = children(rep, NS.data, 'field').map((fe) => ({
        var: fe.getAttribute('var') || '',
        label: fe.getAttribute('label') || '',
      }));
    }
    for (const it of children(x, NS.data, 'item')) {
      const row = {};
      for (const fe of children(it, NS.data, 'field')) {
        row[fe.getAttribute('var') || ''] = children(fe, NS.data, 'value').map((e) => e.textContent).join('\n');
      }
      f.items.push(row);
    }
    return f;
  }

  // ---- the XMPP client -----------------------------------------------

  function b64utf8(s) {
    let bin = '';
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  let idCounter = 0;
  function newID(prefix) {
    idCounter++;
    return prefix + idCounter.toString(36) + Math.random().toString(36).slice(2, 8);
  }

  // Client signs in and binds over the WebSocket at /xmpp-websocket of
  // the page's own origin: <open/> (RFC 7395 §3.4), SASL PLAIN (RFC 4616
  // over RFC 6120 §6, the connection being TLS), a new <open/> (§3.5),
  // resource binding (RFC 6120 §7), initial presence (RFC 6121 §4.2).
  class Client {
    constructor(local, domain, password, on) {
      this.local = local;
      this.domain = domain;
      this.password = password;
      this.on = on; // {online(jid), failed(message), closed(message)}
      this.pending = new Map(); // iq id -> {resolve, reject, timer}
      this.state = 'connecting';
      this.jid = '';
    }

    start() {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      let ws;
      try {
        ws = new WebSocket(proto + '//' + location.host + '/xmpp-websocket', 'xmpp');
      } catch (e) {
        this.on.failed('cannot open the WebSocket: ' + e.message);
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        if (ws.protocol !== 'xmpp') {
          this.fail('the server did not accept the xmpp subprotocol');
          return;
        }
        this.state = 'open';
        this.sendOpen();
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return; // RFC 7395 §3.2: text frames only
        const e = parse(ev.data);
        if (!e) {
          this.fail('the server sent XML that is not well-formed');
          return;
        }
        this.frame(e);
      };
      ws.onclose = (ev) => {
        const was = this.state;
        this.state = 'closed';
        this.dropPending('disconnected');
        if (was === 'closing' || was === 'failed') return;
        const why = this.closeText || ('the connection closed (' + ev.code + (ev.reason ? ' ' + ev.reason : '') + ')');
        if (was === 'online') this.on.closed(why);
        else this.on.failed(why);
      };
    }

    send(e) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(xml(e));
    }

    sendOpen() {
      this.send(el('open', NS.framing, { to: this.domain, version: '1.0' }));
    }

    fail(msg) {
      if (this.state === 'closed' || this.state === 'failed') return;
      this.state = 'failed';
      this.dropPending(msg);
      this.on.failed(msg);
      this.hangUp();
    }

    // close ends the stream (RFC 7395 §3.6) and the WebSocket.
    close() {
      if (this.state === 'closed') return;
      this.state = 'closing';
      this.dropPending('signed out');
      this.hangUp();
    }

    hangUp() {
      this.send(el('close', NS.framing, {}));
      try { this.ws.close(1000); } catch (e) { /* already closed */ }
    }

    dropPending(why) {
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject({ condition: 'remote-server-timeout', text: why });
      }
      this.pending.clear();
    }

    frame(e) {
      const name = e.localName, ns = e.namespaceURI;
      if (ns === NS.framing && name === 'open') return;
      if (ns === NS.framing && name === 'close') {
        this.closeText = this.closeText || 'the server closed the stream';
        if (this.state !== 'closing') this.fail(this.closeText);
        return;
      }
      if (ns === NS.streams && name === 'error') {
        let cond = 'undefined-condition', text = '';
        for (const c of e.children) {
          if (c.localName === 'text') text = c.textContent;
          else cond = c.localName;
        }
        this.closeText = 'stream error: ' + cond + (text ? ' (' + text + ')' : '');
        this.fail(this.closeText);
        return;
      }
      if (ns === NS.streams && name === 'features') { this.features(e); return; }
      if (ns === NS.sasl) { this.sasl(e); return; }
      if (name === 'iq') { this.iqIn(e); return; }
      // messages and presence: the page shows nothing of them.
    }

    features(f) {
      if (this.state === 'open') {
        const mechs = child(f, NS.sasl, 'mechanisms');
        const names = children(mechs, NS.sasl, 'mechanism').map((m) => m.textContent.trim());
        if (!names.includes('PLAIN')) {
          this.fail('the server offers no PLAIN sign-in (offered: ' + (names.join(', ') || 'none') + ')');
          return;
        }
        this.state = 'auth';
        // RFC 4616: authzid (empty) NUL authcid NUL password.
        this.send(el('auth', NS.sasl, { mechanism: 'PLAIN' }, b64utf8('\u0000' + this.local + '\u0000' + this.password)));
        this.password = '';
        return;
      }
      if (this.state === 'reopened') {
        if (!child(f, NS.bind, 'bind')) {
          this.fail('the server offers no resource binding');
          return;
        }
        this.state = 'binding';
        const res = 'status-page-' + Math.random().toString(36).slice(2, 8);
        this.iq('set', undefined, el('bind', NS.bind, {}, el('resource', NS.bind, {}, res)))
          .then((r) => {
            const j = child(child(r, NS.bind, 'bind'), NS.bind, 'jid');
            this.jid = j ? j.textContent : this.local + '@' + this.domain + '/' + res;
            this.send(el('presence', null, {}));
            this.state = 'online';
            this.on.online(this.jid);
          })
          .catch((err) => this.fail('binding failed: ' + err.condition + (err.text ? ' (' + err.text + ')' : '')));
      }
    }

    sasl(e) {
      if (this.state !== 'auth') return;
      if (e.localName === 'success') {
        this.state = 'reopened';
        this.sendOpen();
        return;
      }
      if (e.localName === 'failure') {
        let cond = 'not-authorized', text = '';
        for (const c of e.children) {
          if (c.localName === 'text') text = c.textContent;
          else cond = c.localName;
        }
        this.fail(cond === 'not-authorized' ? 'wrong account or password' : 'sign-in refused: ' + cond + (text ? ' (' + text + ')' : ''));
        return;
      }
      if (e.localName === 'challenge') this.fail('unexpected SASL challenge for PLAIN');
    }

    // iq sends an iq request and resolves with the result or rejects with
    // {condition, text} (RFC 6120 §8.2.3).
    iq(type, to, payload) {
      return new Promise((resolve, reject) => {
        const id = newID('q');
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject({ condition: 'remote-server-timeout', text: 'no answer in ' + IQ_TIMEOUT_MS / 1000 + ' s' });
        }, IQ_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer, to: to || '' });
        this.send(el('iq', null, { type, id, to }, payload));
      });
    }

    iqIn(st) {
      const type = st.getAttribute('type'), id = st.getAttribute('id') || '';
      if (type === 'result' || type === 'error') {
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        clearTimeout(p.timer);
        if (type === 'result') p.resolve(st);
        else p.reject(stanzaError(st));
        return;
      }
      if (type !== 'get' && type !== 'set') return;
      const from = st.getAttribute('from') || undefined;
      if (type === 'get' && child(st, NS.ping, 'ping')) {
        this.send(el('iq', null, { type: 'result', id, to: from }));
        return;
      }
      // RFC 6120 §8.4: a request we do not understand.
      this.send(el('iq', null, { type: 'error', id, to: from },
        el('error', null, { type: 'cancel' }, el('service-unavailable', NS.stanzas, {}))));
    }

    // command runs an XEP-0050 command (action execute, §3.4) at to.
    command(to, node) {
      return this.iq('set', to, el('command', NS.commands, { node, action: 'execute' }))
        .then((r) => child(r, NS.commands, 'command'));
    }
  }

  // ---- rendering -------------------------------------------------------

  function fmtTime(s) {
    if (!s) return 'never';
    const d = new Date(s);
    if (isNaN(d.getTime())) return s;
    const secs = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    let ago;
    if (secs < 60) ago = secs + ' s ago';
    else if (secs < 3600) ago = Math.floor(secs / 60) + ' min ago';
    else if (secs < 86400) ago = Math.floor(secs / 3600) + ' h ago';
    else ago = Math.floor(secs / 86400) + ' d ago';
    return d.toLocaleString() + ' (' + ago + ')';
  }

  function bare(j) {
    const i = j.indexOf('/');
    return i < 0 ? j : j.slice(0, i);
  }

  // reading reads a device's last stanza: {text, reading} where reading
  // is true for a report (a PEP reading, a presence's status or a
  // message's body) and
  // text is otherwise a short description (an iq answer, say).
  function reading(raw) {
    if (!raw) return { text: '', reading: false };
    // A reading published over PEP (docs/datagram-binding.md §6): the
    // <reading/> element's sensor, value and unit, as far as the cut
    // stanza goes.
    if (/<reading[\s>]/.test(raw)) {
      const attr = (n) => { const m = new RegExp('<reading[^>]*\\s' + n + "=['\"]([^'\"]*)['\"]").exec(raw); return m ? unescapeText(m[1]) : ''; };
      const text = [attr('sensor'), attr('value'), attr('unit')].filter((x) => x).join(' ');
      if (text) return { text: text, reading: true };
    }
    // The server cuts the stanza at 320 bytes: a cut one is not
    // XML (and a parse error would make the browser report a CSP
    // violation for the error page's inline style), so its status or
    // body text is read as far as it goes.
    const e = raw.length < 320 && /^\s*<[^]*>\s*$/.test(raw) ? parse(raw) : null;
    if (!e) {
      const m = /<(status|body)(\s[^>]*)?>([^<]*)/.exec(raw);
      if (m) return { text: unescapeText(m[3]), reading: true };
      const h = /^\s*<([A-Za-z_][\w.:-]*)(?:[^>]*\stype=['"]([\w-]*)['"])?/.exec(raw);
      return { text: h ? h[1] + (h[2] ? ' ' + h[2] : '') : raw, reading: false };
    }
    const st = child(e, undefined, 'status') || child(e, undefined, 'body');
    if (st) return { text: st.textContent, reading: true };
    const type = e.getAttribute('type');
    if (e.localName === 'presence') return { text: type === 'unavailable' ? 'went offline' : 'online', reading: false };
    return { text: e.localName + (type ? ' ' + type : ''), reading: false };
  }

  const lastReadings = new Map(); // device JID -> its last report seen by this page

  function unescapeText(s) {
    const ents = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
    return s.replace(/&(lt|gt|amp|quot|apos);/g, (_, n) => ents[n]);
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // sync makes tbody's rows those of keys, in order, reusing each key's
  // row (so a button being clicked is not replaced every 500 ms). make
  // builds a new row's cells; fill updates them.
  function sync(tbody, rows, keyOf, make, fill) {
    const old = new Map();
    for (const tr of Array.from(tbody.rows)) old.set(tr.dataset.key, tr);
    let prev = null;
    for (const row of rows) {
      const k = keyOf(row);
      let tr = old.get(k);
      if (tr) old.delete(k);
      else {
        tr = document.createElement('tr');
        tr.dataset.key = k;
        make(tr, row);
      }
      fill(tr, row);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  function cells(tr, labels) {
    for (const l of labels) {
      const td = document.createElement('td');
      td.dataset.label = l;
      tr.appendChild(td);
    }
  }

  // ---- the page ------------------------------------------------------

  let client = null;
  let timer = null;
  let busy = false;
  let sessions = []; // the last sessions answer, to find a device's full JID

  function show(which) {
    $('login').hidden = which !== 'login';
    $('dash').hidden = which !== 'dash';
    $('forbidden').hidden = which !== 'forbidden';
    const signedIn = which !== 'login';
    $('signout').hidden = !signedIn;
    $('who').hidden = !signedIn;
  }

  function loginError(msg) {
    const p = $('login-error');
    p.textContent = msg;
    p.hidden = !msg;
  }

  function connLine(msg, down) {
    const p = $('conn');
    setText(p, msg);
    p.classList.toggle('down', !!down);
  }

  function stopPolling() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  // Polling runs only while the page is visible (Page Visibility): a
  // hidden tab costs the gateway nothing.
  function startPolling() {
    stopPolling();
    if (!client || client.state !== 'online' || document.visibilityState !== 'visible') return;
    timer = setInterval(poll, POLL_MS);
    poll();
  }

  function poll() {
    if (busy || !client || client.state !== 'online') return;
    busy = true;
    const c = client;
    const dom = c.domain;
    Promise.allSettled([c.command(dom, NODES.sessions), c.command(dom, NODES.devices), c.command(dom, NODES.status)])
      .then((res) => {
        busy = false;
        if (c !== client) return;
        if (res.some((r) => r.status === 'rejected' && r.reason && r.reason.condition === 'forbidden')) {
          notAdmin();
          return;
        }
        const failed = res.find((r) => r.status === 'rejected');
        if (failed) {
          const err = failed.reason || {};
          connLine('a command failed: ' + (err.condition || err) + (err.text ? ' (' + err.text + ')' : ''), true);
        } else {
          connLine('live · updated ' + new Date().toLocaleTimeString(), false);
        }
        if (res[0].status === 'fulfilled') renderSessions(readForm(child(res[0].value, NS.data, 'x')));
        if (res[1].status === 'fulfilled') renderDevices(readForm(child(res[1].value, NS.data, 'x')));
        if (res[2].status === 'fulfilled') renderStatus(readForm(child(res[2].value, NS.data, 'x')));
      });
  }

  // clearState removes everything the gateway told the page.
  function clearState() {
    $('sessions').tBodies[0].replaceChildren();
    $('devices').tBodies[0].replaceChildren();
    for (const id of ['status', 'links']) {
      $(id).replaceChildren();
      delete $(id).dataset.sig;
    }
    $('cmd-result').replaceChildren();
    $('cmd').hidden = true;
    sessions = [];
    lastReadings.clear();
  }

  function notAdmin() {
    stopPolling();
    if (client) client.close();
    client = null;
    // Nothing of the gateway's state stays on the page.
    clearState();
    $('forbidden').textContent = NOT_ADMIN;
    show('forbidden');
  }

  function renderSessions(f) {
    sessions = f.items;
    sync($('sessions').tBodies[0], f.items, (r) => r.jid || '',
      (tr) => cells(tr, ['JID', 'Transport', 'Address', 'Since']),
      (tr, r) => {
        setText(tr.cells[0], r.jid || '');
        setText(tr.cells[1], r.transport || '');
        setText(tr.cells[2], r.address || '');
        setText(tr.cells[3], fmtTime(r.since));
        tr.cells[3].title = r.since || '';
      });
  }

  // fullJID is where a device's commands go: its bound session (the
  // device's full JID), from the sessions list.
  function fullJID(j) {
    if (j.includes('/')) return j;
    let best = '';
    for (const s of sessions) {
      if (!s.jid || bare(s.jid) !== j) continue;
      if (!best || s.transport === 'dtls') best = s.jid;
    }
    return best;
  }

  function renderDevices(f) {
    $('no-devices').hidden = f.items.length > 0;
    sync($('devices').tBodies[0], f.items, (r) => r.jid || '',
      (tr, r) => {
        cells(tr, ['Device', 'State', 'Last seen', 'Last reading', 'Command']);
        const badge = document.createElement('span');
        badge.className = 'state';
        tr.cells[1].appendChild(badge);
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'cmd-btn';
        btn.textContent = 'read';
        btn.addEventListener('click', () => runRead(tr.dataset.jid));
        tr.cells[4].appendChild(btn);
      },
      (tr, r) => {
        const online = r.online === 'true';
        tr.dataset.jid = r.jid || '';
        tr.dataset.online = online ? 'true' : 'false';
        setText(tr.cells[0], r.jid || '');
        const badge = tr.cells[1].firstChild;
        setText(badge, online ? 'online' : 'offline');
        badge.classList.toggle('online', online);
        badge.classList.toggle('offline', !online);
        setText(tr.cells[2], online ? 'now' : fmtTime(r.last_seen));
        tr.cells[2].title = r.last_seen || '';
        const rd = reading(r.last_stanza);
        if (rd.reading) lastReadings.set(r.jid || '', rd.text);
        setText(tr.cells[3], lastReadings.get(r.jid || '') || rd.text);
        tr.cells[3].title = r.last_stanza || '';
        const btn = tr.cells[4].firstChild;
        const target = online ? fullJID(r.jid || '') : '';
        btn.disabled = !target;
        btn.title = target ? 'run the XEP-0050 command "read" on ' + target : 'the device is offline';
      });
  }

  const STATUS_ORDER = ['version', 'uptime', 'sessions', 'devices_online', 'registered_users'];
  const STATUS_LABELS = {
    version: 'Version', uptime: 'Uptime', sessions: 'Sessions',
    devices_online: 'Devices online', registered_users: 'Accounts',
  };

  function renderStatus(f) {
    const dl = $('status');
    const vars = STATUS_ORDER.filter((v) => f.byVar[v])
      .concat(f.fields.map((x) => x.var).filter((v) => v && v !== 'links' && v !== 'FORM_TYPE' && !STATUS_ORDER.includes(v)));
    const boxes = [];
    for (const v of vars) {
      const fld = f.byVar[v];
      const box = document.createElement('div');
      box.dataset.var = v;
      const dt = document.createElement('dt');
      dt.textContent = STATUS_LABELS[v] || fld.label || v;
      const dd = document.createElement('dd');
      dd.textContent = fld.values.join(', ');
      box.append(dt, dd);
      boxes.push(box);
    }
    // Replace only when something changed: the DOM stays still otherwise.
    const now = boxes.map((b) => b.textContent + '|' + b.dataset.var).join('\n');
    if (dl.dataset.sig !== now) {
      dl.dataset.sig = now;
      dl.replaceChildren(...boxes);
    }
    const lines = f.byVar.links ? f.byVar.links.values.flatMap((v) => v.split('\n')).filter((l) => l.trim()) : [];
    const ul = $('links');
    const sig = lines.join('\n') || '-';
    if (ul.dataset.sig !== sig) {
      ul.dataset.sig = sig;
      const items = (lines.length ? lines : ['no uplink or server-to-server links']).map((l) => {
        const li = document.createElement('li');
        li.textContent = l;
        return li;
      });
      ul.replaceChildren(...items);
    }
  }

  // runRead sends the XEP-0050 command "read" to a device's full JID and
  // shows the answer's notes and fields (XEP-0050 §3.4, XEP-0004).
  function runRead(deviceJID) {
    if (!client || client.state !== 'online' || !deviceJID) return;
    const to = fullJID(deviceJID);
    const box = $('cmd'), out = $('cmd-result');
    box.hidden = false;
    setText($('cmd-target'), 'read on ' + (to || deviceJID) + ' …');
    out.replaceChildren();
    out.dataset.state = 'pending';
    if (!to) {
      showResult(out, 'error', [], [['error', 'the device has no session']]);
      return;
    }
    client.command(to, 'read').then((cmd) => {
      const notes = children(cmd, NS.commands, 'note').map((n) => (n.getAttribute('type') || 'info') + ': ' + n.textContent);
      const f = readForm(child(cmd, NS.data, 'x'));
      const rows = f.fields.filter((x) => x.var !== 'FORM_TYPE').map((x) => [x.label || x.var, x.values.join(', ')]);
      for (const it of f.items) for (const [k, v] of Object.entries(it)) rows.push([k, v]);
      showResult(out, 'done', notes, rows);
      setText($('cmd-target'), 'read on ' + to + ' (' + (cmd && cmd.getAttribute('status') || 'answered') + ')');
    }).catch((err) => {
      showResult(out, 'error', [], [['error', (err.condition || String(err)) + (err.text ? ' (' + err.text + ')' : '')]]);
      setText($('cmd-target'), 'read on ' + to + ' failed');
    });
  }

  function showResult(out, state, notes, rows) {
    const nodes = notes.map((n) => {
      const p = document.createElement('p');
      p.className = 'note';
      p.textContent = n;
      return p;
    });
    if (rows.length) {
      const dl = document.createElement('dl');
      for (const [k, v] of rows) {
        const dt = document.createElement('dt');
        dt.textContent = k;
        const dd = document.createElement('dd');
        dd.textContent = v;
        dl.append(dt, dd);
      }
      nodes.push(dl);
    }
    out.replaceChildren(...nodes);
    out.dataset.state = state;
  }

  function loopback(host) {
    return host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
  }

  function signIn(ev) {
    ev.preventDefault();
    loginError('');
    const raw = $('jid').value.trim();
    const pw = $('password').value;
    const j = bare(raw);
    const at = j.indexOf('@');
    const local = at > 0 ? j.slice(0, at) : '';
    const domain = at > 0 ? j.slice(at + 1) : '';
    // RFC 7622: no spaces or control characters in a JID.
    if (!local || !domain || /[\s\u0000-\u001f\u007f]/.test(j)) {
      loginError('give your account as name@domain');
      return;
    }
    if (location.protocol !== 'https:' && !loopback(location.hostname)) {
      loginError('this page is not served over HTTPS: the password would travel in clear; use the https:// address');
      return;
    }
    if (client) client.close();
    $('signin').disabled = true;
    const c = new Client(local, domain, pw, {
      online(jid) {
        if (c !== client) return;
        $('signin').disabled = false;
        $('password').value = '';
        setText($('who'), jid);
        connLine('signed in; loading…', false);
        show('dash');
        startPolling();
      },
      failed(msg) {
        if (c !== client) return;
        client = null;
        stopPolling();
        $('signin').disabled = false;
        show('login');
        loginError(msg);
      },
      closed(msg) {
        if (c !== client) return;
        client = null;
        stopPolling();
        show('login');
        loginError(msg + ': sign in again');
      },
    });
    client = c;
    c.start();
  }

  function signOut() {
    stopPolling();
    if (client) client.close();
    client = null;
    clearState();
    show('login');
    loginError('');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') startPolling();
      else stopPolling();
    });
    show('login');
  });
}());
