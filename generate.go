package main

// The completion scripts in completions/ and the man pages in man/man1/ are
// generated from the command tree and committed; internal/gendocs's test
// fails when they are out of date.
//go:generate go run ./internal/gendocs/gen.go
