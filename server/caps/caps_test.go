package caps

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// The examples of XEP-0115 §5.2 (simple) and §5.3 (complex).
const (
	simpleAnswer = `<iq type='result' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/chamber' id='disco1'>
  <query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
    <identity category='client' name='Exodus 0.9.1' type='pc'/>
    <feature var='http://jabber.org/protocol/caps'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/muc'/>
  </query>
</iq>`
	simpleVer     = "QgayPKawpkPSDYmwT/WM94uAlu0="
	complexAnswer = `<iq type='result' from='benvolio@capulet.lit/230193' to='juliet@capulet.lit/chamber' id='disco1'>
  <query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
    <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
    <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
    <feature var='http://jabber.org/protocol/caps'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/muc'/>
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:dataforms:softwareinfo</value>
      </field>
      <field var='ip_version' type='text-multi'>
        <value>ipv4</value>
        <value>ipv6</value>
      </field>
      <field var='os'>
        <value>Mac</value>
      </field>
      <field var='os_version'>
        <value>10.5.1</value>
      </field>
      <field var='software'>
        <value>Psi</value>
      </field>
      <field var='software_version'>
        <value>0.11</value>
      </field>
    </x>
  </query>
</iq>`
	complexVer = "q07IKJEyjvHSyhy//CH0CxmKi8w="
	complexS   = "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
)

func TestVerSimpleExample(t *testing.T) {
	info, err := ParseInfo([]byte(simpleAnswer))
	if err != nil {
		t.Fatal(err)
	}
	s, err := VerString(info)
	if want := "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"; err != nil || s != want {
		t.Fatalf("S = %q, %v; want %q", s, err, want)
	}
	if v, ok := Ver("sha-1", info); !ok || v != simpleVer {
		t.Fatalf("ver = %q, %v; want %q", v, ok, simpleVer)
	}
}

