package xmlscan

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='example.com' version='1.0'>"

// chunked yields its data in pieces of the sizes next returns.
type chunked struct {
	data []byte
	next func() int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.next(), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readers returns the same input whole, a byte at a time, and in random
// chunks, so every test runs across every possible split.
func readers(s string) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole": func() io.Reader { return strings.NewReader(s) },
		"bytewise": func() io.Reader {
			return &chunked{data: []byte(s), next: func() int { return 1 }}
		},
		"random": func() io.Reader {
			r := rand.New(rand.NewSource(int64(len(s))))
			return &chunked{data: []byte(s), next: func() int { return 1 + r.Intn(40) }}
		},
	}
}

// summary renders what a test checks of a token.
func summary(t Token) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s:%s{%s}", t.Kind, t.Prefix, t.Local, t.Space)
	for _, a := range t.Attrs {
		fmt.Fprintf(&b, " %s=%s", a.Name, a.Value)
		if string(t.Raw[a.Start:a.End]) != string(a.Name)+"='"+string(a.Value)+"'" && string(t.Raw[a.Start:a.End]) != string(a.Name)+"=\""+string(a.Value)+"\"" {
			fmt.Fprintf(&b, "(BAD OFFSETS %q)", t.Raw[a.Start:a.End])
		}
	}
	if t.Kind == KindElement {
		fmt.Fprintf(&b, " children=%d", t.Children)
		if t.Children > 0 {
			fmt.Fprintf(&b, " first=%s{%s}", t.ChildLocal, t.ChildSpace)
		}
		for _, ns := range t.Inherited {
			fmt.Fprintf(&b, " inherits=%s:%s", ns.Prefix, ns.URI)
		}
		if t.SelfClosing {
			b.WriteString(" empty")
		}
		fmt.Fprintf(&b, " name=%q", t.Raw[:t.NameEnd])
	}
	return b.String()
}

func scanAll(r io.Reader, lim Limits) ([]string, []string, error) {
	s := New(r, lim)
	var sums, raws []string
	for {
		t, err := s.Next()
		if err != nil {
			return sums, raws, err
		}
		sums = append(sums, summary(t))
		raws = append(raws, string(t.Raw))
	}
}

func TestValidStream(t *testing.T) {
	elems := []string{
		"<message to='a@b' type='chat' id='1'><body>hi &amp; bye &#x41;&#65;</body></message>",
		"<presence/>",
		"<iq type=\"get\" id='2'><query xmlns='jabber:iq:roster'/></iq>",
		"<message><body><![CDATA[<not a tag> & ]] >]]></body><x xmlns='urn:x'><y/></x></message>",
		"<db:result from='a' to='b'>key</db:result>",
		"<message xml:lang='fr'><body>Ça va? 日本語 😀</body></message>",
		"<ns:foo xmlns:ns='urn:foo' ns:attr='1'><ns:bar/></ns:foo>",
	}
	stream := "<?xml version='1.0' encoding='UTF-8'?>\n" + hdr + " \n" + strings.Join(elems, "\r\n\t ") + "  </stream:stream>"
	want := []string{
		"1 stream:stream{http://etherx.jabber.org/streams} xmlns=jabber:client xmlns:stream=http://etherx.jabber.org/streams xmlns:db=jabber:server:dialback to=example.com version=1.0",
		"2 :message{jabber:client} to=a@b type=chat id=1 children=1 first=body{jabber:client} name=\"<message\"",
		"2 :presence{jabber:client} children=0 empty name=\"<presence\"",
		"2 :iq{jabber:client} type=get id=2 children=1 first=query{jabber:iq:roster} name=\"<iq\"",
		"2 :message{jabber:client} children=2 first=body{jabber:client} name=\"<message\"",
		"2 db:result{jabber:server:dialback} from=a to=b children=0 inherits=db:jabber:server:dialback name=\"<db:result\"",
		"2 :message{jabber:client} xml:lang=fr children=1 first=body{jabber:client} name=\"<message\"",
		"2 ns:foo{urn:foo} xmlns:ns=urn:foo ns:attr=1 children=1 first=bar{urn:foo} name=\"<ns:foo\"",
		"3 :{}",
	}
	for name, mk := range readers(stream) {
		t.Run(name, func(t *testing.T) {
			sums, raws, err := scanAll(mk(), Limits{})
			if err != io.EOF {
				t.Fatalf("ended with %v after %v", err, sums)
			}
			if strings.Join(sums, "\n") != strings.Join(want, "\n") {
				t.Fatalf("tokens:\n%s\nwant:\n%s", strings.Join(sums, "\n"), strings.Join(want, "\n"))
			}
			for i, e := range elems {
				if raws[i+1] != e {
					t.Errorf("raw %d = %q, want %q", i, raws[i+1], e)
				}
			}
		})
	}
}

