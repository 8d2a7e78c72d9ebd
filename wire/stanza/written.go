package stanza

import "bytes"

// The helpers in this file read stanzas the server itself serialised
// (a start tag written by the builders here or copied from a scanned
// stanza), without a scanner: they look at the start tag only.

// FindAttr finds the attribute name in the start tag of b and returns
// the offsets of its whole name='value' text.
func FindAttr(b []byte, name string) (start, end int, ok bool) {
	i := nameEnd(b)
	for i < len(b) {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] == '>' || b[i] == '/' {
			return 0, 0, false
		}
		ns := i
		for i < len(b) && b[i] != '=' {
			i++
		}
		n := bytes.TrimSpace(b[ns:i])
		i++
		for i < len(b) && b[i] != '\'' && b[i] != '"' {
			i++
		}
		if i >= len(b) {
			return 0, 0, false
		}
		q := b[i]
		j := bytes.IndexByte(b[i+1:], q)
		if j < 0 {
			return 0, 0, false
		}
		i += j + 2
		if string(n) == name {
			return ns, i, true
		}
	}
	return 0, 0, false
}

// AttrValue is the unescaped value of the attribute name in the start tag
// of b; ok is false when it is absent or cannot be unescaped.
func AttrValue(b []byte, name string) (string, bool) {
	a, e, ok := FindAttr(b, name)
	if !ok {
		return "", false
	}
	v := b[a:e]
	i := bytes.IndexAny(v, "'\"")
	if i < 0 || len(v) < i+2 {
		return "", false
	}
	u, err := Unescape(v[i+1 : len(v)-1])
	return u, err == nil
}

// InsertTo returns a copy of b with to='to' added after the element name
// (a broadcast copy given its addressee).
func InsertTo(b []byte, to string) []byte {
	name := nameEnd(b)
	out := make([]byte, 0, len(b)+len(to)+8)
	out = append(out, b[:name]...)
	out = append(out, " to='"...)
	out = AppendEscaped(out, to)
	out = append(out, '\'')
	return append(out, b[name:]...)
}

// KindOf is the kind of a stanza the server serialised.
func KindOf(b []byte) Kind {
	switch {
	case bytes.HasPrefix(b, []byte("<message")):
		return Message
	case bytes.HasPrefix(b, []byte("<iq")):
		return IQ
	}
	return Presence
}

// nameEnd is the offset just past the element name of b's start tag.
func nameEnd(b []byte) int {
	i := 1
	for i < len(b) && !isSpace(b[i]) && b[i] != '/' && b[i] != '>' {
		i++
	}
	return i
}
