package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"roost/tests/testutil"
)

// TestAdminCommandsSlixmpp is issue 15's ad-hoc acceptance: slixmpp's
// xep_0050 and xep_0133 run the service administration commands as an
// account listed in admins, and a non-admin gets <forbidden/>.
func TestAdminCommandsSlixmpp(t *testing.T) {
	needSlixmpp(t)
	bin := buildRoost(t)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	cfg := fmt.Sprintf(`{"admins": ["admin@localhost"], "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": "", "s2s": ""}}`, port)
	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := roost(t, bin, dir, "", "init", "-config", "c.json"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, u := range []string{"admin", "bob"} {
		if out, err := roost(t, bin, dir, u+"-pw\n", "user", "add", "-config", "c.json", u+"@localhost"); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
	}
	proc := startRoost(t, bin, dir, "run", "-config", "c.json")
	proc.waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	cert := filepath.Join(dir, "roost-data", "roost-cert.pem")
	cmd := exec.Command(python, "admin_commands.py", "127.0.0.1", strconv.Itoa(port),
		"admin@localhost", "admin-pw", "bob@localhost", "bob-pw", "--cafile", cert)
	out, err := cmd.CombinedOutput()
	t.Logf("admin_commands.py:\n%s", out)
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("admin_commands.py failed: %v\nserver log:\n%s", err, proc.logs)
	}
}
