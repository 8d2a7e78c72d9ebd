package stanza

import (
	"strings"
	"testing"

	"roost/tests/xmlcheck"
	"roost/wire/xmlscan"
)

var clientNS = map[string]string{"": "jabber:client"}

func TestAppendRawAttr(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:             `plain`,
		`it's`:              `it&apos;s`,
		`say "hi"`:          `say &quot;hi&quot;`,
		`a&amp;b&#x27;&lt;`: `a&amp;b&#x27;&lt;`, // references stay as scanned
		``:                  ``,
	} {
		if got := string(AppendRawAttr(nil, []byte(in))); got != want {
			t.Errorf("AppendRawAttr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Issue 12 item 3: a scanned id holding the quote Roost writes values in
// must not end the value early, in results and in error replies alike.
func TestRepliesQuoteID(t *testing.T) {
	for _, in := range []string{
		`<iq type="get" id="it's-1" to="localhost"><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='say "hi"' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='&apos;&quot;&amp;&lt;' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<message type="chat" id="it's" to="a@b@c"><body/></message>`,
	} {
		st := parse(t, in)
		for _, out := range [][]byte{
			AppendError(nil, &st, "me@localhost/r", "localhost", BadRequest, "it's \"bad\""),
			AppendIQResult(nil, st.ID, "me@localhost/r", "localhost", nil),
			AppendIQResult(nil, st.ID, "me@localhost/r", "", []byte("<query xmlns='jabber:iq:roster'/>")),
		} {
			if err := xmlcheck.Element(out, clientNS); err != nil {
				t.Errorf("reply to %s: %v\n%s", in, err, out)
			}
			// The id keeps its meaning: the reply's id unescapes to the request's.
			reply := parse(t, string(out))
			want, _ := Unescape(st.ID)
			if got, _ := Unescape(reply.ID); got != want {
				t.Errorf("reply id %q, want %q", got, want)
			}
		}
	}
}

// A namespace name on the stream header is re-declared on a forwarded
// stanza; one holding a quote must stay inside its value.
func TestForwardQuotedInheritedURI(t *testing.T) {
	sc := xmlscan.New(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x="urn:it's">`+
		`<message to='b@x'><x:y/></message>`), xmlscan.Limits{})
	if _, err := sc.Next(); err != nil {
		t.Fatal(err)
	}
	tok, err := sc.Next()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := Parse(&tok, "jabber:client")
	if !ok {
		t.Fatal("not a stanza")
	}
	out := AppendForward(nil, &st, "a@x/r", "")
	if err := xmlcheck.Element(out, clientNS); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
