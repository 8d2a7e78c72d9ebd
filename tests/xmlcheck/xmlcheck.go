// Package xmlcheck is a namespace-aware XML checker used as a test and fuzz
// oracle. It is deliberately independent of Roost's scanner: tokens come
// from encoding/xml's Decoder.RawToken in Strict mode, and this package adds
// what RawToken leaves out — matching start and end tags, and the
// Namespaces in XML 1.0 (third edition) constraints:
//
//   - every element and attribute prefix is bound (§5, "Namespace
//     constraint: Prefix Declared");
//   - no element carries two attributes with the same expanded name (§6.3,
//     "Namespace constraint: Attributes Unique"), nor the same qualified name
//     (XML 1.0 §3.1, "Unique Att Spec");
//   - the prefix xml is bound only to the XML namespace and that namespace
//     to no other prefix; the prefix xmlns is never declared and its
//     namespace never bound; neither is the default namespace (§3,
//     "Reserved Prefixes and Namespace Names");
//   - a prefix is not undeclared (xmlns:p=” is only legal in 1.1);
//   - names have at most one colon, with non-empty prefix and local part
//     (§4, "Namespace constraint: QName");
//   - all characters, including character references, match XML 1.0's Char
//     production (§2.2), and the input is valid UTF-8.
//
// Comments, processing instructions (other than a leading XML declaration
// on a stream) and DTDs are rejected, as RFC 6120 §11.1 forbids them on an
// XMPP stream.
package xmlcheck

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Well-known namespace names.
const (
	NSXML     = "http://www.w3.org/XML/1998/namespace"
	NSXMLNS   = "http://www.w3.org/2000/xmlns/"
	NSStreams = "http://etherx.jabber.org/streams"
	NSClient  = "jabber:client"
)

// Stream checks bytes written on an XMPP stream: an optional XML
// declaration and stream header (<stream:stream ...>, RFC 6120 §4.7, which
// need not be closed), then complete top-level elements separated by
// optional whitespace, then optionally </stream:stream>.
//
// Without a stream header the bytes are taken as the continuation of a
// client stream whose header bound the default namespace to jabber:client
// and the prefix stream to the streams namespace.
func Stream(b []byte) error {
	c, err := newChecker(b)
	if err != nil {
		return err
	}
	closed := false
	base := map[string]string{"": NSClient, "stream": NSStreams}
	c.push(base)
	top := 1 // depth of the stream level
	for first := true; ; first = false {
		tok, raw, err := c.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if closed {
			if cd, ok := tok.(xml.CharData); ok && isBlank(cd) {
				continue
			}
			return fmt.Errorf("xmlcheck: %q after the stream was closed", raw)
		}
		if pi, ok := tok.(xml.ProcInst); ok && first && pi.Target == "xml" && c.off0 == 0 {
			continue
		}
		depth := len(c.stack)
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == top && t.Name.Space == "stream" && t.Name.Local == "stream" {
				// A stream header (or a restart's new header, RFC 6120
				// §4.3.3) replaces the context in force.
				c.stack = c.stack[:0]
				if err := c.start(t, raw); err != nil {
					return err
				}
				if ns := c.lookup("stream"); ns != NSStreams {
					return fmt.Errorf("xmlcheck: stream header in namespace %q", ns)
				}
				if bytes.HasSuffix(raw, []byte("/>")) {
					return errors.New("xmlcheck: self-closing stream header")
				}
				continue
			}
			if err := c.start(t, raw); err != nil {
				return err
			}
		case xml.EndElement:
			if depth == top {
				if t.Name.Space != "stream" || t.Name.Local != "stream" {
					return fmt.Errorf("xmlcheck: unexpected end tag %q at stream level", raw)
				}
				closed = true
				c.stack = c.stack[:0]
				continue
			}
			if err := c.end(t, raw); err != nil {
				return err
			}
		case xml.CharData:
			if depth == top && !isBlank(t) {
				return fmt.Errorf("xmlcheck: text %q at stream level", raw)
			}
		default:
			return fmt.Errorf("xmlcheck: forbidden %q (RFC 6120 §11.1)", raw)
		}
	}
	if !closed && len(c.stack) > top {
		return fmt.Errorf("xmlcheck: element <%s> not closed", c.stack[len(c.stack)-1].qname)
	}
	return nil
}

