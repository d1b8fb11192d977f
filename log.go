package headless

import (
	"fmt"
	"slices"
	"strings"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/go-logr/logr"
)

var log = clog.NewWithPlugin(pluginName)

// newLogger returns the logger that the plugin hands client-go, through the
// context of its reflectors: their messages reach the CoreDNS log with the
// plugin's name, as the kubernetes plugin's do through klog.SetLogger, but
// without replacing klog's global logger, which that plugin also sets.
func newLogger() logr.Logger { return logr.New(logSink{}) }

// logSink is a logr.LogSink that writes to the plugin's log. It keeps
// client-go's verbosity level 0 only: its higher levels are debugging output.
type logSink struct {
	values []any
}

// Init implements logr.LogSink.
func (logSink) Init(logr.RuntimeInfo) {}

// Enabled implements logr.LogSink.
func (logSink) Enabled(level int) bool { return level <= 0 }

// Info implements logr.LogSink.
func (l logSink) Info(_ int, msg string, keysAndValues ...any) {
	log.Info(l.format(msg, nil, keysAndValues))
}

// Error implements logr.LogSink.
func (l logSink) Error(err error, msg string, keysAndValues ...any) {
	log.Error(l.format(msg, err, keysAndValues))
}

// WithValues implements logr.LogSink.
func (l logSink) WithValues(keysAndValues ...any) logr.LogSink {
	return logSink{values: append(slices.Clip(l.values), keysAndValues...)}
}

// WithName implements logr.LogSink.
func (l logSink) WithName(string) logr.LogSink { return l }

// format writes the message, the error and the key/value pairs, in which
// client-go puts the reflector and the resource.
func (l logSink) format(msg string, err error, keysAndValues []any) string {
	var b strings.Builder
	b.WriteString(msg)
	if err != nil {
		b.WriteString(": ")
		b.WriteString(err.Error())
	}
	kvs := append(slices.Clip(l.values), keysAndValues...)
	for i := 0; i < len(kvs); i += 2 {
		var v any = "(MISSING)"
		if i+1 < len(kvs) {
			v = kvs[i+1]
		}
		fmt.Fprintf(&b, " %v=%q", kvs[i], fmt.Sprint(v))
	}
	return b.String()
}
