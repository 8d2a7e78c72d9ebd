package sysservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
)

// WriteConfig writes defaults (the embedded default config) with the
// service's data directory (DefaultDataDir) to path unless a file is
// already there; it reports whether it wrote one. owner's group may read
// it.
func WriteConfig(path string, defaults []byte, owner *user.User) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	dir, _ := json.Marshal(DefaultDataDir())
	body := bytes.Replace(defaults, []byte(`"data_dir": "roost-data"`), append([]byte(`"data_dir": `), dir...), 1)
	if bytes.Equal(body, defaults) {
		return false, errors.New("install: the embedded config has no data_dir line to set (a build error)")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("install: config directory: %w", err)
	}
	if err := os.WriteFile(path, body, 0o640); err != nil {
		return false, fmt.Errorf("install: write %s: %w", path, err)
	}
	if owner != nil && runtime.GOOS != "windows" {
		// root owns it; the service's group may read it.
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(path, 0, gid); err != nil {
			return true, fmt.Errorf("install: chown %s: %w", path, err)
		}
	}
	return true, nil
}

// ChownTree gives dir and everything in it to owner (the service's
// account).
func ChownTree(dir string, owner *user.User) error {
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
