package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func defaults(t *testing.T) []byte {
	b, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(defaults(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Domain != "localhost" || c.DataDir != "roost-data" || c.Listen.C2S != ":5222" || c.Listen.C2STLS != ":5223" ||
		!c.TLS.Required || c.Limits.StanzaBytes != 262144 || c.Limits.AuthTimeout.D().String() != "30s" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"overlay keeps other keys", `{"domain": "gw1.example.org"}`, ""},
		{"unknown key", `{"domian": "x"}`, `unknown key "domian"`},
		{"unknown nested key", `{"limits": {"bogus": 1}}`, `unknown key "bogus"`},
		{"wrong type", `{"domain": 5}`, `key "domain": want a string`},
		{"wrong nested type", `{"limits": {"stanza_bytes": "big"}}`, `limits.stanza_bytes`},
		{"bad duration", `{"limits": {"auth_timeout": "soon"}}`, `"30s"`},
		{"stanza limit under the RFC minimum", `{"limits": {"stanza_bytes": 5000}}`, `"limits.stanza_bytes": 5000 is too small (at least 10000)`},
		{"cert without key", `{"tls": {"cert": "a.pem"}}`, `set both`},
		{"bad listen address", `{"listen": {"c2s": "5222"}}`, `"listen.c2s": "5222" is not host:port`},
		{"bad domain", `{"domain": "a@b"}`, `not a valid XMPP domain`},
		{"bad log level", `{"log_level": "loud"}`, `"log_level"`},
		{"empty file", ``, `empty file`},
		{"trailing data", `{} {}`, `trailing data`},
		{"syntax error", "{\n\"domain\": \n}", `line 3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			os.WriteFile(path, []byte(tc.file), 0o600)
			c, err := LoadConfig(defaults(t), path)
			if tc.want == "" {
				if err != nil || c.Domain != "gw1.example.org" || c.Listen.C2S != ":5222" {
					t.Fatalf("%v %+v", err, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want it to name %s and the file", err, tc.want)
			}
		})
	}
}
