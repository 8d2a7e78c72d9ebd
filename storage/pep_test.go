package storage

import (
	"path/filepath"
	"testing"
)

// WritePEP stores and deletes nodes in one commit, PEPNodes reads them
// back after a reopen, and RosterVersion follows roster changes.
func TestPEPNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roost.db")
	s := open(t, path)
	for _, u := range []string{"alice", "bob"} {
		if err := s.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Commits()
	err := s.WritePEP([]PEPWrite{
		{Local: "alice", Node: PEPNode{Name: "urn:x", MaxItems: 2, Access: "open", Persist: true,
			Items: []PEPItem{{ID: "a", Payload: "<x xmlns='urn:x'/>"}, {ID: "b", Publisher: "alice@d", Payload: "<x xmlns='urn:x'>2</x>"}}}},
		{Local: "alice", Node: PEPNode{Name: "urn:y", MaxItems: 1, Access: "whitelist", Persist: true,
			Affiliations: map[string]string{"bob@d": "member"}, Subscribers: []string{"bob@d/r"}}},
		{Local: "bob", Node: PEPNode{Name: "urn:z", MaxItems: 1, Access: "presence", Persist: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Commits() - before; c != 1 {
		t.Fatalf("three nodes cost %d commits, want 1", c)
	}
	if err := s.DeletePEPNode("bob", "urn:z"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePEPNode("carol", "urn:none"); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePEP([]PEPWrite{{Local: "x", Node: PEPNode{}}}); err == nil {
		t.Fatal("a node without a name was stored")
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	got := map[string]PEPNode{}
	err = s.PEPNodes(func(local string, n PEPNode) error {
		got[local+" "+n.Name] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("nodes after reopen: %v", got)
	}
	x := got["alice urn:x"]
	if x.MaxItems != 2 || x.Access != "open" || len(x.Items) != 2 || x.Items[1].Payload != "<x xmlns='urn:x'>2</x>" || x.Items[1].Publisher != "alice@d" {
		t.Fatalf("urn:x: %+v", x)
	}
	y := got["alice urn:y"]
	if y.Affiliations["bob@d"] != "member" || len(y.Subscribers) != 1 || y.Subscribers[0] != "bob@d/r" {
		t.Fatalf("urn:y: %+v", y)
	}
	v0, err := s.RosterVersion("alice")
	if err != nil || v0 != 0 {
		t.Fatalf("empty roster version %d %v", v0, err)
	}
	if _, err := s.PutRosterItem("alice", RosterItem{JID: "bob@d", Subscription: "both"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.RosterVersion("alice"); v == v0 {
		t.Fatal("roster version did not change")
	}
}

// A batched write for an account deleted meanwhile writes nothing back.
func TestWritePEPSkipsDeletedAccount(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "roost.db"))
	if err := s.AddUser("gone", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePEP([]PEPWrite{{Local: "gone", Node: PEPNode{Name: "n"}}}); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.PEPNodes(func(string, PEPNode) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d nodes of a deleted account written back", n)
	}
}