func TestViolations(t *testing.T) {
	small := Limits{MaxElementBytes: 200, MaxDepth: 3, MaxAttrs: 6, MaxNameBytes: 16} // the header has 5 attributes
	for _, tc := range []struct {
		name, in string
		want     Condition
	}{
		{"mismatched tags", "<a><b></a>", NotWellFormed},
		{"unbound prefix", "<x:a/>", NotWellFormed},
		{"unbound attribute prefix", "<a x:y='1'/>", NotWellFormed},
		{"duplicate attribute", "<a b='1' b='2'/>", NotWellFormed},
		{"< in attribute", "<a b='<'/>", NotWellFormed},
		{"unquoted attribute", "<a b=1/>", NotWellFormed},
		{"attribute without value", "<a b/>", NotWellFormed},
		{"bad name start", "<1a/>", NotWellFormed},
		{"control character", "<a>\x01</a>", NotWellFormed},
		{"]]> in text", "<a>]]></a>", NotWellFormed},
		{"text between stanzas", "hello", NotWellFormed},
		{"bad character reference", "<a>&#0;</a>", NotWellFormed},
		{"xmlns prefix declared", "<a xmlns:xmlns='u'/>", NotWellFormed},
		{"prefix undeclared", "<a xmlns:p=''/>", NotWellFormed},
		{"invalid UTF-8", "<a>\xff</a>", UnsupportedEncoding},
		{"overlong UTF-8", "<a>\xc0\xaf</a>", UnsupportedEncoding},
		{"surrogate in UTF-8", "<a>\xed\xa0\x80</a>", UnsupportedEncoding},
		{"DOCTYPE", "<!DOCTYPE a [<!ENTITY x 'y'>]><a/>", RestrictedXML},
		{"comment", "<!-- c -->", RestrictedXML},
		{"comment in stanza", "<a><!-- c --></a>", RestrictedXML},
		{"processing instruction", "<?pi x?>", RestrictedXML},
		{"undeclared entity", "<a>&nbsp;</a>", RestrictedXML},
		{"undeclared entity in attribute", "<a b='&x;'/>", RestrictedXML},
		{"element too big", "<a>" + strings.Repeat("x", 300) + "</a>", PolicyViolation},
		{"too deep", "<a><b><c><d/></c></b></a>", PolicyViolation},
		{"too many attributes", "<a b='1' c='2' d='3' e='4' f='5' g='6' h='7'/>", PolicyViolation},
		{"name too long", "<" + strings.Repeat("n", 40) + "/>", PolicyViolation},
	} {
		for rname, mk := range readers(hdr + tc.in) {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				_, _, err := scanAll(mk(), small)
				var e *Error
				if !errors.As(err, &e) || e.Cond != tc.want {
					t.Fatalf("got %v, want %s", err, tc.want)
				}
			})
		}
	}
}

