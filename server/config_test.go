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
	if c.Domain != "localhost" || !filepath.IsAbs(c.DataDir) || filepath.Base(c.DataDir) != "roost-data" || c.Listen.C2S != ":5222" || c.Listen.C2STLS != ":5223" ||
		!c.TLS.Required || c.Limits.StanzaBytes != 262144 || c.Limits.AuthTimeout.D().String() != "30s" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"overlay keeps other keys", `{"domain": "gw1.example.org"}`, ""},
		{"unknown key", `{"domian": "x"}`, `unknown key "domian"`},
		{"unknown nested key", `{"limits": {"bogus": 1}}`, `unknown key "limits.bogus"`},
		{"duplicate key", `{"domain": "a", "domain": "b"}`, `key "domain" is given twice`},
		{"duplicate nested key", `{"limits": {"stanza_bytes": 20000, "stanza_bytes": 30000}}`, `key "limits.stanza_bytes" is given twice`},
		{"bad duration names its key", `{"limits": {"auth_timeout": "soon"}}`, `key "limits.auth_timeout": "soon" is not a duration`},
		{"duration as a number", `{"pep": {"flush_interval": 30}}`, `key "pep.flush_interval": want a duration string`},
		{"bad list element", `{"admins": [1]}`, `key "admins[0]": want a string`},
		{"fraction for a whole number", `{"limits": {"max_depth": 1.5}}`, `key "limits.max_depth": want a whole number`},
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

func TestConfigPathsFromTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "roost.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte(`{"data_dir": "data", "s2s": {"ca_file": "../ca.pem"}}`), 0o600)
	def := defaults(t)
	t.Chdir(t.TempDir()) // elsewhere: the paths must not depend on it
	c, err := LoadConfig(def, path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "etc", "data") || c.S2S.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("data_dir %s, ca_file %s", c.DataDir, c.S2S.CAFile)
	}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), `"s2s.ca_file"`) {
		t.Fatalf("Check with a missing CA file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not pem"), 0o600)
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("Check with a bad CA file: %v", err)
	}
	c.S2S.CAFile = ""
	if err := c.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	c.DataDir = filepath.Join(dir, "file", "sub")
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), `"data_dir"`) {
		t.Fatalf("Check with data_dir under a file: %v", err)
	}
	c.TLS.Cert, c.TLS.Key = filepath.Join(dir, "no.pem"), filepath.Join(dir, "no.key")
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), `"tls.cert"`) {
		t.Fatalf("Check with missing certificate files: %v", err)
	}
}

func TestConfigOwnersMustBeJIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(path, []byte(`{"devices": {"owners": ["not a jid!!"]}}`), 0o600)
	if _, err := LoadConfig(defaults(t), path); err == nil || !strings.Contains(err.Error(), `"devices.owners"`) {
		t.Fatalf("got %v", err)
	}
}
