package load

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// The pep scenario: PEP (XEP-0163) notification fan-out, the telemetry
// pattern of device readings. cfg.Users publishers (accounts 1..P) each
// have cfg.Subscribers subscribers of their own (accounts P+1..P*(S+1)),
// with a mutual ("both") roster subscription made in-band (RFC 6121
// §3). A subscriber wants the readings either through entity
// capabilities (XEP-0115: NODE+notify in the features its caps 'ver'
// stands for, XEP-0163 §4.2) or, with cfg.PEPSubscribe "explicit", by
// an explicit pubsub subscription (XEP-0060 §6.1). Publishers publish a
// reading to PEP node urn:roost:sensor:0 (the payload namespace, as PEP
// nodes are named) whose time attribute is the send time; latency is
// measured from it to the notification at the subscriber.

const (
	sensorNode  = "urn:roost:sensor:0"
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	nsEvent     = nsPubsub + "#event"
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsPing      = "urn:xmpp:ping"
	// benchCapsNode names the bench client's software (XEP-0115 §4).
	benchCapsNode = "https://roost.im/bench"
	// maxCauses bounds the distinct error causes a run keeps.
	maxCauses = 32
)

// benchIdentity is the one disco identity of the bench client.
var benchIdentity = discoIdentity{Category: "client", Type: "pc", Name: "roost bench"}

type discoIdentity struct{ Category, Type, Lang, Name string }

// capsVer is the XEP-0115 §5.1 verification string for identities and
// features (no extended forms): each identity as
// category/type/lang/name and each feature, sorted, each followed by
// '<', hashed with SHA-1 and base64-encoded.
func capsVer(ids []discoIdentity, features []string) string {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b discoIdentity) int {
		return strings.Compare(a.String(), b.String())
	})
	features = slices.Clone(features)
	slices.Sort(features)
	var s []byte
	for _, id := range ids {
		s = append(s, id.String()+"<"...)
	}
	for _, f := range features {
		s = append(s, f+"<"...)
	}
	sum := sha1.Sum(s)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// String is the identity as XEP-0115 §5.1 writes it: category/type/lang/name.
func (d discoIdentity) String() string {
	return d.Category + "/" + d.Type + "/" + d.Lang + "/" + d.Name
}

// pepFeatures are what the bench client answers a disco#info query
// with; with notify, they include sensorNode+"+notify" (XEP-0163 §4.2).
func pepFeatures(notify bool) []string {
	f := []string{nsCaps, nsDiscoInfo, nsPing}
	if notify {
		f = append(f, sensorNode+"+notify")
	}
	return f
}

// causes counts errors by cause, within maxCauses distinct ones.
type causes struct {
	mu sync.Mutex
	n  map[string]int64
	// total counts every error, including those past the bound.
	total atomic.Int64
}

func (c *causes) add(cause string) { c.addN(cause, 1) }

func (c *causes) addN(cause string, n int64) {
	c.total.Add(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	if _, ok := c.n[cause]; !ok && len(c.n) >= maxCauses {
		cause = "other"
	}
	c.n[cause] += n
}

func (c *causes) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.n) == 0 {
		return nil
	}
	return maps.Clone(c.n)
}

// errorCondition is the defined condition of an error stanza (RFC 6120
// §8.3.3), or "unknown".
func errorCondition(raw []byte) string {
	i := bytes.Index(raw, []byte("urn:ietf:params:xml:ns:xmpp-stanzas"))
	if i < 0 {
		return "unknown"
	}
	j := bytes.LastIndexByte(raw[:i], '<')
	if j < 0 {
		return "unknown"
	}
	name := raw[j+1 : i]
	if k := bytes.IndexAny(name, " \t\r\n/"); k >= 0 {
		name = name[:k]
	}
	return string(name)
}

