// Package caps is XEP-0115 entity capabilities: what features each
// available entity (a local client, or a contact on another domain that
// sent presence to a local account) has, learned from the caps element of
// its presence, resolved once per unknown 'ver' with a disco#info query
// to that entity, verified (§5.1) and cached by 'ver' within a bound.
// PEP (XEP-0163 §4) reads it to send notifications only to entities
// whose features include NODE+notify. It also builds the server's own
// caps element for the stream features (§6.3).
package caps

import (
	"bytes"
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the caps namespace (XEP-0115).
const NS = "http://jabber.org/protocol/caps"

// Node is the caps node the server advertises (XEP-0115 §4: a URI for
// the software).
const Node = "https://roost.im/caps"

// DefaultMax is the ver cache bound when Max is not set.
const DefaultMax = 1000

// QueryTimeout is how long a disco#info query waits for its answer; an
// answer after it is ignored and the entity's features stay unknown for
// that presence period.
const QueryTimeout = 30 * time.Second

// nShards is the number of shards of the per-JID table, so that PEP's
// Has calls from many reader goroutines do not contend on one lock.
const nShards = 32

// Cache knows the features of available entities. All methods are safe
// for concurrent use and nil-safe (a nil Cache knows nothing).
//
// What a peer can make it hold is bounded: the ver cache by Max (least
// recently used evicted), the queries in flight by Max (oldest dropped)
// and QueryTimeout, local entities by the bound sessions (Forget removes
// them), remote entities by about 4*Max (each of the nShards shards
// holds at most 4*Max/nShards of them, at least 4; the oldest is
// dropped).
type Cache struct {
	// Domain is the server's domain: disco#info queries are sent from it.
	Domain string
	// Max bounds the 'ver' strings remembered (pep.caps_cache).
	Max int
	// Send delivers a stanza the cache sends (a disco#info query) to to,
	// a local or remote full JID.
	Send func(to jid.JID, b []byte)
	// Known is called once the features of full become known after a
	// query (not when they were already cached at presence time), so
	// that PEP can send it the last items it wants.
	Known func(full jid.JID)
	Log   *slog.Logger

	// now is the clock (tests move it).
	now func() time.Time

	init   sync.Once
	shards [nShards]shard

	mu      sync.Mutex               // vers, lru, pending, order
	vers    map[string]*list.Element // caps key -> *verItem in lru
	lru     list.List                // front: most recently used
	pending map[string]*query        // query id -> query
	order   list.List                // *query, oldest first
}

// shard is a part of the per-JID table.
type shard struct {
	mu     sync.RWMutex
	m      map[string]*entity // full JID -> entity
	remote list.List          // remote *entity, oldest first
}

// Features is a verified feature set, shared (read-only) by every
// entity advertising its ver.
type Features struct {
	set    map[string]struct{}
	notify []string // features ending in +notify, without the suffix
}

func newFeatures(vars []string) *Features {
	f := &Features{set: make(map[string]struct{}, len(vars))}
	for _, v := range vars {
		f.set[v] = struct{}{}
		if n, ok := strings.CutSuffix(v, "+notify"); ok && n != "" {
			f.notify = append(f.notify, n)
		}
	}
	return f
}

// entity is what is known of one full JID in its current presence
// period.
type entity struct {
	full  string
	key   string    // caps key (hash and ver) of its latest presence
	feats *Features // nil while unknown
	asked bool      // a query was sent for key in this presence period
	elem  *list.Element
}

// verItem is one verified ver in the LRU.
type verItem struct {
	key   string
	feats *Features
}

// query is a disco#info query in flight.
type query struct {
	id       string
	full     jid.JID
	key      string
	hash     string
	ver      string
	deadline time.Time
	elem     *list.Element
}

func (c *Cache) setup() {
	c.init.Do(func() {
		for i := range c.shards {
			c.shards[i].m = make(map[string]*entity)
		}
		c.vers = make(map[string]*list.Element)
		c.pending = make(map[string]*query)
		if c.now == nil {
			c.now = time.Now
		}
	})
}

func (c *Cache) max() int {
	if c.Max > 0 {
		return c.Max
	}
	return DefaultMax
}

// remoteMax is the bound of remote entities per shard.
func (c *Cache) remoteMax() int { return max(4, 4*c.max()/nShards) }

// shardOf picks the shard of a full JID (FNV-1a, without allocating).
func (c *Cache) shardOf(full string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(full); i++ {
		h ^= uint32(full[i])
		h *= 16777619
	}
	return &c.shards[h%nShards]
}

// key is the cache key of a ver under a hash algorithm.
func key(hash, ver string) string { return hash + " " + ver }

// advert is the caps element of a presence (XEP-0115 §4).
type advert struct {
	hash, node, ver string
}

// readCaps finds the <c xmlns='http://jabber.org/protocol/caps'/> child
// of a presence; ok is false when there is none.
func readCaps(raw []byte) (advert, bool) {
	if !bytes.Contains(raw, []byte(NS)) {
		return advert{}, false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return advert{}, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			if t.Name.Space != NS || t.Name.Local != "c" {
				if d.Skip() != nil {
					return advert{}, false
				}
				depth--
				continue
			}
			var a advert
			for _, at := range t.Attr {
				if at.Name.Space != "" {
					continue
				}
				switch at.Name.Local {
				case "hash":
					a.hash = at.Value
				case "node":
					a.node = at.Value
				case "ver":
					a.ver = at.Value
				}
			}
			return a, true
		case xml.EndElement:
			depth--
			if depth <= 0 {
				return advert{}, false
			}
		}
	}
}