func TestVerComplexExample(t *testing.T) {
	info, err := ParseInfo([]byte(complexAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := VerString(info); err != nil || s != complexS {
		t.Fatalf("S = %q, %v; want %q", s, err, complexS)
	}
	if v, ok := Ver("sha-1", info); !ok || v != complexVer {
		t.Fatalf("ver = %q, %v; want %q", v, ok, complexVer)
	}
	// sha-256 of the same S (computed independently with openssl:
	// printf %s "$S" | openssl dgst -sha256 -binary | base64).
	if v, ok := Ver("sha-256", info); !ok || v != "VyRoCfkwN7Q9lxZhqOI+mxfSpo/MsaCF4hBufCzfCpI=" {
		t.Fatalf("sha-256 ver = %q, %v", v, ok)
	}
	if _, ok := Ver("md5", info); ok {
		t.Fatal("md5 is not a supported caps hash")
	}
}

func TestVerInvalidAnswers(t *testing.T) {
	dup := Info{Features: []string{"a", "b", "a"}}
	if _, err := VerString(dup); err == nil {
		t.Error("duplicate feature accepted")
	}
	dupID := Info{Identities: []Identity{{Category: "client", Type: "pc"}, {Category: "client", Type: "pc"}}}
	if _, err := VerString(dupID); err == nil {
		t.Error("duplicate identity accepted")
	}
	ft := Field{Var: "FORM_TYPE", Type: "hidden", Values: []string{"urn:x"}}
	twoForms := Info{Forms: []Form{{Fields: []Field{ft}}, {Fields: []Field{ft}}}}
	if _, err := VerString(twoForms); err == nil {
		t.Error("two forms with one FORM_TYPE accepted")
	}
	twoValues := Info{Forms: []Form{{Fields: []Field{{Var: "FORM_TYPE", Values: []string{"a", "b"}}}}}}
	if _, err := VerString(twoValues); err == nil {
		t.Error("FORM_TYPE with two values accepted")
	}
	// A form without FORM_TYPE, or whose FORM_TYPE is not hidden, is
	// left out of S (§5.4 step 3.6).
	noType := Info{Features: []string{"f"}, Forms: []Form{{Fields: []Field{{Var: "x", Values: []string{"1"}}}},
		{Fields: []Field{{Var: "FORM_TYPE", Values: []string{"urn:y"}}, {Var: "x", Values: []string{"1"}}}}}}
	if s, err := VerString(noType); err != nil || s != "f<" {
		t.Errorf("form without a hidden FORM_TYPE: S = %q, %v", s, err)
	}
	// Identities sort field by field: "a" < "a-b" although "a/" > "a-".
	ids := Info{Identities: []Identity{{Category: "a-b", Type: "x"}, {Category: "a", Type: "x"}}}
	if s, _ := VerString(ids); s != "a/x//<a-b/x//<" {
		t.Errorf("identity order: S = %q", s)
	}
}

func TestServerElement(t *testing.T) {
	const identity = "<identity category='server' type='im' name='Roost'/>"
	features := []string{"jabber:iq:version", "http://jabber.org/protocol/disco#info", "urn:xmpp:ping"}
	el := ServerElement(identity, features)
	ver := ServerVer(identity, features)
	want, _ := Ver("sha-1", Info{Identities: []Identity{{Category: "server", Type: "im", Name: "Roost"}}, Features: features})
	if ver == "" || ver != want {
		t.Fatalf("ServerVer = %q, want %q", ver, want)
	}
	var c struct {
		XMLName xml.Name
		Hash    string `xml:"hash,attr"`
		Node    string `xml:"node,attr"`
		Ver     string `xml:"ver,attr"`
	}
	if err := xml.Unmarshal(el, &c); err != nil {
		t.Fatalf("%s: %v", el, err)
	}
	if c.XMLName.Space != NS || c.XMLName.Local != "c" || c.Hash != "sha-1" || c.Node != Node || c.Ver != want {
		t.Fatalf("element %s", el)
	}
	// Computed once per input: the same bytes come back.
	if again := ServerElement(identity, features); &again[0] != &el[0] {
		t.Error("ServerElement recomputed for the same input")
	}
	if n := testing.AllocsPerRun(100, func() { ServerElement(identity, features) }); n != 0 {
		t.Errorf("ServerElement allocates %v times per call for a known input", n)
	}
	other := ServerVer(identity, append(features[:len(features):len(features)], "urn:xmpp:blocking"))
	if other == ver {
		t.Error("a different feature list gives the same ver")
	}
}

// harness is a Cache with its sent queries recorded.
type harness struct {
	*Cache
	mu    sync.Mutex
	sent  [][]byte
	known []string
	clock atomic.Int64 // unix nanoseconds
}

func newHarness(max int) *harness {
	h := &harness{}
	h.clock.Store(time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC).UnixNano())
	h.Cache = &Cache{Domain: "d.example", Max: max,
		Send: func(to jid.JID, b []byte) {
			h.mu.Lock()
			h.sent = append(h.sent, append([]byte(nil), b...))
			h.mu.Unlock()
		},
		Known: func(full jid.JID) {
			h.mu.Lock()
			h.known = append(h.known, full.String())
			h.mu.Unlock()
		},
		now: func() time.Time { return time.Unix(0, h.clock.Load()) },
	}
	return h
}

func (h *harness) advance(d time.Duration) { h.clock.Add(int64(d)) }

// take returns and clears the queries sent so far.
func (h *harness) take() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sent
	h.sent = nil
	return s
}

func (h *harness) knownList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.known...)
}

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func presence(from, hash, node, ver string) []byte {
	c := "<c xmlns='" + NS + "'"
	if hash != "" {
		c += " hash='" + hash + "'"
	}
	return []byte("<presence from='" + from + "'><status>hi</status>" + c + " node='" + node + "' ver='" + ver + "'/></presence>")
}

// scan makes a stanza of el as a client stream carries it.
func scan(t testing.TB, el string) *stanza.Stanza {
	t.Helper()
	sc := xmlscan.New(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+el), xmlscan.Limits{})
	if tok, err := sc.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("header: %v", err)
	}
	tok, err := sc.Next()
	if err != nil {
		t.Fatalf("%s: %v", el, err)
	}
	st, ok := stanza.Parse(&tok, stanza.NSClient)
	if !ok {
		t.Fatalf("not a stanza: %s", el)
	}
	return &st
}

