package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roost.db")
	s := open(t, path)
	if err := s.AddUser("alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("alice", "x"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := s.SetPassword("nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("passwd unknown: %v", err)
	}
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "wonderland", true}, {"alice", "Wonderland", false}, {"nobody", "wonderland", false}} {
		if ok, err := s.CheckPassword(tc.user, tc.pw); err != nil || ok != tc.ok {
			t.Errorf("CheckPassword(%s, %s) = %v %v", tc.user, tc.pw, ok, err)
		}
	}
	// Full SCRAM exchanges against the stored keys, both hashes.
	for _, h := range []Hash{SHA1, SHA256} {
		gen := scram.SHA256
		if h == SHA1 {
			gen = scram.SHA1
		}
		srv, _ := gen.NewServer(func(u string) (scram.StoredCredentials, error) { return s.Credentials(u, h) })
		cl, _ := gen.NewClient("alice", "wonderland", "")
		cc, sc := cl.NewConversation(), srv.NewConversation()
		msg, _ := cc.Step("")
		for !cc.Done() {
			r, err := sc.Step(msg)
			if err != nil {
				t.Fatalf("%s server: %v", h, err)
			}
			if msg, err = cc.Step(r); err != nil {
				t.Fatalf("%s client: %v", h, err)
			}
		}
		if !sc.Valid() {
			t.Fatalf("%s: exchange not valid", h)
		}
	}
	// Only salted keys are stored: the password never appears in the file.
	s.Close()
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("wonderland")) {
		t.Fatal("the password is in the store file")
	}
	s = open(t, path)
	defer s.Close()
	if ok, _ := s.CheckPassword("alice", "wonderland"); !ok {
		t.Fatal("user lost across reopen")
	}
	if err := s.SetPassword("alice", "new"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.CheckPassword("alice", "new"); !ok {
		t.Fatal("new password refused")
	}
	if users, _ := s.Users(); len(users) != 1 || users[0] != "alice" {
		t.Fatalf("users %v", users)
	}
	s.PutRosterItem("alice", RosterItem{JID: "bob@x"})
	if err := s.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := s.Roster("alice"); len(items) != 0 {
		t.Fatal("roster survived the user")
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roost.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("second open hung")
	}
}

func TestRoster(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "roost.db"))
	defer s.Close()
	v1, err := s.PutRosterItem("alice", RosterItem{JID: "bob@x", Name: "Bob", Subscription: "both", Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := s.PutRosterItem("alice", RosterItem{JID: "carol@x"})
	if v2 <= v1 {
		t.Fatalf("version did not grow: %d then %d", v1, v2)
	}
	items, ver, _ := s.Roster("alice")
	if len(items) != 2 || ver != v2 || items[0].JID != "bob@x" || items[0].Name != "Bob" || items[0].Groups[0] != "g" {
		t.Fatalf("roster %+v ver %d", items, ver)
	}
	v3, existed, _ := s.DeleteRosterItem("alice", "bob@x")
	if !existed || v3 <= v2 {
		t.Fatalf("delete: %v %d", existed, v3)
	}
	if _, existed, _ := s.DeleteRosterItem("alice", "bob@x"); existed {
		t.Fatal("deleted twice")
	}
	// Update rolls back every write when fn fails.
	boom := errors.New("boom")
	err = s.Update(func(tx *Tx) error {
		tx.PutRosterItem("alice", RosterItem{JID: "dave@x"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, found, _ := s.RosterItem("alice", "dave@x"); found {
		t.Fatal("rolled-back write is visible")
	}
}

func TestBackup(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "roost.db"))
	s.AddUser("alice", "pw")
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	s.Close()
	copyPath := filepath.Join(dir, "copy.db")
	os.WriteFile(copyPath, buf.Bytes(), 0o600)
	c := open(t, copyPath)
	defer c.Close()
	if ok, _ := c.CheckPassword("alice", "pw"); !ok {
		t.Fatal("backup lacks the user")
	}
}

func BenchmarkPutRosterItem(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "roost.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.PutRosterItem("alice", RosterItem{JID: "bob@x", Name: "Bob"})
	}
}

func TestStoreDomainRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roost.db")
	if _, err := Open(path, Options{MustExist: true}); !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), path) {
		t.Fatalf("MustExist on no store: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("MustExist created a file: %v", err)
	}
	s, err := Open(path, Options{Domain: "gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	_, err = Open(path, Options{Domain: "other.example"})
	var de *DomainError
	if !errors.As(err, &de) || de.Stored != "gw.example" || !strings.Contains(err.Error(), `Set "domain" back to "gw.example"`) {
		t.Fatalf("other domain: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refusing the domain changed the store file")
	}
	s, err = Open(path, Options{Domain: "gw.example", MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Domain() != "gw.example" {
		t.Fatalf("Domain() = %q", s.Domain())
	}
}
