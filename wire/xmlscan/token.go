// Package xmlscan is Roost's restricted-XML stream scanner: bytes in, stream
// header and top-level element boundaries out, with no tree built.
//
// RFC 6120 §11 restricts the XML an XMPP stream may carry (no DTD, no
// processing instructions, no comments, no entities but the five predefined
// ones). That restriction is what lets this package be a small, resumable
// byte state machine rather than a general XML parser: it checks
// well-formedness, namespace-well-formedness and UTF-8 as it goes, and hands
// the caller views of the raw bytes of each complete top-level element.
package xmlscan

import "bytes"

// Kind says what a Token is.
type Kind uint8

// Token kinds, in the order a stream produces them.
const (
	KindNone    Kind = iota
	KindHeader       // the stream open tag (<stream:stream ...>), after an optional XML declaration
	KindElement      // one complete top-level child of the stream (a stanza or a nonza such as <starttls/>)
	KindClose        // the stream close tag (</stream:stream>)
)

// Attr is one attribute of a top-level start tag, as views on Token.Raw.
type Attr struct {
	Name  []byte // qualified name as written: "to", "xml:lang", "xmlns", "xmlns:db"
	Value []byte // value as written, still escaped, without the quotes
	Start int    // offset in Token.Raw of the first byte of the name
	End   int    // offset in Token.Raw just past the closing quote
}

// NS is a namespace binding: a prefix ("" for the default namespace) and its URI.
type NS struct {
	Prefix []byte
	URI    []byte
}

// Token is one thing the scanner found. Every slice is a view on the
// scanner's buffer and is valid only until the next call to Next or Reset:
// callers that keep bytes copy them.
type Token struct {
	Kind Kind

	// Raw is the element's bytes: for KindElement the whole element with its
	// children; for KindHeader only the open tag; for KindClose the close tag.
	Raw []byte

	Prefix []byte // prefix of the top-level element's name ("" when none)
	Local  []byte // local name of the top-level element
	Space  []byte // namespace URI the element's name resolves to

	// Attrs are the top-level start tag's attributes, namespace
	// declarations included, in document order.
	Attrs []Attr

	// NameEnd is the offset in Raw just past the element's qualified name
	// in its start tag: where attributes can be spliced in.
	NameEnd int

	// SelfClosing is true for an empty-element tag such as <presence/>.
	SelfClosing bool

	// Children counts the direct child elements of a KindElement token.
	Children int
	// ChildLocal and ChildSpace name the first direct child element (local
	// name and resolved namespace URI); nil when there is none. They let a
	// server pick an iq handler without parsing the payload.
	ChildLocal []byte
	ChildSpace []byte
	// Kids name the first MaxKids direct children in document order (the
	// first is ChildLocal/ChildSpace): what a handler that looks at a
	// stanza's payload elements (XEP-0280 carbons: body, private,
	// no-copy) needs, without scanning the bytes again. Children counts
	// them all.
	Kids []Child

	// Inherited lists the prefixed namespace bindings this element uses
	// that were declared on the stream header rather than inside the
	// element. A stanza forwarded onto another stream must re-declare them.
	Inherited []NS
}

// Attr returns the raw (escaped) value of the top-level attribute with the
// qualified name name, and whether it is present.
func (t *Token) Attr(name string) ([]byte, bool) {
	for i := range t.Attrs {
		if string(t.Attrs[i].Name) == name {
			return t.Attrs[i].Value, true
		}
	}
	return nil, false
}

// Inner is the raw (still escaped) content between the element's start
// and end tags: the text of a simple element such as a SASL payload or a
// dialback key. It is nil for an empty-element tag.
func (t *Token) Inner() []byte {
	if t.SelfClosing || t.Kind != KindElement {
		return nil
	}
	i := t.NameEnd
	if n := len(t.Attrs); n > 0 {
		i = t.Attrs[n-1].End
	}
	j := bytes.IndexByte(t.Raw[i:], '>')
	end := bytes.LastIndexByte(t.Raw, '<')
	if j < 0 || end < i+j+1 {
		return nil
	}
	return t.Raw[i+j+1 : end]
}

// Child is a direct child element of a top-level element: its local name
// and resolved namespace.
type Child struct {
	Local []byte
	Space []byte
}

// MaxKids bounds the direct children a Token lists in Kids (a scanner
// keeps that many per element however many a stanza has).
const MaxKids = 16

// Limits bound what one stream may send (RFC 6120 §13.12, XEP-0205).
// A zero field takes the default noted beside it.
type Limits struct {
	MaxElementBytes int // whole top-level element, children included; default 256 KiB
	MaxDepth        int // element nesting below the stream; default 32
	MaxAttrs        int // attributes (with namespace declarations) on one element; default 64
	MaxNameBytes    int // one qualified element or attribute name; default 256

	// Budget, when set, is shared by many scanners: the read-buffer bytes
	// each holds beyond its first 1 KiB are charged to it, so that many
	// connections each holding an unfinished large stanza cannot take more
	// memory together than the budget. nil means unlimited.
	Budget *Budget
}

// Condition names the RFC 6120 §4.9.3 stream error a scan failure maps to.
type Condition string

// Stream error conditions the scanner can report.
const (
	NotWellFormed       Condition = "not-well-formed"
	RestrictedXML       Condition = "restricted-xml"
	PolicyViolation     Condition = "policy-violation"
	UnsupportedEncoding Condition = "unsupported-encoding"
	// ResourceConstraint: the shared Budget has no room for the buffer
	// this stream's next element needs.
	ResourceConstraint Condition = "resource-constraint"
)

// Error is a protocol violation found in the stream. The connection that
// sent it is closed with the stream error named by Cond.
type Error struct {
	Cond   Condition
	Reason string // for logs: what was wrong and roughly where
}

func (e *Error) Error() string { return "xml stream: " + string(e.Cond) + ": " + e.Reason }
