// Command claimctl-server runs a real etcd member: a single-node server for a
// quick start, small sites and tests, or one member of a larger cluster. Its
// flags are etcd's own names for the settings claimctl needs.
package main

import (
	"context"
	"os"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3") by release
// builds; when empty, --version reports the module version Go recorded.
var version string

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, version))
}