// answer is from's disco#info result to query q listing features under
// identity client/pc.
func answer(t testing.TB, q []byte, from string, features ...string) *stanza.Stanza {
	t.Helper()
	id, _ := stanza.AttrValue(q, "id")
	var b strings.Builder
	fmt.Fprintf(&b, "<iq type='result' from='%s' to='d.example' id='%s'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' name='T'/>", from, id)
	for _, f := range features {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	b.WriteString("</query></iq>")
	return scan(t, b.String())
}

// verOf is the sha-1 ver of answer's content.
func verOf(features ...string) string {
	v, _ := Ver("sha-1", Info{Identities: []Identity{{Category: "client", Type: "pc", Name: "T"}}, Features: features})
	return v
}

var sensorFeatures = []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "urn:roost:sensor:0+notify", "urn:xmpp:bookmarks:1+notify"}

func TestResolveOnceAndCache(t *testing.T) {
	h := newHarness(10)
	alice := mustJID(t, "alice@d.example/a")
	ver := verOf(sensorFeatures...)
	if h.Presence(alice, presence(alice.String(), "sha-1", "https://client.example", ver)) {
		t.Fatal("an unknown ver reported known")
	}
	sent := h.take()
	if len(sent) != 1 {
		t.Fatalf("%d queries sent, want 1", len(sent))
	}
	q := sent[0]
	var iq struct {
		Query struct {
			XMLName xml.Name
			Node    string `xml:"node,attr"`
		} `xml:"query"`
	}
	if err := xml.Unmarshal(q, &iq); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	typ, _ := stanza.AttrValue(q, "type")
	from, _ := stanza.AttrValue(q, "from")
	to, _ := stanza.AttrValue(q, "to")
	if typ != "get" || from != "d.example" || to != alice.String() || iq.Query.XMLName.Space != nsDiscoInfo ||
		iq.Query.Node != "https://client.example#"+ver {
		t.Fatalf("query %s", q)
	}
	if h.Has(alice, "urn:roost:sensor:0+notify") {
		t.Fatal("features known before the answer")
	}
	// A repeated presence while the query is out asks nothing more.
	h.Presence(alice, presence(alice.String(), "sha-1", "https://client.example", ver))
	if n := len(h.take()); n != 0 {
		t.Fatalf("%d more queries for the same ver", n)
	}
	if !h.Result(answer(t, q, alice.String(), sensorFeatures...)) {
		t.Fatal("the answer was not taken as the cache's")
	}
	if !h.Has(alice, "urn:roost:sensor:0+notify") || h.Has(alice, "urn:roost:sensor:0") {
		t.Fatal("features not set from the verified answer")
	}
	if !h.Wants(alice, "urn:roost:sensor:0") || h.Wants(alice, "urn:roost:sensor:1") {
		t.Fatal("Wants")
	}
	if got := h.Notify(nil, alice); strings.Join(got, " ") != "urn:roost:sensor:0 urn:xmpp:bookmarks:1" {
		t.Fatalf("Notify = %q", got)
	}
	if k := h.knownList(); len(k) != 1 || k[0] != alice.String() {
		t.Fatalf("Known calls %q", k)
	}
	// Another entity with the same ver is trusted at once, without a query.
	bob := mustJID(t, "bob@remote.example/b")
	if !h.Presence(bob, presence(bob.String(), "sha-1", "https://client.example", ver)) {
		t.Fatal("a cached ver not known at presence")
	}
	if len(h.take()) != 0 || len(h.knownList()) != 1 || !h.Has(bob, "urn:roost:sensor:0+notify") {
		t.Fatal("a cached ver was queried or announced again")
	}
	// A presence without caps, then unavailable, forgets.
	h.Presence(bob, []byte("<presence/>"))
	if h.Has(bob, "urn:roost:sensor:0+notify") {
		t.Fatal("a presence without caps kept the old features")
	}
	h.Forget(alice)
	if h.Has(alice, "urn:roost:sensor:0+notify") {
		t.Fatal("Forget kept the features")
	}
	if v, p, e := h.Sizes(); v != 1 || p != 0 || e != 0 {
		t.Fatalf("sizes vers=%d pending=%d entities=%d", v, p, e)
	}
}

