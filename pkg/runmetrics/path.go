package runmetrics

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Ext is the extension node_exporter's textfile collector requires: it
// reads DIR/*.prom and ignores every other file, including the temporary
// files Write renames into place.
const Ext = ".prom"

// maxEscaped is the longest escaped claim name used whole in a file name.
// With "claimctl_", ".prom" and the up to 10 digits that os.CreateTemp adds
// to the temporary file's name, it stays under the 255-byte limit of common
// file systems; it is also the longest claim name, so names of safe bytes are
// never cut.
const maxEscaped = 200

// FileFor returns the file that Write writes for claim when given path. If
// path is an existing directory, or ends in a path separator, the file is
// path/claimctl_<name>.prom, with <name> the escaped claim name described in
// the package doc, so that each claim on a host has a file of its own and no
// claim's run replaces another's series. Any other path is returned as it is.
func FileFor(path, claim string) string {
	if isDirPath(path) {
		return filepath.Join(path, "claimctl_"+escape(claim)+Ext)
	}
	return path
}

// isDirPath reports whether path names a directory: it ends in a separator
// (whether or not it exists) or is an existing directory.
func isDirPath(path string) bool {
	if strings.HasSuffix(path, "/") || strings.HasSuffix(path, string(filepath.Separator)) {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// escape makes claim safe as part of a file name: every byte outside
// [A-Za-z0-9._-] becomes %XX. An escaped form longer than maxEscaped is cut
// and ends in '~' and a hash of the whole name, which no whole escaped name
// can contain, so distinct claims get distinct files.
func escape(claim string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(claim); i++ {
		c := claim[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	s := b.String()
	if len(s) <= maxEscaped {
		return s
	}
	sum := sha256.Sum256([]byte(claim))
	tag := "~" + hex.EncodeToString(sum[:8])
	return s[:maxEscaped-len(tag)] + tag
}

// Validate reports why Write could not write metrics at path, or nil, so that
// a command can refuse a bad --metrics-file before it takes a claim and runs
// a job whose outcome would then go unreported. path must be a directory
// that exists (given as a directory, or ending in '/'), or a file name ending
// in .prom in a directory that exists. In both cases the directory must be
// writable: Validate creates and removes a hidden probe file there, since
// permission bits alone do not tell (read-only mounts, ACLs, root).
func Validate(path string) error {
	dir, err := checkPath(path)
	if err != nil {
		return err
	}
	probe, err := os.CreateTemp(dir, ".claimctl-probe-*")
	if err != nil {
		return fmt.Errorf("metrics directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// checkPath is Validate without the probe, for Write: it returns the
// directory the file goes in.
func checkPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("metrics file: the path is empty; give node_exporter's textfile directory " +
			"(such as /var/lib/node_exporter/textfile/) or a file in it ending in " + Ext)
	}
	dir := path
	if !isDirPath(path) {
		if filepath.Ext(path) != Ext {
			return "", fmt.Errorf("metrics file %s does not end in %s, so node_exporter's textfile collector would ignore it; "+
				"name it %s, or give the directory with a trailing '/' to get a file per claim",
				path, Ext, strings.TrimSuffix(path, filepath.Ext(path))+Ext)
		}
		dir = filepath.Dir(path)
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("metrics directory %s does not exist; create it, or give the directory "+
			"node_exporter reads (its --collector.textfile.directory)", dir)
	case err != nil:
		return "", fmt.Errorf("metrics directory: %w", err)
	case !fi.IsDir():
		return "", fmt.Errorf("metrics directory %s is not a directory", dir)
	}
	return dir, nil
}
