package simulator

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"net"
	"sync"

	"roost/devices/datagram/ack"
)

// Link is the device's side of the binding's acknowledgements
// (docs/datagram-binding.md §5) over one DTLS association: what firmware
// implements in a few dozen lines of C. Every stanza sent goes in its own
// datagram after <r xmlns='urn:xmpp:sm:3' seq='K'/>, is held until the
// gateway's <a h=”/> covers it, and is sent again in order after 500 ms,
// 1 s, 2 s... (at most 8 s between tries); a stanza from the gateway is
// handled only when its number is the next one (duplicates of a
// retransmission are dropped), and every <r/> is answered with
// <a h=”/>.
type Link struct {
	conn net.Conn
	out  *ack.Sender
	wmu  sync.Mutex

	gone     chan struct{} // closed when the gateway stopped acknowledging
	goneOnce sync.Once

	// owned by the reading goroutine
	in   ack.Receiver
	abuf []byte
}

// NewLink starts the acknowledgements on conn (a handshaken DTLS
// association). o tunes the sender (zero: the binding's defaults).
func NewLink(conn net.Conn, o ack.Options) *Link {
	l := &Link{conn: conn, gone: make(chan struct{})}
	l.out = ack.NewSender(o, l.write, func() { l.goneOnce.Do(func() { close(l.gone) }) })
	return l
}

func (l *Link) write(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_, err := l.conn.Write(b)
	return err
}

// ErrGone is returned once the gateway has not acknowledged anything for
// the sender's whole retransmission schedule: the association is dead and
// the device should connect again.
var ErrGone = errors.New("the gateway stopped acknowledging")

// Send numbers one stanza and sends it, waiting while the gateway has not
// acknowledged the sender's whole queue (that wait is the device's flow
// control). Do not call it from the goroutine that calls Read: the acks
// it waits for come through Read.
func (l *Link) Send(ctx context.Context, stanza []byte) error {
	select {
	case <-l.gone:
		return ErrGone
	default:
	}
	return l.out.PushWait(ctx, stanza)
}

// TrySend is Send without the wait, for the reading goroutine (answers
// to the gateway's iqs): a full queue is an error.
func (l *Link) TrySend(stanza []byte) error {
	select {
	case <-l.gone:
		return ErrGone
	default:
	}
	return l.out.Push(stanza)
}

// Gone is closed when the gateway stopped acknowledging.
func (l *Link) Gone() <-chan struct{} { return l.gone }

// Unacked is the number of stanzas the gateway has not acknowledged yet.
func (l *Link) Unacked() int { return l.out.Unacked() }

// Close stops retransmitting (the caller closes the association).
func (l *Link) Close() { l.out.Close() }

// Read reads one datagram into buf and returns the new stanzas it
// carried, in order (slices of buf): acks in it are applied, duplicates
// dropped, and an ack request answered.
func (l *Link) Read(buf []byte) ([][]byte, error) {
	n, err := l.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	return l.Datagram(buf[:n]), nil
}

// Datagram handles one datagram from the gateway (see Read).
func (l *Link) Datagram(b []byte) [][]byte {
	var got [][]byte
	numbered, asked := false, false
	var next uint32
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			break // the end, or bad XML: the rest of the datagram is dropped
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if err := d.Skip(); err != nil {
			break
		}
		raw := b[start:d.InputOffset()]
		if se.Name.Space == ack.NS {
			switch se.Name.Local {
			case "r":
				asked = true
				if v := attr(se, "seq"); v != "" {
					if next, ok = ack.ParseCounter([]byte(v)); !ok {
						return got
					}
					numbered = true
				}
			case "a":
				if h, ok := ack.ParseCounter([]byte(attr(se, "h"))); ok {
					l.out.Ack(h)
				}
			}
			continue
		}
		if numbered {
			n := next
			next++
			if !l.in.Accept(n) {
				continue
			}
		}
		got = append(got, raw)
	}
	if asked {
		l.abuf = ack.AppendAck(l.abuf[:0], l.in.H())
		l.write(l.abuf)
	}
	return got
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
