package pep

import (
	"fmt"
	"roost/server/session/sessiontest"
	"strings"
	"testing"
	"time"

	"roost/storage"
)

// Publish auto-creates the node and notifies the owner's +notify
// resources, +notify resources of contacts with from/both, nobody else
// (XEP-0163 §3, §4.3.1); the format is the common one.
func TestPublishNotify(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	e.roster("alice", "dave@"+domain, "to") // dave has no subscription to alice
	e.roster("dave", "alice@"+domain, "from")
	a1, a1out := e.bind("alice@"+domain+"/a1", true, sensor)
	_, a2out := e.bind("alice@"+domain+"/a2", true)
	_, b1out := e.bind("bob@"+domain+"/b1", true, sensor)
	_, b2out := e.bind("bob@"+domain+"/b2", true, "urn:other")
	_, b3out := e.bind("bob@"+domain+"/b3", false, sensor)
	_, carolOut := e.bind("carol@"+domain+"/c", true, sensor)
	_, daveOut := e.bind("dave@"+domain+"/d", true, sensor)

	res := ok(t, e.iq(a1, a1out, "set", "", pub(sensor, "temperature", reading("21.5"))))
	if !strings.Contains(res, "<publish node='"+sensor+"'><item id='temperature'/></publish>") {
		t.Fatalf("publish result: %s", res)
	}
	got := events(b1out.TakeAll())
	if len(got) != 1 {
		t.Fatalf("bob/b1 got %d notifications: %q", len(got), got)
	}
	want := "<message to='bob@d.example/b1' from='alice@d.example' type='headline' id='"
	if !strings.HasPrefix(got[0], want) ||
		!strings.HasSuffix(got[0], "><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:roost:sensor:0'><item id='temperature' publisher='alice@d.example'>"+reading("21.5")+"</item></items></event></message>") {
		t.Fatalf("notification: %s", got[0])
	}
	// a1's own notification came in the same take as the result.
	e.iq(a1, a1out, "set", "", pub(sensor, "temperature", reading("22")))
	if got := events(a1out.TakeAll()); len(got) != 0 {
		t.Fatalf("leftover: %q", got)
	}
	for name, out := range map[string]*sessiontest.Recorder{"alice/a2 (no +notify)": a2out, "bob/b2 (other +notify)": b2out,
		"bob/b3 (unavailable)": b3out, "carol (not a contact)": carolOut, "dave (subscription to)": daveOut} {
		if got := events(out.TakeAll()); len(got) != 0 {
			t.Fatalf("%s got %q", name, got)
		}
	}
	// The owner's +notify resource gets it too.
	a1out.TakeAll()
	st := sessiontest.Parse(t, "<iq type='set' id='q2'>"+pub(sensor, "humidity", reading("40"))+"</iq>")
	e.p.IQ(a1, st, a1.JID().Bare())
	if got := events(a1out.TakeAll()); len(got) != 1 || !strings.Contains(got[0], "to='alice@d.example/a1'") {
		t.Fatalf("owner's resource: %q", got)
	}
	// No id: one is made.
	res = ok(t, e.iq(a1, a1out, "set", "", pub(sensor, "", reading("1"))))
	if !strings.Contains(res, "<item id='") || strings.Contains(res, "<item id=''") {
		t.Fatalf("generated id: %s", res)
	}
}

