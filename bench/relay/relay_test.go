package relay

import "testing"

func TestDestination(t *testing.T) {
	for line, want := range map[string]string{
		"<message type='chat' to='a@b/c'><body>x</body></message>\n": "a@b/c",
		`<message to="d@e"/>` + "\n":                                 "d@e",
		"<message to='unterminated\n":                                "",
		"<message/>\n":                                               "",
		"<message to=x/>\n":                                          "",
	} {
		if got := string(destination([]byte(line))); got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}
