package storage

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestBlocksPrivateVCard covers the XEP-0191, XEP-0049 and XEP-0054
// records: one commit per change, kept across a reopen, bounded private
// storage, and removed with the account.
func TestBlocksPrivateVCard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roost.db")
	s := open(t, path)
	if err := s.AddUser("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	before := s.Commits()
	if err := s.Update(func(tx *Tx) error { return tx.Block("alice", []string{"bob@d", "evil.example"}) }); err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Fatalf("block: %d commits, want 1", n)
	}
	if owners, err := s.BlockOwners(); err != nil || !reflect.DeepEqual(owners, []string{"alice"}) {
		t.Fatalf("owners %v %v", owners, err)
	}
	if ok, err := s.SetPrivate("alice", "storage:bookmarks", []byte("<storage xmlns='storage:bookmarks'/>"), 100); !ok || err != nil {
		t.Fatalf("set private: %v %v", ok, err)
	}
	if ok, err := s.SetPrivate("alice", "a:b", make([]byte, 80), 100); ok || err != nil {
		t.Fatalf("set over the bound: %v %v", ok, err)
	}
	// Replacing counts the new size only.
	if ok, err := s.SetPrivate("alice", "storage:bookmarks", make([]byte, 80), 100); !ok || err != nil {
		t.Fatalf("replace: %v %v", ok, err)
	}
	if err := s.SetVCard("alice", []byte("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	if l, err := s.BlockList("alice"); err != nil || !reflect.DeepEqual(l, []string{"bob@d", "evil.example"}) {
		t.Fatalf("list after reopen %v %v", l, err)
	}
	if v, ok, err := s.Private("alice", "storage:bookmarks"); !ok || err != nil || len(v) != 80 {
		t.Fatalf("private after reopen %d %v %v", len(v), ok, err)
	}
	if v, ok, _ := s.VCard("alice"); !ok || string(v) != "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>" {
		t.Fatalf("vcard %q %v", v, ok)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Unblock("alice", []string{"bob@d"}) }); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.BlockList("alice"); !reflect.DeepEqual(l, []string{"evil.example"}) {
		t.Fatalf("after unblock %v", l)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Unblock("alice", nil) }); err != nil {
		t.Fatal(err)
	}
	if owners, _ := s.BlockOwners(); len(owners) != 0 {
		t.Fatalf("owners after unblock all %v", owners)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Block("alice", []string{"x@y"}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.BlockList("alice"); len(l) != 0 {
		t.Fatalf("list after delete %v", l)
	}
	if _, ok, _ := s.Private("alice", "storage:bookmarks"); ok {
		t.Fatal("private kept after delete")
	}
	if _, ok, _ := s.VCard("alice"); ok {
		t.Fatal("vcard kept after delete")
	}
}