// Items: all, the last max_items, by id; max_items bounds what is kept
// and an item with the same id replaces the old one (XEP-0060 §6.5, §7.1).
func TestItemsAndMaxItems(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	a, aout := e.bind("alice@"+domain+"/a", true)
	b, bout := e.bind("bob@"+domain+"/b", true)
	opts := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#max_items'><value>3</value></field></x></publish-options>"
	for i := 1; i <= 5; i++ {
		body := pub("urn:x", fmt.Sprint("i", i), fmt.Sprintf("<x xmlns='urn:x'>%d</x>", i))
		body = strings.Replace(body, "</pubsub>", opts+"</pubsub>", 1)
		ok(t, e.iq(a, aout, "set", "", body))
	}
	items := func(inner string) string {
		return ok(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'>"+inner+"</pubsub>"))
	}
	all := items("<items node='urn:x'/>")
	if strings.Contains(all, "'i2'") || !strings.Contains(all, "<item id='i3' publisher='alice@d.example'><x xmlns='urn:x'>3</x></item><item id='i4'") || !strings.Contains(all, "'i5'") {
		t.Fatalf("all items: %s", all)
	}
	if last := items("<items node='urn:x' max_items='1'/>"); strings.Contains(last, "'i4'") || !strings.Contains(last, "'i5'") {
		t.Fatalf("max_items=1: %s", last)
	}
	if one := items("<items node='urn:x'><item id='i4'/><item id='i1'/></items>"); !strings.Contains(one, "'i4'") || strings.Contains(one, "'i5'") || strings.Contains(one, "'i1'") {
		t.Fatalf("by id: %s", one)
	}
	ok(t, e.iq(a, aout, "set", "", strings.Replace(pub("urn:x", "i3", "<x xmlns='urn:x'>new</x>"), "</pubsub>", opts+"</pubsub>", 1)))
	if all := items("<items node='urn:x'/>"); !strings.Contains(all, "'i4'") || !strings.HasSuffix(all, "<item id='i3' publisher='alice@d.example'><x xmlns='urn:x'>new</x></item></items></pubsub></iq>") {
		t.Fatalf("replaced item: %s", all)
	}
	// The default max_items is 1.
	ok(t, e.iq(a, aout, "set", "", pub("urn:y", "1", "<y xmlns='urn:y'/>")))
	ok(t, e.iq(a, aout, "set", "", pub("urn:y", "2", "<y xmlns='urn:y'/>")))
	if all := items("<items node='urn:y'/>"); strings.Contains(all, "id='1'") || !strings.Contains(all, "id='2'") {
		t.Fatalf("default max_items: %s", all)
	}
	fails(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><items node='urn:none'/></pubsub>"), "item-not-found", "")
}

func accessOpts(model string) string {
	return "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>" + model + "</value></field></x></publish-options>"
}

func pubWith(node, id, payload, opts string) string {
	return strings.Replace(pub(node, id, payload), "</pubsub>", opts+"</pubsub>", 1)
}

// The access models (XEP-0060 §4.5, XEP-0163 §4.1) for items and
// subscribe, with forbidden and the app conditions; only the owner
// publishes and manages.
func TestAccessModels(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	a, aout := e.bind("alice@"+domain+"/a", true)
	b, bout := e.bind("bob@"+domain+"/b", true)
	c, cout := e.bind("carol@"+domain+"/c", true)
	ok(t, e.iq(a, aout, "set", "", pub("urn:p", "1", "<p xmlns='urn:p'/>")))
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:o", "1", "<o xmlns='urn:o'/>", accessOpts("open"))))
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:w", "1", "<w xmlns='urn:w'/>", accessOpts("whitelist"))))
	get := func(s interface{}, node string) string {
		return "<pubsub xmlns='" + NS + "'><items node='" + node + "'/></pubsub>"
	}
	ok(t, e.iq(a, aout, "get", "alice@"+domain, get(a, "urn:w")))
	ok(t, e.iq(b, bout, "get", "alice@"+domain, get(b, "urn:p")))
	fails(t, e.iq(c, cout, "get", "alice@"+domain, get(c, "urn:p")), "forbidden", "presence-subscription-required")
	ok(t, e.iq(c, cout, "get", "alice@"+domain, get(c, "urn:o")))
	fails(t, e.iq(b, bout, "get", "alice@"+domain, get(b, "urn:w")), "forbidden", "closed-node")
	fails(t, e.iq(b, bout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='urn:w' jid='bob@d.example'/></pubsub>"), "forbidden", "closed-node")
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><affiliations node='urn:w'><affiliation jid='bob@d.example' affiliation='member'/></affiliations></pubsub>"))
	affs := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NSOwner+"'><affiliations node='urn:w'/></pubsub>"))
	if !strings.Contains(affs, "<affiliation jid='bob@d.example' affiliation='member'/>") || !strings.Contains(affs, "affiliation='owner'") {
		t.Fatalf("affiliations: %s", affs)
	}
	ok(t, e.iq(b, bout, "get", "alice@"+domain, get(b, "urn:w")))
	mine := ok(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><affiliations/></pubsub>"))
	if !strings.Contains(mine, "<affiliation node='urn:w' affiliation='member'/>") {
		t.Fatalf("bob's affiliations: %s", mine)
	}
	// outcast beats open.
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><affiliations node='urn:o'><affiliation jid='carol@d.example' affiliation='outcast'/></affiliations></pubsub>"))
	fails(t, e.iq(c, cout, "get", "alice@"+domain, get(c, "urn:o")), "forbidden", "")
	// Only the owner publishes, retracts, configures, purges, deletes.
	for _, body := range []string{
		pub("urn:p", "x", "<p xmlns='urn:p'/>"),
		"<pubsub xmlns='" + NS + "'><retract node='urn:p'><item id='1'/></retract></pubsub>",
		"<pubsub xmlns='" + NSOwner + "'><purge node='urn:p'/></pubsub>",
		"<pubsub xmlns='" + NSOwner + "'><delete node='urn:p'/></pubsub>",
		"<pubsub xmlns='" + NS + "'><create node='urn:new'/></pubsub>",
	} {
		fails(t, e.iq(b, bout, "set", "alice@"+domain, body), "forbidden", "")
	}
	fails(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NSOwner+"'><configure node='urn:p'/></pubsub>"), "forbidden", "")
}

// The bounds and the XEP-0060 error conditions.
func TestErrorsAndBounds(t *testing.T) {
	e := newEnv(t, nil)
	a, aout := e.bind("alice@"+domain+"/a", true)
	b, bout := e.bind("bob@"+domain+"/b", true)
	big := "<x xmlns='urn:x'>" + strings.Repeat("a", 1100) + "</x>"
	fails(t, e.iq(a, aout, "set", "", pub("urn:x", "1", big)), "not-acceptable", "payload-too-big")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><publish node='urn:x'/></pubsub>"), "bad-request", "item-required")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><publish node='urn:x'><item id='1'/></publish></pubsub>"), "bad-request", "payload-required")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><publish><item id='1'><x xmlns='urn:x'/></item></publish></pubsub>"), "bad-request", "nodeid-required")
	maxOpts := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#max_items'><value>17</value></field></x></publish-options>"
	fails(t, e.iq(a, aout, "set", "", pubWith("urn:x", "1", "<x xmlns='urn:x'/>", maxOpts)), "not-acceptable", "")
	ok(t, e.iq(a, aout, "set", "", pub("urn:x", "1", "<x xmlns='urn:x'/>")))
	// publish-options that differ from an existing node's configuration.
	fails(t, e.iq(a, aout, "set", "", pubWith("urn:x", "2", "<x xmlns='urn:x'/>", accessOpts("whitelist"))), "conflict", "precondition-not-met")
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:x", "2", "<x xmlns='urn:x'/>", accessOpts("presence"))))
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><create node='urn:x'/></pubsub>"), "conflict", "")
	for i := 1; i < 8; i++ {
		ok(t, e.iq(a, aout, "set", "", pub(fmt.Sprint("urn:n", i), "1", "<x xmlns='urn:x'/>")))
	}
	fails(t, e.iq(a, aout, "set", "", pub("urn:n8", "1", "<x xmlns='urn:x'/>")), "resource-constraint", "max-nodes-exceeded")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><create node='urn:n8'/></pubsub>"), "resource-constraint", "max-nodes-exceeded")
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><delete node='urn:n1'/></pubsub>"))
	// configure beyond pep.max_items.
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><configure node='urn:x'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"+formNodeConfig+"</value></field><field var='pubsub#max_items'><value>100</value></field></x></configure></pubsub>"), "not-acceptable", "")
	// subscribe: the jid must be the sender's.
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:open", "1", "<x xmlns='urn:x'/>", accessOpts("open"))))
	fails(t, e.iq(b, bout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='urn:open' jid='carol@d.example'/></pubsub>"), "bad-request", "invalid-jid")
	fails(t, e.iq(b, bout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><unsubscribe node='urn:open' jid='bob@d.example'/></pubsub>"), "unexpected-request", "not-subscribed")
	fails(t, e.iq(b, bout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='urn:none' jid='bob@d.example'/></pubsub>"), "item-not-found", "")
	// pep.max_subscribers (4).
	for i := 0; i < 4; i++ {
		s, out := e.bind(fmt.Sprintf("u%d@%s/r", i, domain), true)
		ok(t, e.iq(s, out, "set", "alice@"+domain, fmt.Sprintf("<pubsub xmlns='%s'><subscribe node='urn:open' jid='u%d@%s'/></pubsub>", NS, i, domain)))
	}
	fails(t, e.iq(b, bout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='urn:open' jid='bob@d.example'/></pubsub>"), "resource-constraint", "")
	// Wrong type, unknown action.
	fails(t, e.iq(a, aout, "get", "", pub("urn:x", "1", "<x xmlns='urn:x'/>")), "bad-request", "")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><options node='urn:x' jid='alice@d.example'/></pubsub>"), "feature-not-implemented", "")
	fails(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><retract node='urn:x'><item id='nope'/></retract></pubsub>"), "item-not-found", "")
}

// Explicit subscriptions (XEP-0060 §6.1, §6.2): the last item at once,
// then every notification (no caps needed), until unsubscribed.
func TestSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	a, aout := e.bind("alice@"+domain+"/a", true)
	c, cout := e.bind("carol@"+domain+"/c", true)
	ok(t, e.iq(a, aout, "set", "", pubWith(sensor, "temperature", reading("20"), accessOpts("open"))))
	res := ok(t, e.iq(c, cout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='"+sensor+"' jid='carol@d.example'/></pubsub>"))
	if !strings.Contains(res, "<subscription node='"+sensor+"' jid='carol@d.example' subscription='subscribed'/>") {
		t.Fatalf("subscribe result: %s", res)
	}
	// e.iq kept only the result; the last item came right after it.
	st := sessiontest.Parse(t, "<iq type='set' id='s2' to='alice@d.example'><pubsub xmlns='"+NS+"'><subscribe node='"+sensor+"' jid='carol@d.example/c'/></pubsub></iq>")
	e.p.IQ(c, st, a.JID().Bare())
	got := cout.TakeAll()
	if ev := events(got); len(ev) != 1 || !strings.Contains(ev[0], "value='20'") || !strings.Contains(ev[0], "to='carol@d.example/c'") {
		t.Fatalf("last item on subscribe: %q", got)
	}
	subs := ok(t, e.iq(c, cout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscriptions/></pubsub>"))
	if strings.Count(subs, "<subscription ") != 2 {
		t.Fatalf("carol's subscriptions: %s", subs)
	}
	owners := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NSOwner+"'><subscriptions node='"+sensor+"'/></pubsub>"))
	if !strings.Contains(owners, "<subscription jid='carol@d.example' subscription='subscribed'/>") {
		t.Fatalf("node's subscriptions: %s", owners)
	}
	e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("21")))
	if ev := events(cout.TakeAll()); len(ev) != 1 {
		t.Fatalf("carol subscribed twice (bare and full) gets one copy, got %q", ev)
	}
	ok(t, e.iq(c, cout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><unsubscribe node='"+sensor+"' jid='carol@d.example'/></pubsub>"))
	ok(t, e.iq(c, cout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><unsubscribe node='"+sensor+"' jid='carol@d.example/c'/></pubsub>"))
	e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("22")))
	if ev := events(cout.TakeAll()); len(ev) != 0 {
		t.Fatalf("after unsubscribe: %q", ev)
	}
	// A non-contact cannot subscribe to a presence node.
	ok(t, e.iq(a, aout, "set", "", pub("urn:p", "1", "<p xmlns='urn:p'/>")))
	fails(t, e.iq(c, cout, "set", "alice@"+domain, "<pubsub xmlns='"+NS+"'><subscribe node='urn:p' jid='carol@d.example'/></pubsub>"), "forbidden", "presence-subscription-required")
}

// Retract (notify on request or by notify_retract), purge and delete
// with their notifications (XEP-0060 §7.2, §8.5, §8.4), configure
// (§8.2) and create with a form (§8.1.3).
func TestRetractPurgeDeleteConfigure(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	a, aout := e.bind("alice@"+domain+"/a", true)
	b, bout := e.bind("bob@"+domain+"/b", true, "urn:x")
	form := func(fields string) string {
		return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + formNodeConfig + "</value></field>" + fields + "</x>"
	}
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><create node='urn:x'/><configure>"+form("<field var='pubsub#max_items'><value>5</value></field>")+"</configure></pubsub>"))
	for i := 1; i <= 3; i++ {
		ok(t, e.iq(a, aout, "set", "", pub("urn:x", fmt.Sprint(i), "<x xmlns='urn:x'/>")))
	}
	bout.TakeAll()
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><retract node='urn:x'><item id='1'/></retract></pubsub>"))
	if ev := events(bout.TakeAll()); len(ev) != 0 {
		t.Fatalf("retract without notify: %q", ev)
	}
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><retract node='urn:x' notify='true'><item id='2'/></retract></pubsub>"))
	if ev := events(bout.TakeAll()); len(ev) != 1 || !strings.Contains(ev[0], "<items node='urn:x'><retract id='2'/></items>") {
		t.Fatalf("retract notify: %q", ev)
	}
	conf := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NSOwner+"'><configure node='urn:x'/></pubsub>"))
	for _, want := range []string{"<value>" + formNodeConfig + "</value>", "var='pubsub#max_items' type='text-single' label='Max # of items to persist'><value>5</value>",
		"var='pubsub#notify_retract' type='boolean' label='Notify subscribers when items are removed'><value>0</value>"} {
		if !strings.Contains(conf, want) {
			t.Fatalf("configure form lacks %s: %s", want, conf)
		}
	}
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><configure node='urn:x'>"+form("<field var='pubsub#notify_retract'><value>true</value></field><field var='pubsub#max_items'><value>1</value></field>")+"</configure></pubsub>"))
	all := ok(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><items node='urn:x'/></pubsub>"))
	if strings.Count(all, "<item ") != 1 {
		t.Fatalf("max_items lowered to 1: %s", all)
	}
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><retract node='urn:x'><item id='3'/></retract></pubsub>"))
	if ev := events(bout.TakeAll()); len(ev) != 1 || !strings.Contains(ev[0], "<retract id='3'/>") {
		t.Fatalf("notify_retract: %q", ev)
	}
	ok(t, e.iq(a, aout, "set", "", pub("urn:x", "4", "<x xmlns='urn:x'/>")))
	bout.TakeAll()
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><purge node='urn:x'/></pubsub>"))
	if ev := events(bout.TakeAll()); len(ev) != 1 || !strings.Contains(ev[0], "<event xmlns='"+NSEvent+"'><purge node='urn:x'/></event>") {
		t.Fatalf("purge: %q", ev)
	}
	if all := ok(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><items node='urn:x'/></pubsub>")); strings.Contains(all, "<item ") {
		t.Fatalf("after purge: %s", all)
	}
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><delete node='urn:x'/></pubsub>"))
	if ev := events(bout.TakeAll()); len(ev) != 1 || !strings.Contains(ev[0], "<delete node='urn:x'/>") {
		t.Fatalf("delete: %q", ev)
	}
	fails(t, e.iq(b, bout, "get", "alice@"+domain, "<pubsub xmlns='"+NS+"'><items node='urn:x'/></pubsub>"), "item-not-found", "")
	def := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NSOwner+"'><default/></pubsub>"))
	if !strings.Contains(def, "<value>presence</value></field>") {
		t.Fatalf("default: %s", def)
	}
}

// The last item on available presence (XEP-0163 §6.2): own account and
// local contacts, once per available period, or once caps become known.
func TestLastItemOnAvailable(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	a, aout := e.bind("alice@"+domain+"/a", true)
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("19"))))
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:w", "1", "<w xmlns='urn:w'/>", accessOpts("whitelist"))))
	b, bout := e.bind("bob@"+domain+"/b", true, sensor, "urn:w")
	e.p.Available(b)
	if ev := events(bout.TakeAll()); len(ev) != 1 || !strings.Contains(ev[0], "value='19'") || !strings.Contains(ev[0], "to='bob@d.example/b'") {
		t.Fatalf("last item on presence: %q", ev)
	}
	e.p.Available(b)
	if ev := events(bout.TakeAll()); len(ev) != 0 {
		t.Fatalf("second presence in one period: %q", ev)
	}
	e.p.Unavailable(b.JID())
	e.p.Available(b)
	if ev := events(bout.TakeAll()); len(ev) != 1 {
		t.Fatalf("after unavailable and available again: %q", ev)
	}
	// Caps not known at presence: Known sends.
	b2, b2out := e.bind("bob@"+domain+"/b2", true)
	e.p.Available(b2)
	if ev := events(b2out.TakeAll()); len(ev) != 0 {
		t.Fatalf("unknown caps: %q", ev)
	}
	e.mu.Lock()
	e.caps[b2.JID().String()] = []string{sensor}
	e.mu.Unlock()
	e.p.Known(b2.JID())
	if ev := events(b2out.TakeAll()); len(ev) != 1 {
		t.Fatalf("Known: %q", ev)
	}
	// The owner's own resource gets its own last items.
	a2, a2out := e.bind("alice@"+domain+"/a2", true, sensor, "urn:w")
	e.p.Available(a2)
	if ev := events(a2out.TakeAll()); len(ev) != 2 {
		t.Fatalf("own last items: %q", ev)
	}
	// Presence writes nothing.
	before := e.store.Commits()
	e.p.Unavailable(a2.JID())
	e.p.Available(a2)
	if c := e.store.Commits(); c != before {
		t.Fatalf("presence cost %d commits", c-before)
	}
}

// A contact on another domain: its available presence records it (and
// sends the last item), notifications go to it through Remote until its
// unavailable presence.
func TestRemoteContact(t *testing.T) {
	var mu = make(chan struct{}, 1)
	var sent []string
	e := newEnv(t, func(p *Service) {
		p.Remote = func(to string, b []byte) {
			mu <- struct{}{}
			sent = append(sent, to+" "+string(b))
			<-mu
		}
	})
	take := func() []string {
		mu <- struct{}{}
		defer func() { <-mu }()
		s := sent
		sent = nil
		return s
	}
	e.roster("alice", "eve@remote.example", "both")
	e.roster("alice", "mallory@remote.example", "none")
	a, aout := e.bind("alice@"+domain+"/a", true)
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("18"))))
	eve := mustJID(t, "eve@remote.example/phone")
	mallory := mustJID(t, "mallory@remote.example/x")
	e.mu.Lock()
	e.caps[eve.String()] = []string{sensor}
	e.caps[mallory.String()] = []string{sensor}
	e.mu.Unlock()
	e.p.RemoteAvailable(eve, a.JID().Bare())
	e.p.RemoteAvailable(mallory, a.JID().Bare())
	if got := take(); len(got) != 1 || !strings.HasPrefix(got[0], "eve@remote.example/phone <message to='eve@remote.example/phone'") || !strings.Contains(got[0], "value='18'") {
		t.Fatalf("last item to the remote contact: %q", got)
	}
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("19"))))
	if got := take(); len(got) != 1 || !strings.Contains(got[0], "value='19'") {
		t.Fatalf("notification to the remote contact: %q", got)
	}
	e.p.Unavailable(eve)
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "temperature", reading("20"))))
	if got := take(); len(got) != 0 {
		t.Fatalf("after unavailable: %q", got)
	}
}

