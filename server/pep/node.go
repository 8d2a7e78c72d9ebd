package pep

import (
	"strconv"

	"roost/storage"
	"roost/wire/jid"
)

// Access models (XEP-0060 §4.5) PEP supports.
const (
	accessPresence  = "presence"
	accessOpen      = "open"
	accessWhitelist = "whitelist"
)

// send_last_published_item values (XEP-0060 §16.4.3).
const (
	sendLastNever    = "never"
	sendLastSub      = "on_sub"
	sendLastPresence = "on_sub_and_presence"
)

// config is a node's configuration (XEP-0060 §16.4 pubsub#node_config).
type config struct {
	maxItems      int    // pubsub#max_items
	access        string // pubsub#access_model
	persist       bool   // pubsub#persist_items
	notifyRetract bool   // pubsub#notify_retract
	sendLast      string // pubsub#send_last_published_item
}

// defaultConfig is XEP-0163 §5's defaults with max_items 1.
func defaultConfig() config {
	return config{maxItems: 1, access: accessPresence, persist: true, sendLast: sendLastPresence}
}

// item is one published item.
type item struct {
	id        string
	publisher string
	payload   []byte
}

// node is one PEP node: its configuration, its items in publish order
// (oldest first, at most cfg.maxItems), its explicit subscribers (bare
// or full JIDs, XEP-0060 §6.1) and its affiliations (bare JID -> member,
// publisher or outcast; the owner is implicit).
type node struct {
	name    string
	feature string // name+"+notify" (XEP-0163 §4.2), made once
	cfg     config
	items   []item
	subs    []subscriber
	affs    map[string]string
	stored  bool // the store has a copy (flush deletes it when persist_items goes off)
}

func newNode(name string, cfg config) *node {
	return &node{name: name, feature: name + "+notify", cfg: cfg, affs: map[string]string{}}
}

// put adds it, replacing an item with the same id (XEP-0060 §7.1.2), and
// drops the oldest beyond max_items.
func (n *node) put(it item) {
	for i := range n.items {
		if n.items[i].id == it.id {
			n.items = append(n.items[:i], n.items[i+1:]...)
			break
		}
	}
	n.items = append(n.items, it)
	n.trim()
}

// putDelta is how many payload bytes put(an item of id with size bytes)
// adds, net of the item it replaces or the oldest it pushes out.
func (n *node) putDelta(id string, size int) int {
	if i := n.find(id); i >= 0 {
		return size - len(n.items[i].payload)
	}
	if len(n.items) >= n.cfg.maxItems && len(n.items) > 0 {
		return size - len(n.items[0].payload)
	}
	return size
}

// trim drops the oldest items beyond max_items.
func (n *node) trim() {
	if over := len(n.items) - n.cfg.maxItems; over > 0 {
		copy(n.items, n.items[over:])
		clear(n.items[len(n.items)-over:])
		n.items = n.items[:len(n.items)-over]
	}
}

// find is the index of the item with id, or -1.
func (n *node) find(id string) int {
	for i := range n.items {
		if n.items[i].id == id {
			return i
		}
	}
	return -1
}

// subscribed is the index of j among the explicit subscribers, or -1.
func (n *node) subscribed(j string) int {
	for i, s := range n.subs {
		if s.j.String() == j {
			return i
		}
	}
	return -1
}

func (n *node) toStore() storage.PEPNode {
	sn := storage.PEPNode{Name: n.name, MaxItems: n.cfg.maxItems, Access: n.cfg.access, Persist: n.cfg.persist,
		NotifyRetract: n.cfg.notifyRetract}
	for _, s := range n.subs {
		sn.Subscribers = append(sn.Subscribers, s.j.String())
	}
	if n.cfg.sendLast != sendLastPresence {
		sn.SendLast = n.cfg.sendLast
	}
	for _, it := range n.items {
		sn.Items = append(sn.Items, storage.PEPItem{ID: it.id, Publisher: it.publisher, Payload: string(it.payload)})
	}
	if len(n.affs) > 0 {
		sn.Affiliations = make(map[string]string, len(n.affs))
		for k, v := range n.affs {
			sn.Affiliations[k] = v
		}
	}
	return sn
}

func nodeFromStore(sn storage.PEPNode, maxItems int) *node {
	n := newNode(sn.Name, defaultConfig())
	for _, s := range sn.Subscribers {
		if j, err := jid.Parse(s); err == nil {
			n.subs = append(n.subs, newSubscriber(j))
		}
	}
	n.cfg.access = sn.Access
	if sn.SendLast == sendLastNever || sn.SendLast == sendLastSub {
		n.cfg.sendLast = sn.SendLast
	}
	if n.cfg.access != accessOpen && n.cfg.access != accessWhitelist {
		n.cfg.access = accessPresence
	}
	n.cfg.maxItems = min(max(sn.MaxItems, 1), maxItems)
	n.cfg.persist = sn.Persist
	n.cfg.notifyRetract = sn.NotifyRetract
	for k, v := range sn.Affiliations {
		n.affs[k] = v
	}
	for _, it := range sn.Items {
		n.items = append(n.items, item{id: it.ID, publisher: it.Publisher, payload: []byte(it.Payload)})
	}
	n.trim()
	return n
}

// formError is a configuration value the service cannot take.
type formError struct {
	field, value string
}

func (e *formError) Error() string { return "bad value " + strconv.Quote(e.value) + " for " + e.field }

// apply sets the configuration fields of a submitted node_config form or
// publish-options (XEP-0060 §8.2.4, XEP-0223); fields PEP does not keep
// are ignored. maxItems is Service.MaxItems ("max" means that).
func (c *config) apply(fields map[string]string, maxItems int) error {
	for k, v := range fields {
		switch k {
		case "pubsub#max_items":
			if v == "max" {
				c.maxItems = maxItems
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxItems {
				return &formError{k, v}
			}
			c.maxItems = n
		case "pubsub#access_model":
			if v != accessPresence && v != accessOpen && v != accessWhitelist {
				return &formError{k, v}
			}
			c.access = v
		case "pubsub#persist_items", "pubsub#notify_retract":
			b, ok := parseBool(v)
			if !ok {
				return &formError{k, v}
			}
			if k == "pubsub#persist_items" {
				c.persist = b
			} else {
				c.notifyRetract = b
			}
		case "pubsub#send_last_published_item":
			if v != sendLastNever && v != sendLastSub && v != sendLastPresence {
				return &formError{k, v}
			}
			c.sendLast = v
		}
	}
	return nil
}

// matches reports whether the configuration already has every value of
// fields (XEP-0223 §3: publish-options as preconditions).
func (c config) matches(fields map[string]string, maxItems int) bool {
	d := c
	if err := d.apply(fields, maxItems); err != nil {
		return false
	}
	return d == c
}

func parseBool(v string) (b, ok bool) {
	switch v {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