// Element checks that b holds exactly one complete element (whitespace
// around it is allowed), whose prefixes may use the bindings in inherited
// (prefix -> namespace name; "" is the default namespace; nil: none but
// xml).
func Element(b []byte, inherited map[string]string) error {
	c, err := newChecker(b)
	if err != nil {
		return err
	}
	c.push(inherited)
	done := false
	for {
		tok, raw, err := c.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done && len(c.stack) == 1 {
				return fmt.Errorf("xmlcheck: second root element %q", raw)
			}
			if err := c.start(t, raw); err != nil {
				return err
			}
		case xml.EndElement:
			if len(c.stack) == 1 {
				return fmt.Errorf("xmlcheck: end tag %q without start", raw)
			}
			if err := c.end(t, raw); err != nil {
				return err
			}
			if len(c.stack) == 1 {
				done = true
			}
		case xml.CharData:
			if len(c.stack) == 1 && !isBlank(t) {
				return fmt.Errorf("xmlcheck: text %q outside the element", raw)
			}
		default:
			return fmt.Errorf("xmlcheck: forbidden %q (RFC 6120 §11.1)", raw)
		}
	}
	if len(c.stack) > 1 {
		return fmt.Errorf("xmlcheck: element <%s> not closed", c.stack[len(c.stack)-1].qname)
	}
	if !done {
		return errors.New("xmlcheck: no element")
	}
	return nil
}

type frame struct {
	qname string            // as written, to match the end tag
	decl  map[string]string // bindings declared on this element
}

type checker struct {
	in    []byte
	dec   *xml.Decoder
	off0  int64 // offset where the last token starts
	stack []frame
}

func newChecker(b []byte) (*checker, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("xmlcheck: invalid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	return &checker{in: b, dec: d}, nil
}

// next returns the next raw token and the input bytes it came from.
func (c *checker) next() (xml.Token, []byte, error) {
	c.off0 = c.dec.InputOffset()
	tok, err := c.dec.RawToken()
	if err != nil {
		if err == io.EOF {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("xmlcheck: %w", err)
	}
	raw := c.in[c.off0:c.dec.InputOffset()]
	switch tok.(type) {
	case xml.CharData:
		if !bytes.HasPrefix(raw, []byte("<![CDATA[")) {
			if err := checkCharRefs(raw); err != nil {
				return nil, nil, err
			}
		}
	case xml.StartElement:
		if err := checkCharRefs(raw); err != nil {
			return nil, nil, err
		}
		if err := checkAttrSeparation(raw); err != nil {
			return nil, nil, err
		}
	}
	return tok, raw, nil
}

func (c *checker) push(decl map[string]string) {
	c.stack = append(c.stack, frame{decl: decl})
}

// lookup resolves a prefix ("" for the default namespace) in scope.
func (c *checker) lookup(prefix string) string {
	if prefix == "xml" {
		return NSXML
	}
	for i := len(c.stack) - 1; i >= 0; i-- {
		if ns, ok := c.stack[i].decl[prefix]; ok {
			return ns
		}
	}
	return ""
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// checkName enforces the QName production: RawToken leaves ":a" and "a:"
// whole in Local.
func checkName(n xml.Name) error {
	if strings.Contains(n.Local, ":") {
		return fmt.Errorf("xmlcheck: name %q is not a QName", qname(n))
	}
	// RawToken checks the name start of the whole qualified name only: a
	// local part after a prefix must itself be an NCName (§4).
	if c := n.Local; n.Space != "" && c != "" && (c[0] >= '0' && c[0] <= '9' || c[0] == '-' || c[0] == '.') {
		return fmt.Errorf("xmlcheck: local part of %q does not start with a name character", qname(n))
	}
	return nil
}

// checkAttrSeparation enforces XML 1.0 §3.1's S between attributes
// (encoding/xml accepts a='1'b='2'): after an attribute value's closing
// quote comes whitespace, '/' or '>'.
func checkAttrSeparation(raw []byte) error {
	var quote byte
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
				if i+1 < len(raw) {
					switch raw[i+1] {
					case ' ', '\t', '\r', '\n', '/', '>':
					default:
						return fmt.Errorf("xmlcheck: no whitespace between attributes in %q", raw)
					}
				}
			}
		case c == '\'' || c == '"':
			quote = c
		}
	}
	return nil
}

