package pep

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strconv"

	"roost/wire/stanza"
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

var errNoItem = errors.New("no item in the publish")

// itemPayload returns the payload of the first <item/> of the <publish/>
// in an iq (raw) as a standalone element: every namespace declared where
// it is used (a default xmlns on each element whose namespace differs
// from its parent's, a prefix of its own for a namespaced attribute).
// The raw bytes cannot be copied as they are: a client may bind a prefix
// on the iq or on <pubsub/>, and the copy sent in a notification or
// stored would then use an unbound prefix (XML Namespaces §5), which the
// recipient's parser rejects. Comments and processing instructions are
// dropped; whitespace between the item and its payload too.
func itemPayload(raw []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var out []byte
	var path []string // local names from the iq down
	var spaces []string
	inItem := -1 // depth of the item element, -1 until found
	open := false
	for {
		tok, err := d.Token()
		if err != nil {
			if inItem >= 0 {
				return nil, err
			}
			return nil, errNoItem
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if inItem < 0 {
				path = append(path, t.Name.Local)
				if len(path) == 4 && path[1] == "pubsub" && path[2] == "publish" && t.Name.Local == "item" {
					inItem = len(path)
					spaces = append(spaces[:0], t.Name.Space)
				}
				continue
			}
			if open {
				out = append(out, '>')
			}
			parent := spaces[len(spaces)-1]
			spaces = append(spaces, t.Name.Space)
			out = append(out, '<')
			out = append(out, t.Name.Local...)
			if t.Name.Space != parent {
				out = append(out, " xmlns='"...)
				out = stanza.AppendEscaped(out, t.Name.Space)
				out = append(out, '\'')
			}
			k := 0
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
					continue
				case a.Name.Space == "":
					out = append(out, ' ')
				case a.Name.Space == "xml" || a.Name.Space == nsXML:
					out = append(out, " xml:"...)
				default:
					k++
					p := "a" + strconv.Itoa(k)
					out = append(out, " xmlns:"+p+"='"...)
					out = stanza.AppendEscaped(out, a.Name.Space)
					out = append(out, "' "+p+":"...)
				}
				out = append(out, a.Name.Local...)
				out = append(out, "='"...)
				out = appendAttrValue(out, a.Value)
				out = append(out, '\'')
			}
			open = true
		case xml.EndElement:
			if inItem < 0 {
				path = path[:len(path)-1]
				continue
			}
			if len(spaces) == 1 {
				return bytes.TrimSpace(out), nil // the item's end
			}
			spaces = spaces[:len(spaces)-1]
			if open {
				out = append(out, "/>"...)
				open = false
				continue
			}
			out = append(out, "</"...)
			out = append(out, t.Name.Local...)
			out = append(out, '>')
		case xml.CharData:
			if inItem < 0 {
				continue
			}
			if open {
				out = append(out, '>')
				open = false
			}
			if len(spaces) == 1 {
				continue // between the item and its payload
			}
			out = stanza.AppendEscaped(out, string(t))
		}
	}
}

// selfContained reports whether a payload's raw bytes can be kept as
// they are: one element declaring its default namespace in its start
// tag, no prefixed names or prefix declarations in any tag, no comments,
// CDATA sections or processing instructions. The common case (what
// slixmpp, aioxmpp and the device simulator send) then costs no second
// parse; anything else goes through itemPayload.
func selfContained(b []byte) bool {
	if len(b) < 2 || b[0] != '<' || b[len(b)-1] != '>' {
		return false
	}
	first := true
	for i := 0; i < len(b); i++ {
		if b[i] != '<' {
			continue
		}
		if i+1 < len(b) && (b[i+1] == '!' || b[i+1] == '?') {
			return false
		}
		xmlns := false
		var q byte
		j := i + 1
		for ; j < len(b); j++ {
			c := b[j]
			switch {
			case q != 0:
				if c == q {
					q = 0
				}
			case c == '\'' || c == '"':
				q = c
			case c == ':':
				return false
			case c == '>':
				goto end
			case c == 'x' && bytes.HasPrefix(b[j:], []byte("xmlns=")) && isSpace(b[j-1]):
				xmlns = true
			}
		}
	end:
		if first && !xmlns {
			return false
		}
		first = false
		i = j
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendAttrValue escapes an attribute value, keeping tabs and line ends
// as character references so that they survive attribute normalisation.
func appendAttrValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\t':
			dst = append(dst, "&#9;"...)
		case '\n':
			dst = append(dst, "&#10;"...)
		case '\r':
			dst = append(dst, "&#13;"...)
		default:
			dst = stanza.AppendEscaped(dst, v[i:i+1])
		}
	}
	return dst
}