// Persistence (issue 16): 600 items over 10 s with a 2 s flush interval
// cost a handful of commits; the latest item survives Close and reopen.
func TestPersistenceBatched(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s")
	}
	e := newEnv(t, func(p *Service) { p.FlushInterval = 2 * time.Second })
	a, aout := e.bind("alice@"+domain+"/a", true)
	before := e.store.Commits()
	start := time.Now()
	for i := 0; i < 600; i++ {
		ok(t, e.iq(a, aout, "set", "", pub(sensor, "temperature", reading(fmt.Sprint(i)))))
		if wait := time.Until(start.Add(time.Duration(i+1) * 10 * time.Second / 600)); wait > 0 {
			time.Sleep(wait) // the publishing rate under test, not a synchronisation
		}
	}
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	commits := e.store.Commits() - before
	t.Logf("600 publishes over %v: %d commits", time.Since(start).Round(time.Millisecond), commits)
	if commits > 7 {
		t.Fatalf("%d commits for 600 publishes, want at most ~6", commits)
	}
	e.store.Close()
	e.p = nil
	e.open(nil)
	a, aout = e.bind("alice@"+domain+"/a2", true)
	all := ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NS+"'><items node='"+sensor+"'/></pubsub>"))
	if !strings.Contains(all, "value='599'") {
		t.Fatalf("after reopen: %s", all)
	}
}

