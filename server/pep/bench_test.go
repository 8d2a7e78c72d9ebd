package pep

import (
	"fmt"
	"path/filepath"
	"roost/server/session/sessiontest"
	"sync/atomic"
	"testing"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// discard is a session transport that swallows what is pushed (the
// receiving clients of the benchmark).
type discard struct{ n atomic.Int64 }

func (d *discard) Push(b []byte) bool                   { d.n.Add(int64(len(b))); return true }
func (d *discard) Close(stanza.StreamCondition, string) {}

// BenchmarkNotify measures one PEP publish from a device to its owner's
// PEP node and its notification to 1, 10 and 100 local contacts' bound
// sessions with NODE+notify (issue 16: 0 allocations per delivered
// copy): "publish" is the whole iq (parse, store in memory, fan-out,
// answer), "fanout" the notification alone. allocs/op must not grow with
// the recipients.
func BenchmarkNotify(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		st, err := storage.Open(filepath.Join(b.TempDir(), "roost.db"), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		r := router.New()
		p := &Service{Domain: domain, Store: st, Router: r, FlushInterval: 1 << 40, MaxNodes: 8, MaxItems: 8, MaxItemBytes: 4096, MaxSubscribers: 8,
			wants: func(jid.JID, string) bool { return true }}
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		dev := session.New(mustJID(nil, "sensor1@"+domain+"/dtls"), &discard{}, session.Options{})
		r.Bind(dev)
		outs := make([]*discard, n)
		for i := range outs {
			u := fmt.Sprintf("u%d", i)
			if _, err := st.PutRosterItem("sensor1", storage.RosterItem{JID: u + "@" + domain, Subscription: "both"}); err != nil {
				b.Fatal(err)
			}
			outs[i] = &discard{}
			s := session.New(mustJID(nil, u+"@"+domain+"/phone"), outs[i], session.Options{})
			s.SetPresence(true, 0, []byte("<presence/>"))
			r.Bind(s)
		}
		raw := "<iq type='set' id='p1'>" + pub(sensor, "temperature", reading("21.5")) + "</iq>"
		stz := sessiontest.Parse(b, raw)
		owner := dev.JID().Bare()
		p.IQ(dev, stz, owner) // creates the node, fills the roster cache
		if outs[n-1].n.Load() == 0 {
			b.Fatal("the last contact got nothing")
		}
		b.Run(fmt.Sprintf("publish-%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.IQ(dev, stz, owner)
			}
		})
		b.Run(fmt.Sprintf("fanout-%d", n), func(b *testing.B) {
			a := p.accountOf(owner, false)
			a.mu.Lock()
			nd := a.nodes[sensor]
			ev := itemsEvent(sensor, &nd.items[0])
			a.mu.Unlock()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				a.mu.Lock()
				p.broadcast(a, nd, ev)
				a.mu.Unlock()
			}
		})
		p.Close()
		st.Close()
	}
}
