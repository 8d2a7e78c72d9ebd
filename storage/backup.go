package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Summary describes a store file without changing it.
type Summary struct {
	Schema  int // layout version
	Users   int
	Devices int
}

// Inspect opens the store file at path read-only and says what it holds.
// It is how a backup is checked before it is trusted, and it refuses a
// file that is not a Roost store or is newer than this binary.
func Inspect(path string) (Summary, error) {
	var s Summary
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return s, fmt.Errorf("inspect %s: %w", path, ErrLocked)
	}
	if err != nil {
		return s, fmt.Errorf("inspect %s: not a readable store: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var ok bool
		if s.Schema, ok = schemaOf(tx); !ok {
			return errors.New("no Roost schema version: not a Roost store")
		}
		if s.Schema > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this roost understands (%d): upgrade roost", s.Schema, schemaVersion)
		}
		if b := tx.Bucket(bucketUsers); b != nil {
			s.Users = b.Stats().KeyN
		}
		if b := tx.Bucket(bucketDevices); b != nil {
			s.Devices = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("inspect %s: %w", path, err)
	}
	return s, nil
}

// WriteFileSynced writes what fill produces to path through a temporary
// file in the same directory, fsyncs it and renames it into place, so a
// power cut leaves either the old file or the whole new one.
func WriteFileSynced(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error { f.Close(); os.Remove(tmp); return fmt.Errorf("write %s: %w", path, err) }
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if err := fill(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Restore replaces the store at path with the backup at from, after
// checking the backup. The store must not be open anywhere: Restore takes
// its lock first and fails with ErrLocked if a server holds it. The
// replaced store is kept beside it as path.before-restore-TIME, whose name
// is returned.
func Restore(path, from string) (kept string, sum Summary, err error) {
	if sum, err = Inspect(from); err != nil {
		return "", sum, err
	}
	if _, err := os.Stat(path); err == nil {
		// Hold the lock while swapping so a server starting now waits.
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 300 * time.Millisecond})
		if errors.Is(err, berrors.ErrTimeout) {
			return "", sum, fmt.Errorf("restore into %s: %w", path, ErrLocked)
		}
		if err != nil {
			return "", sum, fmt.Errorf("restore into %s: %w", path, err)
		}
		defer db.Close()
		kept = path + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := copyFile(kept, path); err != nil {
			return "", sum, err
		}
	}
	src, err := os.Open(from)
	if err != nil {
		return kept, sum, fmt.Errorf("restore from %s: %w", from, err)
	}
	defer src.Close()
	err = WriteFileSynced(path, func(w io.Writer) error { _, err := io.Copy(w, src); return err })
	return kept, sum, err
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	return WriteFileSynced(dst, func(w io.Writer) error { _, err := io.Copy(w, in); return err })
}

// BackupFile copies the store file at path to w without changing it. It
// fails with ErrLocked when a server has the store open; then the server
// itself must write the copy (Store.Backup).
func BackupFile(path string, w io.Writer) (int64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, fmt.Errorf("back up %s: %w", path, ErrLocked)
	}
	if err != nil {
		return 0, fmt.Errorf("back up %s: %w", path, err)
	}
	defer db.Close()
	return writeTo(db, w)
}
