package stanza

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"roost/wire/xmlscan"
)

// wellFormed parses s with encoding/xml (prefix stream declared).
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<w xmlns:stream='http://etherx.jabber.org/streams'>" + strings.TrimSuffix(s, "</stream:stream>") + "</w>"))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	}
}

// The table of RFC 6120 §8.3.3: each condition's name and default type.
func TestConditions(t *testing.T) {
	want := []struct {
		c    Condition
		name string
		typ  ErrorType
	}{
		{BadRequest, "bad-request", Modify}, {Conflict, "conflict", Cancel},
		{FeatureNotImplemented, "feature-not-implemented", Cancel}, {Forbidden, "forbidden", Auth},
		{Gone, "gone", Cancel}, {InternalServerError, "internal-server-error", Cancel},
		{ItemNotFound, "item-not-found", Cancel}, {JIDMalformed, "jid-malformed", Modify},
		{NotAcceptable, "not-acceptable", Modify}, {NotAllowed, "not-allowed", Cancel},
		{NotAuthorized, "not-authorized", Auth}, {PolicyViolation, "policy-violation", Modify},
		{RecipientUnavailable, "recipient-unavailable", Wait}, {Redirect, "redirect", Modify},
		{RegistrationRequired, "registration-required", Auth}, {RemoteServerNotFound, "remote-server-not-found", Cancel},
		{RemoteServerTimeout, "remote-server-timeout", Wait}, {ResourceConstraint, "resource-constraint", Wait},
		{ServiceUnavailable, "service-unavailable", Cancel}, {SubscriptionRequired, "subscription-required", Auth},
		{UndefinedCondition, "undefined-condition", Cancel}, {UnexpectedRequest, "unexpected-request", Wait},
	}
	if len(want) != 22 {
		t.Fatal("RFC 6120 has 22 conditions")
	}
	for _, w := range want {
		if w.c.String() != w.name || w.c.DefaultType() != w.typ {
			t.Errorf("%s: got %s/%s want %s/%s", w.name, w.c, w.c.DefaultType(), w.name, w.typ)
		}
		if c, ok := ParseCondition(w.name); !ok || c != w.c {
			t.Errorf("ParseCondition(%s) = %v %v", w.name, c, ok)
		}
		out := string(AppendErrorFor(nil, IQ, []byte("id1"), "a@b/c", "b", w.c, w.c.DefaultType(), "why <not> & 'so'"))
		wellFormed(t, out)
		if !strings.Contains(out, "<"+w.name+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") || !strings.Contains(out, "type='"+string(w.typ)+"'") {
			t.Errorf("%s: %s", w.name, out)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	for _, c := range []StreamCondition{StreamBadFormat, StreamBadNamespacePrefix, StreamConflict, StreamConnectionTimeout,
		StreamHostGone, StreamHostUnknown, StreamImproperAddressing, StreamInternalServerError, StreamInvalidFrom,
		StreamInvalidNamespace, StreamInvalidXML, StreamNotAuthorized, StreamNotWellFormed, StreamPolicyViolation,
		StreamRemoteConnectionFailed, StreamReset, StreamResourceConstraint, StreamRestrictedXML, StreamSeeOtherHost,
		StreamSystemShutdown, StreamUndefinedCondition, StreamUnsupportedEncoding, StreamUnsupportedFeature,
		StreamUnsupportedStanzaType, StreamUnsupportedVersion} {
		out := string(AppendStreamError(nil, c, "text & more"))
		if !strings.HasSuffix(out, "</stream:error></stream:stream>") || !strings.Contains(out, "<"+string(c)+" ") {
			t.Errorf("%s: %s", c, out)
		}
		wellFormed(t, out)
	}
}

func parse(t testing.TB, s string) Stanza {
	sc := xmlscan.New(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>"+s), xmlscan.Limits{})
	sc.Next()
	tok, err := sc.Next()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := Parse(&tok, "jabber:client")
	if !ok {
		t.Fatalf("not a stanza: %s", s)
	}
	return st
}

func TestAppendForward(t *testing.T) {
	for _, tc := range []struct{ name, in, from, lang, want string }{
		{"from inserted", "<message to='b@x'><body>hi</body></message>", "a@x/r", "",
			"<message from='a@x/r' to='b@x'><body>hi</body></message>"},
		{"from replaced", "<message to='b@x' from='evil@x/y' id='1'><body/></message>", "a@x/r", "",
			"<message from='a@x/r' to='b@x' id='1'><body/></message>"},
		{"self-closing", "<presence/>", "a@x/r", "",
			"<presence from='a@x/r'/>"},
		{"lang added", "<message><body/></message>", "a@x/r", "de",
			"<message from='a@x/r' xml:lang='de'><body/></message>"},
		{"lang kept", "<message xml:lang='fr'/>", "a@x/r", "de",
			"<message from='a@x/r' xml:lang='fr'/>"},
		{"escaped resource", "<presence/>", "a@x/it's <me> & you", "",
			"<presence from='a@x/it&apos;s &lt;me&gt; &amp; you'/>"},
		{"inherited prefix", "<message><db:x/></message>", "a@x/r", "",
			"<message from='a@x/r' xmlns:db='jabber:server:dialback'><db:x/></message>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := parse(t, tc.in)
			if got := string(AppendForward(nil, &st, tc.from, tc.lang)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	got, err := Unescape([]byte("a&amp;b&lt;&#x41;&#66;&apos;&quot;&gt;"))
	if err != nil || got != "a&b<AB'\">" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := Unescape([]byte("&bogus;")); err == nil {
		t.Fatal("unknown entity accepted")
	}
}

func BenchmarkAppendForward(b *testing.B) {
	st := parse(b, "<message to='bob@example.com' type='chat' id='m1'><body>Temperature 21.5 C</body></message>")
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = AppendForward(dst[:0], &st, "alice@example.com/laptop", "")
	}
}
