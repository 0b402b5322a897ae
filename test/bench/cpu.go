package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// clockTick is the kernel's USER_HZ: /proc's CPU times are in these units.
const clockTick = 100

// cpuTimes returns the CPU time (user + system) used so far by this process
// ("bench") and by each of its child processes (kube-apiserver, etcd, moat,
// ...), by command name, from /proc/PID/stat.
func cpuTimes() map[string]time.Duration {
	self := os.Getpid()
	out := map[string]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, file := range stats {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15)
		s := string(data)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := s[open+1 : closing]
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		ppid, _ := strconv.Atoi(fields[1])
		if pid != self && ppid != self {
			continue
		}
		if pid == self {
			comm = "bench"
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[comm] += time.Duration(utime+stime) * time.Second / clockTick
	}
	return out
}

// cpuSince formats the CPU time each process used since before.
func cpuSince(before map[string]time.Duration) string {
	now := cpuTimes()
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if d := now[k] - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f s", k, d.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// profileAPIServer saves a CPU profile of the API server over the next
// seconds to file (kube-apiserver serves /debug/pprof to cluster admins).
func profileAPIServer(c *cluster, seconds int, file string) error {
	hc, err := rest.HTTPClientFor(c.cfg)
	if err != nil {
		return err
	}
	resp, err := hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(c.cfg.Host, "/"), seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API server profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// profile starts, when -profile-dir is set, a CPU profile of the API server
// of -profile-seconds saved as DIR/name.apiserver.pprof, and returns a
// function that waits for it.
func (o *options) profile(c *cluster, name string) (wait func()) {
	if o.profileDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := profileAPIServer(c, o.profileSeconds, filepath.Join(o.profileDir, name+".apiserver.pprof")); err != nil {
			fmt.Fprintln(os.Stderr, "bench: profile:", err)
		}
	}()
	return func() { <-done }
}