// Private data (persist_items with the whitelist model: XEP-0223,
// XEP-0402 bookmarks) is on disk before the publish is answered;
// persist_items=false is never written.
func TestPersistencePrivateAndVolatile(t *testing.T) {
	e := newEnv(t, func(p *Service) { p.FlushInterval = time.Hour })
	a, aout := e.bind("alice@"+domain+"/a", true)
	stored := func(node string) *storage.PEPNode {
		var found *storage.PEPNode
		err := e.store.PEPNodes(func(local string, n storage.PEPNode) error {
			if local == "alice" && n.Name == node {
				found = &n
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	bookmark := "<conference xmlns='urn:xmpp:bookmarks:1' name='Room' autojoin='true'/>"
	opts := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#send_last_published_item'><value>never</value></field></x></publish-options>"
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:xmpp:bookmarks:1", "room@muc", bookmark, opts)))
	n := stored("urn:xmpp:bookmarks:1")
	if n == nil || len(n.Items) != 1 || n.Items[0].Payload != bookmark || n.MaxItems != 16 || n.SendLast != "never" {
		t.Fatalf("private data not on disk at the answer: %+v", n)
	}
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "t", reading("1"))))
	if stored(sensor) != nil {
		t.Fatal("a presence node was written before the flush interval")
	}
	vol := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>false</value></field></x></publish-options>"
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:vol", "1", "<v xmlns='urn:vol'/>", vol)))
	e.reopen(nil)
	if stored(sensor) == nil {
		t.Fatal("Close did not flush")
	}
	if stored("urn:vol") != nil {
		t.Fatal("a persist_items=false node was written")
	}
	a, aout = e.bind("alice@"+domain+"/a3", true)
	fails(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NS+"'><items node='urn:vol'/></pubsub>"), "item-not-found", "")
	ok(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NS+"'><items node='urn:xmpp:bookmarks:1'/></pubsub>"))
	// Deleting a stored node removes it from the store.
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NSOwner+"'><delete node='urn:xmpp:bookmarks:1'/></pubsub>"))
	if stored("urn:xmpp:bookmarks:1") != nil {
		t.Fatal("a deleted private node is still stored")
	}
}

