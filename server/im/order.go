package im

import (
	"hash/maphash"
	"sync"
)

// accountLocks order, per account, "become available, then flush the
// offline store" against "no resource is available, so store the
// message offline". Without them a message that arrives while the
// account's initial presence is being processed can be stored just after
// that presence flushed the store, and wait for the next login (issue 14).
// Only those two paths take the lock: routing to available resources
// never does.
type accountLocks struct {
	seed  maphash.Seed
	locks [64]sync.Mutex
}

var accounts = accountLocks{seed: maphash.MakeSeed()}

// lock locks local's stripe and returns its unlock.
func (a *accountLocks) lock(local string) func() {
	m := &a.locks[maphash.String(a.seed, local)%uint64(len(a.locks))]
	m.Lock()
	return m.Unlock
}
