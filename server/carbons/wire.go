package carbons

import (
	"bytes"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
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

// payload reads what the rules look at from the stanza's direct
// children, as the stream scanner listed them (xmlscan.Token.Kids,
// namespaces resolved). A stanza with more direct children than the
// scanner lists counts as private: a marker further down could not be
// seen, and not copying is the safe side.
func payload(tok *xmlscan.Token) info {
	var in info
	for _, k := range tok.Kids {
		in.classify(k.Local, k.Space, tok.Space)
	}
	if tok.Children > len(tok.Kids) {
		in.private = true
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
