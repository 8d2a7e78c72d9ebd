module roost

go 1.26.8

require (
	github.com/kardianos/service v1.3.0
	github.com/pion/dtls/v3 v3.1.15
	github.com/xdg-go/scram v1.4.0
	github.com/xmppo/go-xmpp v0.4.1
	go.etcd.io/bbolt v1.5.0
	golang.org/x/net v0.61.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
	golang.org/x/text v0.44.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v5 v5.0.0 // indirect
	github.com/xdg-go/stringprep v1.0.4 // indirect
	golang.org/x/crypto v0.58.0 // indirect
)
