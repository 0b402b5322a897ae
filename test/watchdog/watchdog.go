// Package watchdog makes sure that the processes a test suite or a local run
// starts (etcd, kube-apiserver) do not outlive it, also when it is killed
// with SIGKILL and gets no chance to stop them itself.
//
// envtest starts etcd and kube-apiserver in process groups of their own and
// without a parent-death signal, so they survive a killed parent. A watchdog
// is a small detached shell that waits for the parent to disappear and then
// terminates the processes it guards. On a normal shutdown the parent stops
// the watchdog first and its processes afterwards, as usual.
package watchdog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// script blocks reading its stdin, a pipe whose only writer is this process:
// the kernel closes it when this process exits in any way, SIGKILL included.
// Then it sends SIGTERM to its arguments and, 5 seconds later, SIGKILL to
// whatever is left of them.
const script = `read -r _ignored
kill -TERM "$@" 2>/dev/null
sleep 5
kill -KILL "$@" 2>/dev/null
exit 0`

// Watchdog terminates the processes it guards once this process is gone.
type Watchdog struct {
	cmd  *exec.Cmd
	pipe io.WriteCloser // held open until Stop: its closing is the alarm
	done chan struct{}
}

// Start guards pids: if this process exits without calling Stop, each of them
// receives SIGTERM at once, and SIGKILL 5 seconds later.
func Start(pids []int) (*Watchdog, error) {
	if len(pids) == 0 {
		return nil, errors.New("watchdog: no processes to guard")
	}
	args := []string{"-c", script, "moat-watchdog"}
	for _, pid := range pids {
		if pid <= 1 {
			return nil, fmt.Errorf("watchdog: refusing to guard pid %d", pid)
		}
		args = append(args, strconv.Itoa(pid))
	}
	cmd := exec.Command("/bin/sh", args...)
	// A process group of its own: a Ctrl-C or a signal to this process's
	// group must not take the watchdog down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	w := &Watchdog{cmd: cmd, pipe: pipe, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// Stop ends the watchdog without touching the processes it guards. Call it
// before stopping them, so that their process IDs, once free, are never
// signalled.
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	_ = w.cmd.Process.Kill()
	<-w.done
	_ = w.pipe.Close()
}

// Children returns the IDs of this process's running children whose
// executable is one of paths (compared after resolving symbolic links).
func Children(paths ...string) ([]int, error) {
	want := map[string]bool{}
	for _, p := range paths {
		resolved, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("watchdog: %w", err)
		}
		want[resolved] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); !ok || ppid != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if want[exe] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// parentOf reads the parent process ID from /proc/PID/stat, whose second
// field (the command name, in parentheses) may itself contain spaces and
// parentheses.
func parentOf(pid int) (int, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, false
	}
	fields := bytes.Fields(stat[end+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
}