func TestPrologViolations(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Condition
	}{
		{"latin-1", "<?xml version='1.0' encoding='ISO-8859-1'?>" + hdr, UnsupportedEncoding},
		{"entity bomb", "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>" + hdr, RestrictedXML},
		{"declaration twice", "<?xml version='1.0'?><?xml version='1.0'?>" + hdr, NotWellFormed},
		{"huge header", "<stream:stream " + strings.Repeat("a", 5000), PolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := scanAll(strings.NewReader(tc.in), Limits{})
			var e *Error
			if !errors.As(err, &e) || e.Cond != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestEOF(t *testing.T) {
	if _, _, err := scanAll(strings.NewReader(hdr+"<a/>"), Limits{}); err != io.EOF {
		t.Errorf("EOF between stanzas: %v", err)
	}
	if _, _, err := scanAll(strings.NewReader(hdr+"<a><b>"), Limits{}); err != io.ErrUnexpectedEOF {
		t.Errorf("EOF inside a stanza: %v", err)
	}
}

// TestResetDropsBuffered: what arrived after <starttls/> in the same read
// is never returned after Reset.
func TestResetDropsBuffered(t *testing.T) {
	s := New(strings.NewReader(hdr+"<starttls/><message>injected</message>"), Limits{})
	s.Next()
	tok, err := s.Next()
	if err != nil || string(tok.Local) != "starttls" {
		t.Fatalf("got %v %v", tok.Local, err)
	}
	if s.Buffered() == 0 {
		t.Fatal("the injected bytes should be buffered")
	}
	s.Reset(strings.NewReader(hdr + "<presence/>"))
	if s.Buffered() != 0 {
		t.Fatal("Reset kept bytes")
	}
	s.Next()
	tok, err = s.Next()
	if err != nil || string(tok.Local) != "presence" {
		t.Fatalf("after Reset got %s %v", tok.Raw, err)
	}
}

// countingReader counts Read calls, to check that a large stanza sent a
// byte at a time is scanned in linear work.
type countingReader struct {
	data  []byte
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.reads++
	p[0] = c.data[0]
	c.data = c.data[1:]
	return 1, nil
}

func TestLargeStanzaBytewise(t *testing.T) {
	body := strings.Repeat("abcdefghij", 20000) // 200 KB of text
	in := hdr + "<message><body>" + body + "</body></message>"
	r := &countingReader{data: []byte(in)}
	s := New(r, Limits{})
	s.Next()
	tok, err := s.Next()
	if err != nil || !bytes.Contains(tok.Raw, []byte(body)) {
		t.Fatalf("large stanza: %v", err)
	}
}

func TestNoAllocsSteadyState(t *testing.T) {
	msg := "<message to='a@b/c' type='chat' id='x'><body>hello</body></message> "
	r := &loop{head: hdr, body: msg}
	s := New(r, Limits{})
	s.Next()
	for i := 0; i < 100; i++ {
		s.Next()
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocs per token", n)
	}
}

// loop yields a header then the same bytes for ever, in 1500-byte reads.
type loop struct {
	head, body string
	off        int
	started    bool
}

func (l *loop) Read(p []byte) (int, error) {
	if !l.started {
		l.started = true
		return copy(p, l.head), nil
	}
	p = p[:min(len(p), 1500)]
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.body[l.off:])
		n += c
		l.off = (l.off + c) % len(l.body)
	}
	return n, nil
}

