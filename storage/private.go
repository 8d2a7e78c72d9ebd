package storage

// Private XML storage (XEP-0049): one nested bucket per account in
// bucketPrivate, keyed by the element's namespace, the value the
// element's bytes as the client sent them.

// Private returns user's element for namespace ns.
func (tx *Tx) Private(user, ns string) ([]byte, bool) {
	b, _ := tx.userBucket(bucketPrivate, user, false)
	if b == nil {
		return nil, false
	}
	v := b.Get([]byte(ns))
	if v == nil {
		return nil, false
	}
	return append([]byte(nil), v...), true
}

// PrivateBytes is the size of everything user keeps in private storage.
func (tx *Tx) PrivateBytes(user string) int {
	b, _ := tx.userBucket(bucketPrivate, user, false)
	if b == nil {
		return 0
	}
	n := 0
	_ = b.ForEach(func(k, v []byte) error {
		n += len(k) + len(v)
		return nil
	})
	return n
}

// SetPrivate replaces user's element for namespace ns (one commit) unless
// the account's total would exceed max bytes (namespace plus element,
// over every namespace); ok=false then and nothing is written.
func (s *Store) SetPrivate(user, ns string, elem []byte, max int) (ok bool, err error) {
	err = s.Update(func(tx *Tx) error {
		total := tx.PrivateBytes(user)
		if old, found := tx.Private(user, ns); found {
			total -= len(ns) + len(old)
		}
		if total+len(ns)+len(elem) > max {
			return nil
		}
		b, err := tx.userBucket(bucketPrivate, user, true)
		if err != nil {
			return err
		}
		ok = true
		return b.Put([]byte(ns), elem)
	})
	return ok, err
}

// Private returns user's element for namespace ns.
func (s *Store) Private(user, ns string) (elem []byte, found bool, err error) {
	err = s.View(func(tx *Tx) error {
		elem, found = tx.Private(user, ns)
		return nil
	})
	return elem, found, err
}