// readingTime is the send time in a notification's reading: its time
// attribute (RFC 3339 with nanoseconds), in either quote style.
func readingTime(raw []byte) (time.Time, bool) {
	i := bytes.Index(raw, []byte(" time="))
	if i < 0 || i+7 > len(raw) {
		return time.Time{}, false
	}
	q := raw[i+6]
	rest := raw[i+7:]
	j := bytes.IndexByte(rest, q)
	if j < 0 || (q != '\'' && q != '"') {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// appendPublish builds the publish iq of one reading (XEP-0163 §3,
// XEP-0060 §7.1) sent at t.
func appendPublish(dst []byte, id string, t time.Time) []byte {
	dst = append(dst, "<iq type='set' id='"...)
	dst = append(dst, id...)
	dst = append(dst, "'><pubsub xmlns='"+nsPubsub+"'><publish node='"+sensorNode+"'><item id='temperature'><reading xmlns='"+sensorNode+"' sensor='temperature' value='21.5' unit='Cel' time='"...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, "'/></item></publish></pubsub></iq>"...)
}

// bareOf is the bare part of a JID.
func bareOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// pepRun is the state the readers of one pep run share.
type pepRun struct {
	cfg      Config
	P, S     int
	explicit bool
	conns    []*Conn
	pubOf    map[string]int // publisher's bare JID -> index 0..P-1
	ver      string
	features []string

	closing                          atomic.Bool
	approved, subscribed, ownCopies  atomic.Int64
	rosters, odd, unsubscribed       atomic.Int64
	mutual                           []atomic.Bool // per subscriber: its roster has its publisher with "both"
	received, acked, stale, warmSeen atomic.Int64
	ready                            []atomic.Bool // per subscriber: a warm-up notification arrived
	nReady                           atomic.Int64
	warmStart, start                 atomic.Int64 // Unix ns: notifications before warmStart are stale
	lastRecv, lastAck                atomic.Int64
	wins                             []*window
	lat, ackLat                      latencies
	errs                             causes
	createdAck                       []chan bool // explicit mode: the first publish of each publisher answered (true: accepted)
	notes                            causes      // setup answers that were retried (not errors of the run)
}

// subscriber is the connection index of subscriber j (0..S-1) of
// publisher p.
func (r *pepRun) subscriber(p, j int) int { return r.P + p*r.S + j }

// runPEP is the pep scenario.
func runPEP(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	r := &pepRun{cfg: cfg, P: cfg.Users, S: cfg.Subscribers}
	switch cfg.PEPSubscribe {
	case "", "caps":
	case "explicit":
		r.explicit = true
	default:
		return res, fmt.Errorf("-pep-subscribe %q: use caps or explicit", cfg.PEPSubscribe)
	}
	if r.S < 1 {
		return res, errors.New("pep needs at least 1 subscriber per publisher (-subscribers)")
	}
	r.features = pepFeatures(!r.explicit)
	r.ver = capsVer([]discoIdentity{benchIdentity}, r.features)
	n := r.P * (r.S + 1)
	conns, err := connectUsers(ctx, cfg, "pep", n, false)
	if err != nil {
		return res, err
	}
	r.conns = conns
	defer func() { r.closing.Store(true); closeAll(conns) }()
	r.pubOf = make(map[string]int, r.P)
	r.wins = make([]*window, r.P)
	r.createdAck = make([]chan bool, r.P)
	for p := 0; p < r.P; p++ {
		r.pubOf[bareOf(conns[p].JID)] = p
		r.wins[p] = newWindow(cfg.Window * r.S)
		r.createdAck[p] = make(chan bool, 1)
	}
	r.ready = make([]atomic.Bool, n)
	r.mutual = make([]atomic.Bool, n)
	r.warmStart.Store(time.Now().UnixNano())
	r.start.Store(time.Now().Add(time.Hour).UnixNano())
	for i, c := range conns {
		go r.read(i, c)
	}
	// Initial presence: subscribers with their caps (or none when they
	// subscribe explicitly), publishers plain.
	for i, c := range conns {
		c.Send(r.presence(i >= r.P))
	}
	if err := r.setup(ctx); err != nil {
		return res, err
	}
	return r.measure(ctx)
}

// presence is the available presence a client sends; a subscriber's
// carries its caps (XEP-0115 §4) unless it subscribes explicitly.
func (r *pepRun) presence(sub bool) []byte {
	if !sub || r.explicit {
		return []byte("<presence/>")
	}
	return []byte("<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + benchCapsNode + "' ver='" + r.ver + "'/></presence>")
}

// setup makes the subscriptions and waits until every subscriber has had
// a notification (bounded): roster subscriptions both ways, then (caps)
// the caps presence again to the new contacts or (explicit) a first
// publish and the subscribe requests, then warm-up publishes every
// 500 ms until each subscriber got one.
func (r *pepRun) setup(ctx context.Context) error {
	cfg := r.cfg
	// Pairs already mutually subscribed (a run before this one) are left
	// as they are: a subscribed answer for them would not be delivered
	// (RFC 6121 §3.1.6), and nothing needs doing.
	for i := r.P; i < len(r.conns); i++ {
		r.conns[i].Send([]byte("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>"))
	}
	if !waitFor(ctx, cfg.Timeout, func() bool { return r.rosters.Load() >= int64(r.P*r.S) }) {
		r.errs.add(fmt.Sprintf("setup: %d of %d roster answers", r.rosters.Load(), r.P*r.S))
	}
	var want int64
	for p := 0; p < r.P; p++ {
		for j := 0; j < r.S; j++ {
			i := r.subscriber(p, j)
			if r.mutual[i].Load() {
				continue
			}
			pub, sub := r.conns[p], r.conns[i]
			sub.Send([]byte("<presence type='subscribe' to='" + bareOf(pub.JID) + "'/>"))
			pub.Send([]byte("<presence type='subscribe' to='" + bareOf(sub.JID) + "'/>"))
			want += 2
		}
	}
	// Crossing requests may be answered once instead of twice (RFC 6121
	// §3.1.6 drops a subscribed nobody asked for): not an error in itself;
	// the warm-up below finds a subscriber the server does not notify.
	if !waitFor(ctx, 10*time.Second, func() bool { return r.approved.Load() >= want }) && cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "setup: %d of %d subscription approvals seen\n", r.approved.Load(), want)
	}
	if r.explicit {
		// The node must exist before it is subscribed to; a refused
		// first publish is tried again (ejabberd 23.01 answers some of
		// the first concurrent publishes after a wipe with item-not-found).
		for p := 0; p < r.P; p++ {
			r.conns[p].Send(appendPublish(nil, "create", time.Now()))
		}
		for p := 0; p < r.P; p++ {
			for try := 1; ; try++ {
				var ok, answered bool
				select {
				case ok = <-r.createdAck[p]:
					answered = true
				case <-time.After(cfg.Timeout):
				case <-ctx.Done():
					return ctx.Err()
				}
				if ok {
					break
				}
				if try == 10 || !answered {
					r.errs.add("setup: first publish not accepted")
					break
				}
				time.Sleep(100 * time.Millisecond)
				r.conns[p].Send(appendPublish(nil, "create", time.Now()))
			}
		}
		for p := 0; p < r.P; p++ {
			for j := 0; j < r.S; j++ {
				sub := r.conns[r.subscriber(p, j)]
				b := []byte("<iq type='set' id='sub' to='" + bareOf(r.conns[p].JID) + "'><pubsub xmlns='" + nsPubsub +
					"'><subscribe node='" + sensorNode + "' jid='" + bareOf(sub.JID) + "'/></pubsub></iq>")
				sub.Send(b)
			}
		}
		if !waitFor(ctx, 15*time.Second, func() bool { return r.subscribed.Load() >= int64(r.P*r.S) }) {
			r.errs.add(fmt.Sprintf("setup: %d of %d explicit subscriptions", r.subscribed.Load(), r.P*r.S))
		}
	} else {
		// An explicit subscription left by an explicit run would double
		// the notifications (one for it, one for +notify): cancel it
		// (XEP-0060 §6.2); an error answer (none to cancel) is expected.
		// (Prosody 0.12 answers not-subscribed and still notifies the
		// bare JID after an explicit run: bench/compare.sh wipes it.)
		for p := 0; p < r.P; p++ {
			for j := 0; j < r.S; j++ {
				sub := r.conns[r.subscriber(p, j)]
				sub.Send([]byte("<iq type='set' id='unsub' to='" + bareOf(r.conns[p].JID) + "'><pubsub xmlns='" + nsPubsub +
					"'><unsubscribe node='" + sensorNode + "' jid='" + bareOf(sub.JID) + "'/></pubsub></iq>"))
			}
		}
		if !waitFor(ctx, cfg.Timeout, func() bool { return r.unsubscribed.Load() >= int64(r.P*r.S) }) {
			r.errs.add(fmt.Sprintf("setup: %d of %d unsubscribe answers", r.unsubscribed.Load(), r.P*r.S))
		}
		for i := r.P; i < len(r.conns); i++ {
			r.conns[i].Send(r.presence(true))
		}
	}
	// Warm-up: publish until every subscriber has seen a notification
	// (a server learns caps asynchronously, XEP-0115 §6.2).
	r.warmStart.Store(time.Now().UnixNano())
	subs := int64(r.P * r.S)
	deadline := time.Now().Add(20 * time.Second)
	for r.nReady.Load() < subs && time.Now().Before(deadline) && ctx.Err() == nil {
		for p := 0; p < r.P; p++ {
			r.conns[p].Send(appendPublish(nil, "warm", time.Now()))
		}
		waitFor(ctx, 500*time.Millisecond, func() bool { return r.nReady.Load() >= subs })
	}
	if n := r.nReady.Load(); n < subs {
		r.errs.add(fmt.Sprintf("setup: %d of %d subscribers never notified", subs-n, subs))
	}
	if cfg.Progress != nil {
		for k, v := range r.notes.snapshot() {
			fmt.Fprintf(cfg.Progress, "setup: %s (%d, tried again)\n", k, v)
		}
	}
	return ctx.Err()
}

// measure publishes for cfg.Duration and counts what arrives.
func (r *pepRun) measure(ctx context.Context) (Result, error) {
	cfg := r.cfg
	var res Result
	var sent atomic.Int64
	start := time.Now()
	r.start.Store(start.UnixNano())
	end := start.Add(cfg.Duration)
	stop := progress(ctx, cfg.Progress, start, func() string {
		return fmt.Sprintf("published %d acknowledged %d notifications %d errors %d",
			sent.Load(), r.acked.Load(), r.received.Load(), r.errs.total.Load())
	})
	done := deadline(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for p := 0; p < r.P; p++ {
		c, win := r.conns[p], r.wins[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := newPacer(cfg.Rate, r.P)
			buf := make([]byte, 0, 512)
			for time.Now().Before(end) && ctx.Err() == nil {
				pace.wait()
				// A publish may have S notifications outstanding: the
				// window bounds the fan-out backlog, not just the acks.
				for k := 0; k < r.S; k++ {
					if !win.acquire(done) {
						return
					}
				}
				now := time.Now()
				buf = appendPublish(buf[:0], "p"+strconv.FormatInt(now.UnixNano(), 10), now)
				if err := c.Send(buf); err != nil {
					r.errs.add("publish: send: " + err.Error())
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	sendEnd := time.Since(start)
	drain(&r.received, sent.Load()*int64(r.S))
	waitFor(ctx, 5*time.Second, func() bool { return r.acked.Load() >= sent.Load() })
	stop()
	r.closing.Store(true)
	res.Seconds = sendEnd.Seconds()
	res.Sent, res.Received = sent.Load(), r.received.Load()
	res.Acked = r.acked.Load()
	res.Subscribers = r.S
	if lr := r.lastRecv.Load(); lr > start.UnixNano() {
		res.Throughput = float64(res.Received) / time.Duration(lr-start.UnixNano()).Seconds()
	}
	if la := r.lastAck.Load(); la > start.UnixNano() {
		res.AckedPerS = float64(res.Acked) / time.Duration(la-start.UnixNano()).Seconds()
	}
	if missing := res.Sent*int64(r.S) - res.Received; missing > 0 {
		r.errs.addN("notifications missing", missing)
	} else if missing < 0 {
		r.errs.addN("notifications more than once", -missing)
	}
	if missing := res.Sent - res.Acked; missing > 0 {
		r.errs.add(fmt.Sprintf("publish: %d not acknowledged", missing))
	}
	res.Errors = r.errs.total.Load()
	res.Causes = r.errs.snapshot()
	r.lat.fill(&res)
	var ack Result
	r.ackLat.fill(&ack)
	res.AckP50, res.AckP99 = ack.P50, ack.P99
	res.Logins = int64(len(r.conns))
	res.OwnerCopies = r.ownCopies.Load()
	res.Stale = r.stale.Load()
	return res, nil
}

// read is connection i's reader: it answers the server's queries (caps
// disco#info, ping), approves subscription requests, and counts
// acknowledgements and notifications.
func (r *pepRun) read(i int, c *Conn) {
	sub := i >= r.P
	for {
		tok, err := c.Next()
		if err != nil {
			if !r.closing.Load() {
				r.errs.add("connection lost: " + err.Error())
			}
			return
		}
		switch string(tok.Local) {
		case "iq":
			r.iq(i, c, &tok)
		case "presence":
			typ, _ := tok.Attr("type")
			switch string(typ) {
			case "subscribe":
				from, _ := tok.Attr("from")
				c.Send(append(stanza.AppendRawAttr([]byte("<presence type='subscribed' to='"), from), "'/>"...))
			case "subscribed":
				r.approved.Add(1)
			}
		case "message":
			typ, _ := tok.Attr("type")
			if string(typ) == "error" {
				r.errs.add("message error: " + errorCondition(tok.Raw))
				continue
			}
			if !bytes.Contains(tok.Raw, []byte(nsEvent)) {
				continue
			}
			if !sub {
				r.ownCopies.Add(1)
				continue
			}
			r.notification(i, &tok)
		}
	}
}

// notification counts a PEP notification to subscriber i. One whose
// reading is from before this run's warm-up is stale (a last item sent
// on presence or subscribe, XEP-0163 §4.3.4, XEP-0060 §6.1.7), whoever sent it:
// ejabberd 23.01 sends the last item on subscribe from its pubsub
// service's JID rather than the owner's.
func (r *pepRun) notification(i int, tok *xmlscan.Token) {
	t, ok := readingTime(tok.Raw)
	if !ok {
		if !bytes.Contains(tok.Raw, []byte("<items")) || !bytes.Contains(tok.Raw, []byte("<item ")) {
			return // a retract, purge or delete: not a reading
		}
		r.errs.add("notification without a reading time")
		return
	}
	ns := t.UnixNano()
	if ns < r.warmStart.Load() {
		r.stale.Add(1)
		return
	}
	from, _ := tok.Attr("from")
	p, ok := r.pubOf[bareOf(string(from))]
	if !ok || (i-r.P)/r.S != p {
		if r.odd.Add(1) == 1 && r.cfg.Progress != nil {
			fmt.Fprintf(r.cfg.Progress, "notification from another publisher, to %s: %.300s\n", r.conns[i].JID, tok.Raw)
		}
		r.errs.add("notification from another publisher")
		return
	}
	if ns < r.start.Load() {
		r.warmSeen.Add(1)
		if !r.ready[i].Swap(true) {
			r.nReady.Add(1)
		}
		return
	}
	r.lat.add(time.Since(t))
	r.received.Add(1)
	r.lastRecv.Store(time.Now().UnixNano())
	r.wins[p].release()
}

func (r *pepRun) iq(i int, c *Conn, tok *xmlscan.Token) {
	typ, _ := tok.Attr("type")
	id, _ := tok.Attr("id")
	switch string(typ) {
	case "get", "set":
		c.Send(r.answer(tok, string(typ), id))
	case "result", "error":
		var what string
		switch {
		case bytes.HasPrefix(id, []byte("p")):
			what = "publish"
			if string(typ) == "result" {
				r.acked.Add(1)
				now := time.Now()
				r.lastAck.Store(now.UnixNano())
				// The id carries the send time: the ack's latency.
				if ns, err := strconv.ParseInt(string(id[1:]), 10, 64); err == nil {
					r.ackLat.add(now.Sub(time.Unix(0, ns)))
				}
			}
		case string(id) == "create":
			if string(typ) == "error" {
				r.notes.add("first publish: " + errorCondition(tok.Raw))
			}
			if p, ok := r.pubOf[bareOf(c.JID)]; ok {
				select {
				case r.createdAck[p] <- string(typ) == "result":
				default:
				}
			}
			return
		case string(id) == "sub":
			what = "subscribe"
			if string(typ) == "result" {
				r.subscribed.Add(1)
			}
		case string(id) == "warm":
			// Repeated until every subscriber is notified; a subscriber
			// never notified is the error.
			if string(typ) == "error" {
				r.notes.add("warm-up publish: " + errorCondition(tok.Raw))
			}
			return
		case string(id) == "unsub":
			r.unsubscribed.Add(1)
			return // an error means there was nothing to cancel
		case string(id) == "roster":
			what = "roster"
			if string(typ) == "result" {
				r.roster(i, tok.Raw)
			}
		default:
			return
		}
		if string(typ) == "error" {
			r.errs.add(what + ": " + errorCondition(tok.Raw))
		}
	}
}

// roster notes whether subscriber i's roster (RFC 6121 §2.1.3) has its
// publisher with a "both" subscription.
func (r *pepRun) roster(i int, raw []byte) {
	defer r.rosters.Add(1)
	if i < r.P {
		return
	}
	pub := bareOf(r.conns[(i-r.P)/r.S].JID)
	for rest := raw; ; {
		k := bytes.Index(rest, []byte("<item "))
		if k < 0 {
			return
		}
		rest = rest[k:]
		j, _ := stanza.AttrValue(rest, "jid")
		sub, _ := stanza.AttrValue(rest, "subscription")
		if j == pub && sub == "both" {
			r.mutual[i].Store(true)
			return
		}
		rest = rest[1:]
	}
}

// answer is the reply to a request iq: the bench client's disco#info
// (XEP-0030; XEP-0115 §6.2: for the caps node#ver it advertised too, so
// that the hash verifies), a ping result (XEP-0199), otherwise
// service-unavailable (RFC 6120 §8.4).
func (r *pepRun) answer(tok *xmlscan.Token, typ string, id []byte) []byte {
	from, _ := tok.Attr("from")
	head := func(typ string) []byte {
		b := append([]byte("<iq type='"), typ...)
		b = append(b, "' to='"...)
		b = stanza.AppendRawAttr(b, from)
		b = append(b, "' id='"...)
		b = stanza.AppendRawAttr(b, id)
		return append(b, '\'')
	}
	switch {
	case typ == "get" && string(tok.ChildSpace) == nsDiscoInfo:
		b := append(head("result"), "><query xmlns='"+nsDiscoInfo+"'"...)
		if q := bytes.Index(tok.Raw, []byte("<query")); q >= 0 {
			if node, ok := stanza.AttrValue(tok.Raw[q:], "node"); ok {
				b = append(b, " node='"...)
				b = stanza.AppendEscaped(b, node)
				b = append(b, '\'')
			}
		}
		b = append(b, "><identity category='"+benchIdentity.Category+"' type='"+benchIdentity.Type+"' name='"+benchIdentity.Name+"'/>"...)
		for _, f := range r.features {
			b = append(b, "<feature var='"+f+"'/>"...)
		}
		return append(b, "</query></iq>"...)
	case typ == "get" && string(tok.ChildSpace) == nsPing:
		return append(head("result"), "/>"...)
	}
	return append(head("error"), "><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...)
}

// waitFor polls cond every 10 ms until it holds, d passes or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
