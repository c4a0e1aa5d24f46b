package supervise

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// statFields returns fields 3 to 22 of /proc/PID/stat (state, ppid, pgrp,
// session, tty_nr, tpgid, flags, ... starttime is index 19), no more: the
// ones anything here reads. The command name, field 2, may hold spaces and
// parentheses, so the fields are counted from the last ')'.
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
	fields := make([]string, min(len(f), 20))
	for i, v := range f[:len(fields)] {
		fields[i] = string(v)
	}
	return fields, nil
}
