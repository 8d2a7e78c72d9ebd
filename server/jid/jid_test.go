package jid

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want, local, domain, resource string }{
		{"juliet@example.com", "juliet@example.com", "juliet", "example.com", ""},
		{"juliet@example.com/foo", "juliet@example.com/foo", "juliet", "example.com", "foo"},
		{"juliet@example.com/foo bar", "juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
		{"juliet@example.com/foo@bar", "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
		{"foo\\20bar@example.com", "foo\\20bar@example.com", "foo\\20bar", "example.com", ""},
		{"Juliet@Example.COM/Balcony", "juliet@example.com/Balcony", "juliet", "example.com", "Balcony"},
		{"example.com", "example.com", "", "example.com", ""},
		{"example.com.", "example.com", "", "example.com", ""},
		{"example.com/foobar", "example.com/foobar", "", "example.com", "foobar"},
		{"a.example.com/b@example.net", "a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
		{"[::1]", "[::1]", "", "[::1]", ""},
		{"127.0.0.1", "127.0.0.1", "", "127.0.0.1", ""},
		{"ＪＵＬＩＥＴ@example.com", "juliet@example.com", "juliet", "example.com", ""},
		{"πß@example.com", "πß@example.com", "πß", "example.com", ""},
		{"ΣΑΡΑ@ΕΛΛΑΔΑ.example", "σαρα@ελλαδα.example", "σαρα", "ελλαδα.example", ""},
	} {
		j, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if j.String() != tc.want || j.Local() != tc.local || j.Domain() != tc.domain || j.Resource() != tc.resource {
			t.Errorf("%q: got %q (%q %q %q)", tc.in, j, j.Local(), j.Domain(), j.Resource())
		}
		if again, err := Parse(j.String()); err != nil || !again.Equal(j) {
			t.Errorf("%q does not round-trip: %v", j, err)
		}
		if j.Bare().Resource() != "" || !j.Bare().IsBare() {
			t.Errorf("%q: Bare keeps a resource", j)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range []string{
		"", "@example.com", "juliet@", "juliet@example.com/", "\"juliet\"@example.com", "juliet&@example.com",
		"foo bar@example.com", "ju:liet@example.com", "<juliet>@example.com", "juliet@exa mple.com",
		strings.Repeat("a", 1024) + "@example.com", "juliet@" + strings.Repeat("a", 1024),
		"a@b@c",
	} {
		if j, err := Parse(in); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: accepted as %q (%v)", in, j, err)
		}
	}
}

func TestCanonicalMatchesParse(t *testing.T) {
	for _, in := range []string{"alice@localhost", "alice@localhost/phone", "localhost", "a.b-c@x.y/Res Ource", "Alice@localhost", "alice@Localhost", "al ice@x", "alice@x/\x01", "é@x"} {
		if !Canonical([]byte(in)) {
			continue
		}
		j, err := Parse(in)
		if err != nil || j.String() != in {
			t.Errorf("Canonical(%q) but Parse gives %q %v", in, j, err)
		}
	}
	if Canonical([]byte("Alice@localhost")) || Canonical([]byte("a@b@c")) {
		t.Error("non-canonical input reported canonical")
	}
	b := []byte("alice@localhost/phone")
	if n := testing.AllocsPerRun(100, func() { Split(b); Canonical(b) }); n != 0 {
		t.Errorf("Split/Canonical allocate %v", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a@b/c", "Ω@例え.テスト/r", "[::1]/x", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(j.String())
		if err != nil || !again.Equal(j) {
			t.Fatalf("%q -> %q does not round-trip: %v", s, j, err)
		}
	})
}