// Disco (XEP-0163 §4.1, XEP-0060 §5): the pep identity and features,
// the nodes the asker may see, node info.
func TestDisco(t *testing.T) {
	e := newEnv(t, nil)
	e.mutual("alice", "bob")
	a, aout := e.bind("alice@"+domain+"/a", true)
	ok(t, e.iq(a, aout, "set", "", pub("urn:p", "1", "<p xmlns='urn:p'/>")))
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:o", "1", "<o xmlns='urn:o'/>", accessOpts("open"))))
	ok(t, e.iq(a, aout, "set", "", pubWith("urn:w", "1", "<w xmlns='urn:w'/>", accessOpts("whitelist"))))
	owner := a.JID().Bare()
	bob, carol := mustJID(t, "bob@"+domain+"/b"), mustJID(t, "carol@"+domain+"/c")
	info, ok1 := e.p.DiscoInfo(nil, bob, owner, "")
	if !ok1 || !strings.Contains(string(info), "<identity category='pubsub' type='pep'/>") || !strings.Contains(string(info), NS+"#publish-options") {
		t.Fatalf("info: %s", info)
	}
	if items := string(e.p.DiscoItems(nil, bob, owner)); !strings.Contains(items, "node='urn:p'") || !strings.Contains(items, "node='urn:o'") || strings.Contains(items, "urn:w") {
		t.Fatalf("bob's items: %s", items)
	}
	if items := string(e.p.DiscoItems(nil, carol, owner)); strings.Contains(items, "node='urn:p'") || !strings.Contains(items, "node='urn:o'") {
		t.Fatalf("carol's items: %s", items)
	}
	if items := string(e.p.DiscoItems(nil, a.JID(), owner)); strings.Count(items, "<item ") != 3 {
		t.Fatalf("owner's items: %s", items)
	}
	if node, ok := e.p.DiscoInfo(nil, carol, owner, "urn:o"); !ok || !strings.Contains(string(node), "<identity category='pubsub' type='leaf'/>") {
		t.Fatalf("open node info: %s", node)
	}
	if _, ok := e.p.DiscoInfo(nil, carol, owner, "urn:p"); ok {
		t.Fatal("carol sees a presence node")
	}
	if _, ok := e.p.DiscoInfo(nil, bob, owner, "urn:none"); ok {
		t.Fatal("a missing node")
	}
	if !e.p.MayDisco(carol, owner, "") || !e.p.MayDisco(carol, owner, "urn:o") || e.p.MayDisco(carol, owner, "urn:p") {
		t.Fatal("MayDisco")
	}
}

