package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"roost/server"
)

// cmd is one command of the CLI: its name as typed ("user add"), the
// arguments after it, a sentence about it, and its flag set. Every
// command answers -h with its own usage and flags, takes flags before or
// after its positional arguments, and reports a usage error as one line
// plus its own usage line, never the whole command list.
type cmd struct {
	name  string // "user add"
	args  string // "[-config FILE] JID"
	about string
	fs    *flag.FlagSet
	out   io.Writer // where -h prints
}

// newCmd makes a command with the -config flag every command takes;
// config is where its value goes.
func newCmd(name, args, about string, out io.Writer) (*cmd, *string) {
	c := &cmd{name: name, args: args, about: about, out: out, fs: flag.NewFlagSet("roost "+name, flag.ContinueOnError)}
	c.fs.SetOutput(io.Discard)
	config := c.fs.String("config", "", "configuration file overlaid on the embedded defaults (default: the installed service's, if any)")
	return c, config
}

// usageLine is "usage: roost NAME ARGS".
func (c *cmd) usageLine() string { return "usage: roost " + c.name + " " + c.args }

// help writes the command's usage and its flags.
func (c *cmd) help() {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n\n%s\n", c.usageLine(), c.about)
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nflags:\n")
		c.fs.SetOutput(&b)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	c.out.Write(b.Bytes())
}

// errHelp ends a command after -h printed its help (exit 0).
var errHelp = errors.New("help shown")

// parse reads flags and positional arguments in any order (flags after
// the JID are fine: `roost user del alice -config c.json`); a lone "--"
// ends the flags.
func (c *cmd) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.help()
				return nil, errHelp
			}
			return nil, c.usage("%v", err)
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usage is a usage error of this command: one line saying what is wrong,
// then the command's usage.
func (c *cmd) usage(format string, a ...any) error {
	return usageError{msg: c.name + ": " + fmt.Sprintf(format, a...), usage: c.usageLine() + "\n(roost " + c.name + " -h shows its flags)"}
}

// exactly checks the number of positional arguments.
func (c *cmd) exactly(pos []string, n int, what string) error {
	if len(pos) == n {
		return nil
	}
	if n == 0 {
		return c.usage("unexpected argument %q", pos[0])
	}
	if len(pos) < n {
		return c.usage("needs %s", what)
	}
	return c.usage("unexpected argument %q (give %s)", pos[n], what)
}

// config loads the configuration the command's -config names.
func (c *cmd) config(path string) (*server.Config, error) {
	return server.LoadConfig(defaultConfig, adminConfig(strings.Fields(c.name)[0], path))
}

// group is a command with subcommands (user, device): it dispatches, and
// answers -h, nothing or an unknown subcommand with its own list.
type group struct {
	name  string
	about string
	subs  []sub
}

type sub struct {
	name, args, about string
	run               func(args []string) error
}

func (g group) usageText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: roost %s SUBCOMMAND [flags] [args]   (%s)\n\nsubcommands:\n", g.name, g.about)
	for _, s := range g.subs {
		fmt.Fprintf(&b, "  %-10s %s\n             %s\n", s.name, s.args, s.about)
	}
	fmt.Fprintf(&b, "\nroost %s SUBCOMMAND -h shows a subcommand's flags.\n", g.name)
	return b.String()
}

func (g group) run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: g.name + ": give a subcommand: " + g.names(), usage: "usage: roost " + g.name + " SUBCOMMAND ...\n(roost " + g.name + " -h lists them)"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, g.usageText())
		return nil
	}
	for _, s := range g.subs {
		if s.name == args[0] {
			return s.run(args[1:])
		}
	}
	return usageError{msg: fmt.Sprintf("%s: unknown subcommand %q (the subcommands are %s)", g.name, args[0], g.names()), usage: "usage: roost " + g.name + " SUBCOMMAND ...\n(roost " + g.name + " -h lists them)"}
}

func (g group) names() string {
	var n []string
	for _, s := range g.subs {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}