func TestNewVerReplaces(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	v1, v2 := verOf("one+notify"), verOf("two+notify")
	h.Presence(a, presence(a.String(), "sha-1", "n", v1))
	h.Result(answer(t, h.take()[0], a.String(), "one+notify"))
	if !h.Has(a, "one+notify") {
		t.Fatal("first ver")
	}
	h.Presence(a, presence(a.String(), "sha-1", "n", v2))
	if h.Has(a, "one+notify") {
		t.Fatal("the old ver's features kept after a new ver")
	}
	q := h.take()
	if len(q) != 1 {
		t.Fatalf("%d queries for the new ver", len(q))
	}
	h.Result(answer(t, q[0], a.String(), "two+notify"))
	if !h.Has(a, "two+notify") {
		t.Fatal("second ver")
	}
	// Back to the first: cached, known at once.
	if !h.Presence(a, presence(a.String(), "sha-1", "n", v1)) || !h.Has(a, "one+notify") || h.Has(a, "two+notify") {
		t.Fatal("back to the first ver")
	}
	// A late answer for a ver the entity no longer advertises does not set it.
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf("three")))
	q3 := h.take()[0]
	h.Presence(a, presence(a.String(), "sha-1", "n", v2))
	h.Result(answer(t, q3, a.String(), "three"))
	if h.Has(a, "three") || !h.Has(a, "two+notify") {
		t.Fatal("a stale answer changed the entity's features")
	}
}

func TestWrongHashIgnored(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "mallory@d.example/m")
	claimed := verOf("urn:roost:sensor:0+notify")
	h.Presence(a, presence(a.String(), "sha-1", "n", claimed))
	q := h.take()
	// The answer lists other features than those hashed into ver.
	if !h.Result(answer(t, q[0], a.String(), "urn:roost:sensor:0+notify", "evil")) {
		t.Fatal("answer not recognised")
	}
	if h.Has(a, "urn:roost:sensor:0+notify") || h.Has(a, "evil") || len(h.knownList()) != 0 {
		t.Fatal("features of a wrong hash trusted")
	}
	if v, _, _ := h.Sizes(); v != 0 {
		t.Fatal("a wrong hash was cached")
	}
	// Not asked again in this presence period.
	h.Presence(a, presence(a.String(), "sha-1", "n", claimed))
	if n := len(h.take()); n != 0 {
		t.Fatalf("asked again %d times after a wrong hash", n)
	}
	// Another entity with the same ver is queried, not trusted.
	b := mustJID(t, "bob@d.example/b")
	if h.Presence(b, presence(b.String(), "sha-1", "n", claimed)) {
		t.Fatal("ver of a wrong hash trusted for another entity")
	}
	qb := h.take()
	if len(qb) != 1 {
		t.Fatalf("%d queries to the second entity", len(qb))
	}
	h.Result(answer(t, qb[0], b.String(), "urn:roost:sensor:0+notify"))
	if !h.Has(b, "urn:roost:sensor:0+notify") {
		t.Fatal("the honest entity's answer not taken")
	}
	// After Forget (a new presence period) the same JID is asked again.
	h.Forget(a)
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf("x")))
	if n := len(h.take()); n != 1 {
		t.Fatalf("%d queries in a new presence period", n)
	}
}

func TestErrorAndSpoofIgnored(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	ver := verOf("f+notify")
	h.Presence(a, presence(a.String(), "sha-1", "n", ver))
	q := h.take()[0]
	id, _ := stanza.AttrValue(q, "id")
	// An answer from someone else carrying the query's id is not taken.
	h.Result(answer(t, q, "eve@d.example/e", "f+notify"))
	if h.Has(a, "f+notify") || len(h.knownList()) != 0 {
		t.Fatal("an answer from another JID was used")
	}
	if !h.Result(scan(t, "<iq type='error' from='"+a.String()+"' id='"+id+"'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")) {
		t.Fatal("error answer not recognised")
	}
	if h.Has(a, "f+notify") {
		t.Fatal("features after an error")
	}
	// The query is answered: a result now is not taken.
	h.Result(answer(t, q, a.String(), "f+notify"))
	if h.Has(a, "f+notify") {
		t.Fatal("an answer after the error was used")
	}
	if _, p, _ := h.Sizes(); p != 0 {
		t.Fatalf("%d queries pending", p)
	}
	if h.Result(scan(t, "<iq type='result' from='"+a.String()+"' id='roster-1'/>")) {
		t.Fatal("another iq taken as a caps answer")
	}
}