// Presence notes the caps in an available presence from full (raw is
// the stanza as routed); it returns true when full's features are known
// now, false when a query was sent (Known follows) or there are no caps.
//
// Legacy caps (no 'hash', XEP-0115 §1.2) and unknown hash algorithms are
// ignored: the entity then has no known features. A presence repeating
// the ver of the presence period's earlier one asks nothing again (§5.4
// step 3: a ver that did not verify is not retried; neither is one whose
// query timed out or was dropped to keep the queries in flight within
// Max). A presence without caps forgets full's features.
func (c *Cache) Presence(full jid.JID, raw []byte) bool {
	if c == nil || full.IsZero() {
		return false
	}
	c.setup()
	a, ok := readCaps(raw)
	if !ok || a.hash == "" || a.ver == "" || a.node == "" || !KnownHash(a.hash) {
		c.Forget(full)
		return false
	}
	k := key(a.hash, a.ver)
	feats := c.lookup(k)
	s := c.shardOf(full.String())
	s.mu.Lock()
	e := s.m[full.String()]
	if e == nil {
		e = &entity{full: full.String()}
		s.m[e.full] = e
		if full.Domain() != c.Domain {
			e.elem = s.remote.PushBack(e)
			if s.remote.Len() > c.remoteMax() {
				old := s.remote.Remove(s.remote.Front()).(*entity)
				delete(s.m, old.full)
			}
		}
	} else {
		if e.elem != nil {
			s.remote.MoveToBack(e.elem)
		}
		if e.key != k {
			e.feats, e.asked = nil, false
		}
	}
	e.key = k
	if feats != nil {
		e.feats = feats
		s.mu.Unlock()
		return true
	}
	if e.feats != nil || e.asked {
		known := e.feats != nil
		s.mu.Unlock()
		return known
	}
	e.asked = true
	s.mu.Unlock()
	c.ask(full, a, k)
	return false
}

// lookup returns the verified features of a caps key (nil when unknown),
// marking it recently used.
func (c *Cache) lookup(k string) *Features {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.vers[k]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*verItem).feats
}

// ask sends the disco#info query for node#ver to full (XEP-0115 §5.4
// step 2) and records it.
func (c *Cache) ask(full jid.JID, a advert, k string) {
	q := &query{id: newID(), full: full, key: k,
		hash: a.hash, ver: a.ver, deadline: c.now().Add(QueryTimeout)}
	c.mu.Lock()
	c.expire()
	for c.order.Len() >= c.max() {
		old := c.order.Remove(c.order.Front()).(*query)
		delete(c.pending, old.id)
	}
	q.elem = c.order.PushBack(q)
	c.pending[q.id] = q
	c.mu.Unlock()

	b := make([]byte, 0, 256+len(a.node)+len(a.ver)+len(full.String()))
	b = append(b, "<iq type='get' from='"...)
	b = stanza.AppendEscaped(b, c.Domain)
	b = append(b, "' to='"...)
	b = stanza.AppendEscaped(b, full.String())
	b = append(b, "' id='"...)
	b = append(b, q.id...)
	b = append(b, "'><query xmlns='"+nsDiscoInfo+"' node='"...)
	b = stanza.AppendEscaped(b, a.node+"#"+a.ver)
	b = append(b, "'/></iq>"...)
	if c.Send != nil {
		c.Send(full, b)
	}
}

// newID is a query id no one can guess: an answer without 'from' (a
// client's, whose stream stands for its address) is matched by the id
// alone when the caller does not say who sent it.
func newID() string {
	var b [12]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "caps-" + hex.EncodeToString(b[:])
}

// expire drops the queries past their deadline (c.mu held). Queries are
// in order of their deadlines.
func (c *Cache) expire() {
	now := c.now()
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		q := el.Value.(*query)
		if now.Before(q.deadline) {
			return
		}
		c.order.Remove(el)
		delete(c.pending, q.id)
	}
}

// Forget drops what is known of full (unavailable presence, session end).
func (c *Cache) Forget(full jid.JID) {
	if c == nil || full.IsZero() {
		return
	}
	c.setup()
	s := c.shardOf(full.String())
	s.mu.Lock()
	if e := s.m[full.String()]; e != nil {
		delete(s.m, e.full)
		if e.elem != nil {
			s.remote.Remove(e.elem)
		}
	}
	s.mu.Unlock()
}

