package datagram

import (
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

// LastStanzaMax bounds the copy of a device's last stanza that Status
// reports: at most this many bytes, cut at a UTF-8 boundary (so at most
// this many characters).
const LastStanzaMax = 320

// maxStatus bounds the device JIDs the listener remembers: a device that
// connected once is listed (offline) after it left, until this many
// others have been seen since.
const maxStatus = 10000

// DeviceStatus is what the listener knows of one device JID (the PSK
// identity's full JID) that has connected since the server started.
type DeviceStatus struct {
	JID        string    // full JID of the device's session
	Online     bool      // an association is bound now
	LastSeen   time.Time // last datagram from the device (zero: none yet)
	LastStanza string    // the last stanza it sent, at most LastStanzaMax bytes
}

// devStatus is one device JID's record; the reading goroutine of its
// association writes it under mu without allocating.
type devStatus struct {
	mu       sync.Mutex
	jid      string
	online   int // associations bound now (at most one but for a moment on replace)
	lastSeen time.Time
	last     [LastStanzaMax]byte
	n        int
}

// seen records a datagram's arrival.
func (d *devStatus) seen(now time.Time) {
	d.mu.Lock()
	d.lastSeen = now
	d.mu.Unlock()
}

// stanza records the raw bytes of a stanza the device sent, truncated to
// LastStanzaMax bytes at a character boundary; no allocation.
func (d *devStatus) stanza(raw []byte) {
	if len(raw) > LastStanzaMax {
		i := LastStanzaMax
		for i > 0 && !utf8.RuneStart(raw[i]) {
			i--
		}
		raw = raw[:i]
	}
	d.mu.Lock()
	d.n = copy(d.last[:], raw)
	d.mu.Unlock()
}

// statusFor returns the record of a device JID, making it on the
// device's first association, and counts the association online.
func (l *Listener) statusFor(full string) *devStatus {
	l.smu.Lock()
	defer l.smu.Unlock()
	if l.status == nil {
		l.status = make(map[string]*devStatus)
	}
	d := l.status[full]
	if d == nil {
		if len(l.status) >= maxStatus {
			// Forget the offline record seen longest ago.
			var oldest string
			var at time.Time
			for k, v := range l.status {
				v.mu.Lock()
				off, ls := v.online == 0, v.lastSeen
				v.mu.Unlock()
				if off && (oldest == "" || ls.Before(at)) {
					oldest, at = k, ls
				}
			}
			delete(l.status, oldest)
		}
		d = &devStatus{jid: full}
		l.status[full] = d
	}
	d.mu.Lock()
	d.online++
	d.lastSeen = time.Now()
	d.mu.Unlock()
	return d
}

// gone counts an association of d offline.
func (d *devStatus) gone() {
	d.mu.Lock()
	d.online--
	d.mu.Unlock()
}

// Status lists every device JID that has connected since the listener
// started, sorted by JID: whether it is online, when its last datagram
// arrived and the last stanza it sent (for the admin commands).
func (l *Listener) Status() []DeviceStatus {
	l.smu.Lock()
	out := make([]DeviceStatus, 0, len(l.status))
	for _, d := range l.status {
		d.mu.Lock()
		out = append(out, DeviceStatus{JID: d.jid, Online: d.online > 0, LastSeen: d.lastSeen, LastStanza: string(d.last[:d.n])})
		d.mu.Unlock()
	}
	l.smu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out
}
