// Package storage is Roost's embedded store: one bbolt file holding users
// (SCRAM keys only), rosters and server secrets. Every method that writes
// commits (and fsyncs) before it returns, so an acknowledged change
// survives a power cut; presence is never written here.
package storage

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/xdg-go/scram"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors callers can test for with errors.Is.
var (
	ErrLocked   = errors.New("store is in use by another process (is roost running?)")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Hash names a SCRAM hash function.
type Hash string

// The SCRAM hashes a user's keys are stored for.
const (
	SHA1   Hash = "SHA-1"
	SHA256 Hash = "SHA-256"
)

// Options tune Open; zero fields take defaults.
type Options struct {
	ScramIterations int           // PBKDF2 iterations for new passwords; default 4096
	Timeout         time.Duration // how long to wait for another process's lock; default 500ms
}

// schemaVersion is the layout this code reads and writes.
const schemaVersion = 2

var (
	bucketMeta    = []byte("meta")
	bucketUsers   = []byte("users")
	bucketRosters = []byte("rosters")
	bucketPending = []byte("pending") // per user: contact bare JID -> the inbound subscribe stanza
	bucketOffline = []byte("offline") // per user: sequence number -> stored message stanza
	keySchema     = []byte("schema_version")
	keySecret     = []byte("server_secret")
	keyVer        = []byte("\x00ver") // roster version inside a user's roster bucket; sorts before JIDs
)

// migrations[i] upgrades schema version i to i+1.
var migrations = []func(tx *bolt.Tx) error{
	0: func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketUsers, bucketRosters} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySecret, secret)
	},
	1: func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPending, bucketOffline} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

// Store is an open store.
type Store struct {
	db     *bolt.DB
	path   string
	iters  int
	secret []byte
}

// Open opens or creates the store at path and brings its schema up to date.
func Open(path string, opts Options) (*Store, error) {
	if opts.ScramIterations == 0 {
		opts.ScramIterations = 4096
	}
	if opts.Timeout == 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, PageSize: 4096})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, iters: opts.ScramIterations}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v := 0
		if m := tx.Bucket(bucketMeta); m != nil {
			if b := m.Get(keySchema); len(b) == 8 {
				v = int(binary.BigEndian.Uint64(b))
			}
		}
		if v > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this roost understands (%d): upgrade roost", v, schemaVersion)
		}
		for ; v < schemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(v))
		if err := tx.Bucket(bucketMeta).Put(keySchema, b[:]); err != nil {
			return err
		}
		s.secret = append([]byte(nil), tx.Bucket(bucketMeta).Get(keySecret)...)
		return nil
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Secret is 32 random bytes made when the store was created.
func (s *Store) Secret() []byte { return s.secret }

// Iterations is the PBKDF2 iteration count used for new passwords.
func (s *Store) Iterations() int { return s.iters }

// Backup writes a consistent copy of the store.
func (s *Store) Backup(w io.Writer) (n int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Tx is a transaction: a group of reads and writes committed together.
type Tx struct {
	tx    *bolt.Tx
	store *Store
}

// Update runs fn in one read-write transaction, committed (one fsync) when
// fn returns nil and rolled back otherwise.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, store: s}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, store: s}) })
}

// userRecord is a user's stored credentials.
type userRecord struct {
	Created time.Time                 `json:"created"`
	SCRAM   map[Hash]storedCredential `json:"scram"`
}

type storedCredential struct {
	Salt      []byte `json:"salt"`
	Iters     int    `json:"iters"`
	StoredKey []byte `json:"stored_key"`
	ServerKey []byte `json:"server_key"`
}

func derive(h Hash, password string, salt []byte, iters int) (storedCredential, error) {
	gen := scram.SHA256
	if h == SHA1 {
		gen = scram.SHA1
	}
	c, err := gen.NewClientUnprepped("", password, "")
	if err != nil {
		return storedCredential{}, err
	}
	sc := c.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: iters})
	return storedCredential{Salt: salt, Iters: iters, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

func (s *Store) newRecord(password string) (userRecord, error) {
	rec := userRecord{Created: time.Now().UTC(), SCRAM: map[Hash]storedCredential{}}
	for _, h := range []Hash{SHA1, SHA256} {
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return rec, err
		}
		c, err := derive(h, password, salt, s.iters)
		if err != nil {
			return rec, err
		}
		rec.SCRAM[h] = c
	}
	return rec, nil
}