// Result takes an iq result or error addressed to the server; it reports
// whether it was the answer to one of the cache's queries. An answer with
// a 'from' must come from the JID queried; one without (a client's, RFC
// 6120 §8.1.2.1) is matched by its unguessable id. ResultFrom also checks
// the sender of an answer without 'from'.
//
// A result whose features hash to the advertised ver is cached and sets
// the features of the entity (if it still advertises that ver); any
// other answer (an error, a hash mismatch, an invalid answer, a late
// one) leaves them unknown and is not cached (XEP-0115 §5.4 step 3.8).
func (c *Cache) Result(st *stanza.Stanza) bool { return c.ResultFrom(jid.JID{}, st) }

// ResultFrom is Result for an answer that the stream of from carried
// (the sender's session JID; zero when unknown).
func (c *Cache) ResultFrom(from jid.JID, st *stanza.Stanza) bool {
	if c == nil || st == nil || !bytes.HasPrefix(st.ID, []byte("caps-")) {
		return false
	}
	c.setup()
	c.mu.Lock()
	c.expire()
	q := c.pending[string(st.ID)]
	if q == nil || !c.answeredBy(q, st.From, from) {
		c.mu.Unlock()
		return q != nil
	}
	delete(c.pending, q.id)
	c.order.Remove(q.elem)
	c.mu.Unlock()

	if string(st.Type) != "result" {
		c.debug("caps query answered with an error", q, nil)
		return true
	}
	info, err := ParseInfo(st.Tok.Raw)
	if err != nil {
		c.debug("caps answer unreadable", q, err)
		return true
	}
	if v, ok := Ver(q.hash, info); !ok || v != q.ver {
		c.debug("caps answer does not match its ver", q, errors.New("computed "+v))
		return true
	}
	feats := newFeatures(info.Features)
	c.store(q.key, feats)

	s := c.shardOf(q.full.String())
	s.mu.Lock()
	e := s.m[q.full.String()]
	known := e != nil && e.key == q.key && e.feats == nil
	if known {
		e.feats = feats
	}
	s.mu.Unlock()
	if known && c.Known != nil {
		c.Known(q.full)
	}
	return true
}

// store caches a verified ver, evicting the least recently used beyond
// Max.
func (c *Cache) store(k string, feats *Features) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.vers[k]; el != nil {
		c.lru.MoveToFront(el)
		return
	}
	c.vers[k] = c.lru.PushFront(&verItem{key: k, feats: feats})
	for c.lru.Len() > c.max() {
		old := c.lru.Remove(c.lru.Back()).(*verItem)
		delete(c.vers, old.key)
	}
}

// answeredBy reports whether an answer to q with the raw 'from' attribute
// (nil when absent), carried by the stream of sender (zero when unknown),
// comes from the JID queried.
func (c *Cache) answeredBy(q *query, raw []byte, sender jid.JID) bool {
	if raw == nil {
		return sender.IsZero() || sender.Equal(q.full)
	}
	if string(raw) == q.full.String() {
		return true
	}
	j, err := stanza.ParseAddr(raw)
	return err == nil && j.Equal(q.full)
}

func (c *Cache) debug(msg string, q *query, err error) {
	if c.Log == nil {
		return
	}
	attrs := []any{"jid", q.full.String(), "ver", q.ver, "hash", q.hash}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	c.Log.Debug(msg, attrs...)
}

// features is full's known feature set, or nil.
func (c *Cache) features(full jid.JID) *Features {
	if c == nil || full.IsZero() {
		return nil
	}
	c.setup()
	s := c.shardOf(full.String())
	s.mu.RLock()
	var f *Features
	if e := s.m[full.String()]; e != nil {
		f = e.feats
	}
	s.mu.RUnlock()
	return f
}

// Has reports whether full's known features include feature. It does
// not allocate.
func (c *Cache) Has(full jid.JID, feature string) bool {
	f := c.features(full)
	if f == nil {
		return false
	}
	_, ok := f.set[feature]
	return ok
}

// Wants reports whether full's known features include node+"+notify"
// (XEP-0163 §4), without building that string.
func (c *Cache) Wants(full jid.JID, node string) bool {
	f := c.features(full)
	if f == nil {
		return false
	}
	for _, n := range f.notify {
		if n == node {
			return true
		}
	}
	return false
}

// Notify appends the namespaces full asked notifications for (its
// features ending in "+notify", without the suffix).
func (c *Cache) Notify(dst []string, full jid.JID) []string {
	if f := c.features(full); f != nil {
		dst = append(dst, f.notify...)
	}
	return dst
}

// Sizes reports what the cache holds: verified vers, queries in flight
// and entities (for tests and metrics).
func (c *Cache) Sizes() (vers, pending, entities int) {
	if c == nil {
		return 0, 0, 0
	}
	c.setup()
	c.mu.Lock()
	vers, pending = c.lru.Len(), c.order.Len()
	c.mu.Unlock()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entities += len(s.m)
		s.mu.RUnlock()
	}
	return vers, pending, entities
}
