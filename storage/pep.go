package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// PEPNode is one stored PEP node (XEP-0163) of an account: its
// configuration (XEP-0060 §16.4 node_config), its items oldest first, its
// explicit subscribers and its whitelist. It is kept as one JSON value
// under the node's name in the account's nested bucket of bucketPEP.
type PEPNode struct {
	Name          string            `json:"-"`
	MaxItems      int               `json:"max_items"`
	Access        string            `json:"access"` // presence, open, whitelist
	Persist       bool              `json:"persist"`
	NotifyRetract bool              `json:"notify_retract,omitempty"`
	SendLast      string            `json:"send_last,omitempty"` // send_last_published_item; "": on_sub_and_presence
	Items         []PEPItem         `json:"items,omitempty"`
	Subscribers   []string          `json:"subs,omitempty"`
	Affiliations  map[string]string `json:"affs,omitempty"` // bare JID -> member, publisher, outcast
}

// PEPItem is one published item: its id, the publisher's bare JID and
// the payload as raw XML.
type PEPItem struct {
	ID        string `json:"id"`
	Publisher string `json:"pub,omitempty"`
	Payload   string `json:"payload"`
}

// PEPWrite is one change to the stored PEP nodes: Node stored under
// Local (the account's localpart), or, with Delete, the node named
// Node.Name removed.
type PEPWrite struct {
	Local  string
	Node   PEPNode
	Delete bool
}

// PEPNodes calls fn for every stored PEP node of every account, in one
// read transaction (server start).
func (s *Store) PEPNodes(fn func(local string, n PEPNode) error) error {
	return s.View(func(tx *Tx) error {
		top := tx.tx.Bucket(bucketPEP)
		return top.ForEachBucket(func(local []byte) error {
			b := top.Bucket(local)
			return b.ForEach(func(k, v []byte) error {
				var n PEPNode
				if err := json.Unmarshal(v, &n); err != nil {
					return fmt.Errorf("pep node %s of %s: %w", k, local, err)
				}
				n.Name = string(k)
				return fn(string(local), n)
			})
		})
	})
}

// WritePEP applies every change in ws in one read-write transaction: one
// commit, one fsync, whatever the number of nodes (the batched PEP
// flush keeps an SD card's writes down).
func (s *Store) WritePEP(ws []PEPWrite) error {
	if len(ws) == 0 {
		return nil
	}
	return s.Update(func(tx *Tx) error {
		for i := range ws {
			w := &ws[i]
			if w.Node.Name == "" {
				return fmt.Errorf("pep write for %s: empty node name", w.Local)
			}
			if w.Delete {
				b, err := tx.userBucket(bucketPEP, w.Local, false)
				if err != nil {
					return err
				}
				if b != nil {
					if err := b.Delete([]byte(w.Node.Name)); err != nil {
						return err
					}
				}
				continue
			}
			if ok, _ := tx.UserExists(w.Local); !ok {
				// The account was deleted since the item was published
				// (by any path: the CLI, XEP-0133, a device delete): a
				// batched write must not bring its data back.
				continue
			}
			b, err := tx.userBucket(bucketPEP, w.Local, true)
			if err != nil {
				return fmt.Errorf("pep node %s of %s: %w", w.Node.Name, w.Local, err)
			}
			if err := putJSON(b, []byte(w.Node.Name), w.Node); err != nil {
				return fmt.Errorf("pep node %s of %s: %w", w.Node.Name, w.Local, err)
			}
		}
		return nil
	})
}

// DeletePEPNode removes one stored node of local's (a no-op when there
// is none).
func (s *Store) DeletePEPNode(local, name string) error {
	return s.WritePEP([]PEPWrite{{Local: local, Node: PEPNode{Name: name}, Delete: true}})
}

// RosterVersion is the user's roster version without reading the items:
// PEP caches a roster per account and reloads it only when this changed.
func (s *Store) RosterVersion(user string) (ver uint64, err error) {
	err = s.View(func(tx *Tx) error {
		b, _ := tx.rosterBucket(user, false)
		if b == nil {
			return nil
		}
		if v := b.Get(keyVer); len(v) == 8 {
			ver = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return ver, err
}
