package storage

// Block lists (XEP-0191): one nested bucket per account in bucketBlocks,
// keyed by the blocked JID (prepared), with empty values.

// BlockList returns the JIDs user blocks, in key order.
func (tx *Tx) BlockList(user string) ([]string, error) {
	b, _ := tx.userBucket(bucketBlocks, user, false)
	if b == nil {
		return nil, nil
	}
	var out []string
	err := b.ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

// Block adds jids to user's block list.
func (tx *Tx) Block(user string, jids []string) error {
	b, err := tx.userBucket(bucketBlocks, user, true)
	if err != nil {
		return err
	}
	for _, j := range jids {
		if err := b.Put([]byte(j), nil); err != nil {
			return err
		}
	}
	return nil
}

// Unblock removes jids from user's block list; nil jids empties it.
func (tx *Tx) Unblock(user string, jids []string) error {
	top := tx.tx.Bucket(bucketBlocks)
	if top.Bucket([]byte(user)) == nil {
		return nil
	}
	if jids == nil {
		return top.DeleteBucket([]byte(user))
	}
	b := top.Bucket([]byte(user))
	for _, j := range jids {
		if err := b.Delete([]byte(j)); err != nil {
			return err
		}
	}
	if b.Stats().KeyN == 0 {
		return top.DeleteBucket([]byte(user))
	}
	return nil
}

// BlockList returns the JIDs user blocks.
func (s *Store) BlockList(user string) (jids []string, err error) {
	err = s.View(func(tx *Tx) error {
		jids, err = tx.BlockList(user)
		return err
	})
	return jids, err
}

// BlockOwners returns the accounts (localparts) whose block list is not
// empty: routing needs to know them before any list is loaded.
func (s *Store) BlockOwners() (users []string, err error) {
	err = s.View(func(tx *Tx) error {
		top := tx.tx.Bucket(bucketBlocks)
		return top.ForEachBucket(func(k []byte) error {
			if c := top.Bucket(k).Cursor(); c != nil {
				if first, _ := c.First(); first != nil {
					users = append(users, string(k))
				}
			}
			return nil
		})
	})
	return users, err
}