// A client's answer has no 'from' (its stream stands for it): it is
// matched by the query id, and by the sender when the caller knows it.
func TestAnswerWithoutFrom(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	eve := mustJID(t, "eve@d.example/e")
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf("f+notify")))
	q := h.take()[0]
	id, _ := stanza.AttrValue(q, "id")
	noFrom := func() *stanza.Stanza {
		return scan(t, "<iq type='result' id='"+id+"'><query xmlns='"+nsDiscoInfo+"'><identity category='client' type='pc' name='T'/><feature var='f+notify'/></query></iq>")
	}
	h.ResultFrom(eve, noFrom())
	if h.Has(a, "f+notify") {
		t.Fatal("an answer carried by another JID's stream was used")
	}
	if !h.ResultFrom(a, noFrom()) || !h.Has(a, "f+notify") {
		t.Fatal("the queried client's answer without from not used")
	}
	b := mustJID(t, "bob@d.example/b")
	h.Presence(b, presence(b.String(), "sha-1", "n", verOf("g")))
	q = h.take()[0]
	id, _ = stanza.AttrValue(q, "id")
	if !h.Result(scan(t, "<iq type='result' id='"+id+"'><query xmlns='"+nsDiscoInfo+"'><identity category='client' type='pc' name='T'/><feature var='g'/></query></iq>")) || !h.Has(b, "g") {
		t.Fatal("an answer without from not matched by its id")
	}
	if id2, _ := stanza.AttrValue(q, "id"); len(id2) < len("caps-")+24 {
		t.Fatalf("query id %q is too short to be unguessable", id2)
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf("f")))
	q := h.take()[0]
	h.advance(QueryTimeout + time.Second)
	h.Result(answer(t, q, a.String(), "f"))
	if h.Has(a, "f") {
		t.Fatal("a late answer was used")
	}
	if _, p, _ := h.Sizes(); p != 0 {
		t.Fatalf("%d queries pending after the deadline", p)
	}
}

func TestLegacyAndUnknownHash(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	for _, p := range [][]byte{
		presence(a.String(), "", "n", "1.0"),    // legacy caps (no hash)
		presence(a.String(), "md5", "n", "abc"), // unknown algorithm
		[]byte("<presence><c xmlns='urn:other' hash='sha-1' node='n' ver='v'/></presence>"),
		[]byte("<presence><x><c xmlns='" + NS + "' hash='sha-1' node='n' ver='v'/></x></presence>"), // not a direct child
		[]byte("<presence><c xmlns='" + NS + "'"),                                                   // broken
	} {
		if h.Presence(a, p) {
			t.Errorf("%s: known", p)
		}
	}
	if n := len(h.take()); n != 0 {
		t.Fatalf("%d queries for ignored caps", n)
	}
	// sha-256 is supported.
	v, _ := Ver("sha-256", Info{Identities: []Identity{{Category: "client", Type: "pc", Name: "T"}}, Features: []string{"f"}})
	h.Presence(a, presence(a.String(), "sha-256", "n", v))
	q := h.take()
	if len(q) != 1 {
		t.Fatal("no query for sha-256 caps")
	}
	h.Result(answer(t, q[0], a.String(), "f"))
	if !h.Has(a, "f") {
		t.Fatal("sha-256 caps not verified")
	}
	// A prefixed caps element is read too.
	b := mustJID(t, "bob@d.example/b")
	if !h.Presence(b, []byte("<presence xmlns:caps='"+NS+"'><caps:c hash='sha-256' node='n' ver='"+v+"'/></presence>")) {
		t.Fatal("prefixed caps element not read")
	}
}

func TestFloodOneJID(t *testing.T) {
	const max = 100
	h := newHarness(max)
	a := mustJID(t, "flood@d.example/f")
	for i := 0; i < 10000; i++ {
		f := fmt.Sprintf("urn:flood:%d", i)
		h.Presence(a, presence(a.String(), "sha-1", "n", verOf(f)))
		q := h.take()
		if len(q) != 1 {
			t.Fatalf("presence %d: %d queries", i, len(q))
		}
		if i%2 == 0 { // half answered (and cached), half left pending
			h.Result(answer(t, q[0], a.String(), f))
		}
		if v, p, e := h.Sizes(); v > max || p > max || e != 1 {
			t.Fatalf("after %d: vers=%d pending=%d entities=%d", i, v, p, e)
		}
	}
	if v, p, _ := h.Sizes(); v != max || p != max {
		t.Fatalf("vers=%d pending=%d, want both at the bound %d", v, p, max)
	}
}

