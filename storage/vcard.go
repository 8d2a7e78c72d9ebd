package storage

// vCards (XEP-0054): bucketVCard, keyed by the account's localpart, the
// value the <vCard/> element's bytes.

// VCard returns user's vCard element.
func (s *Store) VCard(user string) (elem []byte, found bool, err error) {
	err = s.View(func(tx *Tx) error {
		if v := tx.tx.Bucket(bucketVCard).Get([]byte(user)); v != nil {
			elem, found = append([]byte(nil), v...), true
		}
		return nil
	})
	return elem, found, err
}

// SetVCard stores user's vCard element (one commit).
func (s *Store) SetVCard(user string, elem []byte) error {
	return s.Update(func(tx *Tx) error {
		return tx.tx.Bucket(bucketVCard).Put([]byte(user), elem)
	})
}
