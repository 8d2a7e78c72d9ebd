package xmlscan

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"roost/tests/xmlcheck"
)

// The oracle is tests/xmlcheck: encoding/xml's tokenizer plus its own
// Namespaces in XML processing, written independently of this scanner.
// It is what a strict peer parser would say about bytes we forward.
//
// Where the two legitimately disagree, the scanner is the stricter one,
// and the disagreements are recognised by the scanner's reason (see
// stricterOnPurpose): encoding/xml does not check "]]>" in text; between
// stanzas the scanner takes only whitespace as written (keepalives, RFC
// 6120 §11.7), not a reference such as "&#9;"; RFC 6120
// §11 restricts XML, so the scanner refuses a CDATA section at stream
// level; a namespace name with whitespace is not a URI reference
// (Namespaces in XML §2.2), which xmlcheck does not check; the XML
// declaration's syntax, which encoding/xml barely checks; and the
// scanner's size limits (policy-violation), which xmlcheck has none of.

// headerNS is what the fixed FuzzScan header binds.
var headerNS = map[string]string{
	"":       "jabber:client",
	"stream": "http://etherx.jabber.org/streams",
	"db":     "jabber:server:dialback",
}

// stricterOnPurpose is true for a scanner refusal that xmlcheck does not
// make, by design (see above).
func stricterOnPurpose(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return true // read errors: EOF inside an element
	}
	if e.Cond == PolicyViolation {
		return true
	}
	for _, r := range []string{"]]> in text", "text between stanzas", "CDATA at stream level", "whitespace in a namespace name", "XML declaration", "XML version", "standalone", "encoding"} {
		if strings.Contains(e.Reason, r) {
			return true
		}
	}
	return false
}

// watchdog panics if the scanner has not finished with in within 5 s.
func watchdog(in []byte) (done func()) {
	c := make(chan struct{})
	go func() {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			panic(fmt.Sprintf("scanner hangs on %q", in))
		}
	}()
	return func() { close(c) }
}

// fuzzSeeds are shared by both targets: every rule has one.
var fuzzSeeds = []string{
	"<message to='a@b' type='chat'><body>hi</body></message>",
	"<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' ver='x'/></presence>",
	"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
	"<message><body><![CDATA[a<b]]></body></message>",
	"<message><body>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;</body></message>",
	"<db:result from='a' to='b'>k</db:result>",
	"<p:a xmlns:p='u'><p:b p:c='1'/></p:a>",
	"<é日本 ü='1'/>",
	"<a><b><c><d><e/></d></c></b></a>",
	"<a>]]></a>",
	"<a b='1' b='2'/>",
	"<!DOCTYPE x [<!ENTITY a 'b'>]>",
	"<a>&nbsp;</a>",
	"<a>\xff</a>",
	"<a><!-- c --></a>",
	"   \n<presence/>\t",
	"</stream:stream>",
	// Namespaces in XML: expanded names and reserved prefixes/namespaces.
	"<message xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'><body>x</body></message>",
	"<message><x xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'/></message>",
	"<message xmlns:a='urn:x' xmlns:b='urn&#x3a;x' a:q='1' b:q='2'/>",
	"<message xmlns:a='jabber:server:dialback' a:q='1' db:q='2'/>",
	"<message xmlns:a='http://www.w3.org/XML/1998/namespace' a:lang='en' xml:lang='en'/>",
	"<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
	"<message xmlns:xml='urn:x'/>",
	"<message xmlns='http://www.w3.org/XML/1998/namespace'/>",
	"<message xmlns:xmlns='http://www.w3.org/2000/xmlns/'/>",
	"<message xmlns:a='http://www.w3.org/2000/xmlns/'/>",
	"<message><b xmlns='http://www.w3.org/2000/xmlns/'/></message>",
	"<message xmlns:a='urn:x y'/>",
	"<message xmlns:a='urn:x' xmlns:b='urn:y' a:q='1' b:q='2' q='3'/>",
	"<xmlns:a/>",
	// Names: fifth-edition-only characters are refused (expat refuses them).
	"<a\u2070/>",
	"<p:\u00e9 xmlns:p='u' \u00e9\u00b7='1'/>",
}

