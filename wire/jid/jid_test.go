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

// TestCanonicalMatchesParse checks every input both ways: Canonical
// says what the table says, and Parse gives the prepared form (or fails).
// Canonical is the router's fast path, so a canonical input must be
// exactly what Parse returns; a non-canonical one may still parse to
// itself (é@x: Canonical only vouches for ASCII), which costs a Parse but
// is never wrong.
func TestCanonicalMatchesParse(t *testing.T) {
	for _, tc := range []struct {
		in        string
		canonical bool
		parsed    string // "" when Parse fails
	}{
		{"alice@localhost", true, "alice@localhost"},
		{"alice@localhost/phone", true, "alice@localhost/phone"},
		{"localhost", true, "localhost"},
		{"a.b-c@x.y/Res Ource", true, "a.b-c@x.y/Res Ource"},
		{"Alice@localhost", false, "alice@localhost"},
		{"alice@Localhost", false, "alice@localhost"},
		{"alice@localhost.", false, "alice@localhost"},
		{"é@x", false, "é@x"},
		{"al ice@x", false, ""},
		{"alice@x/\x01", false, ""},
		{"a@b@c", false, ""},
		{"alice@-x", false, ""},
		{"alice@x/", false, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Canonical([]byte(tc.in)); got != tc.canonical {
				t.Errorf("Canonical = %v, want %v", got, tc.canonical)
			}
			j, err := Parse(tc.in)
			switch {
			case tc.parsed == "" && err == nil:
				t.Errorf("Parse = %q, want an error", j)
			case tc.parsed != "" && (err != nil || j.String() != tc.parsed):
				t.Errorf("Parse = %q, %v; want %q", j, err, tc.parsed)
			}
		})
	}
	b := []byte("alice@localhost/phone")
	if n := testing.AllocsPerRun(100, func() { Split(b); Canonical(b) }); n != 0 {
		t.Errorf("Split/Canonical allocate %v", n)
	}
}

// FuzzParse checks that Parse is idempotent (a prepared JID parses to
// itself) and that the router's fast path is sound: bytes Canonical
// accepts are exactly what Parse returns for them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a@b/c", "Ω@例え.テスト/r", "[::1]/x", "a@b@c", "alice@localhost/phone", "Alice@localhost", "alice@localhost.", "a@x/Res Ource", "a@b.-c", "a@" + strings.Repeat("b", 1023)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if Canonical([]byte(s)) && (err != nil || j.String() != s) {
			t.Fatalf("Canonical(%q) but Parse gives %q, %v", s, j, err)
		}
		if err != nil {
			return
		}
		again, err := Parse(j.String())
		if err != nil || !again.Equal(j) {
			t.Fatalf("%q -> %q does not round-trip: %v", s, j, err)
		}
	})
}
