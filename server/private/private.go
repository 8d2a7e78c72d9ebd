// Package private is XEP-0049 private XML storage: one XML element per
// namespace kept for the account itself (bookmarks of older clients,
// XEP-0048), within limits.private_bytes.
package private

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"

	"roost/server/session"
	"roost/storage"
	"roost/wire/stanza"
)

// NS is the private storage namespace.
const NS = "jabber:iq:private"

// DefaultMaxBytes is used when MaxBytes is 0 (config.json's default).
const DefaultMaxBytes = 65536

// Service answers private storage iqs.
type Service struct {
	Domain   string
	Store    *storage.Store
	MaxBytes int // limits.private_bytes
}

// IQ answers a jabber:iq:private get or set on the sender's own account
// (XEP-0049 §2): one child element of <query/>, keyed by its namespace.
func (p *Service) IQ(sess session.Peer, st *stanza.Stanza) {
	me := sess.JID()
	if _, local := sess.(*session.Bound); !local || me.Domain() != p.Domain || me.Local() == "" {
		session.Bounce(sess, st, p.Domain, stanza.Forbidden, "private storage is only for one's own account")
		return
	}
	name, elem, err := Element(st.Tok.Raw, 2)
	if err != nil {
		session.Bounce(sess, st, p.Domain, stanza.BadRequest, "the query must hold exactly one namespaced element")
		return
	}
	// §3: these namespaces are not storage.
	switch name.Space {
	case "", "jabber:client", "jabber:server", NS:
		session.Bounce(sess, st, p.Domain, stanza.NotAcceptable, "this namespace cannot be stored in private storage")
		return
	}
	switch string(st.Type) {
	case "get":
		stored, found, err := p.Store.Private(me.Local(), name.Space)
		if err != nil {
			session.Bounce(sess, st, p.Domain, stanza.InternalServerError, "private storage could not be read")
			return
		}
		out := []byte("<query xmlns='" + NS + "'>")
		if found {
			out = append(out, stored...)
		} else {
			// Nothing stored: the empty element asked for (§2.2).
			out = append(out, '<')
			out = append(out, name.Local...)
			out = append(out, " xmlns='"...)
			out = stanza.AppendEscaped(out, name.Space)
			out = append(out, "'/>"...)
		}
		out = append(out, "</query>"...)
		session.Result(sess, st, p.Domain, out)
	case "set":
		max := p.MaxBytes
		if max <= 0 {
			max = DefaultMaxBytes
		}
		ok, err := p.Store.SetPrivate(me.Local(), name.Space, elem, max)
		switch {
		case err != nil:
			session.Bounce(sess, st, p.Domain, stanza.InternalServerError, "private storage could not be written")
		case !ok:
			session.Bounce(sess, st, p.Domain, stanza.NotAcceptable,
				"private storage is limited to "+strconv.Itoa(max)+" bytes per account (limits.private_bytes)")
		default:
			session.Result(sess, st, p.Domain, nil)
		}
	}
}

// Element returns the name and raw bytes of the only element at depth
// (1: the stanza's child, 2: its grandchild) of the stanza raw, which
// must declare its namespace on itself (its bytes are kept and sent again
// elsewhere). More than one element at that depth is an error.
func Element(raw []byte, depth int) (xml.Name, []byte, error) {
	depth++ // the stanza itself is level 1
	d := xml.NewDecoder(bytes.NewReader(raw))
	var name xml.Name
	var elem []byte
	level, start := 0, int64(-1)
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return name, nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			level++
			if level == depth {
				if elem != nil || start >= 0 {
					return name, nil, errors.New("more than one element")
				}
				start = off
				name = xml.Name{Local: t.Name.Local}
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "xmlns" && t.Name.Space == "" {
						name.Space = a.Value
					}
					if a.Name.Space == "xmlns" && a.Name.Local == t.Name.Space && t.Name.Space != "" {
						name.Space = a.Value
					}
				}
				if name.Space == "" {
					return name, nil, errors.New("the element declares no namespace")
				}
			}
		case xml.EndElement:
			if level == depth && start >= 0 {
				elem = raw[start:d.InputOffset()]
				start = -1
			}
			level--
		}
	}
	if elem == nil {
		return name, nil, errors.New("no element")
	}
	return name, elem, nil
}
