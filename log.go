package headless

import (
	"strings"

	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

var log = clog.NewWithPlugin(pluginName)

// newLogger returns the logger that the plugin hands client-go, through the
// context of its reflectors: their messages reach the CoreDNS log with the
// plugin's name. The kubernetes plugin does the same for its own with an
// adapter it does not export, which it sets as klog's global logger; the
// plugin leaves that one alone and has logr's funcr write the key/value pairs,
// in which client-go puts the reflector and the resource. It keeps client-go's
// verbosity level 0 only: its higher levels are debugging output.
func newLogger() logr.Logger {
	return logr.New(&logSink{funcr.NewFormatter(funcr.Options{
		// The message and the error lead the line, as in the plugin's own.
		RenderBuiltinsHook: func([]any) []any { return nil },
	})})
}

// logSink is a logr.LogSink that writes to the plugin's log.
type logSink struct{ funcr.Formatter }

// Info implements logr.LogSink.
func (l *logSink) Info(level int, msg string, keysAndValues ...any) {
	_, kvs := l.FormatInfo(level, msg, keysAndValues)
	log.Info(line(msg, nil, kvs))
}

// Error implements logr.LogSink.
func (l *logSink) Error(err error, msg string, keysAndValues ...any) {
	_, kvs := l.FormatError(err, msg, keysAndValues)
	log.Error(line(msg, err, kvs))
}

// WithValues implements logr.LogSink.
func (l *logSink) WithValues(keysAndValues ...any) logr.LogSink {
	c := *l
	c.AddValues(keysAndValues)
	return &c
}

// WithName implements logr.LogSink.
func (l *logSink) WithName(string) logr.LogSink { return l }

func line(msg string, err error, kvs string) string {
	if err != nil {
		msg += ": " + err.Error()
	}
	if kvs = strings.TrimSpace(kvs); kvs != "" {
		msg += " " + kvs
	}
	return msg
}
