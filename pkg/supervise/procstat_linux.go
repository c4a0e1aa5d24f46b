package supervise

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// statFields returns the fields of /proc/PID/stat from the third on (state,
// ppid, pgrp, session, tty_nr, tpgid, ... starttime is index 19). The
// command name, field 2, may hold spaces and parentheses, so the fields are
// counted from the last ')'.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 4 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := make([]string, len(f))
	for i, v := range f {
		fields[i] = string(v)
	}
	return fields, nil
}