// start processes a start tag: namespace declarations, then prefixes and
// attribute uniqueness.
func (c *checker) start(t xml.StartElement, raw []byte) error {
	if err := checkName(t.Name); err != nil {
		return err
	}
	f := frame{qname: qname(t.Name)}
	seenQ := make(map[string]bool, len(t.Attr))
	for _, a := range t.Attr {
		if err := checkName(a.Name); err != nil {
			return err
		}
		q := qname(a.Name)
		if seenQ[q] {
			return fmt.Errorf("xmlcheck: duplicate attribute %s in %q", q, raw)
		}
		seenQ[q] = true
		var prefix string
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == NSXML || a.Value == NSXMLNS {
				return fmt.Errorf("xmlcheck: default namespace bound to %q", a.Value)
			}
			prefix = ""
		case a.Name.Space == "xmlns":
			prefix = a.Name.Local
			switch {
			case prefix == "xmlns":
				return errors.New("xmlcheck: prefix xmlns declared")
			case prefix == "xml" && a.Value != NSXML:
				return fmt.Errorf("xmlcheck: prefix xml bound to %q", a.Value)
			case prefix != "xml" && a.Value == NSXML:
				return fmt.Errorf("xmlcheck: XML namespace bound to prefix %q", prefix)
			case a.Value == NSXMLNS:
				return fmt.Errorf("xmlcheck: xmlns namespace bound to prefix %q", prefix)
			case a.Value == "":
				return fmt.Errorf("xmlcheck: prefix %q undeclared (not allowed in XML 1.0)", prefix)
			}
		default:
			continue
		}
		if f.decl == nil {
			f.decl = make(map[string]string)
		}
		f.decl[prefix] = a.Value
	}
	c.stack = append(c.stack, f)
	if t.Name.Space == "xmlns" {
		return fmt.Errorf("xmlcheck: element %s has the prefix xmlns", f.qname)
	}
	if t.Name.Space != "" && c.lookup(t.Name.Space) == "" {
		return fmt.Errorf("xmlcheck: unbound prefix %q on element %s", t.Name.Space, f.qname)
	}
	type expanded struct{ ns, local string }
	seen := make(map[expanded]bool, len(t.Attr))
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		var ns string
		if a.Name.Space != "" {
			ns = c.lookup(a.Name.Space)
			if ns == "" {
				return fmt.Errorf("xmlcheck: unbound prefix %q on attribute %s", a.Name.Space, qname(a.Name))
			}
		}
		e := expanded{ns, a.Name.Local}
		if seen[e] {
			return fmt.Errorf("xmlcheck: duplicate expanded attribute name {%s}%s in %q", ns, a.Name.Local, raw)
		}
		seen[e] = true
	}
	return nil
}

func (c *checker) end(t xml.EndElement, raw []byte) error {
	top := c.stack[len(c.stack)-1]
	if q := qname(t.Name); q != top.qname {
		return fmt.Errorf("xmlcheck: end tag %q does not match <%s>", raw, top.qname)
	}
	c.stack = c.stack[:len(c.stack)-1]
	return nil
}

// checkCharRefs checks every character reference in raw (text or a start
// tag) against XML 1.0's Char production; encoding/xml maps surrogates to
// U+FFFD and accepts &#0;.
func checkCharRefs(raw []byte) error {
	for {
		i := bytes.Index(raw, []byte("&#"))
		if i < 0 {
			return nil
		}
		raw = raw[i+2:]
		j := bytes.IndexByte(raw, ';')
		if j < 0 {
			return errors.New("xmlcheck: unterminated character reference")
		}
		ref := string(raw[:j])
		base := 10
		if strings.HasPrefix(ref, "x") {
			base, ref = 16, ref[1:]
		}
		n, err := strconv.ParseUint(ref, base, 32)
		if err != nil || !isChar(rune(n)) {
			return fmt.Errorf("xmlcheck: character reference &#%s; is not an XML Char", raw[:j])
		}
		raw = raw[j+1:]
	}
}

// isChar is XML 1.0 §2.2's Char production.
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
