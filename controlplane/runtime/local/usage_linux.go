package local

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// clockTicks is Linux's USER_HZ, the unit of CPU times in /proc/<pid>/stat: 100 on every
// architecture Go supports.
const clockTicks = 100

// InstanceUsage measures the CPU time and resident memory of every ready instance, by
// revision ("namespace/name") and instance index, for the hpa class. An instance is its
// process group (the runtime starts each in a group of its own, so a shell's or `go run`'s
// children count too); its process is found among this process's children by the PORT it was
// given. It reads /proc; instances it cannot find are left out.
func (r *Runtime) InstanceUsage() map[string]map[string]runtime.InstanceUsage {
	type ready struct{ rev, index string }
	byPort := map[int]ready{}
	for _, in := range r.ReadyInstances() {
		byPort[in.Port] = ready{rev: in.Revision.String(), index: strconv.Itoa(in.Index)}
	}
	out := map[string]map[string]runtime.InstanceUsage{}
	if len(byPort) == 0 {
		return out
	}
	procs := readProcs()
	self := os.Getpid()
	leaders := map[int]ready{} // process group → instance
	for _, p := range procs {
		if p.ppid != self || p.pgrp != p.pid {
			continue
		}
		if in, ok := byPort[portOf(p.pid)]; ok {
			leaders[p.pid] = in
		}
	}
	for _, p := range procs {
		in, ok := leaders[p.pgrp]
		if !ok {
			continue
		}
		if out[in.rev] == nil {
			out[in.rev] = map[string]runtime.InstanceUsage{}
		}
		u := out[in.rev][in.index]
		u.CPUSeconds += p.cpuSeconds
		u.MemoryBytes += p.rssBytes
		out[in.rev][in.index] = u
	}
	return out
}

// proc is what InstanceUsage reads of one process.
type proc struct {
	pid, ppid, pgrp int
	cpuSeconds      float64
	rssBytes        float64
}

// readProcs reads every process's /proc/<pid>/stat; processes that vanish meanwhile are skipped.
func readProcs() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	page := float64(os.Getpagesize())
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name (field 2) is in parentheses and may hold spaces: split after it.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		// f[0] is field 3 (state): ppid is field 4, pgrp 5, utime 14, stime 15, rss 24.
		if len(f) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		rss, _ := strconv.ParseFloat(f[21], 64)
		out = append(out, proc{pid: pid, ppid: ppid, pgrp: pgrp, cpuSeconds: (utime + stime) / clockTicks, rssBytes: rss * page})
	}
	return out
}

// portOf is the PORT in a process's environment, or 0.
func portOf(pid int) int {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return 0
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("PORT=")); ok {
			n, _ := strconv.Atoi(string(v))
			return n
		}
	}
	return 0
}
