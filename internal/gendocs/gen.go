//go:build ignore

// gen.go writes claimctl's completion scripts and man pages under the
// current directory (or -o DIR). It is a separate program, excluded from
// builds, so that `go build ./...` and `go install ./...` make no gendocs
// binary; generate.go at the repository root runs it with `go run`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/claimctl/claimctl/internal/gendocs"
)

func main() {
	dir := flag.String("o", ".", "write completions/ and man/man1/ under this directory (the repository root)")
	flag.Parse()
	if err := gendocs.Generate(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}