// AddUser creates an account with an already prepared localpart and
// password; ErrExists when it exists.
func (s *Store) AddUser(local, password string) error {
	rec, err := s.newRecord(password)
	if err != nil {
		return fmt.Errorf("add user %s: %w", local, err)
	}
	return s.Update(func(tx *Tx) error {
		b := tx.tx.Bucket(bucketUsers)
		if b.Get([]byte(local)) != nil {
			return fmt.Errorf("add user %s: %w", local, ErrExists)
		}
		return putJSON(b, []byte(local), rec)
	})
}

// SetPassword replaces an account's keys; ErrNotFound when there is none.
func (s *Store) SetPassword(local, password string) error {
	rec, err := s.newRecord(password)
	if err != nil {
		return fmt.Errorf("set password %s: %w", local, err)
	}
	return s.Update(func(tx *Tx) error {
		b := tx.tx.Bucket(bucketUsers)
		var old userRecord
		if err := getJSON(b, []byte(local), &old); err != nil {
			return fmt.Errorf("set password %s: %w", local, err)
		}
		rec.Created = old.Created
		return putJSON(b, []byte(local), rec)
	})
}

// DeleteUser removes an account and its roster.
func (s *Store) DeleteUser(local string) error {
	return s.Update(func(tx *Tx) error {
		b := tx.tx.Bucket(bucketUsers)
		if b.Get([]byte(local)) == nil {
			return fmt.Errorf("delete user %s: %w", local, ErrNotFound)
		}
		if err := b.Delete([]byte(local)); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketRosters, bucketPending, bucketOffline} {
			r := tx.tx.Bucket(name)
			if r.Bucket([]byte(local)) != nil {
				if err := r.DeleteBucket([]byte(local)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Users lists the accounts' localparts, sorted.
func (s *Store) Users() ([]string, error) {
	var out []string
	err := s.View(func(tx *Tx) error {
		return tx.tx.Bucket(bucketUsers).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// UserExists reports whether the account exists.
func (s *Store) UserExists(local string) (bool, error) {
	var ok bool
	err := s.View(func(tx *Tx) error {
		ok = tx.tx.Bucket(bucketUsers).Get([]byte(local)) != nil
		return nil
	})
	return ok, err
}

// UserExists reports whether the account exists.
func (tx *Tx) UserExists(local string) (bool, error) {
	return tx.tx.Bucket(bucketUsers).Get([]byte(local)) != nil, nil
}

// Credentials returns the stored SCRAM credentials for h; ErrNotFound for
// an unknown account.
func (s *Store) Credentials(local string, h Hash) (scram.StoredCredentials, error) {
	var rec userRecord
	err := s.View(func(tx *Tx) error { return getJSON(tx.tx.Bucket(bucketUsers), []byte(local), &rec) })
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	c, ok := rec.SCRAM[h]
	if !ok {
		return scram.StoredCredentials{}, fmt.Errorf("credentials %s %s: %w", local, h, ErrNotFound)
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iters},
		StoredKey:  c.StoredKey,
		ServerKey:  c.ServerKey,
	}, nil
}

// CheckPassword verifies a password against the SHA-256 keys in constant
// time; for an unknown account it does the same work and returns false.
func (s *Store) CheckPassword(local, password string) (bool, error) {
	cred, err := s.Credentials(local, SHA256)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if !known {
		salt := sha256.Sum256(append(append([]byte{}, s.secret...), local...))
		cred = scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(salt[:16]), Iters: s.iters}, StoredKey: make([]byte, 32)}
	}
	c, err := derive(SHA256, password, []byte(cred.Salt), cred.Iters)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(c.StoredKey, cred.StoredKey) == 1 && known, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func getJSON(b *bolt.Bucket, k []byte, v any) error {
	data := b.Get(k)
	if data == nil {
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}

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

// userBucket returns user's nested bucket inside top, creating it when
// create is set; nil when absent.
func (tx *Tx) userBucket(top []byte, user string, create bool) (*bolt.Bucket, error) {
	b := tx.tx.Bucket(top)
	if ub := b.Bucket([]byte(user)); ub != nil || !create {
		return ub, nil
	}
	return b.CreateBucket([]byte(user))
}

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
