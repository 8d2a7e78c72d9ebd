package carbons

import (
	"bytes"

	"roost/wire/stanza"
)

// appendCopy appends the carbon of msg for the resource to (XEP-0280 §7,
// §8): a message from the user's bare JID keeping the original's type,
// holding <dir xmlns='urn:xmpp:carbons:2'> (dir is "sent" or "received")
// around <forwarded xmlns='urn:xmpp:forward:0'> (XEP-0297) around the
// message as it was routed (from stamped). The copy is declared in
// jabber:client, since inside <forwarded/> it would otherwise inherit
// XEP-0297's namespace.
func appendCopy(dst []byte, dir, bare, to string, typ, msg []byte) []byte {
	dst = append(dst, "<message from='"...)
	dst = stanza.AppendEscaped(dst, bare)
	dst = append(dst, "' to='"...)
	dst = stanza.AppendEscaped(dst, to)
	dst = append(dst, '\'')
	if len(typ) > 0 {
		dst = append(dst, " type='"...)
		dst = stanza.AppendRawAttr(dst, typ)
		dst = append(dst, '\'')
	}
	dst = append(dst, "><"...)
	dst = append(dst, dir...)
	dst = append(dst, " xmlns='"+NS+"'><forwarded xmlns='"+NSForward+"'>"...)
	if _, _, ok := stanza.FindAttr(msg, "xmlns"); ok {
		dst = append(dst, msg...)
	} else {
		name := nameEnd(msg)
		dst = append(dst, msg[:name]...)
		dst = append(dst, " xmlns='"+stanza.NSClient+"'"...)
		dst = append(dst, msg[name:]...)
	}
	dst = append(dst, "</forwarded></"...)
	dst = append(dst, dir...)
	return append(dst, "></message>"...)
}

// IsCopy reports whether b, a stanza the server wrote, is a carbon made
// by appendCopy. A carbon that never reached its session is not a
// message of its own to re-route or store: the original was delivered.
func IsCopy(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("<message ")) {
		return false
	}
	// The start tag appendCopy writes holds no raw '>' (values escaped,
	// the type is chat or normal).
	i := bytes.IndexByte(b, '>')
	if i < 0 {
		return false
	}
	rest := b[i+1:]
	return bytes.HasPrefix(rest, []byte("<sent xmlns='"+NS+"'>")) ||
		bytes.HasPrefix(rest, []byte("<received xmlns='"+NS+"'>"))
}

// nameEnd is the offset just past the element name of b's start tag.
func nameEnd(b []byte) int {
	i := 1
	for i < len(b) && !isSpace(b[i]) && b[i] != '/' && b[i] != '>' {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// info is what the rules need of a message's direct children.
type info struct {
	body    bool // <body/> in the message's own namespace
	private bool // <private xmlns='urn:xmpp:carbons:2'/> (XEP-0280 §9)
	noCopy  bool // <no-copy xmlns='urn:xmpp:hints'/> (XEP-0334)
	carbon  bool // <sent/> or <received/> of urn:xmpp:carbons:2: already a carbon
	mucUser bool // <x xmlns='http://jabber.org/protocol/muc#user'/> (XEP-0045)
}

// eligible applies XEP-0280 §6 to a message of type typ: type chat, or
// normal with a body; never an error, headline or groupchat; never one
// marked private or no-copy, nor a carbon itself (which would copy
// copies). Messages from a MUC room are the caller's check: they depend
// on the direction.
func (in info) eligible(typ []byte) bool {
	switch string(typ) {
	case "chat":
	case "", "normal":
		if !in.body {
			return false
		}
	default:
		return false
	}
	return !in.private && !in.noCopy && !in.carbon
}

// maxDecls bounds the namespace declarations remembered per start tag;
// more than that on one tag is not something a client writes, and the
// ones past it are ignored (a child then may not be recognised, which
// only means a message is copied or not as if it were absent).
const maxDecls = 8

var nsClient = []byte(stanza.NSClient)

type decl struct{ prefix, uri []byte }

type scope struct {
	decls [maxDecls]decl
	n     int
}

// lookup resolves prefix ("" for the default namespace); ok is false when
// this scope does not declare it.
func (s *scope) lookup(prefix []byte) (uri []byte, ok bool) {
	for i := s.n - 1; i >= 0; i-- {
		if bytes.Equal(s.decls[i].prefix, prefix) {
			return s.decls[i].uri, true
		}
	}
	return nil, false
}

// scan reads the direct children of the stanza b (a complete element the
// stream scanner already checked: well-formed, namespace-well-formed,
// restricted XML) and reports the ones the rules look at. Namespaces are
// resolved from the child's own declarations and the stanza's (routing
// re-declares on the stanza what it used from the stream header); an
// undeclared default namespace is the client stream's (jabber:client).
// It allocates nothing unless a namespace value holds a character
// reference.
func scan(b []byte) info {
	var in info
	var top scope
	i, selfClosing := startTag(b, 0, &top)
	if selfClosing {
		return in
	}
	topNS, ok := top.lookup(nil)
	if !ok {
		topNS = nsClient // the stream's content namespace
	}
	depth := 0 // open elements inside the stanza
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return in
		}
		i += j
		if i+1 >= len(b) {
			return in
		}
		switch b[i+1] {
		case '/':
			if depth == 0 {
				return in // the stanza's end tag
			}
			depth--
			k := bytes.IndexByte(b[i:], '>')
			if k < 0 {
				return in
			}
			i += k + 1
		case '!':
			k := bytes.Index(b[i:], []byte("]]>"))
			if !bytes.HasPrefix(b[i:], []byte("<![CDATA[")) || k < 0 {
				return in
			}
			i += k + 3
		case '?':
			k := bytes.Index(b[i:], []byte("?>"))
			if k < 0 {
				return in
			}
			i += k + 2
		default:
			if depth > 0 {
				next, sc := startTag(b, i, nil)
				i = next
				if !sc {
					depth++
				}
				continue
			}
			var own scope
			next, sc := startTag(b, i, &own)
			prefix, local := qname(b, i)
			uri, ok := own.lookup(prefix)
			if !ok {
				uri, ok = top.lookup(prefix)
			}
			if !ok && len(prefix) == 0 {
				uri, ok = topNS, true
			}
			if ok {
				in.classify(local, uri, topNS)
			}
			i = next
			if !sc {
				depth++
			}
		}
	}
	return in
}

