// Package iostreams owns the process's standard streams and the decisions
// that depend on them: whether a stream is a terminal, and whether to use
// colour. Commands write data to Out and talk to ErrOut, and tests swap the
// streams for buffers.
package iostreams

import (
	"bytes"
	"io"
	"os"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
)

// IOStreams is the set of streams a command uses.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// InFile, OutFile and ErrFile are the underlying files when the streams
	// are files, so that a child process can inherit them untouched; nil in
	// tests.
	InFile, OutFile, ErrFile *os.File

	outTTY, errTTY bool
	colorOut       bool
	colorErr       bool
}

// System returns the process's own streams.
func System() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		InFile: os.Stdin, OutFile: os.Stdout, ErrFile: os.Stderr,
		outTTY: isTerminal(os.Stdout), errTTY: isTerminal(os.Stderr),
	}
	s.SetColorMode("auto", os.Getenv("NO_COLOR") != "")
	return s
}

// Test returns streams backed by buffers, with no terminal and no colour.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// IsStdoutTTY reports whether standard output is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }

// IsStderrTTY reports whether standard error is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.errTTY }

// SetTTY overrides terminal detection, for tests.
func (s *IOStreams) SetTTY(stdout, stderr bool) { s.outTTY, s.errTTY = stdout, stderr }

// SetColorMode applies --color: "always", "never", or "auto" (colour on a
// stream only when it is a terminal and noColor, NO_COLOR being set, is
// false). It is decided per stream, since stderr can be a terminal while
// stdout is a pipe. The caller reads NO_COLOR, so that its environment can
// be a test's.
func (s *IOStreams) SetColorMode(mode string, noColor bool) {
	switch mode {
	case "always":
		s.colorOut, s.colorErr = true, true
	case "never":
		s.colorOut, s.colorErr = false, false
	default:
		s.colorOut, s.colorErr = s.outTTY && !noColor, s.errTTY && !noColor
	}
}

// ColorErr reports whether messages on ErrOut may be coloured.
func (s *IOStreams) ColorErr() bool { return s.colorErr }

// ColorOut reports whether human output on Out may be coloured.
func (s *IOStreams) ColorOut() bool { return s.colorOut }

// Paint returns text in the given colour attributes when enabled is true,
// and unchanged otherwise.
func Paint(enabled bool, text string, attrs ...color.Attribute) string {
	if !enabled {
		return text
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(text)
}
