package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"roost/wire/stanza"
)

// Config is one load run.
type Config struct {
	Options
	Users    int    // accounts prefix1..prefixN
	Prefix   string // "user"
	Password string // may hold %d for the account number (tsung's pass%d)
	Scenario string // login, chat, idle
	Duration time.Duration
	Rate     int // chat: messages per second in total; 0 = as fast as possible
	Workers  int // login: concurrent logins
	Contacts int // presence: contacts per user (mutual subscriptions made first)
	// Window is how many sends one sender may have outstanding (chat: not
	// yet received by its partner; presence: not yet echoed back to it).
	// It keeps saturation runs closed-loop, so that a slow server is
	// measured at its pace instead of buried under an ever-growing
	// backlog. 0 means unbounded.
	Window int
	// Subscribers is, for pep, how many subscribers each of the Users
	// publishers has (accounts Users+1..Users*(Subscribers+1)).
	Subscribers int
	// PEPSubscribe is how pep subscribers ask for notifications: "caps"
	// (NODE+notify in their entity capabilities, XEP-0163 §4.2, the
	// default) or "explicit" (a pubsub subscribe, XEP-0060 §6.1).
	PEPSubscribe string
	Progress     io.Writer
}

// Result is what a run measured.
type Result struct {
	Scenario   string  `json:"scenario"`
	Target     string  `json:"target"`
	Users      int     `json:"users"`
	Seconds    float64 `json:"seconds"`
	Logins     int64   `json:"logins"`
	Sent       int64   `json:"sent"`
	Received   int64   `json:"received"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput_per_s"` // logins/s or received msg/s
	Mean       float64 `json:"mean_ms"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	ClientCPU  float64 `json:"client_cpu_ms"`
	// pep: Sent counts publishes, Received notifications at the
	// subscribers, Throughput notifications/s, the latencies are
	// publish to notification.
	Subscribers int              `json:"subscribers,omitempty"` // per publisher
	Acked       int64            `json:"acked,omitempty"`       // publishes acknowledged
	AckedPerS   float64          `json:"acked_per_s,omitempty"`
	AckP50      float64          `json:"ack_p50_ms,omitempty"`
	AckP99      float64          `json:"ack_p99_ms,omitempty"`
	OwnerCopies int64            `json:"owner_copies,omitempty"` // notifications to the publishers' own sessions
	Stale       int64            `json:"stale,omitempty"`        // last items from before the run (not counted)
	Causes      map[string]int64 `json:"error_causes,omitempty"`
}

func (c *Config) user(i int) (string, string) {
	pw := c.Password
	if strings.Contains(pw, "%d") {
		pw = fmt.Sprintf(pw, i)
	}
	return c.Prefix + strconv.Itoa(i), pw
}

func (c *Config) dial(i int, resource string, presence bool) (*Conn, error) {
	u, pw := c.user(i)
	o := c.Options
	o.Password = pw
	return Dial(o, u, resource, presence)
}

// Run executes the scenario; every loop is bounded by cfg.Duration.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Users < 1 || cfg.Duration <= 0 {
		return Result{}, errors.New("-users and -duration must be positive")
	}
	if cfg.Raw && cfg.Scenario == "presence" {
		return Result{}, errors.New("-raw: the relay has no rosters; use chat, login or idle")
	}
	cpu0 := cpuMillis()
	var r Result
	var err error
	switch cfg.Scenario {
	case "login":
		r, err = runLogin(ctx, cfg)
	case "chat":
		r, err = runChat(ctx, cfg)
	case "idle":
		r, err = runIdle(ctx, cfg)
	case "presence":
		r, err = runPresence(ctx, cfg)
	case "pep":
		if cfg.Raw {
			return Result{}, errors.New("-raw: the relay has no PEP; use chat, login or idle")
		}
		r, err = runPEP(ctx, cfg)
	default:
		return Result{}, fmt.Errorf("scenario %q: use login, chat, idle, presence or pep", cfg.Scenario)
	}
	r.Scenario, r.Target, r.Users = cfg.Scenario, cfg.Target, cfg.Users
	if cfg.WebSocket != "" {
		r.Target = cfg.WebSocket
	}
	r.ClientCPU = cpuMillis() - cpu0
	return r, err
}

// latencies collects samples and reports percentiles.
type latencies struct {
	mu sync.Mutex
	ms []float64
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ms = append(l.ms, float64(d.Microseconds())/1000)
	l.mu.Unlock()
}

func (l *latencies) fill(r *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ms) == 0 {
		return
	}
	sort.Float64s(l.ms)
	var sum float64
	for _, v := range l.ms {
		sum += v
	}
	r.Mean = sum / float64(len(l.ms))
	at := func(q float64) float64 { return l.ms[min(len(l.ms)-1, int(q*float64(len(l.ms))))] }
	r.P50, r.P90, r.P99, r.P999 = at(0.50), at(0.90), at(0.99), at(0.999)
}

func progress(ctx context.Context, w io.Writer, start time.Time, what func() string) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintf(w, "%5.1fs %s\n", time.Since(start).Seconds(), what())
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done) }
}

// runLogin logs users in and out (connect, auth, bind, presence) as fast
// as cfg.Workers allow, for cfg.Duration.
func runLogin(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	var logins, errs atomic.Int64
	var why causes
	var lat latencies
	start := time.Now()
	end := start.Add(cfg.Duration)
	stop := progress(ctx, cfg.Progress, start, func() string { return fmt.Sprintf("logins %d errors %d", logins.Load(), errs.Load()) })
	workers := max(cfg.Workers, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				i := int(next.Add(1)-1)%cfg.Users + 1
				t0 := time.Now()
				c, err := cfg.dial(i, fmt.Sprintf("login%d", next.Load()), true)
				if err != nil {
					errs.Add(1)
					why.add(causeOf(err))
					continue
				}
				lat.add(time.Since(t0))
				logins.Add(1)
				c.Close()
			}
		}()
	}
	wg.Wait()
	stop()
	r.Seconds = time.Since(start).Seconds()
	r.Logins, r.Errors = logins.Load(), errs.Load()
	r.Causes = why.snapshot()
	r.Throughput = float64(r.Logins) / r.Seconds
	lat.fill(&r)
	return r, nil
}

// connectAll logs every user in, with at most 32 logins at once, and
// sends their initial presence.
func connectAll(ctx context.Context, cfg Config, res string) ([]*Conn, error) {
	return connectUsers(ctx, cfg, res, cfg.Users, true)
}

// connectUsers logs accounts 1..n in, with at most 32 logins at once,
// sending initial presence when presence is set. On the first failure
// (or when ctx ends) every connection made is closed.
func connectUsers(ctx context.Context, cfg Config, res string, n int, presence bool) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 32)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := cfg.dial(i, res, presence)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			conns[i-1] = c
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		closeAll(conns) // also when cancelled: no caller holds them then
		return nil, first
	}
	return conns, nil
}

// runIdle opens every session and holds it for cfg.Duration.
func runIdle(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	start := time.Now()
	conns, err := connectAll(ctx, cfg, "idle")
	if err != nil {
		return r, err
	}
	r.Logins = int64(len(conns))
	for _, c := range conns {
		go io.Copy(io.Discard, c.nc)
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "%d sessions open, holding for %s\n", len(conns), cfg.Duration)
	}
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	closeAll(conns)
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// runChat pairs users (1 with 2, 3 with 4, ...): each odd user sends to
// its partner's full JID at cfg.Rate/pairs per second; latency is measured
// from the timestamp in the body.
func runChat(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	pairs := cfg.Users / 2
	if pairs < 1 {
		return r, errors.New("chat needs at least 2 users")
	}
	conns, err := connectAll(ctx, cfg, "chat")
	if err != nil {
		return r, err
	}
	defer closeAll(conns)
	var sent, received, errs atomic.Int64
	var lat latencies
	done := deadline(ctx, cfg.Duration)
	wins := make([]*window, pairs)
	for p := 0; p < pairs; p++ {
		rcv, win := conns[2*p+1], newWindow(cfg.Window)
		wins[p] = win
		go func() {
			for {
				tok, err := rcv.Next()
				if err != nil {
					return
				}
				if string(tok.Local) != "message" {
					continue
				}
				if age, ok := stampAge(tok.Raw, "<body>t="); ok {
					lat.add(age)
					received.Add(1)
					win.release()
				}
			}
		}()
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	stop := progress(ctx, cfg.Progress, start, func() string {
		return fmt.Sprintf("sent %d received %d errors %d", sent.Load(), received.Load(), errs.Load())
	})
	var wg sync.WaitGroup
	for p := 0; p < pairs; p++ {
		snd, to, win := conns[2*p], conns[2*p+1].JID, wins[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := newPacer(cfg.Rate, pairs)
			buf := make([]byte, 0, 256)
			for time.Now().Before(end) && ctx.Err() == nil {
				pace.wait()
				if !win.acquire(done) {
					return
				}
				buf = chatMessage(buf[:0], to, time.Now())
				if cfg.Raw {
					buf = append(buf, '\n')
				}
				if err := snd.Send(buf); err != nil {
					errs.Add(1)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	sendEnd := time.Since(start)
	drain(&received, sent.Load())
	stop()
	r.Seconds = sendEnd.Seconds()
	r.Sent, r.Received, r.Errors = sent.Load(), received.Load(), errs.Load()
	r.Throughput = float64(r.Received) / time.Since(start).Seconds()
	lat.fill(&r)
	return r, nil
}

// Succeeded reports whether anything the scenario does worked at all (a
// login, a message or notification received): a run where nothing did
// measured nothing, and `roost bench` exits non-zero (issue 17).
func (r Result) Succeeded() bool { return r.Logins > 0 || r.Received > 0 || r.Acked > 0 }

// causeOf is an error's cause without the account it happened to (the
// dial error is "userN: cause"), so that causes add up across accounts.
func causeOf(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		if s := err.Error(); strings.HasSuffix(s, ": "+inner.Error()) && !strings.Contains(strings.TrimSuffix(s, ": "+inner.Error()), " ") {
			return inner.Error()
		}
	}
	return err.Error()
}

// Print writes the human summary and one JSON line.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "scenario %s against %s, %d users, %.1fs: logins %d, sent %d, received %d, errors %d, %.0f/s; latency ms mean %.2f p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f; client CPU %.0f ms\n",
		r.Scenario, r.Target, r.Users, r.Seconds, r.Logins, r.Sent, r.Received, r.Errors, r.Throughput, r.Mean, r.P50, r.P90, r.P99, r.P999, r.ClientCPU)
	if r.Scenario == "pep" {
		fmt.Fprintf(w, "pep: %d publishers x %d subscribers: %d publishes sent, %d acknowledged (%.0f/s, p50 %.2f ms, p99 %.2f ms); %d notifications (%.0f/s), publish to notification p50 %.2f ms p99 %.2f ms; %d copies to the publishers' own sessions\n",
			r.Users, r.Subscribers, r.Sent, r.Acked, r.AckedPerS, r.AckP50, r.AckP99, r.Received, r.Throughput, r.P50, r.P99, r.OwnerCopies)
	}
	keys := make([]string, 0, len(r.Causes))
	for k := range r.Causes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "error: %s (%d)\n", k, r.Causes[k])
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "%s\n", b)
}

// runPresence subscribes every user mutually to the next cfg.Contacts
// users, then has each change its presence (at cfg.Rate changes per
// second in total, or as fast as possible) and counts the presence
// deliveries the fan-out produces.
func runPresence(ctx context.Context, cfg Config) (Result, error) {
	var r Result
	k := max(cfg.Contacts, 1)
	if cfg.Users <= k {
		return r, errors.New("presence needs more users than contacts")
	}
	conns, err := connectAll(ctx, cfg, "presence")
	if err != nil {
		return r, err
	}
	defer closeAll(conns)
	var received, approved atomic.Int64
	var lat latencies
	wins := make([]*window, len(conns))
	for i, c := range conns {
		win := newWindow(cfg.Window)
		wins[i] = win
		go func() {
			for {
				tok, err := c.Next()
				if err != nil {
					return
				}
				if string(tok.Local) != "presence" {
					continue
				}
				typ, _ := tok.Attr("type")
				from, _ := tok.Attr("from")
				switch string(typ) {
				case "subscribe":
					// Approve every request, as a client's auto-accept would.
					c.Send(append(stanza.AppendRawAttr([]byte("<presence type='subscribed' to='"), from), "'/>"...))
				case "subscribed":
					approved.Add(1)
				case "":
					if age, ok := stampAge(tok.Raw, "<status>t="); ok {
						lat.add(age)
						received.Add(1)
						if string(from) == c.JID { // our own change, back to us
							win.release()
						}
					}
				}
			}
		}()
	}
	n := len(conns)
	for i, c := range conns {
		for d := 1; d <= k; d++ {
			u, _ := cfg.user((i+d)%n + 1)
			c.Send([]byte("<presence type='subscribe' to='" + u + "@" + cfg.Domain + "'/>"))
		}
	}
	// Wait for the approvals (bounded).
	for t := 0; t < 200 && approved.Load() < int64(n*k); t++ {
		time.Sleep(25 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	received.Store(0)
	start := time.Now()
	end := start.Add(cfg.Duration)
	var changes atomic.Int64
	stop := progress(ctx, cfg.Progress, start, func() string {
		return fmt.Sprintf("changes %d presence received %d", changes.Load(), received.Load())
	})
	done := deadline(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for i, c := range conns {
		win := wins[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := newPacer(cfg.Rate, n)
			for time.Now().Before(end) && ctx.Err() == nil {
				pace.wait()
				if !win.acquire(done) {
					return
				}
				if c.Send([]byte(fmt.Sprintf("<presence><show>away</show><status>t=%d</status></presence>", time.Now().UnixNano()))) != nil {
					return
				}
				changes.Add(1)
			}
		}()
	}
	wg.Wait()
	// Each change goes to k contacts and to the user's own resource.
	drain(&received, changes.Load()*int64(k+1))
	stop()
	r.Seconds = time.Since(start).Seconds()
	r.Sent, r.Received = changes.Load(), received.Load()
	r.Throughput = float64(r.Received) / r.Seconds
	lat.fill(&r)
	return r, nil
}

// pacer spaces one sender's sends so that senders of them together make
// rate per second; rate 0 means no pacing.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate, senders int) *pacer {
	p := &pacer{next: time.Now()}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) * float64(senders) / float64(rate))
		// Each sender starts at a random phase of its interval: started
		// together they would send in bursts of one message per sender,
		// and measure the bursts' queueing instead of the server.
		p.next = p.next.Add(rand.N(p.interval))
	}
	return p
}

// wait sleeps until the next send is due. A sender that fell behind
// catches up without sleeping, so the total rate holds.
func (p *pacer) wait() {
	if p.interval == 0 {
		return
	}
	if d := time.Until(p.next); d > 0 {
		time.Sleep(d)
	}
	p.next = p.next.Add(p.interval)
}

// drain waits until received reaches want, or nothing new has arrived
// for five seconds, or 30 s have passed, whichever is first.
func drain(received *atomic.Int64, want int64) {
	last, quiet, start := received.Load(), time.Now(), time.Now()
	for received.Load() < want && time.Since(quiet) < 5*time.Second && time.Since(start) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
		if n := received.Load(); n != last {
			last, quiet = n, time.Now()
		}
	}
}

// closeAll ends every open session in conns.
func closeAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// stampAge finds marker followed by a send time in Unix nanoseconds (as
// chatMessage and the presence scenario write it) and says how long ago
// that was.
func stampAge(raw []byte, marker string) (time.Duration, bool) {
	i := bytes.Index(raw, []byte(marker))
	if i < 0 {
		return 0, false
	}
	rest := raw[i+len(marker):]
	j := bytes.IndexByte(rest, '<')
	if j <= 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Since(time.Unix(0, ns)), true
}

// window bounds one sender's outstanding sends; a nil window is unbounded.
type window struct{ slots chan struct{} }

func newWindow(n int) *window {
	if n <= 0 {
		return nil
	}
	return &window{slots: make(chan struct{}, n)}
}

// acquire waits for a free slot; false when done closed first.
func (w *window) acquire(done <-chan struct{}) bool {
	if w == nil {
		return true
	}
	select {
	case w.slots <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// release frees a slot (an answer to a send arrived).
func (w *window) release() {
	if w == nil {
		return
	}
	select {
	case <-w.slots:
	default:
	}
}

// deadline is closed after d, or when ctx ends.
func deadline(ctx context.Context, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		close(ch)
	}()
	return ch
}
