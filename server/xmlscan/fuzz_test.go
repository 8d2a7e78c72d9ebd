package xmlscan

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzScan feeds arbitrary bytes after a fixed stream header, in chunks
// whose sizes depend on the input, and checks:
//   - the scanner never panics and always ends (EOF or an error);
//   - the oracle, in one direction: every element the scanner accepts is
//     well-formed for encoding/xml's strict decoder (wrapped in an element
//     that declares the header's prefixes). encoding/xml accepts things
//     XMPP forbids (comments, PIs, DTDs, unbound prefixes), so the other
//     direction is not a bug: the scanner may refuse what encoding/xml
//     takes, never the opposite.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				panic(fmt.Sprintf("scanner hangs on %q", in))
			}
		}()
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
				return
			}
			if tok.Kind != KindElement {
				continue
			}
			wrapped := "<w xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>" + string(tok.Raw) + "</w>"
			d := xml.NewDecoder(strings.NewReader(wrapped))
			d.Strict = true
			for {
				_, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("scanner accepted %q, encoding/xml says %v", tok.Raw, err)
				}
			}
		}
	})
}
