package storage

// Pending is an inbound subscription request waiting for the user's
// answer (RFC 6121 §3.1.3): kept so it can be delivered again at the
// user's next login.
type Pending struct {
	JID    string // the requester's bare JID
	Stanza []byte // the subscribe presence as it was delivered
}

// PendingIn lists the user's unanswered inbound subscription requests.
func (tx *Tx) PendingIn(user string) ([]Pending, error) {
	b, _ := tx.userBucket(bucketPending, user, false)
	if b == nil {
		return nil, nil
	}
	var out []Pending
	err := b.ForEach(func(k, v []byte) error {
		out = append(out, Pending{JID: string(k), Stanza: append([]byte(nil), v...)})
		return nil
	})
	return out, err
}

// HasPendingIn reports whether contact has an unanswered request to user.
func (tx *Tx) HasPendingIn(user, contact string) (bool, error) {
	b, _ := tx.userBucket(bucketPending, user, false)
	return b != nil && b.Get([]byte(contact)) != nil, nil
}

// PendingInCount is how many unanswered inbound subscription requests
// user has (bounded by limits.pending_subscriptions, so counting is cheap).
func (tx *Tx) PendingInCount(user string) (int, error) {
	b, _ := tx.userBucket(bucketPending, user, false)
	if b == nil {
		return 0, nil
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n, nil
}

// SetPendingIn records contact's subscription request to user.
func (tx *Tx) SetPendingIn(user, contact string, stanza []byte) error {
	b, err := tx.userBucket(bucketPending, user, true)
	if err != nil {
		return err
	}
	return b.Put([]byte(contact), stanza)
}

// ClearPendingIn forgets contact's request to user.
func (tx *Tx) ClearPendingIn(user, contact string) (existed bool, err error) {
	b, _ := tx.userBucket(bucketPending, user, false)
	if b == nil || b.Get([]byte(contact)) == nil {
		return false, nil
	}
	return true, b.Delete([]byte(contact))
}
