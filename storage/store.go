// Package storage is Roost's embedded store: one bbolt file holding users
// (SCRAM keys only), rosters and server secrets. Every method that writes
// commits (and fsyncs) before it returns, so an acknowledged change
// survives a power cut; presence is never written here.
package storage

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

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
	// Domain is the XMPP domain the store serves. A new store records it;
	// opening a store recorded for another domain fails with a
	// *DomainError (accounts are kept by localpart: serving them under
	// another domain would silently rename every one). Empty: not
	// checked (backup tools).
	Domain string
	// MustExist refuses to create a store where there is none
	// (administration commands: a wrong -config must not make a new,
	// empty store somewhere).
	MustExist bool
}

// DomainError is Open's answer for a store recorded for another domain.
type DomainError struct {
	Path, Stored, Configured string
}

func (e *DomainError) Error() string {
	return fmt.Sprintf("the store %s belongs to domain %q, but the configuration says %q: nothing was changed. Set \"domain\" back to %q; to serve %q, start with a new data_dir (and move accounts over with `roost user add`), since every roster, subscription and device owner names the old domain",
		e.Path, e.Stored, e.Configured, e.Stored, e.Configured)
}

// ErrNoStore is Open's answer, with MustExist, where there is no store.
var ErrNoStore = errors.New("no store")

// schemaVersion is the layout this code reads and writes.
const schemaVersion = 4

var (
	bucketMeta    = []byte("meta")
	bucketUsers   = []byte("users")
	bucketRosters = []byte("rosters")
	bucketPending = []byte("pending") // per user: contact bare JID -> the inbound subscribe stanza
	bucketOffline = []byte("offline") // per user: sequence number -> stored message stanza
	bucketDevices = []byte("devices") // device name -> Device
	bucketPEP     = []byte("pep")     // per account: node name -> the node's configuration and items (pep.go)
	bucketPrivate = []byte("private") // per account: namespace -> private XML (XEP-0049)
	bucketVCard   = []byte("vcard")   // account -> its vCard (XEP-0054)
	bucketBlocks  = []byte("blocks")  // per account: blocked JID -> nothing (XEP-0191)
	keySchema     = []byte("schema_version")
	keySecret     = []byte("server_secret")
	keyDomain     = []byte("domain")
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
	2: func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketDevices)
		return err
	},
	3: func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPEP, bucketPrivate, bucketVCard, bucketBlocks} {
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
	// commits counts the read-write transactions committed (each one
	// fsync): how tests and benchmarks see what a workload costs an SD
	// card.
	commits atomic.Uint64
}

// Commits is how many read-write transactions this Store committed since
// it was opened (migrations not counted).
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Open opens or creates the store at path and brings its schema up to date.
func Open(path string, opts Options) (*Store, error) {
	if opts.ScramIterations == 0 {
		opts.ScramIterations = 4096
	}
	if opts.Timeout == 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	if opts.MustExist {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s (is -config right? `roost run` with the same -config creates it)", ErrNoStore, path)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, PageSize: 4096})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, iters: opts.ScramIterations}
	// The domain is checked before anything is written: a store refused
	// for its domain is left exactly as it was.
	stored := s.Domain()
	if opts.Domain != "" && stored != "" && stored != opts.Domain {
		db.Close()
		return nil, &DomainError{Path: path, Stored: stored, Configured: opts.Domain}
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.Domain != "" && stored == "" {
		if err := s.recordDomain(opts.Domain); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) migrate() error {
	current := false
	s.db.View(func(tx *bolt.Tx) error {
		if v, ok := schemaOf(tx); ok && v == schemaVersion {
			s.secret = append([]byte(nil), tx.Bucket(bucketMeta).Get(keySecret)...)
			current = len(s.secret) > 0
		}
		return nil
	})
	if current {
		return nil // nothing to write: opening a store does not touch the file
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		v, _ := schemaOf(tx)
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

// recordDomain records domain in a store that has none (a new one, or
// one made before the domain was recorded).
func (s *Store) recordDomain(domain string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDomain, []byte(domain)) })
	if err != nil {
		return fmt.Errorf("open store %s: record the domain: %w", s.path, err)
	}
	return nil
}

// Domain is the XMPP domain recorded in the store ("" if none yet).
func (s *Store) Domain() string {
	var d string
	s.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			d = string(m.Get(keyDomain))
		}
		return nil
	})
	return d
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
func (s *Store) Backup(w io.Writer) (int64, error) { return writeTo(s.db, w) }

// writeTo copies db, as one read transaction sees it, to w.
func writeTo(db *bolt.DB, w io.Writer) (n int64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// schemaOf is the layout version recorded in the store (0 for a new
// one); ok is false when there is no record at all.
func schemaOf(tx *bolt.Tx) (v int, ok bool) {
	if m := tx.Bucket(bucketMeta); m != nil {
		if b := m.Get(keySchema); len(b) == 8 {
			return int(binary.BigEndian.Uint64(b)), true
		}
	}
	return 0, false
}

// Tx is a transaction: a group of reads and writes committed together.
type Tx struct {
	tx    *bolt.Tx
	store *Store
}

// Update runs fn in one read-write transaction, committed (one fsync) when
// fn returns nil and rolled back otherwise.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		err := fn(&Tx{tx: tx, store: s})
		if err == nil {
			tx.OnCommit(func() { s.commits.Add(1) })
		}
		if obs := CommitObserver; err == nil && obs != nil {
			start := time.Now()
			tx.OnCommit(func() { obs(time.Since(start)) })
		}
		return err
	})
}

// CommitObserver, when set (once, before the store is used: server/metrics
// sets it in its init), is told how long each successful Update's commit
// took: writing the pages and the fsync.
var CommitObserver func(time.Duration)

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx, store: s}) })
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

// userBucket returns user's nested bucket inside top, creating it when
// create is set; nil when absent.
func (tx *Tx) userBucket(top []byte, user string, create bool) (*bolt.Bucket, error) {
	b := tx.tx.Bucket(top)
	if ub := b.Bucket([]byte(user)); ub != nil || !create {
		return ub, nil
	}
	return b.CreateBucket([]byte(user))
}
