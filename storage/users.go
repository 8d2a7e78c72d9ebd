package storage

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/xdg-go/scram"
)

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
		if exists, _ := tx.UserExists(local); exists {
			return fmt.Errorf("add user %s: %w", local, ErrExists)
		}
		return putJSON(tx.tx.Bucket(bucketUsers), []byte(local), rec)
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
		return tx.deleteAccountData(local)
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
		ok, _ = tx.UserExists(local)
		return nil
	})
	return ok, err
}

// UserExists reports whether the account exists: a user or a device.
func (tx *Tx) UserExists(local string) (bool, error) {
	return tx.tx.Bucket(bucketUsers).Get([]byte(local)) != nil || tx.tx.Bucket(bucketDevices).Get([]byte(local)) != nil, nil
}

// deleteAccountData removes what an account owns besides its record.
func (tx *Tx) deleteAccountData(local string) error {
	for _, name := range [][]byte{bucketRosters, bucketPending, bucketOffline, bucketPEP, bucketPrivate, bucketBlocks} {
		r := tx.tx.Bucket(name)
		if r.Bucket([]byte(local)) != nil {
			if err := r.DeleteBucket([]byte(local)); err != nil {
				return err
			}
		}
	}
	return tx.tx.Bucket(bucketVCard).Delete([]byte(local))
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