// classify records a direct child named local in namespace uri; topNS
// is the stanza's own namespace.
func (in *info) classify(local, uri, topNS []byte) {
	if bytes.IndexByte(uri, '&') >= 0 {
		u, err := stanza.Unescape(uri)
		if err != nil {
			return
		}
		uri = []byte(u)
	}
	switch string(local) {
	case "body":
		in.body = in.body || bytes.Equal(uri, topNS)
	case "private":
		in.private = in.private || string(uri) == NS
	case "sent", "received":
		in.carbon = in.carbon || string(uri) == NS
	case "no-copy":
		in.noCopy = in.noCopy || string(uri) == NSHints
	case "x":
		in.mucUser = in.mucUser || string(uri) == nsMUCUser
	}
}

// qname splits the name of the start tag at b[i] ('<') into prefix and
// local part.
func qname(b []byte, i int) (prefix, local []byte) {
	name := b[i+1 : i+nameEnd(b[i:])]
	if k := bytes.IndexByte(name, ':'); k >= 0 {
		return name[:k], name[k+1:]
	}
	return nil, name
}

// startTag reads the start tag at b[i] ('<') and returns the offset just
// past it and whether it is an empty-element tag. When sc is not nil the
// tag's namespace declarations are added to it.
func startTag(b []byte, i int, sc *scope) (next int, selfClosing bool) {
	i += nameEnd(b[i:])
	for i < len(b) {
		switch c := b[i]; {
		case c == '>':
			return i + 1, false
		case c == '/':
			if i+1 < len(b) && b[i+1] == '>' {
				return i + 2, true
			}
			i++
		case isSpace(c):
			i++
		default:
			// An attribute: name, '=', a quoted value.
			ns := i
			for i < len(b) && b[i] != '=' && !isSpace(b[i]) {
				i++
			}
			name := b[ns:i]
			for i < len(b) && b[i] != '\'' && b[i] != '"' {
				i++
			}
			if i >= len(b) {
				return i, false
			}
			q := b[i]
			k := bytes.IndexByte(b[i+1:], q)
			if k < 0 {
				return len(b), false
			}
			value := b[i+1 : i+1+k]
			i += k + 2
			if sc == nil || sc.n == maxDecls {
				continue
			}
			switch {
			case string(name) == "xmlns":
				sc.decls[sc.n] = decl{prefix: nil, uri: value}
				sc.n++
			case bytes.HasPrefix(name, []byte("xmlns:")):
				sc.decls[sc.n] = decl{prefix: name[len("xmlns:"):], uri: value}
				sc.n++
			}
		}
	}
	return i, false
}
