package pep

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"strconv"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
)

const nsData = "jabber:x:data"

// elem is a parsed element: a small tree, built with encoding/xml off the
// routing hot path (an iq to a PEP service).
type elem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
	Kids    []elem     `xml:",any"`
}

func (e *elem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (e *elem) kid(space, local string) *elem {
	for i := range e.Kids {
		if e.Kids[i].XMLName.Local == local && e.Kids[i].XMLName.Space == space {
			return &e.Kids[i]
		}
	}
	return nil
}

// form reads the fields of a jabber:x:data form inside e (XEP-0004), nil
// when there is none; ok=false when it is not a submission of formType.
func (e *elem) form(formType string) (fields map[string]string, ok bool) {
	x := e.kid(nsData, "x")
	if x == nil {
		return nil, true
	}
	if t := x.attr("type"); t == "cancel" {
		return nil, true
	} else if t != "submit" {
		return nil, false
	}
	fields = map[string]string{}
	for _, f := range x.Kids {
		if f.XMLName.Local != "field" {
			continue
		}
		v := ""
		if val := f.kid(nsData, "value"); val != nil {
			v = string(bytes.TrimSpace(innerText(val.Inner)))
		}
		fields[f.attr("var")] = v
	}
	if ft, has := fields["FORM_TYPE"]; has && ft != formType {
		return nil, false
	}
	delete(fields, "FORM_TYPE")
	return fields, true
}

// innerText unescapes the character data of a simple element.
func innerText(raw []byte) []byte {
	var s string
	if err := xml.Unmarshal(append(append([]byte("<v>"), raw...), "</v>"...), &s); err != nil {
		return raw
	}
	return []byte(s)
}

const (
	formNodeConfig     = "http://jabber.org/protocol/pubsub#node_config"
	formPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// IQ answers a pubsub iq (namespace NS or NSOwner) to owner's PEP
// service (owner is a bare JID of a local account; a client's iq with no
// 'to' is for its own account).
func (p *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	p.init()
	var iq elem
	if err := xml.Unmarshal(st.Tok.Raw, &iq); err != nil || len(iq.Kids) != 1 {
		p.errorWith(sess, st, owner.Bare().String(), stanza.BadRequest, "", "")
		return
	}
	ps := &iq.Kids[0]
	if ps.XMLName.Local != "pubsub" || len(ps.Kids) == 0 {
		p.errorWith(sess, st, owner.Bare().String(), stanza.BadRequest, "", "")
		return
	}
	op := &ps.Kids[0]
	set := string(st.Type) == "set"
	r := &request{p: p, sess: sess, st: st, owner: owner.Bare(), asker: sess.JID(), ps: ps, op: op}
	r.isOwner = r.asker.Bare() == r.owner
	type handler struct {
		set bool
		fn  func(*request)
	}
	var h handler
	var ok bool
	if ps.XMLName.Space == NS {
		h, ok = map[string]handler{
			"publish":       {true, (*request).publish},
			"retract":       {true, (*request).retract},
			"items":         {false, (*request).items},
			"subscribe":     {true, (*request).subscribe},
			"unsubscribe":   {true, (*request).unsubscribe},
			"create":        {true, (*request).create},
			"subscriptions": {false, (*request).mySubscriptions},
			"affiliations":  {false, (*request).myAffiliations},
		}[op.XMLName.Local]
	} else {
		switch op.XMLName.Local {
		case "configure":
			h, ok = handler{set, (*request).configure}, true
		case "affiliations":
			h, ok = handler{set, (*request).affiliations}, true
		case "subscriptions":
			h, ok = handler{false, (*request).subscriptions}, true
		case "default":
			h, ok = handler{false, (*request).defaults}, true
		case "purge":
			h, ok = handler{true, (*request).purge}, true
		case "delete":
			h, ok = handler{true, (*request).deleteNode}, true
		}
	}
	if !ok || op.XMLName.Space != ps.XMLName.Space {
		p.errorWith(sess, st, owner.Bare().String(), stanza.FeatureNotImplemented,
			"unsupported xmlns='"+NSError+"' feature='"+xmlAttrEscape(op.XMLName.Local)+"'", "")
		return
	}
	if h.set != set {
		p.errorWith(sess, st, owner.Bare().String(), stanza.BadRequest, "", "wrong iq type for "+op.XMLName.Local)
		return
	}
	h.fn(r)
}

func xmlAttrEscape(s string) string { return string(stanza.AppendEscaped(nil, s)) }

// request is one pubsub iq being answered.
type request struct {
	p       *Service
	sess    session.Peer
	st      *stanza.Stanza
	owner   jid.JID
	asker   jid.JID
	isOwner bool
	ps, op  *elem
}

func (r *request) fail(cond stanza.Condition, app, text string) {
	r.p.errorWith(r.sess, r.st, r.owner.String(), cond, app, text)
}

// result answers with payload, from owner's bare JID when the iq had no
// 'to' (see errorWith).
func (r *request) result(payload []byte) { session.Result(r.sess, r.st, r.owner.String(), payload) }

// ownerOnly refuses anyone but the owner (XEP-0060 §7.1.3.1: forbidden).
func (r *request) ownerOnly() bool {
	if !r.isOwner {
		r.fail(stanza.Forbidden, "", "only the account owner may do this on its PEP service")
		return false
	}
	return true
}

// nodeName is the op's node attribute, refused when missing (§7.1.3.3).
func (r *request) nodeName() (string, bool) {
	n := r.op.attr("node")
	if n == "" {
		r.fail(stanza.BadRequest, "nodeid-required", "")
		return "", false
	}
	return n, true
}

// lockNode finds the named node of the owner with the account locked;
// it answers item-not-found itself (XEP-0060 §6.5.9.11). The caller
// unlocks a.mu when ok.
func (r *request) lockNode(name string) (a *account, n *node, ok bool) {
	a = r.p.accountOf(r.owner, false)
	if a != nil {
		a.mu.Lock()
		if n = a.nodes[name]; n != nil {
			r.p.roster(a)
			return a, n, true
		}
		a.mu.Unlock()
	}
	r.fail(stanza.ItemNotFound, "", "no such node")
	return nil, nil, false
}

// mayAccess applies the node's access model, answering forbidden with the
// XEP-0060 app condition (§6.1.3.2, §6.1.3.4) when refused; a.mu is held.
func (r *request) mayAccess(a *account, n *node) bool {
	if ok, app := r.p.access(a, n, r.asker); !ok {
		r.fail(stanza.Forbidden, app, "")
		return false
	}
	return true
}

// stored makes sure a change is written as the node asks: private data
// (persist_items with the whitelist model: XEP-0223 §2, XEP-0402) and
// pep.flush_interval 0 are written before the answer, the rest by the
// flusher (the SD-card budget of issue 16).
// ownedNode is the preamble of the owner's operations on one node
// (XEP-0060 §8): the sender must be the owner, the request must name the
// node, and the node must exist; it returns with a's lock held, or having
// answered the error.
func (r *request) ownedNode() (a *account, n *node, name string, ok bool) {
	if !r.ownerOnly() {
		return nil, nil, "", false
	}
	if name, ok = r.nodeName(); !ok {
		return nil, nil, "", false
	}
	a, n, ok = r.lockNode(name)
	return a, n, name, ok
}

// unlockStored ends a change to n made under a's lock: it releases the
// lock and, for a node that must be on disk before the answer (private
// data, or pep.flush_interval 0), writes it; false means the write failed
// and the error was answered.
func (r *request) unlockStored(a *account, n *node) bool {
	sync := private(n.cfg)
	a.mu.Unlock()
	return r.stored(sync)
}

func (r *request) stored(sync bool) bool {
	if !sync && r.p.FlushInterval > 0 {
		return true
	}
	if err := r.p.flush(); err != nil {
		r.p.log().Error("pep: write failed", "err", err)
		r.fail(stanza.InternalServerError, "", "the node could not be stored")
		return false
	}
	return true
}

// private reports whether a node's changes are written at once.
func private(c config) bool { return c.persist && c.access == accessWhitelist }

// newID makes an item id when the publisher gives none (§7.1.2).
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publish is XEP-0060 §7.1 with auto-create (XEP-0163 §3) and
// publish-options (XEP-0223, XEP-0060 §7.1.5).
func (r *request) publish() {
	if !r.ownerOnly() {
		return
	}
	name, ok := r.nodeName()
	if !ok {
		return
	}
	var its []*elem
	for i := range r.op.Kids {
		if r.op.Kids[i].XMLName.Local == "item" {
			its = append(its, &r.op.Kids[i])
		}
	}
	if len(its) == 0 {
		r.fail(stanza.BadRequest, "item-required", "")
		return
	}
	if len(its) > 1 {
		r.fail(stanza.BadRequest, "invalid-payload", "publish one item at a time")
		return
	}
	it := its[0]
	if len(it.Kids) == 0 {
		r.fail(stanza.BadRequest, "payload-required", "")
		return
	}
	if len(it.Kids) > 1 {
		r.fail(stanza.BadRequest, "invalid-payload", "an item carries one payload element")
		return
	}
	if len(it.Inner) > 2*r.p.MaxItemBytes {
		r.fail(stanza.NotAcceptable, "payload-too-big", "the item is larger than pep.max_item_bytes")
		return
	}
	payload := bytes.TrimSpace(it.Inner)
	if !selfContained(payload) {
		var err error
		if payload, err = itemPayload(r.st.Tok.Raw); err != nil {
			r.fail(stanza.BadRequest, "invalid-payload", "")
			return
		}
	} else {
		payload = append([]byte(nil), payload...)
	}
	if len(payload) > r.p.MaxItemBytes {
		r.fail(stanza.NotAcceptable, "payload-too-big", "the item is larger than pep.max_item_bytes")
		return
	}
	var opts map[string]string
	if po := r.ps.kid(NS, "publish-options"); po != nil {
		if opts, ok = po.form(formPublishOptions); !ok {
			r.fail(stanza.BadRequest, "invalid-options", "")
			return
		}
	}
	id := it.attr("id")
	if id == "" {
		id = newID()
	}
	a := r.p.accountOf(r.owner, true)
	a.mu.Lock()
	n := a.nodes[name]
	if n == nil {
		if len(a.nodes) >= r.p.MaxNodes {
			a.mu.Unlock()
			r.fail(stanza.ResourceConstraint, "max-nodes-exceeded", "this account has pep.max_nodes nodes")
			return
		}
		cfg := defaultConfig()
		if err := cfg.apply(opts, r.p.MaxItems); err != nil {
			a.mu.Unlock()
			r.fail(stanza.NotAcceptable, "", err.Error())
			return
		}
		n = newNode(name, cfg)
		a.nodes[name] = n
		a.order = append(a.order, name)
	} else if opts != nil && !n.cfg.matches(opts, r.p.MaxItems) {
		a.mu.Unlock()
		r.fail(stanza.Conflict, "precondition-not-met", "the node's configuration differs from the publish-options")
		return
	}
	if after := a.payloadBytes() + n.putDelta(id, len(payload)); after > r.p.MaxAccountBytes {
		a.mu.Unlock()
		r.fail(stanza.ResourceConstraint, "", "this account's PEP items would exceed pep.account_bytes")
		return
	}
	stored := item{id: id, publisher: r.owner.String(), payload: payload}
	n.put(stored)
	r.p.markDirty(a, n)
	r.p.roster(a)
	r.p.broadcast(a, n, itemsEvent(name, &stored))
	if !r.unlockStored(a, n) {
		return
	}
	b := append([]byte(nil), "<pubsub xmlns='"+NS+"'><publish node='"...)
	b = stanza.AppendEscaped(b, name)
	b = append(b, "'><item id='"...)
	b = stanza.AppendEscaped(b, id)
	r.result(append(b, "'/></publish></pubsub>"...))
}

// retract is XEP-0060 §7.2.
func (r *request) retract() {
	if !r.ownerOnly() {
		return
	}
	name, ok := r.nodeName()
	if !ok {
		return
	}
	var id string
	if it := r.op.kid(NS, "item"); it != nil {
		id = it.attr("id")
	}
	if id == "" {
		r.fail(stanza.BadRequest, "item-required", "")
		return
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	i := n.find(id)
	if i < 0 {
		a.mu.Unlock()
		r.fail(stanza.ItemNotFound, "", "no such item")
		return
	}
	n.items = append(n.items[:i], n.items[i+1:]...)
	r.p.markDirty(a, n)
	notify := r.op.attr("notify")
	if notify == "1" || notify == "true" || n.cfg.notifyRetract {
		r.p.broadcast(a, n, retractEvent(name, id))
	}
	if r.unlockStored(a, n) {
		r.result(nil)
	}
}

// items is XEP-0060 §6.5: all items, the last max_items, or by id.
func (r *request) items() {
	name, ok := r.nodeName()
	if !ok {
		return
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	defer a.mu.Unlock()
	if !r.mayAccess(a, n) {
		return
	}
	b := append([]byte(nil), "<pubsub xmlns='"+NS+"'><items node='"...)
	b = stanza.AppendEscaped(b, name)
	b = append(b, "'>"...)
	var ids []string
	for _, k := range r.op.Kids {
		if k.XMLName.Local == "item" {
			ids = append(ids, k.attr("id"))
		}
	}
	if len(ids) > 0 {
		for _, id := range ids {
			if i := n.find(id); i >= 0 {
				b = appendItem(b, &n.items[i], true)
			}
		}
	} else {
		from := 0
		if m := r.op.attr("max_items"); m != "" {
			k, err := strconv.Atoi(m)
			if err != nil || k < 0 {
				r.fail(stanza.BadRequest, "", "max_items is a number")
				return
			}
			from = max(len(n.items)-k, 0)
		}
		for i := from; i < len(n.items); i++ {
			b = appendItem(b, &n.items[i], true)
		}
	}
	r.result(append(b, "</items></pubsub>"...))
}

// subscriptionJID checks the jid of a subscribe or unsubscribe: the
// sender's bare or full JID (§6.1.3.1, §6.2.3.3: invalid-jid).
func (r *request) subscriptionJID() (jid.JID, bool) {
	j, err := jid.Parse(r.op.attr("jid"))
	if err != nil || (j != r.asker && j != r.asker.Bare()) {
		r.fail(stanza.BadRequest, "invalid-jid", "the jid must be your own bare or full JID")
		return jid.JID{}, false
	}
	return j, true
}

func appendSubscription(b []byte, node string, j jid.JID, state string) []byte {
	b = append(b, "<subscription node='"...)
	b = stanza.AppendEscaped(b, node)
	b = append(b, "' jid='"...)
	b = stanza.AppendEscaped(b, j.String())
	b = append(b, "' subscription='"...)
	b = append(b, state...)
	return append(b, "'/>"...)
}

// subscribe is XEP-0060 §6.1, with the last item sent at once (§6.1.7,
// send_last_published_item).
func (r *request) subscribe() {
	name, ok := r.nodeName()
	if !ok {
		return
	}
	j, ok := r.subscriptionJID()
	if !ok {
		return
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	if !r.mayAccess(a, n) {
		a.mu.Unlock()
		return
	}
	if n.subscribed(j.String()) < 0 {
		if len(n.subs) >= r.p.MaxSubscribers {
			a.mu.Unlock()
			r.fail(stanza.ResourceConstraint, "", "this node has pep.max_subscribers subscribers")
			return
		}
		n.subs = append(n.subs, newSubscriber(j))
		r.p.markDirty(a, n)
	}
	var last []byte
	if len(n.items) > 0 && n.cfg.sendLast != sendLastNever {
		to := j
		if j.IsBare() {
			to = r.asker // the subscriber who asked, not every resource
		}
		last = r.p.eventMessage(a, to.String(), itemsEvent(name, &n.items[len(n.items)-1]))
	}
	if !r.unlockStored(a, n) {
		return
	}
	r.result(append(appendSubscription([]byte("<pubsub xmlns='"+NS+"'>"), name, j, "subscribed"), "</pubsub>"...))
	if last != nil {
		r.sess.Deliver(last)
	}
}

// unsubscribe is XEP-0060 §6.2.
func (r *request) unsubscribe() {
	name, ok := r.nodeName()
	if !ok {
		return
	}
	j, ok := r.subscriptionJID()
	if !ok {
		return
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	i := n.subscribed(j.String())
	if i < 0 {
		a.mu.Unlock()
		r.fail(stanza.UnexpectedRequest, "not-subscribed", "")
		return
	}
	n.subs = append(n.subs[:i], n.subs[i+1:]...)
	r.p.markDirty(a, n)
	if r.unlockStored(a, n) {
		r.result(nil)
	}
}

// create is XEP-0060 §8.1 (with a configure form, §8.1.3); instant nodes
// are not offered (PEP nodes are named by namespace).
func (r *request) create() {
	if !r.ownerOnly() {
		return
	}
	name := r.op.attr("node")
	if name == "" {
		r.fail(stanza.NotAcceptable, "nodeid-required", "PEP nodes are named")
		return
	}
	cfg := defaultConfig()
	if c := r.ps.kid(NS, "configure"); c != nil {
		fields, ok := c.form(formNodeConfig)
		if !ok {
			r.fail(stanza.BadRequest, "invalid-options", "")
			return
		}
		if err := cfg.apply(fields, r.p.MaxItems); err != nil {
			r.fail(stanza.NotAcceptable, "", err.Error())
			return
		}
	}
	a := r.p.accountOf(r.owner, true)
	a.mu.Lock()
	if a.nodes[name] != nil {
		a.mu.Unlock()
		r.fail(stanza.Conflict, "", "the node exists")
		return
	}
	if len(a.nodes) >= r.p.MaxNodes {
		a.mu.Unlock()
		r.fail(stanza.ResourceConstraint, "max-nodes-exceeded", "this account has pep.max_nodes nodes")
		return
	}
	n := newNode(name, cfg)
	a.nodes[name] = n
	a.order = append(a.order, name)
	r.p.markDirty(a, n)
	a.mu.Unlock()
	if r.stored(private(cfg)) {
		r.result(nil)
	}
}

// appendConfigForm appends the node_config form (XEP-0060 §8.2).
func (p *Service) appendConfigForm(b []byte, c config) []byte {
	b = append(b, "<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>"+formNodeConfig+"</value></field>"...)
	b = append(b, "<field var='pubsub#max_items' type='text-single' label='Max # of items to persist'><value>"...)
	b = strconv.AppendInt(b, int64(c.maxItems), 10)
	b = append(b, "</value></field><field var='pubsub#access_model' type='list-single' label='Who may subscribe and retrieve items'>"...)
	b = append(b, "<option><value>presence</value></option><option><value>open</value></option><option><value>whitelist</value></option><value>"...)
	b = append(b, c.access...)
	b = append(b, "</value></field><field var='pubsub#persist_items' type='boolean' label='Persist items to storage'><value>"...)
	b = append(b, boolValue(c.persist)...)
	b = append(b, "</value></field><field var='pubsub#notify_retract' type='boolean' label='Notify subscribers when items are removed'><value>"...)
	b = append(b, boolValue(c.notifyRetract)...)
	b = append(b, "</value></field><field var='pubsub#send_last_published_item' type='list-single' label='When to send the last published item'>"...)
	b = append(b, "<option><value>never</value></option><option><value>on_sub</value></option><option><value>on_sub_and_presence</value></option><value>"...)
	b = append(b, c.sendLast...)
	return append(b, "</value></field></x>"...)
}

// configure is XEP-0060 §8.2: the form (get) or a submission (set).
func (r *request) configure() {
	if !r.ownerOnly() {
		return
	}
	name, ok := r.nodeName()
	if !ok {
		return
	}
	if string(r.st.Type) == "set" {
		fields, ok := r.op.form(formNodeConfig)
		if !ok {
			r.fail(stanza.BadRequest, "invalid-options", "")
			return
		}
		a, n, ok := r.lockNode(name)
		if !ok {
			return
		}
		c := n.cfg
		if err := c.apply(fields, r.p.MaxItems); err != nil {
			a.mu.Unlock()
			r.fail(stanza.NotAcceptable, "", err.Error())
			return
		}
		wasPrivate := private(n.cfg)
		n.cfg = c
		n.trim()
		r.p.markDirty(a, n)
		a.mu.Unlock()
		if r.stored(wasPrivate || private(c)) {
			r.result(nil)
		}
		return
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	c := n.cfg
	a.mu.Unlock()
	b := append([]byte(nil), "<pubsub xmlns='"+NSOwner+"'><configure node='"...)
	b = stanza.AppendEscaped(b, name)
	b = append(b, "'>"...)
	b = r.p.appendConfigForm(b, c)
	r.result(append(b, "</configure></pubsub>"...))
}

// defaults is XEP-0060 §8.3: the default node configuration.
func (r *request) defaults() {
	b := append([]byte(nil), "<pubsub xmlns='"+NSOwner+"'><default>"...)
	b = r.p.appendConfigForm(b, defaultConfig())
	r.result(append(b, "</default></pubsub>"...))
}

// purge is XEP-0060 §8.5.
func (r *request) purge() {
	a, n, name, ok := r.ownedNode()
	if !ok {
		return
	}
	clear(n.items)
	n.items = n.items[:0]
	r.p.markDirty(a, n)
	r.p.broadcast(a, n, nodeEvent("purge", name))
	if r.unlockStored(a, n) {
		r.result(nil)
	}
}

// deleteNode is XEP-0060 §8.4: subscribers are told, the node goes.
func (r *request) deleteNode() {
	a, n, name, ok := r.ownedNode()
	if !ok {
		return
	}
	r.p.broadcast(a, n, nodeEvent("delete", name))
	delete(a.nodes, name)
	for i, o := range a.order {
		if o == name {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	r.p.markDirty(a, n)
	if r.unlockStored(a, n) {
		r.result(nil)
	}
}

// affiliations is XEP-0060 §8.9 for the owner: the list (get) or changes
// (set: member, publisher, outcast or none; whitelist members).
func (r *request) affiliations() {
	if !r.ownerOnly() {
		return
	}
	name, ok := r.nodeName()
	if !ok {
		return
	}
	if string(r.st.Type) == "get" {
		a, n, ok := r.lockNode(name)
		if !ok {
			return
		}
		b := append([]byte(nil), "<pubsub xmlns='"+NSOwner+"'><affiliations node='"...)
		b = stanza.AppendEscaped(b, name)
		b = append(b, "'><affiliation jid='"...)
		b = stanza.AppendEscaped(b, r.owner.String())
		b = append(b, "' affiliation='owner'/>"...)
		for j, aff := range n.affs {
			b = append(b, "<affiliation jid='"...)
			b = stanza.AppendEscaped(b, j)
			b = append(b, "' affiliation='"...)
			b = append(b, aff...)
			b = append(b, "'/>"...)
		}
		a.mu.Unlock()
		r.result(append(b, "</affiliations></pubsub>"...))
		return
	}
	type change struct{ j, aff string }
	var changes []change
	for _, k := range r.op.Kids {
		if k.XMLName.Local != "affiliation" {
			continue
		}
		j, err := jid.Parse(k.attr("jid"))
		aff := k.attr("affiliation")
		if err != nil || (aff != "member" && aff != "publisher" && aff != "outcast" && aff != "none") || j.Bare() == r.owner {
			r.fail(stanza.BadRequest, "", "affiliations are member, publisher, outcast or none, for JIDs other than the owner")
			return
		}
		changes = append(changes, change{j.Bare().String(), aff})
	}
	a, n, ok := r.lockNode(name)
	if !ok {
		return
	}
	next := make(map[string]string, len(n.affs))
	for k, v := range n.affs {
		next[k] = v
	}
	for _, c := range changes {
		if c.aff == "none" {
			delete(next, c.j)
		} else {
			next[c.j] = c.aff
		}
	}
	if len(next) > r.p.MaxSubscribers {
		a.mu.Unlock()
		r.fail(stanza.ResourceConstraint, "", "more affiliations than pep.max_subscribers")
		return
	}
	n.affs = next
	r.p.markDirty(a, n)
	if r.unlockStored(a, n) {
		r.result(nil)
	}
}

// subscriptions is XEP-0060 §8.8 for the owner: a node's subscribers.
func (r *request) subscriptions() {
	a, n, name, ok := r.ownedNode()
	if !ok {
		return
	}
	b := append([]byte(nil), "<pubsub xmlns='"+NSOwner+"'><subscriptions node='"...)
	b = stanza.AppendEscaped(b, name)
	b = append(b, "'>"...)
	for _, s := range n.subs {
		b = append(b, "<subscription jid='"...)
		b = stanza.AppendEscaped(b, s.j.String())
		b = append(b, "' subscription='subscribed'/>"...)
	}
	a.mu.Unlock()
	r.result(append(b, "</subscriptions></pubsub>"...))
}

// eachNode calls fn, under the account's lock, for each of the owner's
// nodes in creation order, or only the one the request's node attribute
// names (XEP-0060 §5.6, §5.7).
func (r *request) eachNode(fn func(name string, n *node)) {
	a := r.p.accountOf(r.owner, false)
	if a == nil {
		return
	}
	filter := r.op.attr("node")
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, name := range a.order {
		if filter == "" || name == filter {
			fn(name, a.nodes[name])
		}
	}
}

// mySubscriptions is XEP-0060 §5.6: the asker's subscriptions here.
func (r *request) mySubscriptions() {
	b := append([]byte(nil), "<pubsub xmlns='"+NS+"'><subscriptions>"...)
	r.eachNode(func(name string, n *node) {
		for _, s := range n.subs {
			if s.j.Bare() == r.asker.Bare() {
				b = appendSubscription(b, name, s.j, "subscribed")
			}
		}
	})
	r.result(append(b, "</subscriptions></pubsub>"...))
}

// myAffiliations is XEP-0060 §5.7: the asker's affiliations here.
func (r *request) myAffiliations() {
	b := append([]byte(nil), "<pubsub xmlns='"+NS+"'><affiliations>"...)
	asker := r.asker.Bare().String()
	r.eachNode(func(name string, n *node) {
		aff := n.affs[asker]
		if r.isOwner {
			aff = "owner"
		}
		if aff == "" {
			return
		}
		b = append(b, "<affiliation node='"...)
		b = stanza.AppendEscaped(b, name)
		b = append(b, "' affiliation='"...)
		b = append(b, aff...)
		b = append(b, "'/>"...)
	})
	r.result(append(b, "</affiliations></pubsub>"...))
}
