// Command claimctl takes, holds and releases named claims (locks and
// semaphores) on etcd for cron jobs, CI pipelines and shell scripts.
package main

import (
	"os"

	"github.com/claimctl/claimctl/cmd"
)

// Stamped by the release build with -ldflags "-X main.version=...".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func main() {
	os.Exit(cmd.Main(cmd.BuildInfo{Version: version, Commit: commit, Date: date}, os.Args[1:]))
}