// FuzzScan feeds arbitrary bytes after a fixed stream header, in chunks
// whose sizes depend on the input, and checks:
//   - the scanner never panics and always ends (EOF or an error);
//   - every element it returns is namespace-well-formed for xmlcheck,
//     given the header's bindings (forwarding it cannot break a peer);
//   - the other way: when xmlcheck accepts the whole input as the rest of
//     the stream, the scanner refuses nothing but what it refuses on
//     purpose (stricterOnPurpose).
func FuzzScan(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		defer watchdog(in)()
		data := []byte(hdr)
		data = append(data, in...)
		step := 1 + len(in)%7
		s := New(&chunked{data: data, next: func() int { return step }}, Limits{MaxElementBytes: 64 << 10})
		if _, err := s.Next(); err != nil {
			t.Fatalf("header: %v", err)
		}
		for i := 0; ; i++ {
			if i > len(in)+2 {
				t.Fatal("more tokens than bytes")
			}
			tok, err := s.Next()
			if err != nil {
				var e *Error
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &e) {
					t.Fatalf("unexpected error type %T %v", err, err)
				}
				if err != io.EOF && !stricterOnPurpose(err) {
					if xerr := xmlcheck.Stream(data); xerr == nil {
						t.Fatalf("scanner refused %q (%v), xmlcheck accepts it", in, err)
					}
				}
				return
			}
			if tok.Kind != KindElement {
				continue
			}
			if xerr := xmlcheck.Element(tok.Raw, headerNS); xerr != nil {
				t.Fatalf("scanner accepted %q, xmlcheck says %v", tok.Raw, xerr)
			}
		}
	})
}

// countReader counts the bytes the scanner has read, so that the test can
// tell where in the input the last token ended.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzStream feeds arbitrary bytes as a whole stream, XML declaration and
// stream header included, and checks that everything the scanner accepted
// (the input up to the end of its last token) is a well-formed XMPP
// stream prefix for xmlcheck: the declaration, the header's bindings and
// reserved names, and the elements under them.
func FuzzStream(f *testing.F) {
	const streamNS = " xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
	for _, h := range []string{
		"<stream:stream" + streamNS + " to='example.com' version='1.0'>",
		"<?xml version='1.0'?><stream:stream" + streamNS + ">",
		"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone='no' ?>\n<stream:stream" + streamNS + ">",
		"<?xml version='1.1'?><stream:stream" + streamNS + ">",
		"<?xml encoding='UTF-8'?><stream:stream" + streamNS + ">",
		"<?xml version='1.0' encoding='latin1'?><stream:stream" + streamNS + ">",
		"<stream:stream" + streamNS + "/>",
		"<stream:stream" + streamNS + " xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'>",
		"<stream:stream" + streamNS + " xmlns:xml='urn:x'>",
		"<stream:stream" + streamNS + " xmlns:x='http://www.w3.org/XML/1998/namespace'>",
		"<stream:stream xmlns='http://www.w3.org/2000/xmlns/' xmlns:stream='http://etherx.jabber.org/streams'>",
		"<stream:stream" + streamNS + " xmlns:p='urn:p'><p:x p:a='1'/></stream:stream>",
	} {
		f.Add([]byte(h + "<presence/>"))
		f.Add([]byte(h))
	}
	for _, seed := range fuzzSeeds {
		f.Add([]byte("<stream:stream" + streamNS + " xmlns:db='jabber:server:dialback'>" + seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		defer watchdog(in)()
		step := 1 + len(in)%5
		cr := &countReader{r: &chunked{data: in, next: func() int { return step }}}
		s := New(cr, Limits{MaxElementBytes: 64 << 10})
		tok, err := s.Next()
		if err != nil {
			return
		}
		// xmlcheck.Stream knows a stream by its stream:stream header;
		// other first elements are the callers' business (c2s checks the
		// name).
		if string(tok.Prefix) != "stream" || string(tok.Local) != "stream" || string(tok.Space) != "http://etherx.jabber.org/streams" {
			return
		}
		accepted := func() []byte { return in[:cr.n-s.Buffered()] }
		if xerr := xmlcheck.Stream(accepted()); xerr != nil {
			t.Fatalf("scanner accepted the header of %q, xmlcheck says %v", accepted(), xerr)
		}
		for i := 0; ; i++ {
			if i > len(in)+2 {
				t.Fatal("more tokens than bytes")
			}
			tok, err := s.Next()
			if err != nil {
				return
			}
			if xerr := xmlcheck.Stream(accepted()); xerr != nil {
				t.Fatalf("scanner accepted %q up to %q, xmlcheck says %v", accepted(), tok.Raw, xerr)
			}
			if tok.Kind == KindClose {
				return
			}
		}
	})
}
