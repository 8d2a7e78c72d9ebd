package storage

import (
	"fmt"
	"sort"
	"time"
)

// Device is a constrained device's record (DESIGN.md, "Devices over
// DTLS"). A device is also an account: it has a roster, offline messages
// and subscriptions like a user, but it authenticates with its DTLS
// pre-shared key instead of a password. The PSK is kept as is, since the
// DTLS handshake needs the key itself, so the store file must stay
// owner-only (it is created 0600).
type Device struct {
	Name    string            `json:"name"` // the localpart of the device's JID
	Kind    string            `json:"kind,omitempty"`
	Label   string            `json:"label,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	PSK     []byte            `json:"psk"`
	Owners  []string          `json:"owners,omitempty"` // bare JIDs subscribed both ways at creation
	Created time.Time         `json:"created"`
}

// AddDevice stores a new device; ErrExists when a user or device has the name.
func (tx *Tx) AddDevice(d Device) error {
	if exists, _ := tx.UserExists(d.Name); exists {
		return fmt.Errorf("add device %s: %w", d.Name, ErrExists)
	}
	return putJSON(tx.tx.Bucket(bucketDevices), []byte(d.Name), d)
}

// Device returns a device's record; ErrNotFound when there is none.
func (tx *Tx) Device(name string) (Device, error) {
	var d Device
	err := getJSON(tx.tx.Bucket(bucketDevices), []byte(name), &d)
	return d, err
}

// PutDevice replaces a device's record.
func (tx *Tx) PutDevice(d Device) error {
	return putJSON(tx.tx.Bucket(bucketDevices), []byte(d.Name), d)
}

// Devices lists every device, sorted by name.
func (tx *Tx) Devices() ([]Device, error) {
	var out []Device
	err := tx.tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
		var d Device
		if err := getJSON(tx.tx.Bucket(bucketDevices), k, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteDevice removes a device with its roster, pending requests and
// offline messages.
func (tx *Tx) DeleteDevice(name string) error {
	b := tx.tx.Bucket(bucketDevices)
	if b.Get([]byte(name)) == nil {
		return fmt.Errorf("delete device %s: %w", name, ErrNotFound)
	}
	if err := b.Delete([]byte(name)); err != nil {
		return err
	}
	return tx.deleteAccountData(name)
}

// Device returns a device's record outside a transaction.
func (s *Store) Device(name string) (d Device, err error) {
	err = s.View(func(tx *Tx) error {
		d, err = tx.Device(name)
		return err
	})
	return d, err
}
