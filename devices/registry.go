// Package devices is the device side of Roost: the registry of
// constrained sensors and controllers (JID, pre-shared key, kind, label,
// metadata, owners). The DTLS datagram binding that turns an
// authenticated association into a routed session is in devices/datagram.
//
// A device is an account like a user: it has a roster, gets offline
// messages and subscriptions. Its owners are subscribed to it both ways
// when it is created, so a controller sees every sensor it owns come and
// go without a subscription dance.
package devices

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"roost/storage"
	"roost/wire/jid"
)

// PSKBytes is the size of a generated pre-shared key: 128 bits, the key
// size of the AES-128 PSK suites.
const PSKBytes = 16

// DefaultResource is the resource in the PSK identity `device add` prints.
const DefaultResource = "device"

// Identity is the PSK identity a device presents: its full JID.
func Identity(d storage.Device, domain string) string {
	return d.Name + "@" + domain + "/" + DefaultResource
}

// Add creates a device account with a random PSK. owners are bare JIDs of
// local accounts; each gets a mutual (both) subscription with the device.
func Add(st *storage.Store, domain, name, kind, label string, owners []string) (storage.Device, error) {
	local, err := jid.PrepareLocal(name)
	if err != nil {
		return storage.Device{}, fmt.Errorf("device name %q: %w", name, err)
	}
	psk := make([]byte, PSKBytes)
	if _, err := rand.Read(psk); err != nil {
		return storage.Device{}, err
	}
	d := storage.Device{Name: local, Kind: kind, Label: label, PSK: psk, Created: time.Now().UTC()}
	ownerJIDs, err := ownerJIDs(domain, owners)
	if err != nil {
		return storage.Device{}, err
	}
	for _, j := range ownerJIDs {
		d.Owners = append(d.Owners, j.String())
	}
	devJID := local + "@" + domain
	err = st.Update(func(tx *storage.Tx) error {
		if err := tx.AddDevice(d); err != nil {
			return err
		}
		for _, o := range ownerJIDs {
			if ok, _ := tx.UserExists(o.Local()); !ok {
				return fmt.Errorf("owner %s: no such account", o)
			}
			if _, err := tx.PutRosterItem(o.Local(), storage.RosterItem{JID: devJID, Name: label, Subscription: "both", Groups: []string{"Devices"}}); err != nil {
				return err
			}
			if _, err := tx.PutRosterItem(local, storage.RosterItem{JID: o.String(), Subscription: "both"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return storage.Device{}, err
	}
	return d, nil
}

// Rekey gives a device a new random PSK and returns it; the old key stops
// working at the device's next handshake.
func Rekey(st *storage.Store, name string) (storage.Device, error) {
	var d storage.Device
	err := st.Update(func(tx *storage.Tx) error {
		var err error
		if d, err = tx.Device(name); err != nil {
			return err
		}
		d.PSK = make([]byte, PSKBytes)
		if _, err := rand.Read(d.PSK); err != nil {
			return err
		}
		return tx.PutDevice(d)
	})
	return d, err
}

// Delete removes a device and everything its account held.
func Delete(st *storage.Store, name string) error {
	return st.Update(func(tx *storage.Tx) error { return tx.DeleteDevice(name) })
}

// List returns every device.
func List(st *storage.Store) ([]storage.Device, error) {
	var out []storage.Device
	err := st.View(func(tx *storage.Tx) error {
		var err error
		out, err = tx.Devices()
		return err
	})
	return out, err
}

// ErrUnknown is returned for a PSK identity that names no device.
var ErrUnknown = errors.New("unknown device")

// Lookup returns the device a PSK identity names, checking its domain.
func Lookup(st *storage.Store, domain, identity string) (storage.Device, jid.JID, error) {
	j, err := jid.Parse(identity)
	if err != nil || j.Local() == "" || j.Domain() != domain {
		return storage.Device{}, jid.JID{}, fmt.Errorf("%w: identity %q is not local@%s/resource", ErrUnknown, identity, domain)
	}
	if j.Resource() == "" {
		if j, err = j.WithResource(DefaultResource); err != nil {
			return storage.Device{}, jid.JID{}, err
		}
	}
	d, err := st.Device(j.Local())
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, jid.JID{}, fmt.Errorf("%w: %s", ErrUnknown, j.Bare())
	}
	return d, j, err
}

// Set edits a device without a new key: label (when not nil) and owners
// (when not nil: the new list replaces the old). Owners added get a mutual
// (both) subscription with the device, as with Add; owners removed lose it
// on both sides. One transaction.
func Set(st *storage.Store, domain, name string, label *string, owners []string) (storage.Device, error) {
	ownerJIDs, err := ownerJIDs(domain, owners)
	if err != nil {
		return storage.Device{}, err
	}
	var d storage.Device
	err = st.Update(func(tx *storage.Tx) error {
		var err error
		if d, err = tx.Device(name); err != nil {
			return err
		}
		devJID := d.Name + "@" + domain
		if label != nil {
			d.Label = *label
		}
		if owners != nil {
			keep := map[string]bool{}
			for _, o := range ownerJIDs {
				keep[o.String()] = true
			}
			for _, old := range d.Owners {
				if keep[old] {
					continue
				}
				if j, err := jid.Parse(old); err == nil {
					if _, _, err := tx.DeleteRosterItem(j.Local(), devJID); err != nil {
						return err
					}
				}
				if _, _, err := tx.DeleteRosterItem(d.Name, old); err != nil {
					return err
				}
			}
			d.Owners = d.Owners[:0]
			for _, o := range ownerJIDs {
				d.Owners = append(d.Owners, o.String())
			}
		}
		for _, o := range d.Owners {
			j, _ := jid.Parse(o)
			if ok, _ := tx.UserExists(j.Local()); !ok {
				return fmt.Errorf("owner %s: no such account", o)
			}
			it, found, err := tx.RosterItem(j.Local(), devJID)
			if err != nil {
				return err
			}
			if found && it.Subscription == "both" && (label == nil || it.Name == d.Label) {
				continue // an owner already: keep the item as the owner arranged it
			}
			if !found {
				it = storage.RosterItem{JID: devJID, Groups: []string{"Devices"}}
			}
			it.Name, it.Subscription = d.Label, "both"
			if _, err := tx.PutRosterItem(j.Local(), it); err != nil {
				return err
			}
			if _, err := tx.PutRosterItem(d.Name, storage.RosterItem{JID: o, Subscription: "both"}); err != nil {
				return err
			}
		}
		return tx.PutDevice(d)
	})
	return d, err
}

// Share lets who (a bare JID of any domain: a local user, or a user on the
// wider network behind the uplink or s2s) see the device's presence and
// its PEP readings, or stops that (remove): a "from" subscription on the
// device's roster (RFC 6121 §3), which is what PEP's presence access model
// checks (XEP-0163 §4.2). A device cannot answer a subscription request
// itself; its operator does it here. A local user also gets the "to"
// side on its own roster.
func Share(st *storage.Store, domain, name, who string, remove bool) error {
	j, err := jid.Parse(who)
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return fmt.Errorf("%q: give a bare JID such as alice@%s or user@example.org", who, domain)
	}
	return st.Update(func(tx *storage.Tx) error {
		d, err := tx.Device(name)
		if err != nil {
			return err
		}
		devJID := d.Name + "@" + domain
		local := j.Domain() == domain
		if local {
			if ok, _ := tx.UserExists(j.Local()); !ok {
				return fmt.Errorf("%s: no such account", j)
			}
		}
		it, found, err := tx.RosterItem(d.Name, j.String())
		if err != nil {
			return err
		}
		if remove {
			if !found {
				return nil
			}
			switch it.Subscription {
			case "both":
				it.Subscription = "to"
			case "from":
				it.Subscription = "none"
			}
		} else {
			if !found {
				it = storage.RosterItem{JID: j.String(), Subscription: "none"}
			}
			switch it.Subscription {
			case "none", "":
				it.Subscription = "from"
			case "to":
				it.Subscription = "both"
			}
		}
		if _, err := tx.PutRosterItem(d.Name, it); err != nil {
			return err
		}
		if !local {
			return nil
		}
		mine, found, err := tx.RosterItem(j.Local(), devJID)
		if err != nil {
			return err
		}
		if !found {
			mine = storage.RosterItem{JID: devJID, Name: d.Label, Subscription: "none", Groups: []string{"Devices"}}
		}
		switch {
		case !remove && (mine.Subscription == "none" || mine.Subscription == ""):
			mine.Subscription = "to"
		case !remove && mine.Subscription == "from":
			mine.Subscription = "both"
		case remove && mine.Subscription == "to":
			mine.Subscription = "none"
		case remove && mine.Subscription == "both":
			mine.Subscription = "from"
		}
		_, err = tx.PutRosterItem(j.Local(), mine)
		return err
	})
}

// ownerJIDs prepares owners: bare JIDs of accounts on domain, a bare
// localpart standing for local@domain.
func ownerJIDs(domain string, owners []string) ([]jid.JID, error) {
	var out []jid.JID
	for _, o := range owners {
		j, err := jid.Parse(o)
		if err == nil && j.Local() == "" {
			j, err = jid.New(o, domain, "")
		}
		if err != nil || j.Domain() != domain || j.Resource() != "" {
			return nil, fmt.Errorf("owner %q: give the bare JID of an account on %s", o, domain)
		}
		out = append(out, j)
	}
	return out, nil
}