// A deleted account's nodes are not written back by a later flush.
func TestDropAccount(t *testing.T) {
	e := newEnv(t, func(p *Service) { p.FlushInterval = time.Hour })
	a, aout := e.bind("alice@"+domain+"/a", true)
	ok(t, e.iq(a, aout, "set", "", pub(sensor, "t", reading("1"))))
	e.p.DropAccount(a.JID().Bare())
	before := e.store.Commits()
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	if c := e.store.Commits(); c != before {
		t.Fatalf("a dropped account's node was written (%d commits)", c-before)
	}
	e.store.Close()
	e.p = nil
	e.open(nil)
	a, aout = e.bind("alice@"+domain+"/a2", true)
	fails(t, e.iq(a, aout, "get", "", "<pubsub xmlns='"+NS+"'><items node='"+sensor+"'/></pubsub>"), "item-not-found", "")
}

// pep.account_bytes bounds what one account's nodes hold together:
// max_nodes × max_items × max_item_bytes alone would let one account make
// the gateway hold gigabytes. Replacing an item within the budget stays
// possible; a publish that would go past it is resource-constraint.
func TestAccountBytes(t *testing.T) {
	e := newEnv(t, func(p *Service) { p.MaxItemBytes, p.MaxAccountBytes = 1000, 2500 })
	a, aout := e.bind("alice@"+domain+"/a", true)
	blob := func(n int) string { return "<b xmlns='urn:b'>" + strings.Repeat("x", n) + "</b>" }
	ok(t, e.iq(a, aout, "set", "", pub("urn:n1", "i", blob(900))))
	ok(t, e.iq(a, aout, "set", "", pub("urn:n2", "i", blob(900))))
	fails(t, e.iq(a, aout, "set", "", pub("urn:n3", "i", blob(900))), "resource-constraint", "")
	// The same item replaced (max_items 1): the net change fits.
	ok(t, e.iq(a, aout, "set", "", pub("urn:n2", "j", blob(950))))
	// Freed by a retract, the budget takes a new node again.
	ok(t, e.iq(a, aout, "set", "", "<pubsub xmlns='"+NS+"'><retract node='urn:n1'><item id='i'/></retract></pubsub>"))
	ok(t, e.iq(a, aout, "set", "", pub("urn:n3", "i", blob(900))))
}