// BenchmarkScan scans a typical stanza mix read in 1500-byte chunks.
func BenchmarkScan(b *testing.B) {
	mix := "<message to='bob@example.com' type='chat' id='m1'><body>Temperature 21.5 C</body></message>\n" +
		"<presence><show>away</show><status>at lunch</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://slixmpp.com/ver/1.8.3' ver='abc='/></presence>" +
		"<iq type='get' id='r1' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq> " +
		"<message to='bob@example.com' type='chat' id='m2'><body>" + strings.Repeat("lorem ipsum ", 170) + "</body></message>\n"
	s := New(&loop{head: hdr, body: mix}, Limits{})
	s.Next()
	b.SetBytes(int64(len(mix)) / 4)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// scanErr scans in (whole, bytewise and in random chunks) and returns the
// condition every reading ended with, failing the test if they disagree.
func scanCond(t *testing.T, in string, lim Limits) (Condition, error) {
	t.Helper()
	var cond Condition
	var first error
	for rname, mk := range readers(in) {
		_, _, err := scanAll(mk(), lim)
		var e *Error
		c := Condition("")
		if errors.As(err, &e) {
			c = e.Cond
		}
		if first == nil {
			cond, first = c, err
		} else if c != cond {
			t.Fatalf("%s reading ended with %v, another with %v", rname, err, first)
		}
	}
	return cond, first
}

// TestNamespaceRules: Namespaces in XML 1.0 §3 and §6.3 on the top
// element, on a child element and on the stream header. A peer's client
// parser (expat, libxml2) refuses these, so forwarding one would cut the
// recipient off (issue 12 item 2).
func TestNamespaceRules(t *testing.T) {
	const (
		x  = "http://www.w3.org/XML/1998/namespace"
		xn = "http://www.w3.org/2000/xmlns/"
	)
	bad := []struct{ name, attrs string }{
		{"duplicate expanded attribute name", "xmlns:a='urn:x' xmlns:b='urn:x' a:q='1' b:q='2'"},
		{"duplicate expanded name, declarations after use", "a:q='1' b:q='2' xmlns:a='urn:x' xmlns:b='urn:x'"},
		{"duplicate expanded name through a reference", "xmlns:a='urn:x' xmlns:b='urn&#x3a;x' a:q='1' b:q='2'"},
		{"duplicate expanded name with xml prefix", "xmlns:a='" + x + "' a:lang='en' xml:lang='en'"},
		{"duplicate expanded name with a header prefix", "xmlns:a='jabber:server:dialback' a:q='1' db:q='2'"},
		{"xml prefix bound elsewhere", "xmlns:xml='urn:x'"},
		{"xml namespace bound to another prefix", "xmlns:a='" + x + "'"},
		{"xml namespace bound through a reference", "xmlns:a='http&#58;//www.w3.org/XML/1998/namespace'"},
		{"xml namespace as default", "xmlns='" + x + "'"},
		{"xmlns prefix declared", "xmlns:xmlns='urn:x'"},
		{"xmlns prefix declared to its namespace", "xmlns:xmlns='" + xn + "'"},
		{"xmlns namespace bound to a prefix", "xmlns:a='" + xn + "'"},
		{"xmlns namespace bound to the xml prefix", "xmlns:xml='" + xn + "'"},
		{"xmlns namespace as default", "xmlns='" + xn + "'"},
		{"whitespace in a namespace name", "xmlns:a='urn:x y'"},
		{"referenced whitespace in a namespace name", "xmlns='urn:x&#9;'"},
	}
	good := []struct{ name, attrs string }{
		{"xml prefix declared to its namespace", "xmlns:xml='" + x + "' xml:lang='en'"},
		{"same local name in different namespaces", "xmlns:a='urn:x' xmlns:b='urn:y' a:q='1' b:q='2'"},
		{"same local name, one unprefixed", "xmlns:a='urn:x' a:q='1' q='2'"},
		{"xml:lang and a same-named unprefixed attribute", "xml:lang='en' lang='fr'"},
		{"empty default namespace", "xmlns=''"},
		{"reference in a namespace name", "xmlns:a='urn:x?a=1&amp;b=2' a:q='1'"},
	}
	for _, where := range []struct {
		name string
		wrap func(attrs string) string
	}{
		{"top element", func(a string) string { return hdr + "<message " + a + "><body>x</body></message>" }},
		{"child element", func(a string) string { return hdr + "<message><body " + a + ">x</body></message>" }},
		{"empty grandchild", func(a string) string { return hdr + "<iq type='get'><q xmlns='urn:q'><i " + a + "/></q></iq>" }},
		{"stream header", func(a string) string {
			h := hdr
			if strings.HasPrefix(a, "xmlns=") { // in place of the header's own
				h = strings.Replace(h, " xmlns='jabber:client'", "", 1)
			}
			return strings.Replace(h, " to=", " "+a+" to=", 1) + "<presence/>"
		}},
	} {
		for _, tc := range bad {
			t.Run(where.name+"/"+tc.name, func(t *testing.T) {
				if where.name == "stream header" && strings.Contains(tc.attrs, "db:") {
					t.Skip("the header declares db itself")
				}
				if c, err := scanCond(t, where.wrap(tc.attrs), Limits{}); c != NotWellFormed {
					t.Fatalf("got %v, want not-well-formed", err)
				}
			})
		}
		for _, tc := range good {
			t.Run(where.name+"/accepts "+tc.name, func(t *testing.T) {
				if _, err := scanCond(t, where.wrap(tc.attrs), Limits{}); err != io.EOF {
					t.Fatalf("got %v, want it accepted", err)
				}
			})
		}
	}
}

// TestXMLDeclaration: XML 1.0 §2.8; only version 1.0 and UTF-8 are spoken
// (RFC 6120 §11.5, §11.6).
func TestXMLDeclaration(t *testing.T) {
	for _, tc := range []struct {
		name, decl string
		want       Condition // "" accepted
	}{
		{"version only", "<?xml version='1.0'?>", ""},
		{"double quotes and spaces", "<?xml  version = \"1.0\"  encoding = \"utf-8\" ?>", ""},
		{"all three", "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>", ""},
		{"standalone without encoding", "<?xml version='1.0' standalone='no'?>", ""},
		{"no version", "<?xml encoding='UTF-8'?>", NotWellFormed},
		{"empty declaration", "<?xml ?>", NotWellFormed},
		{"version 1.1", "<?xml version='1.1'?>", NotWellFormed},
		{"version 2.0", "<?xml version='2.0'?>", NotWellFormed},
		{"empty version", "<?xml version=''?>", NotWellFormed},
		{"version after encoding", "<?xml encoding='UTF-8' version='1.0'?>", NotWellFormed},
		{"standalone before encoding", "<?xml version='1.0' standalone='yes' encoding='UTF-8'?>", NotWellFormed},
		{"version twice", "<?xml version='1.0' version='1.0'?>", NotWellFormed},
		{"unknown pseudo-attribute", "<?xml version='1.0' foo='bar'?>", NotWellFormed},
		{"no whitespace between", "<?xml version='1.0'encoding='UTF-8'?>", NotWellFormed},
		{"mismatched quotes", "<?xml version='1.0\"?>", NotWellFormed},
		{"unquoted", "<?xml version=1.0?>", NotWellFormed},
		{"standalone maybe", "<?xml version='1.0' standalone='maybe'?>", NotWellFormed},
		{"bad encoding name", "<?xml version='1.0' encoding='8bit'?>", NotWellFormed},
		{"latin-1", "<?xml version='1.0' encoding='ISO-8859-1'?>", UnsupportedEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := scanCond(t, tc.decl+hdr+"<presence/>", Limits{})
			if tc.want == "" && err != io.EOF || tc.want != "" && c != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSelfClosingHeader: a stream header that closes itself is refused by
// the scanner, so every transport answers it the same way.
func TestSelfClosingHeader(t *testing.T) {
	for _, in := range []string{
		strings.TrimSuffix(hdr, ">") + "/>",
		"<?xml version='1.0'?>" + strings.TrimSuffix(hdr, ">") + " />",
	} {
		if c, err := scanCond(t, in, Limits{}); c != NotWellFormed {
			t.Errorf("%q: got %v, want not-well-formed", in, err)
		}
	}
	// Another first element is the caller's to refuse (invalid-namespace).
	s := New(strings.NewReader("<message xmlns='jabber:client'/>"), Limits{})
	if tok, err := s.Next(); err != nil || !tok.SelfClosing || string(tok.Local) != "message" {
		t.Errorf("a self-closing non-stream first element: %v", err)
	}
}

// TestNameCharacters: a non-ASCII name character must be allowed by XML
// 1.0 fifth edition and by editions 1-4, which expat (slixmpp, Prosody)
// and encoding/xml apply: "<a⁰/>" is fifth-edition XML, but forwarding it
// disconnects an expat client.
func TestNameCharacters(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"é", true}, {"日本", true}, {"aà", true}, {"a·", true}, {"xำ", true}, {"p:é", true},
		{"a⁰", false}, {"⁰", false}, {"·x", false}, {"𐀀", false}, {"aͿ", false}, {"Ͱ", false}, {"、x", false}, {"p:·", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := hdr + "<" + tc.name + " xmlns:p='urn:p'/>"
			c, err := scanCond(t, in, Limits{})
			if tc.ok && err != io.EOF || !tc.ok && c != NotWellFormed {
				t.Fatalf("got %v, want accepted=%v", err, tc.ok)
			}
			in = hdr + "<a " + tc.name + "='1' xmlns:p='urn:p'/>"
			c, err = scanCond(t, in, Limits{})
			if tc.ok && err != io.EOF || !tc.ok && c != NotWellFormed {
				t.Fatalf("as an attribute name: got %v, want accepted=%v", err, tc.ok)
			}
		})
	}
}

// TestLegacyNameTables: names_table.go (generated by names_gen.go) still
// says what encoding/xml says for every BMP character, and the fifth
// edition check never widens it.
func TestLegacyNameTables(t *testing.T) {
	if testing.Short() {
		t.Skip("probes 128k documents")
	}
	accepts := func(doc string) bool {
		d := xml.NewDecoder(strings.NewReader(doc))
		d.Strict = true
		_, err := d.RawToken()
		return err == nil
	}
	for r := rune(0x80); r <= 0xFFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if got, want := inRanges(legacyNameStart, r), accepts("<"+string(r)+"/>"); got != want {
			t.Fatalf("legacyNameStart(%U) = %v, encoding/xml says %v", r, got, want)
		}
		if got, want := inRanges(legacyNameChar, r), accepts("<a"+string(r)+"/>"); got != want {
			t.Fatalf("legacyNameChar(%U) = %v, encoding/xml says %v", r, got, want)
		}
		if nameRune(r, true) && !inRanges(legacyNameStart, r) || nameRune(r, false) && !inRanges(legacyNameChar, r) {
			t.Fatalf("nameRune(%U) wider than the legacy tables", r)
		}
	}
}
