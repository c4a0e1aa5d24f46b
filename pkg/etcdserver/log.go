package etcdserver

import (
	"io"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds a logger like etcd's own (JSON, same field names) that
// writes to w, so that log processing set up for etcd keeps working, minus
// the noise described at noiseFilter.
func newLogger(w io.Writer, level zapcore.Level, closing *atomic.Bool) *zap.Logger {
	enc := zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	sink := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewCore(enc, sink, zap.NewAtomicLevelAt(level))
	return zap.New(noiseFilter{core, closing}, zap.AddCaller(), zap.ErrorOutput(sink))
}

// noiseFilter drops the few messages etcd logs at level error when nothing
// is wrong, so that the default level (error) means "silent unless there is
// a problem". Messages are matched by their exact text: if etcd rewords one,
// it shows up again, which is visible and harmless.
type noiseFilter struct {
	zapcore.Core
	closing *atomic.Bool // set once Close (or a failed Start) begins
}

func (f noiseFilter) With(fields []zapcore.Field) zapcore.Core {
	return noiseFilter{f.Core.With(fields), f.closing}
}

func (f noiseFilter) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(ent.Level) {
		return ce.AddCore(ent, f)
	}
	return ce
}

func (f noiseFilter) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if f.noise(ent.Message, fields) {
		return nil
	}
	return f.Core.Write(ent, fields)
}

func (f noiseFilter) noise(msg string, fields []zapcore.Field) bool {
	switch msg {
	case "setting up serving from embedded etcd failed.":
		// Logged for every listener that stops, including on an orderly
		// Close: four error lines per clean shutdown.
		return f.closing.Load()
	case "creating peer listener failed":
		// Start returns the same error, naming the URL.
		return true
	case "failed to update storage version":
		// A member stopped within moments of bootstrapping has not yet
		// written the raft term to its database; etcd retries later.
		return errorContains(fields, "missing term information")
	}
	return false
}

func errorContains(fields []zapcore.Field, s string) bool {
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType && strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}
