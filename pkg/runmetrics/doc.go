// Package runmetrics writes how a claimctl run ended as a file for
// node_exporter's textfile collector, so that cron jobs and timers that run
// under a claim can be watched and alerted on with Prometheus.
//
// A run is described by a Report and written with Write. The file holds
// gauges labelled with the claim (see Write for the list), is replaced
// atomically (prometheus.WriteToTextfile writes a temporary file in the same
// directory and renames it over the old one, so node_exporter never reads
// half a file), and carries no timestamps: node_exporter refuses samples that
// have them.
//
// # One file per claim
//
// Several claims, or several jobs, run on one host, and each must keep its
// own series. FileFor gives the rule: when the path given is a directory
// (an existing one, or any path ending in '/'), the file is
// DIR/claimctl_<name>.prom, where <name> is the claim name with every byte
// outside [A-Za-z0-9._-] written as %XX (upper-case hex, as in URLs), so
// "backup/db" becomes claimctl_backup%2Fdb.prom and url.PathUnescape turns
// the name back. Names whose escaped form would be longer than 200 bytes are
// cut to fit and end in '~' and 16 hex digits of their SHA-256 instead: file
// names are limited to 255 bytes, and '~' never appears in an escaped name,
// so two claims still never share a file. The claim label inside the file
// always has the full name. Any other path is the file itself and must end
// in ".prom", because node_exporter reads nothing else; Validate says so
// before the run starts.
//
// # The last success survives
//
// On a fleet where every host runs the same cron line, one host takes the
// claim and the others skip. The alert "the job did not run" therefore looks
// at the newest claimctl_last_success_timestamp_seconds across hosts, and
// each host must keep reporting its own last success through any number of
// later skipped or failed runs. Write reads the previous file (with expfmt's
// text parser) and carries that value over when the run it writes is not
// OK. A previous file that cannot be read or parsed is ignored, and the new
// file starts afresh, rather than losing the report of this run.
//
// # A killed claimctl
//
// Write is called when the claim is taken (Outcome Holding) and again when
// the run ends. If claimctl is killed in between (SIGKILL, OOM killer,
// power loss), the file keeps saying claimctl_holding 1 with the time the
// hold started, so an alert on "held for more than an hour" fires: someone
// should look at a job that died mid-run.
package runmetrics