func TestFloodManyJIDs(t *testing.T) {
	const max = 100
	h := newHarness(max)
	var local []jid.JID
	for i := 0; i < 10000; i++ {
		remote := mustJID(t, fmt.Sprintf("u%d@remote.example/r", i))
		h.Presence(remote, presence(remote.String(), "sha-1", "n", verOf(fmt.Sprint(i))))
		qs := h.take()
		h.Result(answer(t, qs[0], remote.String(), fmt.Sprint(i)))
		if i < 500 {
			l := mustJID(t, fmt.Sprintf("u%d@d.example/r", i))
			h.Presence(l, presence(l.String(), "sha-1", "n", verOf(fmt.Sprint(i))))
			local = append(local, l)
		}
		if v, p, e := h.Sizes(); v > max || p > max || e > h.remoteMax()*nShards+len(local) {
			t.Fatalf("after %d: vers=%d pending=%d entities=%d", i, v, p, e)
		}
	}
	// Local entities stay until Forget (their vers were cached by the
	// remote ones' answers; the early ones were evicted since, but the
	// entities keep the features they had).
	for i, l := range local {
		if !h.Has(l, fmt.Sprint(i)) {
			t.Fatalf("local entity %s lost its features", l)
		}
	}
	_, _, e := h.Sizes()
	if e < len(local) || e > 4*max+len(local)+nShards*4 {
		t.Fatalf("entities=%d", e)
	}
	for _, l := range local {
		h.Forget(l)
	}
	if _, _, e2 := h.Sizes(); e2 != e-len(local) {
		t.Fatalf("entities after Forget: %d, want %d", e2, e-len(local))
	}
}

func TestConcurrent(t *testing.T) {
	h := newHarness(50)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				j := mustJID(t, fmt.Sprintf("u%d@d.example/%d", g, i%5))
				f := fmt.Sprint(i % 70)
				h.Presence(j, presence(j.String(), "sha-1", "n", verOf(f)))
				h.Has(j, f)
				h.Notify(nil, j)
				if i%7 == 0 {
					h.Forget(j)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			for _, q := range h.take() {
				to, _ := stanza.AttrValue(q, "to")
				node, _ := stanza.AttrValue(bytes.SplitN(q, []byte("<query"), 2)[1], "node")
				// Answer with the feature the ver was made of (i%70
				// values: try them until one matches).
				for f := 0; f < 70; f++ {
					if strings.HasSuffix(node, "#"+verOf(fmt.Sprint(f))) {
						h.Result(answer(t, q, to, fmt.Sprint(f)))
						break
					}
				}
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	wg.Wait()
	if v, p, _ := h.Sizes(); v > 50 || p > 50 {
		t.Fatalf("vers=%d pending=%d", v, p)
	}
}

func TestHasNotifyNoAlloc(t *testing.T) {
	h := newHarness(10)
	a := mustJID(t, "alice@d.example/a")
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf(sensorFeatures...)))
	h.Result(answer(t, h.take()[0], a.String(), sensorFeatures...))
	dst := make([]string, 0, 8)
	if n := testing.AllocsPerRun(1000, func() {
		if !h.Has(a, "urn:roost:sensor:0+notify") || !h.Wants(a, "urn:roost:sensor:0") {
			t.Fatal("not known")
		}
		dst = h.Notify(dst[:0], a)
	}); n != 0 {
		t.Fatalf("Has/Wants/Notify allocate %v times", n)
	}
	var nilCache *Cache
	if nilCache.Has(a, "x") || nilCache.Presence(a, nil) || nilCache.Result(nil) || len(nilCache.Notify(nil, a)) != 0 {
		t.Fatal("nil cache knows something")
	}
	nilCache.Forget(a)
}

func BenchmarkHas(b *testing.B) {
	h := newHarness(10)
	a := mustJID(b, "alice@d.example/a")
	h.Presence(a, presence(a.String(), "sha-1", "n", verOf(sensorFeatures...)))
	h.Result(answer(b, h.take()[0], a.String(), sensorFeatures...))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !h.Has(a, "urn:roost:sensor:0+notify") {
				b.Fatal("not known")
			}
		}
	})
}
