// Package admin holds the operations an operator runs on accounts and
// devices (user add/passwd/del/list, device add/del/rekey/list, status,
// backup). The CLI runs them on the store directly when no server holds
// it, and a running server answers the same requests over its control
// socket (Handler), so both paths behave alike.
package admin

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"roost/devices"
	"roost/server/control"
	"roost/storage"
	"roost/wire/jid"
)

// Admin runs account commands against an open store. The CLI uses it
// directly when it can open the store, and a running server uses it to
// answer the same commands over the control channel, so both paths behave
// alike.
type Admin struct {
	Store  *storage.Store
	Domain string
	// DeviceOwners (devices.owners) own every device added.
	DeviceOwners []string
	// Owners, when set, is called instead of reading DeviceOwners: the
	// running server's devices.owners, as SIGHUP last reloaded them.
	Owners func() []string
	// Live, when set (a running server), describes a device's session for
	// device list: online, last seen, address.
	Live func(jid string) string
}

// Do executes one request.
func (a Admin) Do(req control.Request) control.Response {
	switch req.Op {
	case "user.list":
		users, err := a.Store.Users()
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		for i, u := range users {
			users[i] = u + "@" + a.Domain
		}
		return control.Response{Users: users}
	case "user.add", "user.passwd", "user.del":
	case "status":
		return control.Response{Message: "running"}
	case "backup":
		store := a.Store
		return control.Response{Message: "backup of " + store.Path(), Body: func(w io.Writer) error {
			_, err := store.Backup(w)
			return err
		}}
	case "device.add", "device.del", "device.rekey", "device.list", "device.set", "device.share", "device.unshare":
		return a.device(req)
	default:
		return control.Response{Error: fmt.Sprintf("unknown command %q", req.Op)}
	}
	local, err := a.localpart(req.JID)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	if req.Op == "user.del" {
		if err := a.Store.DeleteUser(local); errors.Is(err, storage.ErrNotFound) {
			return control.Response{Error: fmt.Sprintf("no user %s@%s", local, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		return control.Response{Message: fmt.Sprintf("deleted %s@%s", local, a.Domain)}
	}
	pw, err := jid.PreparePassword(req.Password)
	if err != nil || pw == "" {
		return control.Response{Error: "the password is empty or has characters a password may not hold (RFC 8265 OpaqueString)"}
	}
	if req.Op == "user.add" {
		if err := a.Store.AddUser(local, pw); errors.Is(err, storage.ErrExists) {
			return control.Response{Error: fmt.Sprintf("user %s@%s exists already (use 'roost user passwd' to change the password)", local, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		return control.Response{Message: fmt.Sprintf("added %s@%s", local, a.Domain)}
	}
	if err := a.Store.SetPassword(local, pw); errors.Is(err, storage.ErrNotFound) {
		return control.Response{Error: fmt.Sprintf("no user %s@%s (use 'roost user add' first)", local, a.Domain)}
	} else if err != nil {
		return control.Response{Error: err.Error()}
	}
	return control.Response{Message: fmt.Sprintf("changed the password of %s@%s", local, a.Domain)}
}

// localpart checks that s is a bare JID on this server's domain (a bare
// localpart is accepted too) and returns its prepared localpart.
func (a Admin) localpart(s string) (string, error) {
	if s == "" {
		return "", errors.New("give the user's JID, for example alice@" + a.Domain)
	}
	j, err := jid.Parse(s)
	if err == nil && j.Local() == "" {
		j, err = jid.New(s, a.Domain, "")
	}
	if err != nil {
		return "", fmt.Errorf("%q is not a valid JID: %v", s, err)
	}
	if j.Domain() != a.Domain {
		return "", fmt.Errorf("%s is not on this server's domain %s (set \"domain\" in the config, or use -config)", s, a.Domain)
	}
	if j.Resource() != "" {
		return "", fmt.Errorf("%s: give a bare JID, without /resource", s)
	}
	return j.Local(), nil
}

// Handler answers control-socket requests for a running server with a.
// status adds the server's own lines (version, uptime, sessions, links)
// to a status request. Changes are logged.
func Handler(a Admin, status func() []string, log *slog.Logger) func(control.Request) control.Response {
	return func(req control.Request) control.Response {
		resp := a.Do(req)
		if req.Op == "status" {
			resp.Lines = append(resp.Lines, status()...)
		}
		if req.Op != "user.list" && req.Op != "status" && resp.Error == "" {
			log.Info("control: "+req.Op, "jid", req.JID)
		}
		return resp
	}
}

// Run runs req on the store at storePath directly, or through the running
// server's control socket sock when that server holds the store; via says
// which. A store that another admin command holds is waited for (10 s).
func Run(storePath, sock string, opts storage.Options, a Admin, req control.Request) (resp control.Response, via string, err error) {
	deadline := time.Now().Add(10 * time.Second)
	opts.Timeout = 300 * time.Millisecond
	opts.MustExist = true // an administration command never creates a store (issue 17)
	var st *storage.Store
	for {
		st, err = storage.Open(storePath, opts)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrLocked) {
			return control.Response{}, "", err
		}
		resp, cerr := control.Call(sock, req)
		if cerr == nil {
			return resp, "through the running server at " + sock, nil
		}
		if time.Now().After(deadline) {
			return resp, "", fmt.Errorf("the store %s stayed in use for 10 s, and no running server answered on %s: %w", storePath, sock, cerr)
		}
	}
	defer st.Close()
	a.Store = st
	return a.Do(req), "store " + storePath, nil
}

// device runs the device commands.
func (a Admin) device(req control.Request) control.Response {
	if req.Op == "device.list" {
		list, err := devices.List(a.Store)
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		var lines []string
		for _, d := range list {
			jid := d.Name + "@" + a.Domain
			line := fmt.Sprintf("%s\tkind=%s\tlabel=%q\towners=%s", jid, d.Kind, d.Label, strings.Join(d.Owners, ","))
			if a.Live != nil {
				line += "\t" + a.Live(jid)
			}
			lines = append(lines, line)
		}
		return control.Response{Lines: lines}
	}
	if req.JID == "" {
		return control.Response{Error: "give the device's name, for example thermo1"}
	}
	name := strings.TrimSuffix(req.JID, "@"+a.Domain)
	show := func(verb string, d storage.Device) control.Response {
		return control.Response{Message: fmt.Sprintf("%s device %s@%s", verb, d.Name, a.Domain), Lines: []string{
			"identity: " + devices.Identity(d, a.Domain),
			"psk:      " + hex.EncodeToString(d.PSK) + "   (shown once: put it in the device now)",
		}}
	}
	switch req.Op {
	case "device.add":
		owners := append([]string(nil), a.DeviceOwners...)
		if a.Owners != nil {
			owners = append([]string(nil), a.Owners()...)
		}
		if req.Owner != "" {
			owners = append(owners, strings.Split(req.Owner, ",")...)
		}
		d, err := devices.Add(a.Store, a.Domain, name, req.Kind, req.Label, owners)
		if errors.Is(err, storage.ErrExists) {
			return control.Response{Error: fmt.Sprintf("%s@%s exists already (a user or a device)", name, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		return show("added", d)
	case "device.set":
		if !req.SetLabel && !req.SetOwner {
			return control.Response{Error: "device set: give -label and/or -owner"}
		}
		var label *string
		var owners []string
		if req.SetLabel {
			label = &req.Label
		}
		if req.SetOwner {
			owners = []string{}
			for _, o := range strings.Split(req.Owner, ",") {
				if o = strings.TrimSpace(o); o != "" {
					owners = append(owners, o)
				}
			}
		}
		d, err := devices.Set(a.Store, a.Domain, name, label, owners)
		if errors.Is(err, storage.ErrNotFound) {
			return control.Response{Error: fmt.Sprintf("no device %s@%s", name, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		return control.Response{Message: fmt.Sprintf("changed device %s@%s: label %q, owners %s (the key is unchanged)", d.Name, a.Domain, d.Label, strings.Join(d.Owners, ","))}
	case "device.share", "device.unshare":
		remove := req.Op == "device.unshare"
		if err := devices.Share(a.Store, a.Domain, name, req.Owner, remove); errors.Is(err, storage.ErrNotFound) {
			return control.Response{Error: fmt.Sprintf("no device %s@%s", name, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		if remove {
			return control.Response{Message: fmt.Sprintf("%s no longer sees device %s@%s", req.Owner, name, a.Domain)}
		}
		return control.Response{Message: fmt.Sprintf("%s may now see device %s@%s: its presence and readings (subscribe to PEP node urn:roost:sensor:0)", req.Owner, name, a.Domain)}
	case "device.rekey":
		d, err := devices.Rekey(a.Store, name)
		if errors.Is(err, storage.ErrNotFound) {
			return control.Response{Error: fmt.Sprintf("no device %s@%s", name, a.Domain)}
		} else if err != nil {
			return control.Response{Error: err.Error()}
		}
		return show("new key for", d)
	}
	if err := devices.Delete(a.Store, name); errors.Is(err, storage.ErrNotFound) {
		return control.Response{Error: fmt.Sprintf("no device %s@%s", name, a.Domain)}
	} else if err != nil {
		return control.Response{Error: err.Error()}
	}
	return control.Response{Message: fmt.Sprintf("deleted device %s@%s", name, a.Domain)}
}
