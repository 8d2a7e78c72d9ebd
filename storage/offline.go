package storage

import "encoding/binary"

// OfflineMessage is a message stored for a user with no available
// resource (XEP-0160).
type OfflineMessage struct {
	Seq    uint64
	Stanza []byte
}

// AddOffline stores a message for user unless the user already has quota
// messages waiting; stored reports which.
func (tx *Tx) AddOffline(user string, stanza []byte, quota int) (stored bool, err error) {
	b, err := tx.userBucket(bucketOffline, user, true)
	if err != nil {
		return false, err
	}
	if b.Stats().KeyN >= quota {
		return false, nil
	}
	b.FillPercent = 0.9 // keys only grow
	seq, err := b.NextSequence()
	if err != nil {
		return false, err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return true, b.Put(k[:], stanza)
}

// Offline returns the user's stored messages, oldest first.
func (tx *Tx) Offline(user string) ([]OfflineMessage, error) {
	b, _ := tx.userBucket(bucketOffline, user, false)
	if b == nil {
		return nil, nil
	}
	var out []OfflineMessage
	err := b.ForEach(func(k, v []byte) error {
		out = append(out, OfflineMessage{Seq: binary.BigEndian.Uint64(k), Stanza: append([]byte(nil), v...)})
		return nil
	})
	return out, err
}

// OfflineTotal is the number of offline messages stored for all users.
func (tx *Tx) OfflineTotal() int {
	n := 0
	tx.tx.Bucket(bucketOffline).ForEachBucket(func(user []byte) error {
		n += tx.tx.Bucket(bucketOffline).Bucket(user).Stats().KeyN
		return nil
	})
	return n
}

// DeleteOffline removes delivered messages.
func (tx *Tx) DeleteOffline(user string, seqs []uint64) error {
	b, _ := tx.userBucket(bucketOffline, user, false)
	if b == nil {
		return nil
	}
	for _, seq := range seqs {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := b.Delete(k[:]); err != nil {
			return err
		}
	}
	return nil
}
