package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// RosterItem is one roster entry (RFC 6121 §2.1.2).
type RosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name,omitempty"`
	Subscription string   `json:"sub,omitempty"` // none, to, from, both
	Ask          bool     `json:"ask,omitempty"` // pending-out
	PendingIn    bool     `json:"pin,omitempty"`
	Approved     bool     `json:"approved,omitempty"`
	Groups       []string `json:"groups,omitempty"`
}

// Roster returns the user's items sorted by JID and the roster version.
func (s *Store) Roster(user string) (items []RosterItem, ver uint64, err error) {
	err = s.View(func(tx *Tx) error {
		items, ver, err = tx.Roster(user)
		return err
	})
	return items, ver, err
}

// RosterItem returns one item.
func (s *Store) RosterItem(user, jid string) (it RosterItem, found bool, err error) {
	err = s.View(func(tx *Tx) error {
		it, found, err = tx.RosterItem(user, jid)
		return err
	})
	return it, found, err
}

// PutRosterItem stores an item and returns the new roster version.
func (s *Store) PutRosterItem(user string, it RosterItem) (ver uint64, err error) {
	err = s.Update(func(tx *Tx) error {
		ver, err = tx.PutRosterItem(user, it)
		return err
	})
	return ver, err
}

// DeleteRosterItem removes an item and returns the new roster version.
func (s *Store) DeleteRosterItem(user, jid string) (ver uint64, existed bool, err error) {
	err = s.Update(func(tx *Tx) error {
		ver, existed, err = tx.DeleteRosterItem(user, jid)
		return err
	})
	return ver, existed, err
}

func (tx *Tx) rosterBucket(user string, create bool) (*bolt.Bucket, error) {
	r := tx.tx.Bucket(bucketRosters)
	if b := r.Bucket([]byte(user)); b != nil || !create {
		return b, nil
	}
	return r.CreateBucket([]byte(user))
}

// Roster returns the user's items sorted by JID and the roster version.
func (tx *Tx) Roster(user string) ([]RosterItem, uint64, error) {
	b, _ := tx.rosterBucket(user, false)
	if b == nil {
		return nil, 0, nil
	}
	var items []RosterItem
	var ver uint64
	err := b.ForEach(func(k, v []byte) error {
		if bytes.Equal(k, keyVer) {
			ver = binary.BigEndian.Uint64(v)
			return nil
		}
		var it RosterItem
		if err := json.Unmarshal(v, &it); err != nil {
			return fmt.Errorf("roster %s item %s: %w", user, k, err)
		}
		items = append(items, it)
		return nil
	})
	sort.Slice(items, func(i, j int) bool { return items[i].JID < items[j].JID })
	return items, ver, err
}

// RosterSize is the number of items in the user's roster.
func (tx *Tx) RosterSize(user string) (int, error) {
	b, _ := tx.rosterBucket(user, false)
	if b == nil {
		return 0, nil
	}
	n := b.Stats().KeyN
	if b.Get(keyVer) != nil {
		n--
	}
	return n, nil
}

// RosterItem returns one item.
func (tx *Tx) RosterItem(user, jid string) (RosterItem, bool, error) {
	b, _ := tx.rosterBucket(user, false)
	var it RosterItem
	if b == nil {
		return it, false, nil
	}
	err := getJSON(b, []byte(jid), &it)
	if errors.Is(err, ErrNotFound) {
		return it, false, nil
	}
	return it, err == nil, err
}

func (tx *Tx) bumpVer(b *bolt.Bucket) (uint64, error) {
	var ver uint64
	if v := b.Get(keyVer); len(v) == 8 {
		ver = binary.BigEndian.Uint64(v)
	}
	ver++
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], ver)
	return ver, b.Put(keyVer, out[:])
}

// PutRosterItem stores an item and returns the new roster version.
func (tx *Tx) PutRosterItem(user string, it RosterItem) (uint64, error) {
	b, err := tx.rosterBucket(user, true)
	if err != nil {
		return 0, err
	}
	if err := putJSON(b, []byte(it.JID), it); err != nil {
		return 0, err
	}
	return tx.bumpVer(b)
}

// DeleteRosterItem removes an item and returns the new roster version.
func (tx *Tx) DeleteRosterItem(user, jid string) (uint64, bool, error) {
	b, err := tx.rosterBucket(user, false)
	if err != nil || b == nil || b.Get([]byte(jid)) == nil {
		return 0, false, err
	}
	if err := b.Delete([]byte(jid)); err != nil {
		return 0, false, err
	}
	ver, err := tx.bumpVer(b)
	return ver, true, err
}
