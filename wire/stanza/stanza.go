// Package stanza gives views on raw stanza bytes (kind, to, from, type,
// id) and builds what a server writes back: forwarded stanzas with a
// stamped from, error replies with the 22 conditions of RFC 6120 §8.3.3,
// and stream errors (RFC 6120 §4.9). Nothing here builds a DOM.
package stanza

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"roost/wire/xmlscan"
)

// Kind is the kind of a stanza (RFC 6120 §8).
type Kind uint8

// The three stanza kinds.
const (
	Message Kind = iota + 1
	Presence
	IQ
)

func (k Kind) String() string {
	switch k {
	case Message:
		return "message"
	case Presence:
		return "presence"
	case IQ:
		return "iq"
	}
	return "unknown"
}

// Stanza is a view on one stanza's raw bytes.
type Stanza struct {
	Kind Kind
	Tok  *xmlscan.Token
	// Raw (still XML-escaped) values of the top-level attributes; nil
	// when absent.
	To, From, Type, ID, Lang []byte
	fromAttr, langAttr       int // index in Tok.Attrs, -1 when absent
}

// Parse recognises a message, presence or iq in the content namespace
// contentNS ("jabber:client"); ok is false for anything else.
func Parse(tok *xmlscan.Token, contentNS string) (Stanza, bool) {
	st := Stanza{Tok: tok, fromAttr: -1, langAttr: -1}
	if tok.Kind != xmlscan.KindElement || string(tok.Space) != contentNS {
		return st, false
	}
	switch string(tok.Local) {
	case "message":
		st.Kind = Message
	case "presence":
		st.Kind = Presence
	case "iq":
		st.Kind = IQ
	default:
		return st, false
	}
	for i := range tok.Attrs {
		a := &tok.Attrs[i]
		switch string(a.Name) {
		case "to":
			st.To = a.Value
		case "from":
			st.From = a.Value
			st.fromAttr = i
		case "type":
			st.Type = a.Value
		case "id":
			st.ID = a.Value
		case "xml:lang":
			st.Lang = a.Value
			st.langAttr = i
		}
	}
	return st, true
}

// AppendForward appends the stanza as it must be written onto another
// stream (RFC 6120 §8.1.2.1): from set to the sender's address, namespace
// bindings inherited from the sender's stream header re-declared, and the
// sender's stream xml:lang added when the stanza has none (§4.7.4). Only
// the start tag changes: the rest is copied as is.
func AppendForward(dst []byte, st *Stanza, from string, lang string) []byte {
	raw := st.Tok.Raw
	name := st.Tok.NameEnd
	dst = append(dst, raw[:name]...)
	dst = append(dst, " from='"...)
	dst = AppendEscaped(dst, from)
	dst = append(dst, '\'')
	for _, ns := range st.Tok.Inherited {
		dst = append(dst, " xmlns:"...)
		dst = append(dst, ns.Prefix...)
		dst = append(dst, "='"...)
		dst = AppendRawAttr(dst, ns.URI)
		dst = append(dst, '\'')
	}
	if lang != "" && st.langAttr < 0 {
		dst = append(dst, " xml:lang='"...)
		dst = AppendEscaped(dst, lang)
		dst = append(dst, '\'')
	}
	if st.fromAttr < 0 {
		return append(dst, raw[name:]...)
	}
	a := &st.Tok.Attrs[st.fromAttr]
	// Drop the old from with the whitespace before it.
	start := a.Start
	for start > name && isSpace(raw[start-1]) {
		start--
	}
	dst = append(dst, raw[name:start]...)
	return append(dst, raw[a.End:]...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// AppendEscaped appends s escaped for an attribute value or text.
func AppendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// AppendRawAttr appends a raw attribute value as the scanner left it
// (still escaped: entity and character references intact, no '<') so that
// it is safe inside single or double quotes. A value scanned from
// id="it's" holds a raw apostrophe, which would end a value written in
// single quotes (XML 1.0 §2.3, AttValue); both quotes are escaped, all
// else is copied as is so references keep their meaning.
func AppendRawAttr(dst, raw []byte) []byte {
	for _, c := range raw {
		switch c {
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Unescape resolves the five predefined entities and character references.
func Unescape(raw []byte) (string, error) {
	if !strings.Contains(string(raw), "&") {
		return string(raw), nil
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(raw) && raw[j] != ';' {
			j++
		}
		if j >= len(raw) {
			return "", errors.New("unterminated entity reference")
		}
		ent := string(raw[i+1 : j])
		switch ent {
		case "amp":
			b.WriteByte('&')
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "apos":
			b.WriteByte('\'')
		case "quot":
			b.WriteByte('"')
		default:
			var n uint64
			var err error
			switch {
			case strings.HasPrefix(ent, "#x"):
				n, err = strconv.ParseUint(ent[2:], 16, 32)
			case strings.HasPrefix(ent, "#"):
				n, err = strconv.ParseUint(ent[1:], 10, 32)
			default:
				return "", errors.New("unknown entity &" + ent + ";")
			}
			if err != nil || !utf8.ValidRune(rune(n)) {
				return "", errors.New("bad character reference &" + ent + ";")
			}
			b.WriteRune(rune(n))
		}
		i = j
	}
	return b.String(), nil
}
